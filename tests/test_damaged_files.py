"""Files srnas reads back, damaged: a LUT cut mid-row, a history cut mid-row or garbled, a train log cut short.
Each gives one warning line, the damaged rows are left out (measured / evaluated again), and nothing is glued."""
from __future__ import annotations

import csv
import warnings

import pandas as pd
import pytest

from conftest import tiny_config
from srnas.latency.build import build_lut
from srnas.latency.lut import LUT, DamagedLUTWarning, read_csv
from srnas.search.cli import main
from srnas.search.history import COLUMNS, DamagedHistoryWarning, History
from srnas.supernet.config import load_config
from srnas.supernet.errors import UserError
from srnas.supernet.train import _append_log, _truncate_log


def _lut_config(tmp_path):
    return tiny_config(tmp_path, latency={"lr_height": 8, "lr_width": 8, "warmup": 0, "repeats": 1, "threads": 1,
                                          "calib_samples": 0}, pruning={"schemes": ["none"]})


def _data_lines(path):
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")][1:]


def _cut_in_last_number(path) -> str:
    """Cut the file inside the last row's latency_ms, so what is left still ends in digits (and parses)."""
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    fields = next(csv.reader([last]))
    header = next(csv.reader([[ln for ln in text.splitlines() if not ln.startswith("#")][0]]))
    i = header.index("latency_ms")
    kept = ",".join(fields[:i]) + "," + fields[i][:3]
    assert kept[-1].isdigit()
    path.write_text(text[:len(text) - len(last) - 1] + kept)
    return last


def test_a_lut_cut_mid_row_is_measured_again_not_glued(tmp_path):
    cfg = load_config(_lut_config(tmp_path))
    path = build_lut(cfg, progress=False).path
    full = _data_lines(path)
    lost = _cut_in_last_number(path)
    with pytest.warns(DamagedLUTWarning, match=r"1 damaged row\(s\) left out \(line \d+ cut short"):
        lut = LUT.load(path)
    assert len(lut) == len(full) - 1
    with pytest.warns(DamagedLUTWarning):
        rebuilt = build_lut(cfg, progress=False)
    lines = _data_lines(path)
    header_fields = len(next(csv.reader([[ln for ln in path.read_text().splitlines() if not ln.startswith("#")][0]])))
    assert all(len(next(csv.reader([ln]))) == header_fields for ln in lines)   # nothing glued
    assert len(rebuilt) == len(full) and len(lines) == len(full)
    assert lost.split(",")[2:8] == next(r for r in lines if r.split(",")[2:8] == lost.split(",")[2:8]).split(",")[2:8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LUT.load(path)                      # clean again


def test_a_half_row_of_zeros_is_left_out_with_a_warning_not_an_error(tmp_path):
    cfg = load_config(_lut_config(tmp_path))
    path = build_lut(cfg, progress=False).path
    n = len(_data_lines(path))
    text = path.read_text().splitlines(keepends=True)
    first = next(i for i, ln in enumerate(text) if not ln.startswith("#")) + 1    # the row under the column names
    text[first] = ",".join(text[first].split(",")[:10]) + ",0.0,0.0\n"     # a row whose numbers were lost
    path.write_text("".join(text))
    with pytest.warns(DamagedLUTWarning, match="line"):
        assert len(LUT.load(path)) == n - 1
    with pytest.warns(DamagedLUTWarning):
        assert len(build_lut(cfg, progress=False)) == n


def test_a_damaged_lut_via_the_cli_is_one_warning_and_the_build_completes(tmp_path, capsys):
    cfg_path = _lut_config(tmp_path)
    assert main(["latency", "build", "-c", str(cfg_path), "--calib-samples", "0"]) == 0
    path = tmp_path / "runs" / "tiny" / "latency" / "lut-torch-cpu.csv"
    n = len(_data_lines(path))
    _cut_in_last_number(path)
    with pytest.warns(DamagedLUTWarning):
        assert main(["latency", "build", "-c", str(cfg_path), "--calib-samples", "0"]) == 0
    assert len(_data_lines(path)) == n and path.read_text().endswith("\n")


def test_an_imported_csv_with_a_bad_row_is_refused_in_one_line(tmp_path):
    src = tmp_path / "phone.csv"
    src.write_text("op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,8,3,4,4,none,0,1.5\nconv,8,8\n")
    with pytest.raises(UserError, match=r"data row 2 \(line 3\) is not valid \(3 fields where the header has 9"):
        read_csv(src)


def test_a_lut_with_a_cut_fingerprint_line_names_the_file(tmp_path):
    lut = LUT.create(tmp_path / "lut.csv", {"backend": "torch-cpu", "cpu_model": "x"})
    lut.path.write_text(lut.path.read_text()[:30] + "\n" + "op,cin\n")
    with pytest.raises(UserError, match="lut.csv: its '# srnas-lut fingerprint:' line is damaged"):
        LUT.load(lut.path)


def _history(tmp_path, n=4) -> History:
    h = History(tmp_path / "history.csv")
    for i in range(n):
        h.append({"search": "guided", "iteration": 0, "order": i, "key": f"cand{i}", "candidate": '{"path": ["a"]}',
                  "psnr": 30.0 + i})
    return h


def test_a_history_cut_mid_row_drops_that_row_and_appends_cleanly(tmp_path):
    h = _history(tmp_path)
    text = h.path.read_text()
    h.path.write_text(text[:-12])          # the last row cut inside
    with pytest.warns(DamagedHistoryWarning, match="1 damaged row.*line 5 cut short.*evaluated again"):
        again = History(h.path)
    assert [r["key"] for r in again.rows] == ["cand0", "cand1", "cand2"]
    again.append({"search": "guided", "iteration": 0, "order": 3, "key": "cand3", "candidate": "{}", "psnr": 33.0})
    df = pd.read_csv(h.path)
    assert list(df["key"]) == ["cand0", "cand1", "cand2", "cand3"] and df["key"].is_unique
    assert list(df.columns) == COLUMNS


def test_a_history_with_a_garbled_row_or_a_cut_header_loads(tmp_path):
    h = _history(tmp_path)
    lines = h.path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:20] + "\n"        # a short row in the middle (two writes mixed up)
    h.path.write_text("".join(lines))
    with pytest.warns(DamagedHistoryWarning, match="line 3 has"):
        assert [r["key"] for r in History(h.path).rows] == ["cand0", "cand2", "cand3"]
    h.path.write_text("search,iteration,ord")  # killed while writing the header
    with pytest.warns(DamagedHistoryWarning, match="header"):
        assert History(h.path).rows == []
    _history(tmp_path / "b", 1)
    assert History(tmp_path / "b" / "history.csv").rows[0]["key"] == "cand0"


def test_a_train_log_cut_short_is_repaired_on_resume(tmp_path):
    log = tmp_path / "train_log.csv"
    _append_log(log, [{"epoch": 1, "step": 3, "loss": 0.1, "path": "a-a", "psnr": 20.0}])
    _append_log(log, [{"epoch": 2, "step": 6, "loss": 0.1, "path": "a-a", "psnr": 21.0}])
    log.write_text(log.read_text()[:-6])      # cut in the last row
    with pytest.warns(UserWarning, match="1 damaged row"):
        _truncate_log(log, 6)
    _append_log(log, [{"epoch": 2, "step": 6, "loss": 0.1, "path": "a-a", "psnr": 21.5}])
    df = pd.read_csv(log)
    assert list(df["step"]) == [3, 6] and df["psnr"].iloc[-1] == 21.5


def test_a_lut_or_csv_of_binary_data_is_one_line(tmp_path, capsys):
    """Not text at all: a UnicodeDecodeError traceback from `latency build` and `latency import`."""
    cfg = _lut_config(tmp_path)
    lut = tmp_path / "runs" / "tiny" / "latency" / "lut-torch-cpu.csv"
    lut.parent.mkdir(parents=True)
    lut.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError, match="is not a LUT: not text"):
        read_csv(lut)
    assert main(["latency", "build", "-c", str(cfg)]) == 2
    assert main(["latency", "import", "-c", str(cfg), str(lut), "--cpu-model", "phone",
                 "--out", str(tmp_path / "l.csv")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("is not a LUT: not text") == 2 and not (tmp_path / "l.csv").exists()

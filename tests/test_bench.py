"""`srnas bench`: one CSV row per model and dataset, markdown table, Pareto plot; exported files join the table."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from srnas.experiments import zoo
from srnas.experiments.bench import pareto_front, run_bench, summary_json
from srnas.experiments.macs import count_macs
from srnas.experiments.quantize import export_torchscript
from srnas.search.cli import main

from conftest import need_benchmarks

torch.set_num_threads(1)


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 30.0, "a"), (2.0, 29.0, "b"), (3.0, 32.0, "c"), (0.5, 28.0, "d"), (3.0, 31.0, "e")]
    assert [p[2] for p in pareto_front(pts)] == ["d", "a", "c"]


def test_macs_counter_on_known_layers():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (10, 20)) == 10 * 20 * 8 * 3 * 9
    deconv = torch.nn.ConvTranspose2d(4, 1, 9, stride=2, padding=4, output_padding=1)
    assert count_macs(deconv, (10, 10), in_ch=4) == 100 * 4 * 81


def test_bench_writes_csv_markdown_plot_with_exported_model(tmp_path):
    need_benchmarks()
    ts = export_torchscript(zoo.build("abpn", 2).eval(), tmp_path / "searched" / "model.ts")
    out = tmp_path / "bench"
    df = run_bench(["bicubic", str(ts)], ["Set5"], 2, out, lr_hw=(36, 64), threads=1, repeats=1)
    csv = pd.read_csv(out / "bench.csv")
    for col in ["model", "dataset", "scale", "psnr", "ssim", "latency_ms", "params", "macs"]:
        assert col in csv.columns
    assert len(csv) == 2 and set(csv["dataset"]) == {"Set5"}
    bic = csv[csv["model"] == "bicubic"].iloc[0]
    assert abs(bic["psnr"] - 33.66) < 0.1 and bic["latency_ms"] > 0
    assert "searched/model.ts" in set(csv["model"])
    md = (out / "bench.md").read_text()
    assert "| bicubic |" in md and "Set5 PSNR/SSIM" in md
    assert (out / "bench.png").stat().st_size > 1000
    assert len(df) == 2


def test_bench_cli_prints_table_and_json(tmp_path, capsys):
    need_benchmarks()
    rc = main(["bench", "--models", "bicubic", "--datasets", "Set5", "--out", str(tmp_path), "--lr-size", "24x32",
               "--threads", "1", "--repeats", "1"])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["bicubic"]["psnr_Set5"] > 33.5


def test_bench_missing_weights_is_user_error(tmp_path, capsys):
    rc = main(["bench", "--models", "wdsr_a", "--datasets", "skimage", "--out", str(tmp_path),
               "--weights-dir", str(tmp_path)])
    assert rc == 2 and "srnas zoo train wdsr_a" in capsys.readouterr().err


def test_bench_times_8bit_frames_where_the_runtime_has_a_pixel_route(tmp_path):
    """OpenVINO rows carry frame_ms (uint8 frames in and out, as the upscaler runs them); torch rows do not."""
    from srnas.latency.executors import available_executors
    if ("openvino", "fp32") not in available_executors():
        pytest.skip("OpenVINO does not run fp32 here")
    ov = run_bench(["bicubic", "espcn"], ["skimage"], 2, tmp_path / "ov", lr_hw=(24, 32), threads=1, repeats=1,
                   backend="openvino")
    assert (ov["frame_ms"] > 0).all() and (ov["latency_ms"] > 0).all()
    assert "8-bit frames" in (tmp_path / "ov" / "bench.md").read_text()
    assert all("frame_ms" in v for v in json.loads(summary_json(ov)).values())
    pt = run_bench(["bicubic"], ["skimage"], 2, tmp_path / "pt", lr_hw=(24, 32), threads=1, repeats=1,
                   backend="torch-cpu")
    assert pt["frame_ms"].isna().all()
    assert "8-bit frames" not in (tmp_path / "pt" / "bench.md").read_text()


@pytest.mark.parametrize("where", ["file", "under_a_file", "read_only"])
def test_bench_out_that_cannot_be_written_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, where):
    """--out a file or under one was a FileExistsError / NotADirectoryError traceback, read-only an EROFS one from
    pandas after every model had been scored and timed."""
    import errno
    import os

    import srnas.experiments.bench as bench_mod
    import srnas.supernet.writes as writes
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    out = {"file": taken, "under_a_file": taken / "b", "read_only": tmp_path / "ro"}[where]
    if where == "read_only":
        def read_only(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr(writes, "write_probe", read_only)
    monkeypatch.setattr(bench_mod, "load_model", lambda *a: pytest.fail("work began before --out was checked"))
    assert main(["bench", "--models", "bicubic", "--datasets", "skimage", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and f"--out {out}" in err, err
    assert taken.read_text() == "keep me"

"""`srnas bench` with its defaults on a bare clone: the embedded images stand in for the benchmark sets."""
from __future__ import annotations

from srnas.search.cli import main


def test_bench_defaults_without_benchmark_sets(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                      # no ../shared from here
    monkeypatch.delenv("SRNAS_DATA", raising=False)
    out = tmp_path / "bench"
    assert main(["bench", "--models", "bicubic", "--lr-size", "24x32", "--repeats", "1", "--threads", "1",
                 "--out", str(out)]) == 0
    assert "datasets: skimage" in capsys.readouterr().out
    assert "skimage" in (out / "bench.csv").read_text()


def test_bench_missing_dataset_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SRNAS_DATA", raising=False)
    assert main(["bench", "--models", "bicubic", "--datasets", "skimage,Set14", "--out", str(tmp_path / "b")]) == 2
    assert "'Set14' is neither a folder" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_rows_are_typed_and_round_trip(tmp_path):
    import pandas as pd
    from srnas.experiments.bench import COLUMNS, BenchRow, run_bench
    df = run_bench(["bicubic"], ["skimage"], 2, tmp_path, lr_hw=(24, 32), threads=1, repeats=1)
    assert list(df.columns) == COLUMNS
    rows = [BenchRow.from_json(r) for r in pd.read_csv(tmp_path / "bench.csv", keep_default_na=False).to_dict("records")]
    assert [(r.model, r.dataset) for r in rows] == [("bicubic", "skimage")] and rows[0].psnr > 20

"""`srnas run` end to end on a tiny config (real supernet, LUT, evaluator, stage 3, export, report),
and the impossible-target message through the CLI."""
from __future__ import annotations

import pytest

import json

import pandas as pd

from srnas.search.cli import main
from conftest import tiny_config

TINY = dict(
    data={"benchmarks": ["skimage"]},
    latency={"lr_height": 12, "lr_width": 16, "rates": [0.0, 0.5], "warmup": 1, "repeats": 3, "calib_samples": 2,
             "threads": 1},
    pruning={"schemes": ["none", "unstructured", "filter"], "reg_steps": 2, "finetune_steps": 2},
    search={"iterations": 1, "init_candidates": 3, "top_h": 2, "pool_c": 4, "pick_b": 2, "ensemble": 2,
            "eval_steps": 2, "eval_batch": 2, "val_crop": 48},
)


@pytest.mark.slow
def test_run_end_to_end_and_skip_finished(tmp_path, capsys):
    cfg = tiny_config(tmp_path, **{**TINY, "latency": {**TINY["latency"], "target": "1000ms"}})
    assert main(["run", "-c", str(cfg)]) == 0
    run = tmp_path / "runs" / "tiny"
    for f in ["config.yaml", "supernet/supernet.pt", "latency/lut-torch-cpu.csv", "search/history.csv",
              "search/history_random.csv", "winner.yaml", "stage3/final.json", "report.md",
              "figures/search_progress.png", "figures/psnr_vs_latency.png", "figures/predictor_vs_true.png"]:
        assert (run / f).exists(), f
    hist = pd.read_csv(run / "search" / "history.csv")
    # every dense path meets 1000 ms, so a candidate is its path: the space holds 2 x 2 networks, and the
    # search (3 initial + 2 picked) ends short after evaluating each once
    assert len(hist) == 4 and hist["key"].is_unique
    assert {"pred_mean", "acq", "lat_pred_ms", "macs", "params", "psnr"} <= set(hist.columns)
    assert (hist["lat_pred_ms"] <= 1000.0).all() and hist["psnr"].gt(10).all()
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["measured_ms"] > 0 and final["psnr"] > 10
    assert all((run / p).exists() for p in final["files"].values())   # relative to the run folder
    report = (run / "report.md").read_text()
    assert "Ablation" in report and "Kendall tau" in report
    out = capsys.readouterr().out
    assert "winner:" in out and json.loads(out.strip().splitlines()[-1])["winner"]
    # a second run skips every finished stage and evaluates nothing again
    assert main(["run", "-c", str(cfg)]) == 0
    assert len(pd.read_csv(run / "search" / "history.csv")) == 4
    assert "exists; skipping" in capsys.readouterr().out


def test_impossible_target_fails_before_search(tmp_path, capsys):
    cfg = tiny_config(tmp_path, **{**TINY, "latency": {**TINY["latency"], "target": "0.01ms"}})
    assert main(["run", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "latency target 0.01 ms cannot be met" in err and "fastest candidate" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "tiny" / "search" / "history.csv").exists()

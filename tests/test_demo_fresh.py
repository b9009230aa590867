"""The shipped configs run where only the clone exists: no ../shared beside the working folder, no $SRNAS_DATA.

Each is the real file under experiments/configs, shrunk with --set overrides (the same validation as
the file), run as a user runs it: the console entry point in a fresh process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SHRINK = ["train.steps=6", "train.epoch_steps=3", "train.val_paths=1", "model.n_feats=8", "data.patch_size=16",
          "data.batch_size=4", "latency.lr_height=12", "latency.lr_width=16", "latency.warmup=0", "latency.repeats=2",
          "latency.calib_samples=1", "latency.threads=1", "latency.rates=[0,0.5]", "latency.target=1.2x",
          "latency.soft_target=true", "pruning.reg_steps=2", "pruning.finetune_steps=2", "search.iterations=1",
          "search.init_candidates=2", "search.top_h=1", "search.pool_c=2", "search.pick_b=1", "search.ensemble=2",
          "search.eval_steps=1", "search.eval_batch=2", "search.val_crop=32", "search.ablation=false"]


def run_on_bare_clone(config: str, tmp_path: Path, extra: list[str]) -> Path:
    """`srnas run` of experiments/configs/<config>.yaml, shrunk, from a folder with nothing beside it; its run dir."""
    work = tmp_path / "user"
    work.mkdir()
    assert not (work.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "SRNAS_DATA"}
    args = [sys.executable, "-m", "search.cli", "run", "-c", str(ROOT / f"experiments/configs/{config}.yaml"),
            "--set", f"run_dir={work / 'runs'}"]
    for s in SHRINK + extra:
        args += ["--set", s]
    p = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return work / "runs" / config


@pytest.mark.slow
def test_demo_config_runs_with_only_the_clone(tmp_path):
    run = run_on_bare_clone("quick", tmp_path, ["model.n_cells=2", "pruning.schemes=[none,filter]"])
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["benchmark"] == "skimage" and final["psnr"] > 20
    assert (run / "report.md").is_file() and (run / "export" / "model.onnx").is_file()
    saved = (run / "config.yaml").read_text()
    assert "target: 1.2x" not in saved and "ms" in saved.split("target:")[1].splitlines()[0]
    # make demo's second step: the winner against the zoo, in the run's executor, into its report
    p = subprocess.run([sys.executable, "-m", "search.cli", "bench", "--run", str(run), "--models", "bicubic,espcn",
                        "--lr-size", "12x16", "--repeats", "1", "--threads", "1"], cwd=run.parent.parent,
                       capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k != "SRNAS_DATA"})
    assert p.returncode == 0, p.stderr[-3000:]
    report = (run / "report.md").read_text()
    assert "## Against the zoo (torch-cpu" in report and "| espcn |" in report and "stage3/pruned.pt" in report
    assert (run / "bench" / "bench.png").is_file()


@pytest.mark.slow
def test_fast_config_runs_with_only_the_clone(tmp_path):
    """plain / dws / wdsr_b cells with ABPN's head, tail, anchor and clamp: whole-block LUT rows in ONNX Runtime."""
    run = run_on_bare_clone("fast_x2", tmp_path, ["pruning.schemes=[none,filter,block]"])
    lut = (run / "latency" / "lut-onnxruntime.csv").read_text()
    assert all(f"block_{b}" in lut for b in ("plain", "dws", "wdsr_b")) and "clamp" in lut
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["psnr"] > 20 and (run / "export" / "model.onnx").is_file()


@pytest.mark.slow
def test_ship_winners_searches_both_targets_and_ships_them(tmp_path):
    """experiments/ship_winners.py on fast_x2 (shrunk): srnas_abpn at abpn_int8's time, srnas_50ms reusing its
    supernet and LUT; both land in the weights folder and load by name."""
    sets = [a for s in SHRINK + [f"run_dir={tmp_path / 'runs'}", "pruning.schemes=[none,filter]"]
            for a in ("--set", s)]
    p = subprocess.run([sys.executable, str(ROOT / "experiments/ship_winners.py"), "-c",
                        str(ROOT / "experiments/configs/fast_x2.yaml"), "--weights-dir", str(tmp_path), *sets],
                       capture_output=True, text=True, timeout=900)
    assert "srnas_abpn's target" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
    assert "supernet.pt exists; skipping" in p.stdout + p.stderr   # the 50 ms run reused the first's supernet
    from experiments.models import load_model
    for name in ("srnas_abpn", "srnas_50ms"):
        assert load_model(name, 2, weights_dir=tmp_path).info["steps"] > 0

"""The fast space's example config (plain / dws / wdsr_b cells, ABPN's head, tail, anchor and clamp) runs
end to end on a bare clone, shrunk with --set: supernet, LUT (whole-block rows, ONNX Runtime), search,
stage 3, export."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SHRINK = ["train.steps=6", "train.epoch_steps=3", "train.val_paths=1", "model.n_feats=8", "data.patch_size=16",
          "data.batch_size=4", "latency.lr_height=12", "latency.lr_width=16", "latency.warmup=0", "latency.repeats=2",
          "latency.calib_samples=1", "latency.threads=1", "latency.rates=[0,0.5]", "latency.target=1.2x",
          "latency.soft_target=true", "pruning.schemes=[none,filter,block]", "pruning.reg_steps=2",
          "pruning.finetune_steps=2", "search.iterations=1", "search.init_candidates=2", "search.top_h=1",
          "search.pool_c=2", "search.pick_b=1", "search.ensemble=2", "search.eval_steps=1", "search.eval_batch=2",
          "search.val_crop=32", "search.ablation=false"]


@pytest.mark.slow
def test_fast_config_runs_with_only_the_clone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SRNAS_DATA"}
    args = [sys.executable, "-m", "search.cli", "run", "-c", str(ROOT / "experiments/configs/fast_x2.yaml"),
            "--set", f"run_dir={tmp_path / 'runs'}"]
    for s in SHRINK:
        args += ["--set", s]
    p = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "runs" / "fast_x2"
    lut = (run / "latency" / "lut-onnxruntime.csv").read_text()
    assert all(f"block_{b}" in lut for b in ("plain", "dws", "wdsr_b")) and "clamp" in lut
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["psnr"] > 20 and (run / "export" / "model.onnx").is_file()

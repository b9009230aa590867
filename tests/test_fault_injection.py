"""`srnas run` killed with SIGKILL in every stage, each time run again: nothing lost, nothing repeated.

One tiny run is killed during supernet training, the LUT build, the search, stage 3 (pruning)
and the export, each kill triggered by the file that marks the stage's progress, and each
followed by the same command. The resumed run must keep every search evaluation exactly once,
continue stage 3 from its checkpoint (not from step 0), and end with complete, loadable files.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT, tiny_config
from srnas.supernet import checkpoint
from test_search_pipeline import TINY
from test_train_resume import _srnas

GUIDED = 4 + 2 * 2          # init_candidates + iterations x pick_b, as configured below
REG_STEPS, FT_STEPS = 150, 100


def _config(tmp_path: Path) -> Path:
    """The tiny run of test_search_pipeline, with each stage long enough to be killed inside."""
    return tiny_config(
        tmp_path, data=TINY["data"],
        model={"n_cells": 3},    # 8 dense paths: enough distinct candidates for GUIDED evaluations
        train={"steps": 120, "epoch_steps": 40},
        latency={**TINY["latency"], "target": "1000ms", "rates": [0.0, 0.25, 0.5, 0.75]},
        pruning={**TINY["pruning"], "reg_steps": REG_STEPS, "finetune_steps": FT_STEPS},
        search={**TINY["search"], "init_candidates": 4, "iterations": 2, "eval_steps": 4})


def _rows(path: Path) -> int:
    """Data rows of a CSV (comment and header lines not counted); 0 when it does not exist yet."""
    if not path.exists():
        return 0
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return max(0, len(lines) - 1)


def _run_until(cfg: Path, log: Path, when: Callable[[], bool] | None, timeout: float = 120) -> bool:
    """`srnas run -c cfg` (output to ``log``); with ``when``, SIGKILL its process group once when() holds.

    Returns whether it was killed; a run that ends first must have succeeded.
    """
    # unbuffered: a SIGKILL must not swallow what the run printed before it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(_srnas("run", "-c", str(cfg)), cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while when is not None and proc.poll() is None and time.time() < deadline:
            if when():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.01)
        rc = proc.wait(timeout=max(1.0, deadline - time.time()))
    assert rc == 0, log.read_text()[-3000:]
    return False


@pytest.mark.slow
def test_killed_in_every_stage_resumes_to_complete_files(tmp_path):
    cfg = _config(tmp_path)
    run = tmp_path / "runs" / "tiny"
    lut = run / "latency" / "lut-torch-cpu.csv"
    hist = run / "search" / "history.csv"
    s3 = run / "stage3"
    kills = [  # (stage, the moment to kill: that stage has saved progress and not finished)
        ("supernet", lambda: (run / "supernet" / "checkpoint.pt").exists()),
        ("lut", lambda: _rows(lut) >= 8),
        ("search", lambda: _rows(hist) >= 3),
        ("stage3", lambda: (s3 / "checkpoint.pt").exists()),
        ("export", lambda: (s3 / "pruned.pt").exists()),
    ]
    saved = None
    for stage, when in kills:
        log = tmp_path / f"run-killed-in-{stage}.log"
        assert _run_until(cfg, log, when), f"the run finished before it could be killed in {stage}"
        _check_killed_inside(stage, run)
        if stage == "stage3":   # what the killed stage 3 had saved: past step 0 of regularization
            saved = checkpoint.load(s3 / "checkpoint.pt")
            assert saved["phase"] == "finetune" or saved["step"] > 0, (saved["phase"], saved["step"])
    _run_until(cfg, tmp_path / "run-final.log", None)

    # stage 3 continued from that checkpoint (the run after the stage-3 kill says so), not from step 0
    resumed = (tmp_path / "run-killed-in-export.log").read_text()
    assert f"resuming {saved['phase']} at step {saved['step']}/" in resumed, resumed[-3000:]
    _check_search(run)
    _check_supernet_and_lut(run, lut)
    _check_files(run, tmp_path)


def _check_killed_inside(stage: str, run: Path) -> None:
    """The kill landed inside ``stage``: its final output is missing."""
    final = {"supernet": run / "supernet" / "supernet.pt", "search": run / "winner.yaml",
             "stage3": run / "stage3" / "pruned.pt", "export": run / "stage3" / "final.json"}.get(stage)
    if final is not None:
        assert not final.exists(), f"{stage} had finished ({final}) when the kill came"
    if stage == "lut":   # the build was still measuring rows
        assert not (run / "search").exists()


def _check_search(run: Path) -> None:
    """Every evaluation of both searches kept exactly once, as many as configured."""
    for name, n in (("history.csv", GUIDED), ("history_random.csv", GUIDED)):
        h = pd.read_csv(run / "search" / name)
        assert len(h) == n and h["key"].is_unique, (name, len(h), h["key"].tolist())
        assert h["psnr"].notna().all()


def _check_supernet_and_lut(run: Path, lut: Path) -> None:
    """Each supernet epoch logged once; each LUT op measured once."""
    log = pd.read_csv(run / "supernet" / "train_log.csv")
    per_step = log.groupby("step").size()
    assert list(per_step.index) == [40, 80, 120] and per_step.nunique() == 1, per_step
    with lut.open() as f:
        rows = [r for r in csv.reader(ln for ln in f if not ln.startswith("#"))][1:]
    keys = [tuple(r[2:10]) for r in rows]
    assert len(keys) == len(set(keys)) > 8


def _check_files(run: Path, tmp_path: Path) -> None:
    """final.json complete; the exported TorchScript and ONNX load and run; the report written."""
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["psnr"] > 10 and final["measured_ms"] > 0 and final["meets_target"] is True
    assert final["backend"] == "torch-cpu" and final["lr_hw"] == [12, 16]
    assert "Ablation" in (run / "report.md").read_text()
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        ts_out = torch.jit.load(str(run / "export" / "model.ts"))(x).numpy()
    import onnxruntime as ort
    sess = ort.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert ts_out.shape == (1, 3, 24, 32) and np.abs(ts_out - onnx_out).max() <= 1e-4
    assert not list((run / "export").glob("*.tmp")) and not (run / "stage3" / "checkpoint.pt").exists()

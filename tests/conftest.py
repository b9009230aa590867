"""Shared fixtures: the development data folder and tiny configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BENCH = SHARED / "benchmarks"

torch.set_num_threads(1)

# A machine's searched names come from every shipped member timed on it (experiments/zoo/front.py: minutes, once per
# machine). Tests take the front of this CPU's SIMD class instead, so none times real models by accident and the suite
# runs alike everywhere; a test of the measured front opts in (monkeypatch.setenv("SRNAS_FRONT", "measured"), with
# injected timings: tests/test_front_measured.py). Set here, it reaches the CLI's child processes too.
os.environ["SRNAS_FRONT"] = "simd"


def need_benchmarks() -> Path:
    """The benchmark folder, or skip where this checkout has none beside it."""
    if not (BENCH / "Set5").is_dir():
        pytest.skip(f"benchmark images not found at {BENCH}")
    return BENCH


def tiny_config(tmp_path: Path, **sections) -> Path:
    """Write a small, fast config into tmp_path and return its path; sections override."""
    cfg = {
        "name": "tiny",
        "run_dir": str(tmp_path / "runs"),
        "data": {"train": ["skimage"], "val": "skimage", "patch_size": 16, "batch_size": 4},
        "model": {"n_cells": 2, "n_feats": 8, "expansion_a": 2, "expansion_b": 2},
        "train": {"steps": 6, "epoch_steps": 3, "val_paths": 2, "threads": 1},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Killed(Exception):
    """Stands in for SIGKILL: raised from inside a training step."""


class DiesAt:
    """A sampler that raises Killed on its ``n``-th batch (counted over every phase), like a kill mid-step."""

    def __init__(self, sampler, n: int):
        self.sampler, self.n, self.calls = sampler, n, 0

    def sample(self, step: int):
        self.calls += 1
        if self.calls == self.n:
            raise Killed
        return self.sampler.sample(step)

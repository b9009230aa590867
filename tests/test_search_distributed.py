"""`srnas search` under torchrun (2 CPU processes, gloo) shares the picks across ranks and matches one process."""
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, tiny_config
from srnas.search.cli import main

SEARCH = {"iterations": 1, "init_candidates": 4, "top_h": 2, "pool_c": 6, "pick_b": 2, "ensemble": 2,
          "eval_steps": 2, "eval_batch": 2, "val_crop": 32, "ablation": False}


@pytest.mark.slow
def test_torchrun_search_matches_one_process(tmp_path):
    # no budget: every candidate is its dense path, and 3 cells hold 8 of them (4 + 2 are searched)
    cfg = tiny_config(tmp_path, search=SEARCH, model={"n_cells": 3}, train={"steps": 4, "epoch_steps": 4, "threads": 1})
    assert main(["supernet", "train", "-c", str(cfg)]) == 0
    run = tmp_path / "runs" / "tiny"
    assert main(["search", "-c", str(cfg), "--out", str(run)]) == 0
    one = pd.read_csv(run / "search" / "history.csv")
    (run / "search").rename(run / "search_one")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "srnas", "search", "-c", str(cfg), "--out", str(run)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    two = pd.read_csv(run / "search" / "history.csv")
    assert len(two) == len(one) == 4 + 2 and two["key"].is_unique
    assert set(two["rank"]) == {0, 1}  # both ranks evaluated candidates; rank 0 alone wrote the file
    a, b = one[one.iteration == 0], two[two.iteration == 0]
    assert list(a["key"]) == list(b["key"])
    assert (a["psnr"].to_numpy() - b["psnr"].to_numpy()).__abs__().max() < 1e-3

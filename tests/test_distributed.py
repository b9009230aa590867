"""torchrun with 2 CPU processes (gloo) trains the same supernet as one process."""
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import ROOT, tiny_config
from srnas.supernet.elastic import build_supernet
from srnas.supernet.train import load_supernet


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    cfg = tiny_config(tmp_path, train={"steps": 30, "epoch_steps": 15, "threads": 1})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "srnas", "supernet", "train", "-c", str(cfg)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    stage = tmp_path / "runs" / "tiny" / "supernet"
    net = load_supernet(stage / "supernet.pt")
    log = pd.read_csv(stage / "train_log.csv")
    assert sorted(set(log["step"])) == [15, 30]  # rank 0 alone writes the log
    assert log["loss"].notna().all() and (log["loss"] < 0.2).all()
    assert all(p.isfinite().all() for p in net.parameters())
    torch.manual_seed(0)    # the config's train.seed: the supernet as it started
    start = build_supernet(net.cfg, net.scale).state_dict()
    moved = [k for k, v in net.state_dict().items() if not torch.equal(v, start[k])]
    assert any(k.startswith("cells.") for k in moved) and any(k.startswith("tail") for k in moved)  # it trained
    assert not any(k.startswith("skip") for k in moved)      # ... around the fixed skip

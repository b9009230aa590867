"""A training whose loss goes NaN / inf stops at once, naming the step and the learning rate, and keeps the last
good checkpoint (supernet training, and stage 3's pruning loops)."""
from __future__ import annotations

import math

import pytest
import torch

import srnas.supernet.train as train_mod
from conftest import tiny_config
from srnas.pruning.reweighted import masked_finetune
from srnas.search.cli import main
from srnas.supernet import checkpoint
from srnas.supernet.config import load_config
from srnas.supernet.data import PatchSampler
from srnas.supernet.train import NonFiniteLoss, train_supernet


class NaNFrom(PatchSampler):
    """Batches whose LR input is NaN from step ``BAD`` on (0-based), as corrupt data or a blow-up would give."""
    BAD = 4

    def sample(self, step: int):
        lr, hr = super().sample(step)
        return (torch.full_like(lr, float("nan")), hr) if step >= self.BAD else (lr, hr)


def test_nan_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = load_config(tiny_config(tmp_path, train={"steps": 9, "epoch_steps": 3}))
    monkeypatch.setattr(train_mod, "PatchSampler", NaNFrom)
    with pytest.raises(NonFiniteLoss) as e:
        train_supernet(cfg)
    msg = str(e.value)
    assert "the loss became nan at step 5" in msg and "train.lr 0.001" in msg and "(step 3) is kept" in msg
    assert "\n" not in msg
    stage = tmp_path / "runs" / "tiny" / "supernet"
    state = checkpoint.load(stage / "checkpoint.pt")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (stage / "supernet.pt").exists()
    # with the data fixed, the same command resumes from that checkpoint and finishes
    monkeypatch.setattr(train_mod, "PatchSampler", PatchSampler)
    assert train_supernet(cfg, resume=True).exists()


def test_a_learning_rate_that_blows_up_exits_2_in_one_line(tmp_path, capsys):
    cfg = tiny_config(tmp_path, train={"steps": 30, "epoch_steps": 10, "lr": 1e30})
    assert main(["supernet", "train", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "error:" in ln)
    assert "the loss became" in line and "train.lr 1e+30" in line and "Traceback" not in err


def test_the_pruning_fine_tune_stops_on_a_non_finite_loss(tmp_path):
    net = torch.nn.Conv2d(3, 3, 3, padding=1)

    class Sampler:
        def sample(self, step):
            x = torch.rand(2, 3, 8, 8)
            return (x * math.inf if step == 2 else x), x

    with pytest.raises(NonFiniteLoss, match="at step 3.*pruning.lr 0.0005"):
        masked_finetune(net, Sampler(), 5, 5e-4, progress=False)
    assert all(torch.isfinite(p).all() for p in net.parameters())

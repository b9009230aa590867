"""Training checkpoints every epoch; a run killed half-way continues with the same command."""
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import ROOT, tiny_config
from srnas.supernet import checkpoint
from srnas.supernet.config import load_config
from srnas.supernet.train import StageExists, load_supernet, train_supernet


def _srnas(*args):
    return [sys.executable, "-m", "srnas", *args]


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    cfg_path = tiny_config(tmp_path, train={"steps": 400, "epoch_steps": 40, "threads": 1})
    stage = tmp_path / "runs" / "tiny" / "supernet"
    proc = subprocess.Popen(_srnas("supernet", "train", "-c", str(cfg_path)), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (stage / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (stage / "checkpoint.pt").exists(), "no checkpoint before the kill"
    assert not (stage / "supernet.pt").exists(), "training finished before it could be killed"
    killed_at = checkpoint.load(stage / "checkpoint.pt")["step"]
    assert 0 < killed_at < 400

    # the same command resumes (--resume is still taken, and needed no more)
    done = subprocess.run(_srnas("supernet", "train", "-c", str(cfg_path)), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert checkpoint.load(stage / "checkpoint.pt")["step"] == 400
    log = pd.read_csv(stage / "train_log.csv")
    steps = sorted(set(log["step"]))
    assert steps == list(range(40, 401, 40)), steps  # every epoch once, none repeated or lost
    assert (stage / "supernet.pt").exists()


def test_resume_gives_the_same_weights_as_one_run(tmp_path, monkeypatch):
    one = load_config(tiny_config(tmp_path / "a"))
    train_supernet(one)
    two = load_config(tiny_config(tmp_path / "b"))
    real_save = checkpoint.atomic_save

    def crash_after_first_epoch(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt  # as if killed right after the step-3 checkpoint (its log row is written first)

    monkeypatch.setattr(checkpoint, "atomic_save", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(two)
    monkeypatch.setattr(checkpoint, "atomic_save", real_save)
    with pytest.raises(StageExists):
        train_supernet(two)
    train_supernet(two, resume=True)
    a = load_supernet(one.out_dir / "supernet" / "supernet.pt").state_dict()
    b = load_supernet(two.out_dir / "supernet" / "supernet.pt").state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_finished_stage_is_skipped_and_redo_retrains(tmp_path, capsys):
    cfg = load_config(tiny_config(tmp_path))
    final = train_supernet(cfg)
    mtime = final.stat().st_mtime_ns
    assert train_supernet(cfg) == final and final.stat().st_mtime_ns == mtime
    assert "skipping" in capsys.readouterr().out
    train_supernet(cfg, redo=True)
    assert final.stat().st_mtime_ns != mtime

"""The LUT build notices a busy machine: other processes' CPU use is read from /proc/stat."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from srnas.latency import build as build_mod
from srnas.latency.quiet import BUSY_CORES, busy_message, other_cores_busy
from srnas.supernet.config import load_config

from conftest import tiny_config

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc/stat")


def test_a_spinning_process_is_seen():
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 8: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        used = other_cores_busy(1.0)
        msg = busy_message(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert used is not None and used >= 0.6        # one core spun the whole window (scheduling aside)
    assert used > BUSY_CORES and msg is not None and "BUSY" in msg and "quiet machine" in msg


def test_build_warns_when_busy(tmp_path, monkeypatch):
    cfg = load_config(tiny_config(tmp_path, latency={"lr_height": 8, "lr_width": 8, "warmup": 0, "repeats": 1,
                                                     "threads": 1, "calib_samples": 0}))
    monkeypatch.setattr(build_mod, "busy_message", lambda: "this machine is BUSY: test")
    with pytest.warns(build_mod.BusyMachineWarning, match="before the build.*BUSY") as rec:
        build_mod.build_lut(cfg, schemes=["none"], progress=False)
    assert any("after the build" in str(w.message) for w in rec)

"""latency.heap: torch's big activations come from a heap that is kept, not from mmap per frame."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import ctypes, sys
import torch
from srnas.latency.heap import keep_heap
if sys.argv[1] == "kept":
    assert keep_heap()
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblks     # torch's import has mapped some already
t = torch.empty(64 << 20, dtype=torch.uint8).fill_(1)   # a 720p activation's order of size
print(libc.mallinfo2().hblks - before)
"""


def _mmapped_blocks(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt / mallinfo2 are Linux-only")
def test_keep_heap_serves_large_tensors_from_the_heap():
    try:
        default = _mmapped_blocks("default")
    except subprocess.CalledProcessError as e:
        pytest.skip(f"no glibc mallinfo2 here: {e.stderr[-200:]}")
    assert default >= 1            # by default glibc maps a 64 MB block on its own ...
    assert _mmapped_blocks("kept") == 0   # ... and with the policy it comes from the (kept) heap


def test_timing_sets_the_policy(monkeypatch):
    import srnas.latency.timing as timing
    calls = []
    monkeypatch.setattr(timing, "keep_heap", lambda: calls.append(1))
    timing.time_interleaved([lambda: None], warmup=0, repeats=1)
    assert calls == [1]

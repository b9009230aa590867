"""The process heap policy under which torch executors are timed and run: glibc keeps freed memory.

At 720p a torch eager forward allocates activations of tens of MB. glibc serves each by mmap and
unmaps it at free, so a fresh process page-faults its activations in again every frame; a process
whose heap has already grown (a training run) does not. The same network measured 190 ms in the
run's process and 404-472 ms in a fresh one (2-core EPYC). With mmap off and trimming high, the
heap is reused frame after frame in any process, which is how a video pipeline should run torch
too (the same setting from the shell: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824).
ONNX Runtime and OpenVINO keep their own arenas and are unaffected.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4       # glibc <malloc.h>
TRIM_THRESHOLD = 1 << 30                     # return freed memory to the OS only above 1 GiB free at the top


@functools.cache
def keep_heap() -> bool:
    """Set the policy once for this process; False where the C library has no mallopt (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

"""End-to-end latency of models on this device, robust to a busy machine.

Prefers the latency package's interleaved harness when it exists; the fallback here
likewise times every model in interleaved rounds so that load from other processes
spreads over all models alike, and reports medians.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

Runner = Callable[[torch.Tensor], object]


@torch.inference_mode()
def measure_interleaved(runners: dict[str, Runner], lr_hw: tuple[int, int], warmup: int = 2, repeats: int = 7,
                        threads: int = 0, seed: int = 0) -> dict[str, float]:
    """Median ms per runner on one 1x3xHxW input, timing the runners round-robin."""
    old = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        x = torch.rand(1, 3, *lr_hw, generator=torch.Generator().manual_seed(seed))
        for fn in runners.values():
            for _ in range(warmup):
                fn(x)
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(repeats):
            for k, fn in runners.items():
                t0 = time.perf_counter()
                fn(x)
                times[k].append((time.perf_counter() - t0) * 1e3)
        return {k: float(np.median(v)) for k, v in times.items()}
    finally:
        torch.set_num_threads(old)


def measure_latency(runners: dict[str, Runner], lr_hw: tuple[int, int], warmup: int = 2, repeats: int = 7,
                    threads: int = 0) -> dict[str, float]:
    """Median end-to-end ms of each runner on one 1x3xHxW input, all timed in interleaved rounds.

    Uses the latency package's harness (``latency.time_interleaved``: random round order,
    extra rounds for noisy entries) when it is installed, so the zoo table and the LUT
    are timed alike; torch, int8 and onnxruntime models all go through the same loop.
    """
    try:
        from latency import time_interleaved
    except ImportError:
        return measure_interleaved(runners, lr_hw, warmup, repeats, threads)
    x = torch.rand(1, 3, *lr_hw, generator=torch.Generator().manual_seed(0))

    def bind(fn: Runner) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                fn(x)
        return call

    names = list(runners)
    timings = time_interleaved([bind(runners[n]) for n in names], warmup=warmup, repeats=repeats, threads=threads)
    return {n: float(t.median_ms) for n, t in zip(names, timings)}

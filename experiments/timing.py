"""End-to-end latency of models on this device: every model timed in the same interleaved rounds."""
from __future__ import annotations

from typing import Callable

import torch

from srnas.latency import time_interleaved
from srnas.supernet.progress import progress_bar

Runner = Callable[[torch.Tensor], object]


def measure_latency(runners: dict[str, Runner], lr_hw: tuple[int, int], warmup: int = 2, repeats: int = 7,
                    threads: int = 0, passes: int = 1) -> dict[str, float]:
    """Median end-to-end ms of each runner on one 1x3xHxW input, all timed in interleaved rounds.

    Uses the latency package's harness (random round order, extra rounds for noisy
    entries), so the zoo table and the LUT are timed alike; torch, int8 and onnxruntime
    models all go through the same loop. With ``passes`` > 1 each keeps its fastest pass's
    median, as stage 3 times a winner (load only slows a timing down).
    """
    x = torch.rand(1, 3, *lr_hw, generator=torch.Generator().manual_seed(0))

    def bind(fn: Runner) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                fn(x)
        return call

    names = list(runners)
    calls = [bind(runners[n]) for n in names]
    # a bar per pass: a bench of 20 models x 3 passes runs 4-10 minutes with nothing else to show
    runs = [time_interleaved(calls, warmup=warmup, repeats=repeats, threads=threads, seed=p)
            for p in progress_bar(range(passes), desc=f"timing {len(names)} runners", unit="pass")]
    return {n: min(float(r[i].median_ms) for r in runs) for i, n in enumerate(names)}

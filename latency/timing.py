"""A timing harness that stays honest on a noisy shared machine (the runtimes it times live in runtimes/).

Several ops are timed together in rounds (each round runs every op in a fresh random
order) so that load from other processes hits all of them alike; the median of the rounds
is the figure and the inter-quartile range its spread. Ops whose spread is large relative
to the median get extra rounds. In each turn an op runs twice and only the second call is
timed: the first pays for switching from the op before (caches, a runtime's idle worker
threads), which a model serving frames back to back does not: OpenVINO INT8 networks ran
23 % slower (up to 39 %) timed on the first call of a turn than alone, and 0.5 % faster
on the second (20 candidates, 2-core EPYC).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .deploy import make_runner
from .fingerprint import resolve_threads
from .heap import keep_heap
from .runtimes.base import Runner


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with exactly ``n`` intra-op threads, restoring the old count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class Timing:
    """Timing of one runner: median and inter-quartile range in ms, and the sample count."""
    median_ms: float
    iqr_ms: float
    n: int
    samples: list[float]

    def as_dict(self) -> dict:
        """Plain dict (what measure_module returns)."""
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "n": self.n, "samples_ms": self.samples}


def _summary(samples: list[float]) -> Timing:
    a = np.asarray(samples)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Timing(float(med), float(q3 - q1), len(samples), [float(s) for s in samples])


def time_interleaved(runners: Sequence[Runner], warmup: int = 2, repeats: int = 7, threads: int = 0,
                     noisy: float = 0.15, extra_rounds: int | None = None, seed: int = 0,
                     on_round: Callable[[], None] | None = None) -> list[Timing]:
    """Time every runner in interleaved rounds; re-measure those whose IQR/median > ``noisy``."""
    keep_heap()   # torch timings must not depend on how much this process allocated before (heap.py)
    rng = np.random.default_rng(seed)
    samples: list[list[float]] = [[] for _ in runners]
    with torch_threads(resolve_threads(threads)):
        for _ in range(max(0, warmup)):
            for r in runners:
                r()

        def turn(i: int) -> None:
            runners[i]()   # the switch from the op before is paid here, untimed
            t0 = time.perf_counter()
            runners[i]()
            samples[i].append((time.perf_counter() - t0) * 1e3)

        for _ in range(max(1, repeats)):
            for i in rng.permutation(len(runners)):
                turn(i)
            if on_round:
                on_round()
        extra = repeats // 2 + 1 if extra_rounds is None else extra_rounds
        noisy_ix = [i for i, s in enumerate(samples) if _summary(s).iqr_ms > noisy * _summary(s).median_ms]
        for _ in range(extra if noisy_ix else 0):
            for i in rng.permutation(noisy_ix):
                turn(i)
    return [_summary(s) for s in samples]


STEADY_TOL = 0.08   # a chunk whose anchor runs this much slower than the reference is timed again
STEADY_TRIES = 3


def time_steady(runners: Sequence[Runner], anchor: Runner, reference_ms: float | None, **kw) -> list[Timing]:
    """time_interleaved over ``runners`` plus ``anchor`` (last in the result), timed again while the anchor
    runs over ``STEADY_TOL`` slower than ``reference_ms`` (another load on the machine), keeping the
    attempt whose anchor ran fastest.

    On a shared 2-core VM whole chunks slow down by 10-25 % for seconds at a time; re-timing
    them beats rescaling by the anchor, which adds the anchor's own noise (see load_drift).
    """
    best: list[Timing] | None = None
    seed = kw.pop("seed", 0)
    for attempt in range(STEADY_TRIES):
        ts = time_interleaved([*runners, anchor], seed=seed + 7919 * attempt, **kw)
        if best is None or ts[-1].median_ms < best[-1].median_ms:
            best = ts
        if reference_ms is None or best[-1].median_ms <= reference_ms * (1 + STEADY_TOL):
            break
    return best


def measure_module(module: nn.Module, lr_hw: tuple[int, int], backend: str = "torch-cpu", threads: int = 0,
                   warmup: int = 3, repeats: int = 10, in_channels: int | None = None,
                   precision: str = "fp32", passes: int = 1) -> dict:
    """End-to-end timing of any module in one executor on this device: dict(median_ms, iqr_ms, n, samples_ms).

    ``passes`` > 1 times it that often and keeps the fastest: load only slows a timing down (stage 3
    measured one network at 35.8 ms, and the same file at 25.7 ms in the next run minutes later).
    """
    if in_channels is None:
        first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        in_channels = first.in_channels if first is not None else 3
    x = torch.rand(1, in_channels, *lr_hw)
    runner = make_runner(module, [x], backend, threads, precision)
    runs = [time_interleaved([runner], warmup=warmup, repeats=repeats, threads=threads)[0] for _ in range(passes)]
    return min(runs, key=lambda t: t.median_ms).as_dict()

"""Measurement backends and a timing harness that stays honest on a noisy shared machine.

Several ops are timed together in rounds (each round runs every op once, in a fresh
random order) so that load from other processes hits all of them alike; the median of
the rounds is the figure and the inter-quartile range its spread. Ops whose spread is
large relative to the median get extra rounds.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from supernet.errors import UserError
from supernet.layout import as_channels_last, channels_last

from .fingerprint import BACKENDS, resolve_threads

Runner = Callable[[], None]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with exactly ``n`` intra-op threads, restoring the old count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def check_backend(backend: str) -> None:
    """Raise UserError for an unknown or unavailable backend."""
    if backend not in BACKENDS:
        raise UserError(f"unknown latency backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "torch-cuda" and not torch.cuda.is_available():
        raise UserError("backend torch-cuda asked for, but torch sees no CUDA device here; "
                        "use --backend torch-cpu or onnxruntime")
    if backend == "onnxruntime":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise UserError("backend onnxruntime needs the onnxruntime package: pip install onnxruntime") from None


def make_runner(module: nn.Module, inputs: Sequence[torch.Tensor], backend: str, threads: int) -> Runner:
    """A zero-argument callable that runs ``module`` once on ``inputs`` on ``backend``."""
    check_backend(backend)
    module = module.eval()
    if backend in ("torch-cpu", "torch-cpu-cl"):
        if backend == "torch-cpu-cl":  # as the exported TorchScript of such a run executes
            module = channels_last(module)
            inputs = [as_channels_last(t) for t in inputs]

        def run_cpu():
            with torch.inference_mode():
                module(*inputs)
        return run_cpu
    if backend == "torch-cuda":
        dev = torch.device("cuda")
        module = module.to(dev)
        gin = [t.to(dev) for t in inputs]

        def run_cuda():
            with torch.inference_mode():
                module(*gin)
            torch.cuda.synchronize()
        return run_cuda
    return _ort_runner(module, inputs, threads)


def _ort_runner(module: nn.Module, inputs: Sequence[torch.Tensor], threads: int) -> Runner:
    import onnxruntime as ort
    names = [f"in{i}" for i in range(len(inputs))]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "op.onnx")
        # the TorchScript-based exporter works offline and is quiet for these plain graphs
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tuple(inputs), path, input_names=names, output_names=["out"],
                              opset_version=17, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = resolve_threads(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs)}

    def run_ort():
        sess.run(None, feed)
    return run_ort


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
    rng = np.random.default_rng(seed)
    samples: list[list[float]] = [[] for _ in runners]
    with torch_threads(resolve_threads(threads)):
        for _ in range(max(0, warmup)):
            for r in runners:
                r()
        for _ in range(max(1, repeats)):
            for i in rng.permutation(len(runners)):
                t0 = time.perf_counter()
                runners[i]()
                samples[i].append((time.perf_counter() - t0) * 1e3)
            if on_round:
                on_round()
        extra = repeats // 2 + 1 if extra_rounds is None else extra_rounds
        noisy_ix = [i for i, s in enumerate(samples) if _summary(s).iqr_ms > noisy * _summary(s).median_ms]
        for _ in range(extra if noisy_ix else 0):
            for i in rng.permutation(noisy_ix):
                t0 = time.perf_counter()
                runners[i]()
                samples[i].append((time.perf_counter() - t0) * 1e3)
    return [_summary(s) for s in samples]


def measure_module(module: nn.Module, lr_hw: tuple[int, int], backend: str = "torch-cpu", threads: int = 0,
                   warmup: int = 3, repeats: int = 10, in_channels: int | None = None) -> dict:
    """End-to-end timing of any module on this device: dict(median_ms, iqr_ms, n, samples_ms)."""
    if in_channels is None:
        first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        in_channels = first.in_channels if first is not None else 3
    x = torch.rand(1, in_channels, *lr_hw)
    runner = make_runner(module, [x], backend, threads)
    return time_interleaved([runner], warmup=warmup, repeats=repeats, threads=threads)[0].as_dict()

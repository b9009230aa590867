"""A model deployed in an executor (runtime x precision), as callers use it: run it, time it, or load its file.

Each call checks first that this machine runs the executor (``check_executor``), then hands the work
to the runtime registered under the backend's name (runtimes/registry.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from srnas.supernet.errors import UserError

from .runtimes.base import Compiled, Runner, Samples
from .runtimes.files import FileRuntime
from .runtimes.registry import check_executor, find
from .runtimes.torch_runtime import TorchRuntime


def torch_infer(module: nn.Module, backend: str, precision: str = "fp32") -> Callable[..., torch.Tensor]:
    """``module`` as it runs in a torch executor (layout, device, autocast): tensors -> float32 CPU output."""
    rt = check_executor(backend, precision)
    if not isinstance(rt, TorchRuntime):
        raise UserError(f"backend {backend} is not a torch executor; use torch-cpu, torch-cpu-cl or torch-cuda")
    return rt.eager(module, precision)


def make_infer(module: nn.Module, example: Sequence[torch.Tensor], backend: str, threads: int, precision: str = "fp32",
               calib_inputs: Samples | None = None, dynamic: bool = False,
               workdir: str | Path | None = None) -> Compiled:
    """``module`` deployed in executor (backend, precision) as a function: tensors -> float32 CPU output.

    File executors export ``module`` (``dynamic``: any input H and W, else the example's shapes) and,
    for INT8, quantize it on ``calib_inputs`` (default: random inputs like ``example``); the files are
    kept in ``workdir`` when one is given. The result's ``precision`` is what its runtime really runs.
    """
    rt = check_executor(backend, precision)
    return rt.compile(module, example, precision, threads, calib_inputs, dynamic, workdir)


def make_runner(module: nn.Module, inputs: Sequence[torch.Tensor], backend: str, threads: int,
                precision: str = "fp32") -> Runner:
    """A zero-argument callable that runs ``module`` once on ``inputs`` in executor (backend, precision).

    onnxruntime / openvino run a static-shape ONNX export of the module (INT8: quantized on random
    inputs of the same shapes, which is enough to time it; quality needs real calibration images).
    """
    rt = check_executor(backend, precision)
    return rt.runner(module.eval(), inputs, precision, threads)


def deploy_file(module: nn.Module, example: Sequence[torch.Tensor], backend: str, precision: str, out_dir: str | Path,
                calib_inputs: Samples | None = None, dynamic: bool = False) -> Path:
    """Write the file ``backend`` runs ``module`` from in ``precision``: ONNX, or the INT8 file made from it."""
    rt = find(backend)
    if not isinstance(rt, FileRuntime):
        raise UserError(f"backend {backend} runs no exported file; deploy files for onnxruntime or openvino")
    return rt.deploy(module, example, precision, out_dir, calib_inputs, dynamic)


def pixel_infer(path: str | Path, backend: str, precision: str, threads: int,
                hw: tuple[int, int]) -> Compiled | None:
    """An exported file in ``backend`` on 8-bit frames (1xHxWx3 uint8 -> 1xsHxsWx3 uint8), conversions in the
    runtime's graph; None where the runtime has no such route (then run it on floats with file_infer)."""
    rt = find(backend)
    return rt.load_pixels(path, precision, threads, hw) if isinstance(rt, FileRuntime) else None


def pixel_infer_async(path: str | Path, backend: str, precision: str, threads: int, hw: tuple[int, int],
                      streams: int = 1, yuv=None) -> Callable[[int], object] | None:
    """``pixel_infer`` with frames in flight: a function of ``jobs`` giving a queue (``start(frame, done)``,
    ``idle()``, ``wait()``; runtimes/openvino_runtime.PixelQueue), or None where the runtime has no such API;
    ``yuv`` (a runtimes.openvino_runtime.YuvOut): the output as YUV 4:2:0 planes (Y, UV), None where the model
    cannot give them."""
    load = getattr(find(backend), "load_pixels_async", None)   # a runtime opts in by defining it
    return None if load is None else load(path, precision, threads, hw, streams, yuv)


def file_infer(path: str | Path, backend: str, precision: str, threads: int,
               shapes: Sequence[Sequence[int]] | None = None) -> Compiled:
    """A callable running an exported file in ``backend`` (onnxruntime or openvino): inputs -> first output."""
    rt = find(backend)
    if not isinstance(rt, FileRuntime):
        raise UserError(f"backend {backend} does not run exported ONNX files; use onnxruntime or openvino")
    return rt.load(path, precision, threads, shapes)

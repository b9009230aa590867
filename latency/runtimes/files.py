"""Runtimes that run an exported file: the model goes to ONNX (INT8: quantized from it), the runtime loads that."""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..onnx_export import as_arrays, export_onnx
from ..quantize import quantize_qdq
from .base import Compiled, Runner, Runtime, Samples


def random_calibration(example: Sequence[torch.Tensor], n: int = 4) -> list[list[torch.Tensor]]:
    """Calibration for timing probes: the example inputs plus a few random ones of the same shapes."""
    g = torch.Generator().manual_seed(0)
    return [list(example)] + [[torch.rand(t.shape, generator=g) for t in example] for _ in range(n - 1)]


class FileRuntime(Runtime):
    """A runtime of ONNX (or its own IR) files; a subclass implements ``load`` (and ``quantize`` for its own
    INT8 route; the default is the static QDQ file ONNX Runtime and OpenVINO both run)."""

    def quantize(self, fp32: Path, out_dir: Path, calib_inputs: Samples) -> Path:
        """The INT8 file this runtime runs, made from the fp32 export ``fp32`` into ``out_dir``."""
        return quantize_qdq(fp32, out_dir / "model_int8.onnx", calib_inputs)

    def deploy(self, module: nn.Module, example: Sequence[torch.Tensor], precision: str, out_dir: str | Path,
               calib_inputs: Samples | None = None, dynamic: bool = False) -> Path:
        """Write the file this runtime runs ``module`` from in ``precision``: ONNX, or the INT8 file made from it."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        fp32 = export_onnx(module, example, out_dir / "model.onnx", dynamic)
        if precision != "int8":
            return fp32
        calib = calib_inputs if calib_inputs is not None else random_calibration(example)
        return self.quantize(fp32, out_dir, calib)

    def load(self, path: str | Path, precision: str, threads: int,
             shapes: Sequence[Sequence[int]] | None = None) -> Compiled:
        """``path`` compiled in ``precision`` (``shapes``: fix the input sizes): list of arrays -> first output."""
        raise NotImplementedError

    def load_pixels(self, path: str | Path, precision: str, threads: int, hw: tuple[int, int]) -> Compiled | None:
        """``path`` for 8-bit frames: a 1xHxWx3 uint8 RGB array -> 1x(sH)x(sW)x3 uint8, the conversions to and from
        float done inside the runtime's graph (None where this runtime has no such route)."""
        return None

    def compile(self, module: nn.Module, example: Sequence[torch.Tensor], precision: str, threads: int,
                calib_inputs: Samples | None = None, dynamic: bool = False,
                workdir: str | Path | None = None) -> Compiled:
        with contextlib.ExitStack() as stack:
            d = workdir if workdir is not None else stack.enter_context(tempfile.TemporaryDirectory())
            path = self.deploy(module, example, precision, d, calib_inputs, dynamic)
            infer = self.load(path, precision, threads, None if dynamic else [tuple(t.shape) for t in example])
        return Compiled(lambda *xs: torch.from_numpy(np.asarray(infer(as_arrays(xs)), dtype=np.float32)),
                        infer.precision)

    def runner(self, module: nn.Module, inputs: Sequence[torch.Tensor], precision: str, threads: int) -> Runner:
        """A static-shape export of ``module`` fed ready arrays (INT8: quantized on random inputs of the same
        shapes, which is enough to time it; quality needs real calibration images)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self.deploy(module, inputs, precision, tmp)
            infer = self.load(path, precision, threads, [tuple(t.shape) for t in inputs])
        feed = as_arrays(inputs)

        def run_file():
            infer(feed)
        return run_file

"""The precision a model runs in unless told otherwise, and the real images an INT8 file is calibrated on."""
from __future__ import annotations

from pathlib import Path

import torch

from srnas.latency.executors import is_quantized
from srnas.supernet.data import EMBEDDED, load_images, lr_crops

from .models import LoadedModel


def own_precision(m: LoadedModel) -> str:
    """The precision a model is deployed in unless forced: INT8 for abpn_int8 and quantized files, else fp32."""
    path = Path(m.info.get("path", ""))
    if m.precision == "int8":
        return "int8"
    if path.suffix == ".onnx":
        return "int8" if is_quantized(path) else "fp32"
    if m.module is not None and isinstance(m.module, torch.jit.ScriptModule):
        try:
            return "int8" if "quantized::" in str(m.module.inlined_graph) else "fp32"
        except RuntimeError:
            return "fp32"
    return "fp32"


def calibration_inputs(scale: int, n: int = 8, size: int = 96) -> list[list[torch.Tensor]]:
    """Real LR crops for INT8 calibration, from the embedded training images (never the benchmark sets)."""
    return [[c] for c in lr_crops(load_images(EMBEDDED, "train"), scale, n, size)]

"""ONNX export of a torch module, and its inputs as the ONNX runtimes take them (float32 numpy arrays)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from srnas.supernet.console import muted
from srnas.supernet.writes import atomic_write_bytes


def input_names(n: int) -> list[str]:
    """The ONNX input names of an n-input export."""
    return [f"in{i}" for i in range(n)]


def export_onnx(module: nn.Module, inputs: Sequence[torch.Tensor], path: str | Path, dynamic: bool = False) -> Path:
    """Export ``module`` to ONNX (inputs in0.., output out); ``dynamic`` leaves every input's H and W free."""
    path = Path(path)
    names = input_names(len(inputs))
    axes = {n: {2: f"h{i}", 3: f"w{i}"} for i, n in enumerate(names)} if dynamic else None
    # the TorchScript-based exporter works offline and is quiet for these plain graphs; made in memory and written
    # whole (a full disk leaves no torn file under the name, and says which file)
    buf = io.BytesIO()
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), muted():
        torch.onnx.export(module.eval(), tuple(inputs), buf, input_names=names, output_names=["out"],
                          opset_version=17, dynamo=False, dynamic_axes=axes)
    atomic_write_bytes(path, buf.getvalue())
    return path


def as_arrays(sample: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """One input or a list of them as contiguous float32 numpy arrays, as ONNX Runtime and OpenVINO read them."""
    if isinstance(sample, (torch.Tensor, np.ndarray)):
        sample = [sample]
    return [np.ascontiguousarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float32)
            for t in sample]

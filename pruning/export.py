"""Export a (compact) SR model to TorchScript and ONNX, loadable without srnas."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from supernet.layout import ChannelsLast


def export_model(model: nn.Module, out_dir: str | Path, lr_hw: tuple[int, int] = (360, 640),
                 channels_last: bool = False) -> dict:
    """Write ``model.ts`` (traced TorchScript) and ``model.onnx`` (dynamic H/W) into ``out_dir``.

    ``channels_last``: the TorchScript runs in that layout whatever its input's (the
    torch-cpu-cl latency backend); ONNX Runtime picks its own layout either way.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = (ChannelsLast(model) if channels_last else model).eval()
    x = torch.rand(1, 3, *lr_hw)
    ts_path, onnx_path = out / "model.ts", out / "model.onnx"
    # each file is written beside its name and renamed over it: a kill mid-export leaves no torn file
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    traced.save(str(_tmp(ts_path)))
    os.replace(_tmp(ts_path), ts_path)
    # the TorchScript exporter (dynamo=False) works offline and keeps H/W dynamic
    torch.onnx.export(model, (x,), str(_tmp(onnx_path)), input_names=["lr"], output_names=["sr"],
                      dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "H", 3: "W"}},
                      opset_version=17, dynamo=False)
    os.replace(_tmp(onnx_path), onnx_path)
    return {"torchscript": str(ts_path), "onnx": str(onnx_path)}


def _tmp(path: Path) -> Path:
    """The name a file is written under before it is renamed into place."""
    return path.with_name(path.name + ".tmp")

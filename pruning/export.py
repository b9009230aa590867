"""Export a (compact) SR model to TorchScript and ONNX, loadable without srnas."""
from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from srnas.supernet.layout import ChannelsLast
from srnas.supernet.writes import atomic_write_bytes


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
    # each file is made in memory, then written beside its name and renamed over it: a kill or a full disk
    # mid-export leaves no torn file and no temporary one (TorchScript's own file writer aborts the process
    # on a full disk, where Python's write raises)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    atomic_write_bytes(ts_path, buf.getvalue())
    # the TorchScript exporter (dynamo=False) works offline and keeps H/W dynamic
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, input_names=["lr"], output_names=["sr"],
                      dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "H", 3: "W"}},
                      opset_version=17, dynamo=False)
    atomic_write_bytes(onnx_path, buf.getvalue())
    return {"torchscript": str(ts_path), "onnx": str(onnx_path)}

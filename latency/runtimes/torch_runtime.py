"""torch eager as a runtime: CPU in NCHW (torch-cpu) or channels_last (torch-cpu-cl), and CUDA; fp32 or bf16."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from srnas.supernet.layout import as_channels_last, channels_last

from .base import Compiled, Runner, Runtime, Samples


def torch_cpu_bf16() -> bool:
    """Whether torch's CPU kernels run bf16 natively here (AVX512-BF16 or AMX); else autocast only emulates it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: str, precision: str):
    return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


class TorchRuntime(Runtime):
    """torch eager on one device, in one memory layout; bf16 through autocast."""
    precisions = ("fp32", "bf16")

    def __init__(self, name: str, device: str = "cpu", channels_last: bool = False):
        self.name = name
        self.device = device
        self.channels_last = channels_last   # as the exported TorchScript of such a run executes

    def missing(self) -> str | None:
        if self.device == "cuda" and not torch.cuda.is_available():
            return (f"backend {self.name} asked for, but torch sees no CUDA device here; "
                    "use --backend torch-cpu, onnxruntime or openvino")
        return None

    def unsupported(self, precision: str) -> str | None:
        if precision != "bf16":
            return None
        if self.device == "cpu" and not torch_cpu_bf16():
            return (f"{self.name} bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so torch would only "
                    "emulate it, slower than fp32; use fp32, or openvino bf16 on a CPU that has it")
        if self.device == "cuda" and not torch.cuda.is_bf16_supported():
            return f"{self.name} bf16: this GPU has no bf16 support; use {self.name} fp32"
        return None

    def eager(self, module: nn.Module, precision: str) -> Callable[..., torch.Tensor]:
        """``module`` as it runs here (layout, device, autocast): tensors -> float32 CPU output."""
        module = module.eval()
        if self.channels_last:
            module = channels_last(module)
        module = module.to(self.device)

        def run(*xs: torch.Tensor) -> torch.Tensor:
            xs = tuple(as_channels_last(x) if self.channels_last else x.to(self.device) for x in xs)
            with torch.inference_mode(), _autocast(self.device, precision):
                return module(*xs).float().cpu()
        return run

    def compile(self, module: nn.Module, example: Sequence[torch.Tensor], precision: str, threads: int,
                calib_inputs: Samples | None = None, dynamic: bool = False,
                workdir: str | Path | None = None) -> Compiled:
        # eager runs any input size and leaves threads to the caller; autocast runs bf16 as asked
        return Compiled(self.eager(module, precision), precision)

    def runner(self, module: nn.Module, inputs: Sequence[torch.Tensor], precision: str, threads: int) -> Runner:
        """One forward on inputs already in place (layout, device), synchronised on CUDA, output left as is."""
        device = self.device
        if self.channels_last:
            module = channels_last(module)
            inputs = [as_channels_last(t) for t in inputs]
        module = module.to(device)
        xs = [t.to(device) for t in inputs]

        def run():
            with torch.inference_mode(), _autocast(device, precision):
                module(*xs)
            if device == "cuda":
                torch.cuda.synchronize()
        return run

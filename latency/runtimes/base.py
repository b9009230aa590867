"""The interface every runtime implements: what it runs, whether it runs here, compile a model, run it."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from srnas.supernet.errors import UserError

Runner = Callable[[], None]
Infer = Callable[[Sequence[np.ndarray]], np.ndarray]   # inputs (NCHW float32) -> first output
Samples = Sequence[Sequence[torch.Tensor | np.ndarray]]  # calibration: one list of model inputs per sample


class PrecisionFallback(UserError):
    """The runtime compiled the model but runs its kernels in another precision than asked (this CPU or graph)."""


def has_module(name: str) -> bool:
    """Whether a Python package is installed (without importing it: a runtime's import takes seconds)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):   # ValueError: sys.modules holds None for it (an import blocked on purpose)
        return False


@dataclass
class Compiled:
    """A model as a runtime runs it: call it like ``fn``; ``precision`` is what its kernels really run in."""
    fn: Callable[..., Any]
    precision: str

    def __call__(self, *args):
        return self.fn(*args)


class Runtime:
    """One runtime (torch eager, ONNX Runtime, OpenVINO, ...): a subclass per runtime, one instance per name.

    A subclass sets ``name``, ``precisions`` (and ``package``) and implements ``compile``; it overrides
    ``missing`` / ``unsupported`` when the hardware may lack something, and ``runner`` when a timing
    loop should skip work ``compile``'s callable does for its caller (conversions of inputs / outputs).
    """
    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]   # what it can run at all; ``unsupported`` says what this machine can
    package: ClassVar[str | None] = None    # the Python package it needs, imported only when it runs

    def missing(self) -> str | None:
        """Why this runtime cannot run on this machine at all (a package, a device), or None."""
        if self.package and not has_module(self.package):
            return f"backend {self.name} needs the {self.package} package: pip install {self.package}"
        return None

    def unsupported(self, precision: str) -> str | None:
        """Why this machine cannot run ``precision`` (one of ``precisions``) in this runtime, or None."""
        return None

    def available(self, precision: str | None = None) -> bool:
        """Whether this runtime (in ``precision``, if given) runs here."""
        if self.missing() is not None:
            return False
        return precision is None or (precision in self.precisions and self.unsupported(precision) is None)

    def compile(self, module: nn.Module, example: Sequence[torch.Tensor], precision: str, threads: int,
                calib_inputs: Samples | None = None, dynamic: bool = False,
                workdir: str | Path | None = None) -> Compiled:
        """``module`` deployed here: tensors -> float32 CPU tensor, built for ``example``'s shapes (or any, if
        ``dynamic``); INT8 calibrates on ``calib_inputs``; files, if any, are kept in ``workdir``."""
        raise NotImplementedError

    def runner(self, module: nn.Module, inputs: Sequence[torch.Tensor], precision: str, threads: int) -> Runner:
        """A zero-argument callable running ``module`` once on ``inputs``: what timing calls."""
        compiled = self.compile(module, inputs, precision, threads)
        return lambda: compiled(*inputs)

"""Which runtimes exist, by backend name, and whether this machine runs an executor (runtime x precision).

A new runtime is registered here with one line (or by ``register`` at run time, as tests do).
"""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

from srnas.supernet.config import RUNTIME_NAMES
from srnas.supernet.errors import UserError

from ..fingerprint import PRECISIONS
from .base import Runtime
from .files import FileRuntime
from .onnxruntime_runtime import OnnxRuntime
from .openvino_runtime import OpenVINORuntime
from .torch_runtime import TorchRuntime

_RUNTIMES: dict[str, Runtime] = {}


def register(runtime: Runtime, replace: bool = False) -> Runtime:
    """Make ``runtime`` reachable by its name (``replace``: over one of the same name)."""
    if runtime.name in _RUNTIMES and not replace:
        raise ValueError(f"a runtime named {runtime.name!r} is registered already")
    _RUNTIMES[runtime.name] = runtime
    RUNTIME_NAMES.add(runtime.name)
    return runtime


def unregister(name: str) -> None:
    """Forget the runtime ``name`` (tests undo their registrations so)."""
    _RUNTIMES.pop(name, None)
    RUNTIME_NAMES.discard(name)


register(TorchRuntime("torch-cpu"))
register(TorchRuntime("torch-cpu-cl", channels_last=True))
register(TorchRuntime("torch-cuda", device="cuda"))
register(OnnxRuntime())
register(OpenVINORuntime())


def names() -> list[str]:
    """The registered backend names, in registration order (the order auto tries them in)."""
    return list(_RUNTIMES)


def file_backends() -> list[str]:
    """The backends whose runtime runs an exported file (ONNX or its own IR) rather than a torch module."""
    return [n for n, rt in _RUNTIMES.items() if isinstance(rt, FileRuntime)]


def find(backend: str) -> Runtime | None:
    """The runtime registered as ``backend``, or None."""
    return _RUNTIMES.get(backend)


class _Supported(Mapping[str, tuple[str, ...]]):
    """backend -> the precisions it can run somewhere, over the registry as it is now."""

    def __getitem__(self, backend: str) -> tuple[str, ...]:
        return _RUNTIMES[backend].precisions

    def __iter__(self) -> Iterator[str]:
        return iter(list(_RUNTIMES))

    def __len__(self) -> int:
        return len(_RUNTIMES)


SUPPORTED: Mapping[str, tuple[str, ...]] = _Supported()


def executors_for(precision: str) -> list[str]:
    """Backends that can run ``precision`` somewhere."""
    return [b for b, ps in SUPPORTED.items() if precision in ps]


def runtime(backend: str) -> Runtime:
    """The runtime of ``backend``; UserError for an unknown backend or one whose runtime is missing here."""
    rt = find(backend)
    if rt is None:
        raise UserError(f"unknown latency backend {backend!r}; choose one of {names()}")
    why = rt.missing()
    if why is not None:
        raise UserError(why)
    return rt


def check_backend(backend: str) -> None:
    """Raise UserError for an unknown backend or one whose runtime is missing here."""
    runtime(backend)


def check_executor(backend: str, precision: str) -> Runtime:
    """The runtime of ``backend``, or UserError naming what is unsupported here (and what to use or install)."""
    rt = runtime(backend)
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision not in rt.precisions:
        raise UserError(f"backend {backend} does not run {precision}; executors for {precision}: "
                        f"{', '.join(executors_for(precision))}")
    why = rt.unsupported(precision)
    if why is not None:
        raise UserError(why)
    return rt


def available_executors(candidates: Sequence[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The (backend, precision) pairs of ``candidates`` (default: every supported pair) that run here."""
    pairs = candidates or [(b, p) for b, ps in SUPPORTED.items() for p in ps]
    ok = []
    for b, p in pairs:
        try:
            check_executor(b, p)
        except UserError:
            continue
        ok.append((b, p))
    return ok

"""srnas: find a super-resolution network that runs in real time on your device.

The public API, loaded on first use so that ``import srnas`` stays cheap::

    import srnas
    with srnas.Upscaler("srnas_abpn") as up:       # a shipped member, a zoo name or a model file
        hr = up(frame)                             # HxWx3 uint8 / uint16 RGB -> upscaled, same dtype
    m = srnas.load_model("srnas_abpn")             # torch module + scale, executor, what it was searched for
    result = srnas.run("experiments/configs/quick.yaml", name="mine", **{"latency.target": "50ms"})
    table = srnas.bench(["abpn_int8", "srnas_s"], backend="openvino")

The stages live in ``srnas.supernet``, ``srnas.latency``, ``srnas.pruning``, ``srnas.search`` and
``srnas.experiments``; ``python -m srnas`` is the command line.
"""
from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("srnas")
except metadata.PackageNotFoundError:   # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Upscaler", "LoadedModel", "load_model", "run", "bench", "__version__"]

# name -> (module, attribute): imported when first asked for (PEP 562), so `import srnas.supernet.config`
# does not load torch, OpenVINO and the zoo through this file
_LAZY = {"Upscaler": ("srnas.experiments.upscaler", "Upscaler"),
         "LoadedModel": ("srnas.experiments.models", "LoadedModel"),
         "load_model": ("srnas.api", "load_model"),
         "run": ("srnas.api", "run"),
         "bench": ("srnas.api", "bench")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'srnas' has no attribute {name!r}")
    import importlib
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

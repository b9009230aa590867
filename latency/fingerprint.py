"""Device fingerprint: what makes a latency measurement belong to one machine and runtime."""
from __future__ import annotations

import torch

from srnas.supernet.config import PRECISIONS  # noqa: F401  (re-exported: latency's readers name it here)

# the probe runner reads the machine without srnas (it runs on a device as it is); srnas reads it the same way
from .probe_runner import core_count, cpu_isa, cpu_model, resolve_threads  # noqa: F401

FIELDS = ("cpu_model", "isa", "cores", "threads", "torch", "onnxruntime", "backend", "precision", "layout",
          "accelerator")
# compared only where the LUT records them: LUTs written before srnas recorded the ISA still load (a VM's
# model name alone, "AMD EPYC", is the same on a Zen 3 without VNNI and on a Zen 5 with it)
RECORDED_ONLY = ("isa",)
# what an executor's latency depends on besides the machine: a LUT whose values differ here prices another executor
EXECUTOR_FIELDS = ("backend", "precision", "layout")


def _ort_version() -> str:
    try:
        import onnxruntime  # why: optional runtime; absent is a valid answer
        return onnxruntime.__version__
    except ImportError:
        return "absent"


def layout_of(backend: str) -> str:
    """The input memory layout a backend runs in."""
    return "nhwc" if backend == "torch-cpu-cl" else "nchw"


def fingerprint(backend: str = "torch-cpu", threads: int = 0, precision: str = "fp32") -> dict[str, str]:
    """The fingerprint of this machine for ``backend`` in ``precision`` run with ``threads`` threads."""
    accel = ""
    if backend == "torch-cuda" and torch.cuda.is_available():
        accel = torch.cuda.get_device_name(0)
    return {
        "cpu_model": cpu_model(),
        "isa": cpu_isa(),
        "cores": str(core_count()),
        "threads": str(resolve_threads(threads)),
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "backend": backend,
        "precision": precision,
        "layout": layout_of(backend),
        "accelerator": accel,
    }


def fingerprint_diff(have: dict[str, str], want: dict[str, str]) -> list[str]:
    """Human-readable 'field: lut=X, here=Y' for every field that differs."""
    return [f"{k}: lut={have.get(k, '')!r}, here={want.get(k, '')!r}"
            for k in FIELDS if str(have.get(k, "")) != str(want.get(k, ""))
            and (k in have or k not in RECORDED_ONLY)]


def device_id(fp: dict[str, str]) -> str:
    """A short device label for the LUT's device column."""
    name = fp.get("accelerator") or fp.get("cpu_model", "unknown")
    return f"{name} x{fp.get('threads', '?')}".replace(",", " ")

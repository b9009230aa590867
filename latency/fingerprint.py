"""Device fingerprint: what makes a latency measurement belong to one machine and runtime."""
from __future__ import annotations

import os
import platform

import torch

PRECISIONS = ("fp32", "bf16", "int8")
FIELDS = ("cpu_model", "isa", "cores", "threads", "torch", "onnxruntime", "backend", "precision", "layout",
          "accelerator")
# compared only where the LUT records them: LUTs written before srnas recorded the ISA still load (a VM's
# model name alone, "AMD EPYC", is the same on a Zen 3 without VNNI and on a Zen 5 with it)
RECORDED_ONLY = ("isa",)
# what an executor's latency depends on besides the machine: a LUT whose values differ here prices another executor
EXECUTOR_FIELDS = ("backend", "precision", "layout")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_isa() -> str:
    """The CPU's SIMD flags that decide kernel speed (AVX2, AVX-512 parts, VNNI, AMX), space-separated."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return " ".join(sorted(f for f in flags if f.startswith(("avx2", "avx512", "avx_vnni", "amx"))))


def core_count() -> int:
    """Cores this process may use (the affinity mask, not the whole host)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_threads(threads: int) -> int:
    """Config threads (0 = all cores of this machine) to a concrete count."""
    return threads if threads > 0 else core_count()


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

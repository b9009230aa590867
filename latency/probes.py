"""A probe kit: every LUT row's op as a standalone model file, timed on another device without srnas.

`srnas latency build` times the catalogue on the machine that runs srnas. The device a user ships to
(an ARM board, a phone with Python, another laptop) is usually another one; there, the kit's
run_probes.py (latency/probe_runner.py) times the same files with only numpy and the runtime, and
writes the CSV `srnas latency import` reads, with that device's fingerprint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from srnas.supernet.config import Config
from srnas.supernet.errors import UserError
from srnas.supernet.progress import progress_bar
from srnas.supernet.writes import atomic_write_bytes, atomic_write_text, make_folder

from .build import anchor_key, anchor_module, calibration_candidates, lut_keys
from .catalogue import OpKey, chain_probe, chained, op_module
from .check import fit_calibration
from .fingerprint import layout_of
from .lut import LUT
from .model import LatencyModel, Plan
from .onnx_export import export_onnx
from .probe_runner import MANIFEST, WHOLE_NETS
from .quantize import quantize_onnx
from .runtimes.files import random_calibration
from .runtimes.registry import SUPPORTED, file_backends

RUNNER = Path(__file__).with_name("probe_runner.py")
RUNNER_NAME = "run_probes.py"
CHUNK = 8          # probes timed together, as build_lut's default chunk
NET_CHUNK = 5      # whole networks timed together, as measure_candidates
CandidateFn = Callable[[Sequence[str], Plan], nn.Module]


def check_probe_executor(backend: str, precision: str) -> None:
    """UserError unless (backend, precision) is an executor a probe kit can serve.

    Only what the kit's runtime can run at all is checked, not this machine's CPU: the kit is for
    another device (bf16 support, for one, is that device's question).
    """
    if backend == "auto" or precision == "auto":
        raise UserError("latency.backend/precision auto picks the fastest executor on this machine, not on the "
                        "device the probes are for: name the executor you deploy with there, e.g. "
                        "--backend onnxruntime --set latency.precision=int8")
    if backend not in file_backends():
        raise UserError(f"backend {backend} cannot be probed on another device: its ops run inside torch, and the "
                        f"probe runner needs only a runtime and numpy. Write the probes for onnxruntime or openvino "
                        f"(--backend onnxruntime), or run `srnas latency build` on that device")
    if precision not in SUPPORTED[backend]:
        raise UserError(f"backend {backend} does not run {precision}; it runs {', '.join(SUPPORTED[backend])}")


def probe_name(i: int, key: OpKey) -> str:
    """A file name that says which row a probe is (the manifest holds the exact key)."""
    rate = f"-{key.scheme}{key.rate:g}" if key.scheme != "none" else ""
    return f"{i:04d}-{key.op}-{key.cin}x{key.cout}-k{key.k}-{key.h}x{key.w}{rate}.onnx"


def write_probe(module: nn.Module, shapes: Sequence[tuple[int, ...]], path: Path, backend: str,
                precision: str) -> Path:
    """One probe file as make_runner would run ``module``: a static-shape ONNX export, INT8 quantized for int8.

    The build feeds one random tensor per shape (two inputs of one shape share it); so does the export,
    and INT8 calibrates on random inputs of those shapes, which is enough to time it.
    """
    xs: dict[tuple[int, ...], torch.Tensor] = {}
    inputs = [xs.setdefault(tuple(s), torch.rand(s)) for s in shapes]
    if precision != "int8":
        return export_onnx(module, inputs, path)
    fp32 = export_onnx(module, inputs, path.with_name(path.stem + "-fp32.onnx"))
    try:
        return quantize_onnx(fp32, path, random_calibration(inputs), backend)
    finally:
        fp32.unlink(missing_ok=True)


def prepare_dir(out: Path) -> None:
    """Make ``out`` for a new kit: empty, or a former kit whose listed files are removed first."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a folder for the probe kit")
    old = out / MANIFEST
    if old.is_file():
        manifest = json.loads(old.read_text())
        probes = manifest.get("probes", [])
        listed = probes + [p["chain"] for p in probes if p.get("chain")] + [manifest.get("anchor") or {}] + \
            (manifest.get("calibration") or {}).get("nets", [])
        for entry in listed:
            if entry.get("file"):
                (out / entry["file"]).unlink(missing_ok=True)
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty and holds no probe kit; name a new or empty folder")
    make_folder(out)   # under a file, read-only: one line


def key_fields(key: OpKey) -> dict:
    """A LUT key as the manifest and the CSV carry it."""
    return {"op": key.op, "cin": key.cin, "cout": key.cout, "k": key.k, "h": key.h, "w": key.w,
            "scheme": key.scheme, "rate": float(key.rate)}


def write_whole_nets(cfg: Config, out: Path, candidate_fn: CandidateFn, progress: bool = True) -> dict:
    """The calibration candidates as whole-network files, and how the runner times them (as calibrate_lut)."""
    lat = cfg.latency
    shape = (1, 3, lat.lr_height, lat.lr_width)
    nets = []
    cands = calibration_candidates(cfg)
    bar = progress_bar(total=len(cands), desc="whole nets", unit="net", disable=not progress)
    for i, (path, plan, *width) in enumerate(cands):
        f = write_probe(candidate_fn(path, plan, *width), [shape], out / f"net-{i:02d}.onnx", lat.backend,
                        lat.precision)
        nets.append({"file": f.name, "path": list(path), "plan": {k: list(v) for k, v in plan.items()},
                     "shapes": [list(shape)], **({"width": width[0]} if width else {})})
        bar.update(1)
    bar.close()
    return {"nets": nets, "warmup": 1, "repeats": lat.repeats, "chunk": NET_CHUNK}


def kit_calibration(lut: LUT, cfg: Config, src: str | Path) -> dict | None:
    """The calibration a probe kit's CSV supports: measured / op sum of its whole networks (None: none timed).

    Fitted here rather than on the device because the op sum needs the latency model.
    """
    line = next((ln for ln in Path(src).read_text().splitlines() if ln.startswith(WHOLE_NETS)), None)
    if line is None:
        return None
    nets = json.loads(line[len(WHOLE_NETS):])
    model = LatencyModel.for_config(lut, cfg, calibrate=False)
    raw = [model.raw(tuple(n["path"]), {k: (v[0], float(v[1])) for k, v in n["plan"].items()},
                     *([n["width"]] if n.get("width") else [])) for n in nets]
    return fit_calibration(raw, [n["median_ms"] for n in nets]) if nets else None


def write_probes(cfg: Config, out_dir: str | Path, candidate_fn: CandidateFn | None = None,
                 progress: bool = True) -> Path:
    """Write every LUT row's probe for the config's executor, the manifest and run_probes.py into ``out_dir``.

    With ``candidate_fn`` ((path, plan) -> the compact network, as the build's calibration gets), the
    kit also holds latency.calib_samples whole networks, so the imported LUT is calibrated as a built one.
    Returns the manifest's path.
    """
    lat = cfg.latency
    backend, precision = lat.backend, lat.precision
    check_probe_executor(backend, precision)
    out = Path(out_dir)
    prepare_dir(out)
    keys = lut_keys(cfg)
    probes = []
    bar = progress_bar(total=len(keys) + 1, desc=f"probes {backend}/{precision}", unit="op", disable=not progress)
    for i, key in enumerate(keys):
        module, shapes = op_module(key, cfg.model, cfg.data.scale)
        path = write_probe(module, shapes, out / probe_name(i, key), backend, precision)
        probe = {"file": path.name, "key": key_fields(key), "shapes": [list(s) for s in shapes]}
        if chained(key, lat.lut_granularity):   # its row is a chain share, as the build measures it
            chain, extra = chain_probe(key, cfg.model, cfg.data.scale)
            c_path = write_probe(chain, shapes, out / probe_name(i, key).replace(".onnx", "_chain.onnx"), backend,
                                 precision)
            probe["chain"] = {"file": c_path.name, "extra": extra}
        probes.append(probe)
        bar.update(1)
    anchor = anchor_key(cfg)
    a_shape = (1, anchor.cin, anchor.h, anchor.w)
    a_path = write_probe(anchor_module(anchor), [a_shape], out / "anchor.onnx", backend, precision)
    bar.update(1)
    bar.close()
    nets = write_whole_nets(cfg, out, candidate_fn, progress) if candidate_fn and lat.calib_samples > 0 else None
    manifest = {
        "kit": "srnas latency probes", "version": 1, "config": cfg.name, "scale": cfg.data.scale,
        "backend": backend, "precision": precision, "layout": layout_of(backend),
        "exported_with": {"torch": torch.__version__},
        "timing": {"threads": lat.threads, "warmup": lat.warmup, "repeats": lat.repeats, "chunk": CHUNK},
        "anchor": {"file": a_path.name, "key": key_fields(anchor), "shapes": [list(a_shape)]},
        "probes": probes,
        "calibration": nets,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    atomic_write_bytes(out / RUNNER_NAME, RUNNER.read_bytes())
    return out / MANIFEST

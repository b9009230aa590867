"""Import external measurements (e.g. timed on a phone) as a LUT that keeps that device's fingerprint."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from srnas.supernet.config import Config
from srnas.supernet.errors import UserError

from .fingerprint import FIELDS, layout_of
from .lut import LUT, check_scale, read_csv
from .runtimes.registry import names as backends


def import_csv(src: Path, out: str | Path | None, cfg: Config, backend: str | None = None,
               fields: dict[str, str] | None = None) -> LUT:
    """Read a CSV of LUT columns, attach its device's fingerprint and write it as a srnas LUT."""
    if not src.is_file():
        raise UserError(f"no CSV at {src}")
    fp_in, rows, cal = read_csv(src)
    fp = {f: "" for f in FIELDS}
    fp.update(fp_in or {})
    fp.update(fields or {})
    col_backend = _column_value(src, "backend")
    fp["backend"] = backend or (fp_in or {}).get("backend") or col_backend or ""
    if fp["backend"] not in backends():
        raise UserError(f"{src}: say which backend these were measured with: --backend one of {backends()}")
    check_scale(src, fp, {"scale": str(cfg.data.scale)})
    fp["scale"] = fp.get("scale") or str(cfg.data.scale)   # the config's models: what the probe kit timed
    fp["precision"] = fp.get("precision") or "fp32"
    fp["layout"] = fp.get("layout") or layout_of(fp["backend"])
    if not fp.get("cpu_model"):
        fp["cpu_model"] = _column_value(src, "device") or ""
    if not fp["cpu_model"]:
        raise UserError(f"{src}: name the device the rows were measured on: --cpu-model NAME "
                        f"(or a 'device' column / fingerprint header)")
    if not rows:
        raise UserError(f"{src}: no data rows")
    path = Path(out) if out else import_path(cfg, fp)
    lut = LUT.create(path, fp)
    for row in rows.values():
        lut.add(row)
    if cal:
        lut.set_calibration(cal)
    return lut


def import_path(cfg: Config, fp: dict) -> Path:
    """Where an import without --out goes: where `srnas run` and `latency check` look for the LUT of that
    executor (latency.lut, else <run>/latency/lut-<backend>[-<precision>].csv). A LUT of another device there
    (e.g. one measured on this machine) is not overwritten."""
    path = Path(cfg.latency.lut) if cfg.latency.lut else cfg.run().lut(fp["backend"], fp.get("precision", "fp32"))
    if path.exists():
        theirs = _fingerprint_of(path)
        if theirs is None or theirs.get("cpu_model") != fp.get("cpu_model"):
            what = f"a LUT of {theirs.get('cpu_model')!r}" if theirs else "a file that is not a srnas LUT"
            raise UserError(f"{path} holds {what}, where this import of {fp.get('cpu_model')!r} would go; move or "
                            f"remove it, or give --out (and latency.lut in the config to use that file)")
    return path


def _fingerprint_of(path: Path) -> dict | None:
    """The fingerprint header of a LUT file, or None."""
    from .lut import HEADER
    with open(path, newline="") as f:
        for line in f:
            if line.startswith(HEADER):
                try:
                    return json.loads(line[len(HEADER):])
                except ValueError:
                    return None
    return None


def _column_value(src: Path, col: str) -> str | None:
    """The single value of an optional column (device, backend), if the CSV has one."""
    with open(src, newline="") as f:
        lines = [ln for ln in f if not ln.startswith("#") and ln.strip()]
    vals = {d.get(col, "").strip() for d in csv.DictReader(lines)} - {""}
    if len(vals) > 1:
        raise UserError(f"{src}: column {col!r} holds several values {sorted(vals)}; import one device at a time")
    return vals.pop() if vals else None

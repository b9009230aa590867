"""Import external measurements (e.g. timed on a phone) as a LUT that keeps that device's fingerprint."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from supernet.config import Config
from supernet.errors import UserError

from .fingerprint import BACKENDS, FIELDS, layout_of
from .lut import LUT, read_csv


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
    if fp["backend"] not in BACKENDS:
        raise UserError(f"{src}: say which backend these were measured with: --backend one of {list(BACKENDS)}")
    fp["precision"] = fp.get("precision") or "fp32"
    fp["layout"] = fp.get("layout") or layout_of(fp["backend"])
    if not fp.get("cpu_model"):
        fp["cpu_model"] = _column_value(src, "device") or ""
    if not fp["cpu_model"]:
        raise UserError(f"{src}: name the device the rows were measured on: --cpu-model NAME "
                        f"(or a 'device' column / fingerprint header)")
    if not rows:
        raise UserError(f"{src}: no data rows")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", fp["cpu_model"]).strip("-").lower()[:40]
    path = Path(out) if out else cfg.run().latency_dir / f"lut-{fp['backend']}-{slug}.csv"
    lut = LUT.create(path, fp)
    for row in rows.values():
        lut.add(row)
    if cal:
        lut.set_calibration(cal)
    return lut


def _column_value(src: Path, col: str) -> str | None:
    """The single value of an optional column (device, backend), if the CSV has one."""
    with open(src, newline="") as f:
        lines = [ln for ln in f if not ln.startswith("#") and ln.strip()]
    vals = {d.get(col, "").strip() for d in csv.DictReader(lines)} - {""}
    if len(vals) > 1:
        raise UserError(f"{src}: column {col!r} holds several values {sorted(vals)}; import one device at a time")
    return vals.pop() if vals else None

"""The lookup table: CSV rows (device, backend, op, cin, cout, k, h, w, scheme, rate) -> ms, with
the device fingerprint in a header comment; appended row by row so a build resumes.

Each row goes out in one write that is cut back off when it fails (a full disk), and a row cut short some
other way (a kill mid-write, a copy cut off) is dropped on load with a warning, so the next build measures it
again; it is never glued to the row after it."""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from srnas.supernet.errors import UserError
from srnas.supernet.writes import append_text, atomic_write_text

from .catalogue import OpKey, normalise
from .fingerprint import EXECUTOR_FIELDS, device_id, fingerprint, fingerprint_diff, layout_of

COLUMNS = ["device", "backend", "op", "cin", "cout", "k", "h", "w", "scheme", "rate",
           "latency_ms", "spread_ms", "n", "anchor_ms"]
REQUIRED = ["op", "cin", "cout", "k", "h", "w", "scheme", "rate", "latency_ms"]
HEADER = "# srnas-lut fingerprint: "
CAL_HEADER = "# srnas-lut calibration: "


class MissingRow(UserError, KeyError):
    """A latency the LUT has no row for and cannot interpolate; the message names the row."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class FingerprintMismatch(UserError):
    """A LUT measured on another device or executor, refused unless foreign LUTs are allowed."""


class LUTFingerprintWarning(UserWarning):
    """A LUT measured on another device or executor is being used here, as asked."""


class DamagedLUTWarning(UserWarning):
    """Rows of a LUT file were cut short or garbled; they are left out (and measured again by a build)."""


@dataclass
class Row:
    """One measured op."""
    key: OpKey
    latency_ms: float
    spread_ms: float = 0.0
    n: int = 0
    anchor_ms: float = 0.0  # the anchor op's time in the same measuring round (0 = none)
    backend: str = ""       # the backend column of the file ("" = not given)


@dataclass
class LUT:
    """Measured op latencies of one device/backend."""
    fingerprint: dict
    rows: dict[OpKey, Row] = field(default_factory=dict)
    path: Path | None = None
    calibration: dict | None = None   # {"scale", "offset", "n", ...}: end-to-end = scale * op sum + offset
    damaged: list[str] = field(default_factory=list)   # rows of the file left out on load, one reason each

    @property
    def backend(self) -> str:
        return self.fingerprint.get("backend", "torch-cpu")

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: OpKey) -> bool:
        return key in self.rows

    def add(self, row: Row) -> None:
        """Insert (or replace) a row in memory and append it to the file if the LUT has one."""
        self.rows[row.key] = row
        if self.path is not None:
            self._append(row)

    def ms(self, key: OpKey) -> float:
        """Latency of one op (exact row, else interpolated; MissingRow if neither)."""
        return self.lookup(key).latency_ms

    def lookup(self, key: OpKey) -> Row:
        """The row for ``key``; interpolated over rate, then input, then output channels, where sound."""
        key = OpKey(key.op, key.cin, key.cout, key.k, key.h, key.w, *normalise(key.scheme, key.rate))
        row = self.rows.get(key)
        if row is not None:
            return row
        for interp in (self._over_rate, self._over_channels):
            row = interp(key)
            if row is not None:
                return row
        raise MissingRow(
            f"latency LUT {self.path or '(in memory)'} has no row op={key.op} cin={key.cin} cout={key.cout} "
            f"k={key.k} h={key.h} w={key.w} scheme={key.scheme} rate={key.rate} and cannot interpolate it; "
            f"rebuild it for this search space and input size (`srnas latency build -c CONFIG`), "
            f"or check latency.lr_height/lr_width and the model section against the LUT")

    def _over_rate(self, key: OpKey) -> Row | None:
        # latency is close to linear in the kept fraction between neighbouring grid rates
        if key.scheme == "none":
            return None
        pts = {0.0: self.rows.get(OpKey(key.op, key.cin, key.cout, key.k, key.h, key.w))}
        for k2, r in self.rows.items():
            if (k2.op, k2.cin, k2.cout, k2.k, k2.h, k2.w, k2.scheme) == (
                    key.op, key.cin, key.cout, key.k, key.h, key.w, key.scheme):
                pts[k2.rate] = r
        return _interp(key.rate, {x: r for x, r in pts.items() if r is not None})

    def _over_channels(self, key: OpKey) -> Row | None:
        # conv cost is close to linear in either channel count with everything else fixed, and
        # so bilinear over a grid of (input, output) widths
        same = [(k2, r) for k2, r in self.rows.items() if (k2.op, k2.k, k2.h, k2.w, k2.scheme, k2.rate) ==
                (key.op, key.k, key.h, key.w, key.scheme, key.rate)]
        for axis, other in (("cin", "cout"), ("cout", "cin")):
            pts = {float(getattr(k2, axis)): r for k2, r in same if getattr(k2, other) == getattr(key, other)}
            row = _interp(float(getattr(key, axis)), pts)
            if row is not None:
                return row
        grid = {(k2.cin, k2.cout): r for k2, r in same}
        ci = _bracket(key.cin, {a for a, _ in grid})
        co = _bracket(key.cout, {b for _, b in grid})
        if ci is None or co is None or any((a, b) not in grid for a in ci for b in co):
            return None
        rows = [_interp(float(key.cin), {float(a): grid[a, b] for a in ci}) for b in co]
        return _interp(float(key.cout), {float(b): r for b, r in zip(co, rows)})

    # ---- files -------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, fp: dict) -> "LUT":
        """A new, empty LUT file with the fingerprint header."""
        path = Path(path)
        atomic_write_text(path, HEADER + json.dumps(fp, sort_keys=True) + "\n" + _csv_line(COLUMNS))
        return cls(dict(fp), {}, path)

    def _values(self, row: Row) -> dict:
        k = row.key
        return dict(zip(COLUMNS, [device_id(self.fingerprint), self.backend, k.op, k.cin, k.cout, k.k, k.h, k.w,
                                  k.scheme, k.rate, f"{row.latency_ms:.5f}", f"{row.spread_ms:.5f}", row.n,
                                  f"{row.anchor_ms:.5f}"]))

    def _append(self, row: Row) -> None:
        # in the file's own column order: a resumed older LUT (with a cout_kept column) stays readable
        values = self._values(row)
        append_text(self.path, _csv_line([values.get(c, "") for c in file_columns(self.path)]))

    def rewrite(self) -> None:
        """Write the file anew from the rows in memory (e.g. without the damaged rows load left out)."""
        head = HEADER + json.dumps(self.fingerprint, sort_keys=True) + "\n"
        if self.calibration is not None:
            head += CAL_HEADER + json.dumps(self.calibration, sort_keys=True) + "\n"
        body = "".join(_csv_line(list(self._values(r).values())) for r in self.rows.values())
        atomic_write_text(self.path, head + _csv_line(COLUMNS) + body)
        self.damaged = []

    @classmethod
    def load(cls, path: str | Path, expected: dict | None = None, allow_foreign: bool = False) -> "LUT":
        """Read a LUT and check it against ``expected`` (default: this machine, the LUT's own executor).

        A LUT of another device or executor is refused (FingerprintMismatch) unless ``allow_foreign``,
        which only warns: a search priced by it describes that device, not this one.
        """
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{path} is a folder: a LUT is a file (a run's is <run>/latency/lut-<backend>.csv); "
                            f"name the file")
        if not path.is_file():
            raise UserError(f"no latency LUT at {path}: run `srnas latency build -c CONFIG` "
                            f"(or `srnas latency import`) first")
        damaged: list[str] = []
        fp, rows, cal = read_csv(path, damaged)
        if damaged:
            warnings.warn(f"LUT {path}: {len(damaged)} damaged row(s) left out ({damaged[0]}"
                          f"{'; ...' if len(damaged) > 1 else ''}); `srnas latency build` measures them again",
                          DamagedLUTWarning, stacklevel=2)
        if fp is None:
            raise UserError(f"{path} has no '{HEADER.strip()}' header line: not a srnas LUT; "
                            f"use `srnas latency import` for external measurements")
        # LUTs written before precision and layout were recorded were all fp32 in the backend's layout
        fp.setdefault("precision", "fp32")
        fp.setdefault("layout", layout_of(fp.get("backend", "torch-cpu")))
        backends = {r.backend for r in rows.values() if r.backend}
        if backends - {fp.get("backend")}:
            raise UserError(f"{path}: its header says backend {fp.get('backend')!r} but rows were measured with "
                            f"{sorted(backends)}: the file was edited or mixed; rebuild it with "
                            f"`srnas latency build -c CONFIG`")
        check_scale(path, fp, expected)
        lut = cls(fp, rows, path, cal, damaged)
        lut.verify(expected=expected, allow_foreign=allow_foreign)
        return lut

    def set_calibration(self, cal: dict | None) -> None:
        """Record the fitted end-to-end calibration (rewrites the header line of the file)."""
        self.calibration = cal
        if self.path is None:
            return
        lines = [ln for ln in self.path.read_text().splitlines(keepends=True) if not ln.startswith(CAL_HEADER)]
        if cal is not None:
            lines.insert(1, CAL_HEADER + json.dumps(cal, sort_keys=True) + "\n")
        atomic_write_text(self.path, "".join(lines))

    def verify(self, expected: dict | None = None, allow_foreign: bool = False) -> list[str]:
        """Compare the LUT's fingerprint with ``expected``; refuse a mismatch unless allowed. Returns the diffs."""
        if expected is None:
            expected = fingerprint(self.backend, int(self.fingerprint.get("threads", 0) or 0),
                                   self.fingerprint.get("precision", "fp32"))
        diff = fingerprint_diff(self.fingerprint, expected)
        if not diff:
            return diff
        executor = [d for d in diff if d.split(":")[0] in EXECUTOR_FIELDS]
        what = "another executor (runtime, precision or layout)" if executor else "another device or runtime version"
        msg = f"latency LUT {self.path} was measured for {what}; differing fields: " + "; ".join(diff)
        if not allow_foreign:
            raise FingerprintMismatch(
                msg + ". Build one for this config here (`srnas latency build -c CONFIG`, it goes to its own file "
                "per executor), or pass --allow-foreign-lut (latency.allow_foreign_lut: true) to search with "
                "that LUT anyway")
        warnings.warn(msg + "; allowed: predictions describe that device/executor, not this one",
                      LUTFingerprintWarning, stacklevel=2)
        return diff


def check_scale(path: Path, have: dict, expected: dict | None) -> None:
    """Refuse a LUT of another scale, foreign LUTs allowed or not: its tail and upsampler rows price other ops.
    A LUT written before srnas recorded the scale passes."""
    want = (expected or {}).get("scale")
    if want and have.get("scale") and str(have["scale"]) != str(want):
        raise UserError(f"{path} is a LUT of x{have['scale']} models, and this config upscales x{want}: build "
                        f"one for it (`srnas latency build -c CONFIG`) or give latency.lut an x{want} LUT")


def _bracket(x: int, values: set[int]) -> tuple[int, int] | None:
    """The nearest grid values at or below and at or above ``x``."""
    lo, hi = [v for v in values if v <= x], [v for v in values if v >= x]
    return (max(lo), min(hi)) if lo and hi else None


def _interp(x: float, pts: dict[float, Row]) -> Row | None:
    lo = [p for p in pts if p <= x]
    hi = [p for p in pts if p >= x]
    if not lo or not hi:
        return None
    a, b = max(lo), min(hi)
    if a == b:
        r = pts[a]
        return Row(r.key, r.latency_ms, r.spread_ms, r.n)
    t = (x - a) / (b - a)
    ra, rb = pts[a], pts[b]
    return Row(ra.key, ra.latency_ms + t * (rb.latency_ms - ra.latency_ms), max(ra.spread_ms, rb.spread_ms), 0)


def file_columns(path: Path) -> list[str]:
    """The column names of a LUT file (its first line that is not a comment)."""
    with open(path, newline="") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                return next(csv.reader([line]))
    return COLUMNS


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _header_json(path: Path, line: str, prefix: str) -> dict:
    try:
        return json.loads(line[len(prefix):])
    except ValueError:
        raise UserError(f"{path}: its '{prefix.strip()}' line is damaged (cut or edited); delete the file and "
                        f"build it again (`srnas latency build -c CONFIG`), or import it again") from None


def read_csv(path: Path, damaged: list[str] | None = None) -> tuple[dict | None, dict[OpKey, Row], dict | None]:
    """Parse a LUT-shaped CSV: (fingerprint or None, rows, calibration or None).

    A bad data row raises UserError naming it; with ``damaged`` (a LUT srnas wrote) it is left out and its
    reason appended there instead, and so is a last line without its newline (a write cut short: even a
    number that still parses may have lost digits).
    """
    fp, cal, lines = None, None, []
    try:
        with open(path, newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:   # binary data: no row of it can be kept
        raise UserError(f"{path} is not a LUT: not text (byte {e.object[e.start]:#04x} at offset {e.start}); delete "
                        f"it and build it again (`srnas latency build -c CONFIG`), or import it again") from None
    numbered = list(enumerate(text.splitlines(keepends=True), start=1))
    for no, line in numbered:
        if line.startswith(HEADER):
            fp = _header_json(path, line, HEADER)
        elif line.startswith(CAL_HEADER):
            cal = _header_json(path, line, CAL_HEADER)
        elif line.startswith("#") or not line.strip():
            continue
        else:
            lines.append((no, line))
    if damaged is not None and len(lines) > 1 and not lines[-1][1].endswith(("\n", "\r")):
        no, line = lines.pop()
        damaged.append(f"line {no} cut short: {line.strip()[:60]!r}")
    header = next(csv.reader([lines[0][1]])) if lines else []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; a LUT CSV needs {REQUIRED} "
                        f"(optional: spread_ms, device, backend)")
    rows: dict[OpKey, Row] = {}
    for i, (no, line) in enumerate(lines[1:], start=1):
        fields = next(csv.reader([line]), [])
        try:
            if len(fields) != len(header):
                raise ValueError(f"{len(fields)} fields where the header has {len(header)}: "
                                 f"{'cut short' if len(fields) < len(header) else 'two rows run together?'}")
            d = dict(zip(header, fields))
            scheme, rate = normalise(d["scheme"].strip() or "none", float(d["rate"] or 0))
            key = OpKey(d["op"].strip(), int(d["cin"]), int(d["cout"]), int(d["k"]), int(d["h"]), int(d["w"]),
                        scheme, rate)
            ms = float(d["latency_ms"])
            spread = float(d.get("spread_ms") or 0.0)
            n = int(d.get("n") or 0)
            anchor = float(d.get("anchor_ms") or 0.0)
            backend = (d.get("backend") or "").strip()
            if not ms > 0 or not math.isfinite(ms):
                raise ValueError(f"latency_ms {ms}; latencies must be positive")
        except (TypeError, ValueError, KeyError) as e:
            if damaged is None:
                raise UserError(f"{path}: data row {i} (line {no}) is not valid ({e}): {line.strip()[:120]}") from None
            damaged.append(f"line {no}: {e}")
            continue
        rows[key] = Row(key, ms, spread, n, anchor, backend)  # a later row (a re-measurement) wins
    return fp, rows, cal

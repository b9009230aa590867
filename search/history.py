"""history.csv: one row per evaluated candidate, appended and fsynced right after each evaluation."""
from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path

import pandas as pd

from srnas.supernet.writes import append_text, atomic_write_text

COLUMNS = ["search", "iteration", "order", "key", "candidate", "encoding", "rate", "pred_mean", "pred_std", "acq",
           "psnr", "lat_pred_ms", "lat_meas_ms", "macs", "params", "eval_s", "rank", "time"]


class DamagedHistoryWarning(UserWarning):
    """Rows of a history file were cut short or garbled; they are left out, so those candidates run again."""


class History:
    """Append-only CSV of evaluations; a torn last line (kill -9 mid-write, a full disk) or a garbled row is
    dropped on load with a warning: that candidate is evaluated again, never counted twice."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.exists():
            text = self._repair()
            if text:
                self.rows = pd.read_csv(io.StringIO(text), keep_default_na=True).to_dict("records")

    def _repair(self) -> str:
        """The file's text without damaged rows (rewritten without them when there were any)."""
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        header = next(csv.reader([lines[0]]), []) if lines and lines[0].endswith("\n") else []
        if not header:
            bad = ["line 1 (the header) cut short"] if text else []
            good: list[str] = []
        else:
            good, bad = [lines[0]], []
            for no, line in enumerate(lines[1:], start=2):
                fields = next(csv.reader([line]), [])
                if not line.endswith("\n"):
                    bad.append(f"line {no} cut short")
                elif len(fields) != len(header) or "key" in header and not fields[header.index("key")]:
                    bad.append(f"line {no} has {len(fields)} fields where the header has {len(header)}")
                else:
                    good.append(line)
        if bad:
            warnings.warn(f"{self.path}: {len(bad)} damaged row(s) left out ({bad[0]}); those candidates are "
                          f"evaluated again", DamagedHistoryWarning, stacklevel=3)
            if int(os.environ.get("RANK", "0") or 0) == 0:   # one rank repairs the file the ranks share
                atomic_write_text(self.path, "".join(good))
        return "".join(good) if len(good) > 1 else ""

    @property
    def keys(self) -> set[str]:
        """Keys of every evaluated candidate."""
        return {r["key"] for r in self.rows}

    def append(self, row: dict) -> None:
        """Write one row (in one write, cut back off if it fails) and force it to disk before returning."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow({c: row.get(c, "") for c in COLUMNS})
        append_text(self.path, buf.getvalue(), sync=True)
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (columns in COLUMNS order)."""
        return pd.DataFrame(self.rows, columns=COLUMNS) if self.rows else pd.DataFrame(columns=COLUMNS)

    def best(self) -> dict | None:
        """The row with the highest PSNR."""
        return max(self.rows, key=lambda r: float(r["psnr"])) if self.rows else None


def atomic_write_json(obj, path: str | Path) -> None:
    """Write JSON to a temporary file, fsync, rename over ``path`` (a full disk: DiskFull, no file left half-done)."""
    atomic_write_text(path, json.dumps(obj, indent=1))

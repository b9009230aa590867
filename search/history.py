"""history.csv: one row per evaluated candidate, appended and fsynced right after each evaluation."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd

COLUMNS = ["search", "iteration", "order", "key", "candidate", "encoding", "rate", "pred_mean", "pred_std", "acq",
           "psnr", "lat_pred_ms", "lat_meas_ms", "macs", "params", "eval_s", "rank", "time"]


class History:
    """Append-only CSV of evaluations; a torn last line (kill -9 mid-write) is dropped on load."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.exists():
            self._repair()
            if self.path.stat().st_size:
                self.rows = pd.read_csv(self.path, keep_default_na=True).to_dict("records")

    def _repair(self) -> None:
        text = self.path.read_bytes()
        if text and not text.endswith(b"\n"):
            cut = text.rfind(b"\n") + 1
            with self.path.open("r+b") as f:
                f.truncate(cut)

    @property
    def keys(self) -> set[str]:
        """Keys of every evaluated candidate."""
        return {r["key"] for r in self.rows}

    def append(self, row: dict) -> None:
        """Write one row and force it to disk before returning."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({c: row.get(c, "") for c in COLUMNS})
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (columns in COLUMNS order)."""
        return pd.DataFrame(self.rows, columns=COLUMNS) if self.rows else pd.DataFrame(columns=COLUMNS)

    def best(self) -> dict | None:
        """The row with the highest PSNR."""
        return max(self.rows, key=lambda r: float(r["psnr"])) if self.rows else None


def atomic_write_json(obj, path: str | Path) -> None:
    """Write JSON to a temporary file, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

"""The auto executor: time reference nets on every executor that runs here and pick the fastest; its tables."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.errors import UserError, first_line
from srnas.supernet.model import build_path_net

from .deploy import make_runner
from .runtimes.registry import SUPPORTED, available_executors
from .timing import time_interleaved


def executor_name(backend: str, precision: str) -> str:
    """'backend/precision', as tables and logs name an executor."""
    return f"{backend}/{precision}"


def auto_candidates(backend: str = "auto", precision: str = "auto") -> list[tuple[str, str]]:
    """The executors ``auto`` chooses among when the config fixes one of backend / precision (or neither)."""
    pairs = [(b, p) for b, ps in SUPPORTED.items() for p in ps]   # every registered runtime, in registry order
    return [(b, p) for b, p in pairs if backend in ("auto", b) and precision in ("auto", p)]


def choose_executor(reference_modules: dict[str, nn.Module], lr_hw: tuple[int, int], threads: int,
                    candidates: Sequence[tuple[str, str]] | None = None, repeats: int = 5,
                    ) -> tuple[str, str, list[dict]]:
    """Time ``reference_modules`` on every executor available here, interleaved; pick the fastest.

    The figure of merit is the geometric mean of the median ms over the reference nets (each net
    counts alike, whatever its size). Returns (backend, precision, table): one row per executor
    with its per-net medians and IQRs, geomean, and the error of any executor that failed to build.
    """
    executors = available_executors(candidates)
    if not executors:
        raise UserError("no executor of the candidates runs here; install onnxruntime or openvino")
    shape = (1, 3, *lr_hw)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    runners, slots, rows = [], [], []
    for b, p in executors:
        row: dict = {"backend": b, "precision": p, "executor": executor_name(b, p), "error": ""}
        try:
            built = [make_runner(m, [x], b, threads, p) for m in reference_modules.values()]
        except Exception as e:  # an executor that cannot build a reference net loses, saying why
            row["error"] = f"{type(e).__name__}: {first_line(e)}"
            rows.append(row)
            continue
        for name, r in zip(reference_modules, built):
            runners.append(r)
            slots.append((len(rows), name))
        rows.append(row)
    timings = time_interleaved(runners, warmup=2, repeats=repeats, threads=threads)
    for (i, name), t in zip(slots, timings):
        rows[i][f"{name} ms"] = round(t.median_ms, 2)
        rows[i][f"{name} iqr"] = round(t.iqr_ms, 2)
    for row in rows:
        ms = [row[f"{n} ms"] for n in reference_modules if f"{n} ms" in row]
        row["geomean_ms"] = round(math.exp(sum(math.log(v) for v in ms) / len(ms)), 2) if ms else math.inf
    rows.sort(key=lambda r: r["geomean_ms"])
    return rows[0]["backend"], rows[0]["precision"], rows


def executor_summary(table: list[dict]) -> str:
    """One line saying which executor auto chose and by how much over the runner-up."""
    ok = [r for r in table if math.isfinite(r["geomean_ms"])]
    best = ok[0]
    line = f"auto executor: {best['executor']} (geomean {best['geomean_ms']:.1f} ms over the reference nets"
    if len(ok) > 1:
        nxt = ok[1]
        line += f"; next {nxt['executor']} {nxt['geomean_ms']:.1f} ms, {nxt['geomean_ms'] / best['geomean_ms']:.2f}x"
    failed = [r["executor"] for r in table if r["error"]]
    return line + (f"; failed: {', '.join(failed)}" if failed else "") + ")"


def executor_table_markdown(table: list[dict], names: Sequence[str]) -> str:
    """The choose_executor table as markdown: per-net median ms (IQR), geomean."""
    head = ["executor"] + [f"{n} ms (IQR)" for n in names] + ["geomean ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [r["executor"]]
        cells += [f"{r[f'{n} ms']:.1f} ({r[f'{n} iqr']:.1f})" if f"{n} ms" in r else "-" for n in names]
        cells.append(f"{r['geomean_ms']:.1f}" if math.isfinite(r["geomean_ms"]) else f"failed: {r['error']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reference_nets(model_cfg, scale: int) -> dict[str, nn.Module]:
    """Reference nets from the supernet alone: the dense all-WDSR-B and all-WDSR-A paths of ``model_cfg``."""
    out = {}
    for block in ("wdsr_b", "wdsr_a"):
        if block in model_cfg.blocks:
            out[f"{block} x{model_cfg.n_cells}"] = fuse_weight_norm(
                build_path_net(model_cfg, scale, [block] * model_cfg.n_cells)).eval()
    return out

"""The supernet's size from the LUT, before it trains (the paper fixes N from the latency table): of the
cell counts and widths the model section allows, the largest whose paths can meet the target."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from srnas.supernet.config import AUTO_CELLS, AUTO_FEATS, Config, size_choices
from srnas.supernet.distributed import barrier, broadcast_object
from srnas.supernet.rundir import RunDir

from .history import atomic_write_json


def size_table(cfg: Config, lut_path: Path) -> list[dict]:
    """Per allowed width: the most cells whose fastest candidate (every layer at its cheapest scheme and rate)
    meets the target by the LUT, measuring the rows of that width into the run's LUT first."""
    from srnas.latency import InfeasibleTarget, LatencyModel, build_lut

    m, target = cfg.model, cfg.latency.target_ms
    cells = size_choices(m.n_cells, AUTO_CELLS)
    rows = []
    for width in size_choices(m.n_feats, AUTO_FEATS):
        sized = dataclasses.replace(cfg, model=dataclasses.replace(m, n_feats=width, n_cells=max(cells)))
        lut = build_lut(sized, out=lut_path)          # rows of every width live in the one LUT of the run
        model = LatencyModel.for_config(lut, sized, calibrate=False)
        try:
            most = model.max_cells(target, limit=max(cells))
        except InfeasibleTarget:
            most = 0
        n = max((c for c in cells if c <= most), default=0)
        rows.append({"n_feats": width, "n_cells": n, "fastest_ms": round(model.fastest_ms(n), 3) if n else None,
                     "capacity": n * width * width})   # a cell's MACs grow with the square of its width
    return rows


def resolve_size(cfg: Config, run: RunDir, main: bool = True) -> Config:
    """The config with concrete model.n_cells and n_feats; a list or auto is settled once per run (size.json),
    unless the supernet is elastic."""
    m = cfg.model
    if m.elastic or (isinstance(m.n_cells, int) and isinstance(m.n_feats, int)):
        return cfg   # an elastic space keeps its lists: every candidate picks its own depth and width
    chosen = None
    if main:
        if run.size.exists():
            chosen = json.loads(run.size.read_text())
        else:
            from srnas.latency import InfeasibleTarget, default_lut_path
            table = size_table(cfg, default_lut_path(cfg, run=run))
            feasible = [r for r in table if r["n_cells"] > 0]
            if not feasible:
                raise InfeasibleTarget(
                    f"latency target {cfg.latency.target_ms:g} ms: no size that model.n_cells {m.n_cells!r} x "
                    f"model.n_feats {m.n_feats!r} allows meets it even at the highest pruning rates; raise the "
                    f"target, allow smaller widths, or add higher rates to latency.rates")
            best = max(feasible, key=lambda r: (r["capacity"], r["n_cells"]))
            chosen = {"n_cells": best["n_cells"], "n_feats": best["n_feats"], "asked": [m.n_cells, m.n_feats],
                      "target_ms": cfg.latency.target_ms, "table": table}
            atomic_write_json(chosen, run.size)
        print(f"model size: {chosen['n_cells']} cells x {chosen['n_feats']} features (largest of "
              f"{chosen['asked']} whose paths can meet {chosen['target_ms']:g} ms by the LUT; {run.size})")
    barrier()
    chosen = broadcast_object(chosen)
    return dataclasses.replace(cfg, model=dataclasses.replace(m, n_cells=chosen["n_cells"],
                                                              n_feats=chosen["n_feats"]))

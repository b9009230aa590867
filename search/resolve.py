"""What a config means on this machine and LUT: its input size and search space, a concrete executor for
an `auto` one, an absolute latency target for a relative one. Shared by `srnas run` (pipeline.py),
`srnas prune` (stage3.py) and the commands built on them.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from srnas.latency.auto import auto_candidates, choose_executor, executor_summary, reference_nets
from srnas.latency.runtimes.registry import check_executor
from srnas.supernet.config import Config, at_size, widths
from srnas.supernet.errors import UserError
from srnas.supernet.rundir import RunDir
from srnas.supernet.widths import WidthRule

from .candidate import Space
from .history import atomic_write_json


def lr_hw(cfg: Config) -> tuple[int, int]:
    """The input (LR) size the latency target refers to."""
    return cfg.latency.lr_height, cfg.latency.lr_width


def make_space(cfg: Config) -> Space:
    """The search space of the config."""
    return Space(cfg.model, cfg.pruning.schemes, cfg.data.scale, WidthRule.of(cfg.pruning))


def resolve_executor(cfg: Config, run: RunDir | None = None) -> Config:
    """The config with a concrete executor: an `auto` backend or precision is chosen by timing reference nets
    on every executor available here (fastest geomean wins), once per run: the choice is saved in the run
    directory, so a resumed run keeps it."""
    lat = cfg.latency
    if "auto" not in (lat.backend, lat.precision):
        check_executor(lat.backend, lat.precision)
        return cfg
    path = (run or cfg.run()).executor
    if path.exists():
        chosen = json.loads(path.read_text())
        print(f"executor: {chosen['backend']}/{chosen['precision']} (chosen by auto earlier: {path})")
    else:
        nets = reference_nets(reference_model(cfg), cfg.data.scale)
        backend, precision, table = choose_executor(nets, lr_hw(cfg), lat.threads,
                                                    auto_candidates(lat.backend, lat.precision))
        chosen = {"backend": backend, "precision": precision, "asked": [lat.backend, lat.precision],
                  "summary": executor_summary(table), "table": table}
        print(chosen["summary"])
        atomic_write_json(chosen, path)
    return dataclasses.replace(cfg, latency=dataclasses.replace(lat, backend=chosen["backend"],
                                                                precision=chosen["precision"]))


def reference_model(cfg: Config):
    """The model section with concrete sizes (a list or auto still to be settled, or an elastic space: 4 cells,
    a middle width)."""
    m = cfg.model
    feats = widths(m)
    return at_size(m, m.n_cells if isinstance(m.n_cells, int) else 4, feats[len(feats) // 2])


def resolve_target(cfg: Config, lat_model, run: RunDir | None = None) -> Config:
    """The config with an absolute latency.target: a relative one (0.85x) times the LUT latency of the fastest dense path.

    A relative target keeps a demo meaningful on any machine; the value depends only on the
    LUT, so a resumed run gets the same target.
    """
    rel = cfg.latency.target_rel
    if rel <= 0 or lat_model is None:
        return cfg
    dense = fastest_dense_ms(cfg, lat_model)
    target = rel * dense
    print(f"latency target: {rel:g} x {dense:.2f} ms (fastest dense path, LUT) = {target:.2f} ms")
    if run is not None:
        atomic_write_json({"target_ms": target, "fastest_dense_ms": dense, "target_rel": rel}, run.target)
    return dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, target=f"{target:.3f}ms"))


def fastest_dense_ms(cfg: Config, lat_model) -> float:
    """The LUT latency of the fastest unpruned path: what a relative target (0.85x) multiplies."""
    ms = min(lat_model.predict(p, {}, w) for p, w in make_space(cfg).bounding_archs())
    if ms <= 0:
        raise UserError(f"the LUT prices the fastest dense path at {ms:.2f} ms (its calibration: "
                        f"{lat_model.lut.calibration}), so a relative latency target means nothing: rebuild the LUT's "
                        f"calibration on a quiet machine (`srnas latency build --recalibrate`) or give targets in ms")
    return ms

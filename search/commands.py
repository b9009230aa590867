"""`srnas search` (stages 1+2) and `srnas run` (every stage, skipping finished ones)."""
from __future__ import annotations

import argparse
import sys

from srnas.supernet.config import config_of
from srnas.supernet.record import STAGES
from srnas.supernet.rundir import RunDir
from srnas.supernet.runlock import run_lock


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `search` and `run` commands."""
    s = sub.add_parser("search", help="latency-constrained architecture + pruning-scheme search (resumable; "
                                      "runs under torchrun too)")
    s.add_argument("-c", "--config", required=True)
    s.add_argument("--out", help="run directory (default: <run_dir>/<name> from the config)")
    s.set_defaults(func=_search)
    r = sub.add_parser("run", help="supernet -> LUT -> search -> stage 3 -> export -> report, skipping finished stages")
    r.add_argument("-c", "--config", required=True)
    r.add_argument("--out", help="run directory (default: <run_dir>/<name> from the config)")
    r.add_argument("--redo", action="append", default=[], choices=STAGES, metavar="STAGE",
                   help=f"make this stage again, and every stage made from it ({', '.join(STAGES)}; repeatable): "
                        f"what it wrote is removed first")
    r.set_defaults(func=_run)


def _search(args) -> int:
    from .pipeline import search_command

    cfg = config_of(args)
    run = cfg.run(args.out)   # every stage gets this one layout of the run's folder
    with run_lock(run.root):
        search_command(cfg, run)
    return 0


def _run(args) -> int:
    cfg = config_of(args)
    run = cfg.run(args.out)
    with run_lock(run.root):
        return _run_locked(cfg, run, args.redo)


def _run_locked(cfg, run: RunDir, redo: list[str] = ()) -> int:
    from .front import run_front
    from .pipeline import redo_stages, run_all

    if redo:
        redo_stages(cfg, run, list(redo))
    if cfg.latency.targets:
        front = run_front(cfg, run)
        if front.missed and not cfg.latency.soft_target:
            print(f"srnas run: the exported models of targets {front.missed} ms miss them by measurement (report "
                  f"written); exit 3", file=sys.stderr)
            return 3
        return 0
    result = run_all(cfg, run)
    if result is not None and result.final.meets_target is False and not cfg.latency.soft_target:
        print("srnas run: the exported winner misses its latency target by measurement (report written); "
              "exit 3", file=sys.stderr)
        return 3
    return 0

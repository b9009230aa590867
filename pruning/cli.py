"""`srnas export`: a pruned-model file to TorchScript + ONNX (needs nothing but the file).

`srnas prune` wires latency into pruning, so it is composed in search/stage3.py.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from supernet.config import config_of
from supernet.runlock import lock_folder, run_lock

from . import PrunedModel, export_model


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` command."""
    e = sub.add_parser("export", help="export a pruned model (compact) to TorchScript + ONNX")
    e.add_argument("-c", "--config", required=True)
    e.add_argument("--model", help="pruned.pt (default <run>/prune/pruned.pt, else <run>/stage3/pruned.pt)")
    e.add_argument("--out", help="output dir (default <run>/export)")
    e.set_defaults(func=_export)


def _export(args) -> int:
    cfg = config_of(args)
    with run_lock(lock_folder(cfg.run().root, args.out)):
        return _export_locked(args, cfg)


def _export_locked(args, cfg) -> int:
    if args.model:
        f = Path(args.model)
    else:   # `srnas prune` output first, else the stage 3 of `srnas run`
        f = next((p for p in (cfg.out_dir / "prune" / "pruned.pt", cfg.out_dir / "stage3" / "pruned.pt")
                  if p.exists()), cfg.out_dir / "prune" / "pruned.pt")
    pm = PrunedModel.load(f)
    out = Path(args.out) if args.out else cfg.out_dir / "export"
    # traced at the size and in the layout it was measured with (H/W stay dynamic)
    paths = export_model(pm.compact(), out, tuple(pm.lr_hw), channels_last=pm.layout == "nhwc")
    print(json.dumps(paths))
    return 0

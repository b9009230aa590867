"""`srnas export`: a pruned-model file to TorchScript + ONNX (needs nothing but the file); `srnas convert-model`:
an older srnas file (pickled objects) rewritten as plain data.

`srnas prune` wires latency into pruning, so it is composed in search/stage3.py.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from srnas.supernet import checkpoint
from srnas.supernet.config import config_of
from srnas.supernet.errors import UserError
from srnas.supernet.runlock import lock_folder, run_lock

from . import PrunedModel, export_model
from .masks import Masks


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` command."""
    e = sub.add_parser("export", help="export a pruned model (compact) to TorchScript + ONNX")
    e.add_argument("-c", "--config", required=True)
    e.add_argument("--model", help="pruned.pt (default <run>/prune/pruned.pt, else <run>/stage3/pruned.pt)")
    e.add_argument("--out", help="output dir (default <run>/export)")
    e.set_defaults(func=_export)
    c = sub.add_parser("convert-model", help="rewrite a .pt of an older srnas (pickled objects) as plain data "
                                             "(rebuilds only srnas's own classes: a file that runs code is refused)")
    c.add_argument("files", nargs="+", help=".pt files written by an older srnas (pruned.pt, checkpoints)")
    c.set_defaults(func=_convert)


def _convert(args) -> int:
    failed = []
    for f in args.files:   # each file on its own: one that cannot be converted does not stop the rest
        try:
            backup = checkpoint.convert_old(f, [Masks])
        except UserError as e:
            failed.append(str(e))
            continue
        print(f"{f}: converted to plain data (the original is kept as {backup})")
    if failed:
        lines = "\n".join(f"  {m}" for m in failed)
        raise UserError(f"{len(failed)} of {len(args.files)} file(s) not converted:\n{lines}")
    return 0


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

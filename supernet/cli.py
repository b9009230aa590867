"""`srnas supernet train|eval`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import config_of
from .data import load_images, make_pairs
from .evaluate import evaluate, evaluate_bicubic
from .elastic import arch_name, is_elastic
from .model import parse_path
from .record import Recorder, check_run
from .runlock import run_lock
from .train import load_supernet, path_name, train_supernet


def add_training_args(p: argparse.ArgumentParser, config_default: str | None = None, resumes: bool = False) -> None:
    """The options every resumable training stage takes: -c, --out, --resume, --redo (``resumes``: the command
    continues from a checkpoint without --resume, which it still takes)."""
    if config_default is None:
        p.add_argument("-c", "--config", required=True)
    else:
        p.add_argument("-c", "--config", default=config_default)
    p.add_argument("--out", help="run directory (default: <run_dir>/<name> from the config)")
    p.add_argument("--resume", action="store_true", help="(the default) continue from the last checkpoint" if resumes
                   else "continue from the last checkpoint")
    p.add_argument("--redo", action="store_true", help="discard earlier outputs and train from scratch")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `supernet` command group."""
    p = sub.add_parser("supernet", help="train or evaluate the weight-sharing supernet")
    g = p.add_subparsers(dest="action", required=True)
    t = g.add_parser("train", help="single-path sampling training (a killed run resumes with the same command; "
                                   "runs under torchrun too)")
    add_training_args(t, resumes=True)
    t.set_defaults(func=_train)
    e = g.add_parser("eval", help="PSNR/SSIM (Y) of supernet paths on benchmark folders")
    e.add_argument("-c", "--config", required=True)
    e.add_argument("--out", help="run directory holding supernet/supernet.pt")
    e.add_argument("--weights", help="supernet weights file (default: <run>/supernet/supernet.pt)")
    e.add_argument("--path", action="append", default=[],
                   help="a path, e.g. wdsr_a,wdsr_b,... or a,b,... (repeatable)")
    e.add_argument("--width", type=int, default=0, help="an elastic supernet's width for --path (default largest)")
    e.add_argument("--sample", type=int, default=0, help="also evaluate this many random paths")
    e.add_argument("--datasets", default="", help="comma-separated names or folders (default: data.benchmarks)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    e.set_defaults(func=_eval)


def _train(args) -> int:
    cfg = config_of(args)
    run = cfg.run(args.out)
    with run_lock(run.root):
        if not args.redo:   # a supernet begun from another config is not continued or taken as it is
            check_run(cfg, run, ("supernet",), hint=_redo_hint)
        rec = Recorder(cfg, run)
        # the same command resumes a killed run, as `srnas run` does (--resume is still taken)
        train_supernet(cfg, run, resume=True, redo=args.redo, started=lambda: rec("supernet"))
    return 0


def _redo_hint(stages: Sequence[str]) -> str:
    """What `srnas supernet train` takes to train a supernet begun from another config again."""
    return ("pass --redo to train it again from this config (`srnas run` then redoes the stages made from it), "
            "or give this config another name (--set name=NEW)")


def _eval(args) -> int:
    cfg = config_of(args)
    weights = Path(args.weights) if args.weights else cfg.run(args.out).supernet
    if not weights.exists():
        from .errors import UserError
        raise UserError(f"no supernet weights at {weights}: run `srnas supernet train -c {args.config}` first")
    net = load_supernet(weights)
    elastic = is_elastic(net)
    if elastic:   # a path is (blocks, width): run and named as such
        paths = [net.check_arch(parse_path(p, net.block_names), args.width or max(net.widths)) for p in args.path]
        space = len(net.widths) * sum(len(net.block_names) ** d for d in net.depths)
        draw = net.random_arch
    else:
        paths = [net.check_path(parse_path(p, net.block_names)) for p in args.path]
        space = len(net.block_names) ** net.n_cells
        draw = net.random_path
    rng = np.random.default_rng(args.seed)
    wanted = len(paths) + (args.sample if args.sample or paths else 8)
    while len(paths) < wanted and len(set(paths)) < space:  # distinct paths, as many as the space holds
        p = draw(rng)
        if p not in paths:
            paths.append(p)
    datasets = [d for d in args.datasets.split(",") if d] or cfg.data.benchmarks
    s = net.scale
    rows = []
    for ds in datasets:
        pairs = make_pairs(load_images(ds, "val", data_root=cfg.data.data_root), s)
        base = evaluate_bicubic(pairs, s)
        rows.append({"dataset": ds, "model": "bicubic", **base, "gain_db": 0.0})
        for p in paths:
            with torch.no_grad():
                r = evaluate(lambda x, p=p: net(x, *p) if elastic else net(x, p), pairs, s)
            rows.append({"dataset": ds, "model": arch_name(p) if elastic else path_name(p), **r,
                         "gain_db": r["psnr"] - base["psnr"]})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"x{s}, Y channel, {s}-pixel border cropped")
        print(f"{'dataset':<10} {'model':<44} {'PSNR':>7} {'SSIM':>7} {'vs bicubic':>10}")
        for r in rows:
            print(f"{r['dataset']:<10} {r['model']:<44} {r['psnr']:7.2f} {r['ssim']:7.4f} {r['gain_db']:+10.2f}")
    return 0

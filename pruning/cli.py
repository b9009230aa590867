"""`srnas prune` and `srnas export` (composition root: wires latency into pruning)."""
from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict
from pathlib import Path

import torch

from supernet import checkpoint
from supernet.blocks import fuse_weight_norm
from supernet.config import ModelConfig, build_section, load_config
from supernet.data import PatchSampler, load_images, make_pairs
from supernet.errors import UserError
from supernet.evaluate import evaluate
from supernet.model import build_path_net, parse_path
from supernet.train import load_supernet, load_train_images

from . import apply_plan, compact, export_model, mac_latency_fn, reweighted_prune


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `prune` and `export` commands."""
    p = sub.add_parser("prune", help="stage 3: prune a path (fixed scheme/rate, or reweighted to a latency target)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--model", help="supernet weights (default <run>/supernet/supernet.pt) or a pruned.pt")
    p.add_argument("--path", help="architecture, e.g. wdsr_b,wdsr_b,wdsr_a,wdsr_b (needed with supernet weights)")
    p.add_argument("--scheme", default="filter", help="scheme for every prunable layer (default filter)")
    p.add_argument("--rate", type=float, default=0.5, help="rate for every layer (fixed mode)")
    p.add_argument("--reweighted", action="store_true", help="reweighted dynamic regularization decides the rates")
    p.add_argument("--target-ms", type=float, default=0.0, help="latency target (default latency.target_ms)")
    p.add_argument("--out", help="output dir (default <run>/prune)")
    p.set_defaults(func=_prune)
    e = sub.add_parser("export", help="export a pruned model (compact) to TorchScript + ONNX")
    e.add_argument("-c", "--config", required=True)
    e.add_argument("--model", help="pruned.pt (default <run>/prune/pruned.pt)")
    e.add_argument("--out", help="output dir (default <run>/export)")
    e.set_defaults(func=_export)


def _load_net(cfg, model: str | None, path_text: str | None):
    """(SRNet, path, ModelConfig) from supernet weights + path, or from a pruned.pt."""
    f = Path(model) if model else cfg.out_dir / "supernet" / "supernet.pt"
    if not f.exists():
        raise UserError(f"no model at {f}: train a supernet (`srnas supernet train -c CONFIG`) or pass --model")
    blob = checkpoint.load(f)
    if isinstance(blob, dict) and "masks" in blob:
        return _rebuild(blob)[0], tuple(blob["path"]), build_section(ModelConfig, blob["model_cfg"])
    if not path_text:
        raise UserError("--path is required with supernet weights, e.g. --path wdsr_b,wdsr_b,wdsr_a,wdsr_b")
    sn = load_supernet(f)
    path = sn.check_path(parse_path(path_text, sn.block_names))
    return sn.extract(path), path, sn.cfg


def _rebuild(blob: dict):
    """(masked SRNet, compact model) from a pruned.pt."""
    mcfg = build_section(ModelConfig, blob["model_cfg"])
    net = fuse_weight_norm(build_path_net(mcfg, blob["scale"], blob["path"]))
    net.load_state_dict(blob["state"])
    blob["masks"].apply(net)
    return net.eval(), compact(net, blob["masks"])


def _prune(args) -> int:
    cfg = load_config(args.config)
    net, path, mcfg = _load_net(cfg, args.model, args.path)
    fuse_weight_norm(net)
    s = cfg.data.scale
    pairs = make_pairs(load_images(cfg.data.val, "val", data_root=cfg.data.data_root), s)
    psnr = lambda m: evaluate(lambda x: m(x), pairs, s, ssim=False)["psnr"]  # noqa: E731
    with torch.no_grad():
        before = psnr(net.eval())
    hw = (cfg.latency.lr_height, cfg.latency.lr_width)
    measured = None
    if args.reweighted:
        from latency import LUT, LatencyModel, measure_module
        from latency.catalogue import WidthRule
        from latency.build import default_lut_path
        target = args.target_ms or cfg.latency.target_ms
        latency_fn = None
        if target > 0 and default_lut_path(cfg).exists():
            lm = LatencyModel(LUT.load(default_lut_path(cfg), strict=cfg.latency.strict), mcfg, s, hw,
                              rule=WidthRule.of(cfg.pruning))
            latency_fn = lambda p: lm.predict(path, p)  # noqa: E731
        elif target > 0:
            print(f"no LUT at {default_lut_path(cfg)}: estimating latency from MACs, checked by measurement "
                  f"(build one with `srnas latency build -c {args.config}` for better rates)")
            dense_ms = measure_module(net, hw, threads=cfg.latency.threads)["median_ms"]
            latency_fn = mac_latency_fn(net, cfg.pruning, dense_ms)
        d = cfg.data
        sampler = PatchSampler(load_train_images(cfg), s, d.patch_size, d.batch_size, d.augment, cfg.train.seed, 0)

        def measure(plan):
            m = copy.deepcopy(net)
            return measure_module(compact(m, apply_plan(m, plan, cfg.pruning)), hw,
                                  threads=cfg.latency.threads)["median_ms"]

        net, masks, plan = reweighted_prune(
            net, sampler, cfg.pruning, latency_fn=latency_fn, target_ms=target,
            schemes=args.scheme, grid=cfg.latency.rates, measure_fn=measure if latency_fn else None)
    else:
        plan = {n: (args.scheme, args.rate) for n, _ in net.prunable()}
        masks = apply_plan(net, plan, cfg.pruning)
    small = compact(net, masks)
    with torch.no_grad():
        after = psnr(net)
    if args.reweighted:
        from latency import measure_module
        measured = measure_module(small, hw, threads=cfg.latency.threads)["median_ms"]
    out = Path(args.out) if args.out else cfg.out_dir / "prune"
    out.mkdir(parents=True, exist_ok=True)
    # state dicts, not modules: weight-norm leaves unpicklable hooks on the convs
    checkpoint.atomic_save({"state": net.state_dict(), "masks": masks, "plan": plan, "path": list(path),
                            "model_cfg": asdict(mcfg), "scale": s,
                            "pruning_cfg": asdict(cfg.pruning)}, out / "pruned.pt")
    report = {"path": list(path), "plan": {k: list(v) for k, v in plan.items()}, "psnr_before": before,
              "psnr_after": after, "measured_ms": measured, "target_ms": args.target_ms or cfg.latency.target_ms}
    (out / "prune.json").write_text(json.dumps(report, indent=1))
    for k, (sch, r) in plan.items():
        print(f"{k:<18} {sch:<13} {r:.2f}")
    print(f"PSNR before {before:.2f} dB, after {after:.2f} dB" +
          (f"; measured {measured:.1f} ms at {hw[1]}x{hw[0]}" if measured else "") + f"; wrote {out / 'pruned.pt'}")
    return 0


def _export(args) -> int:
    cfg = load_config(args.config)
    f = Path(args.model) if args.model else cfg.out_dir / "prune" / "pruned.pt"
    if not f.exists():
        raise UserError(f"no pruned model at {f}: run `srnas prune -c {args.config} ...` first or pass --model")
    blob = checkpoint.load(f)
    if not isinstance(blob, dict) or "masks" not in blob:
        raise UserError(f"{f} is not a model written by `srnas prune`")
    out = Path(args.out) if args.out else cfg.out_dir / "export"
    paths = export_model(_rebuild(blob)[1], out, (cfg.latency.lr_height, cfg.latency.lr_width),
                         channels_last=cfg.latency.backend == "torch-cpu-cl")
    print(json.dumps(paths))
    return 0

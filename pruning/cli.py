"""`srnas prune` and `srnas export` (composition root: wires latency into pruning)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from supernet import checkpoint
from supernet.blocks import fuse_weight_norm
from supernet.config import Config, ModelConfig, build_section, config_of
from supernet.data import load_images, make_pairs
from supernet.errors import UserError
from supernet.evaluate import evaluate
from supernet.model import parse_path
from supernet.train import load_supernet

from . import Executor, PrunedModel, Timer, apply_plan, export_model, mac_latency_fn, prune_to_target, record
from .reweighted import LatencyFn


def register(sub) -> None:
    """Add the `prune` and `export` commands."""
    p = sub.add_parser("prune", help="stage 3: prune a path (fixed scheme/rate, or reweighted to a latency target)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--model", help="supernet weights (default <run>/supernet/supernet.pt) or a pruned.pt")
    p.add_argument("--path", help="architecture, e.g. wdsr_b,wdsr_b,wdsr_a,wdsr_b (needed with supernet weights)")
    p.add_argument("--scheme", default="filter", help="scheme for every prunable layer (default filter)")
    p.add_argument("--rate", type=float, default=0.5, help="rate for every layer (fixed mode)")
    p.add_argument("--reweighted", action="store_true",
                   help="reweighted dynamic regularization decides the rates (stage 3 of `srnas run`; resumable)")
    p.add_argument("--target-ms", type=float, default=0.0, help="latency target (default latency.target)")
    p.add_argument("--out", help="output dir (default <run>/prune)")
    p.add_argument("--redo", action="store_true",
                   help="discard an earlier reweighted result (pruned.pt) or its checkpoint and prune again")
    p.set_defaults(func=_prune)
    e = sub.add_parser("export", help="export a pruned model (compact) to TorchScript + ONNX")
    e.add_argument("-c", "--config", required=True)
    e.add_argument("--model", help="pruned.pt (default <run>/prune/pruned.pt, else <run>/stage3/pruned.pt)")
    e.add_argument("--out", help="output dir (default <run>/export)")
    e.set_defaults(func=_export)


def timer_for(cfg: Config) -> Timer:
    """Timing on the config's executor (latency.backend, threads, LR size): what every stage-3 measurement uses."""
    from latency.fingerprint import layout_of
    from latency.timing import measure_module

    lat = cfg.latency
    hw = (lat.lr_height, lat.lr_width)
    ex = Executor(lat.backend, lat.precision, layout_of(lat.backend), hw, lat.threads)
    # fp32 is measure_module's default: only another precision is passed on
    extra = {} if lat.precision == "fp32" else {"precision": lat.precision}
    return Timer(ex, lambda module, repeats: measure_module(module, hw, lat.backend, lat.threads, lat.warmup,
                                                            repeats, **extra))


def _load_net(cfg: Config, model: str | None, path_text: str | None) -> tuple[nn.Module, tuple[str, ...], Config]:
    """(fused net, path, config with its model section) from supernet weights + path, or from a pruned.pt."""
    f = Path(model) if model else cfg.out_dir / "supernet" / "supernet.pt"
    if not f.exists():
        raise UserError(f"no model at {f}: train a supernet (`srnas supernet train -c CONFIG`) or pass --model")
    blob = checkpoint.load(f)
    if isinstance(blob, dict) and "masks" in blob:
        pm = PrunedModel.load(f)
        mcfg, scale, net, path = build_section(ModelConfig, pm.model_cfg), pm.scale, pm.net(), tuple(pm.path)
    else:
        if not path_text:
            raise UserError("--path is required with supernet weights, e.g. --path wdsr_b,wdsr_b,wdsr_a,wdsr_b")
        sn = load_supernet(f)
        path = sn.check_path(parse_path(path_text, sn.block_names))
        mcfg, scale, net = sn.cfg, sn.scale, sn.extract(path)
    if scale != cfg.data.scale:
        raise UserError(f"{f} upscales x{scale} but the config says data.scale {cfg.data.scale}")
    # the net's own model section rules: LUT rows, MACs and the model file describe this net
    return fuse_weight_norm(net), path, dataclasses.replace(cfg, model=mcfg)


def _target(cfg: Config, target_ms: float) -> float:
    """The absolute target: --target-ms, else latency.target in ms, else a relative one resolved by `srnas run`."""
    if target_ms > 0:
        return target_ms
    if cfg.latency.target_ms > 0 or cfg.latency.target_rel <= 0:
        return cfg.latency.target_ms
    saved = cfg.out_dir / "latency" / "target.json"
    if saved.exists():
        return float(json.loads(saved.read_text())["target_ms"])
    raise UserError(f"latency.target {cfg.latency.target} is relative to the fastest dense path by the LUT; "
                    f"`srnas run` resolves it (into {saved}): run it, or pass --target-ms")


def _latency_fn(cfg: Config, net: nn.Module, path: Sequence[str], timer: Timer, config_path: str) -> LatencyFn:
    """The run's LUT estimate of a plan; without a LUT, MACs scaled by the measured dense latency."""
    from latency import LatencyModel, default_lut_path, load_lut

    lut_file = default_lut_path(cfg)
    if lut_file.exists():
        lm = LatencyModel.for_config(load_lut(cfg, lut_file), cfg)
        return lambda plan: lm.predict(path, plan)
    print(f"no LUT at {lut_file}: estimating latency from MACs, checked by measurement "
          f"(build one with `srnas latency build -c {config_path}` for better rates)")
    return mac_latency_fn(net, cfg.pruning, timer(net, max(cfg.latency.repeats, 5))["median_ms"])


def _prune(args) -> int:
    cfg = config_of(args)
    net, path, cfg = _load_net(cfg, args.model, args.path)
    s = cfg.data.scale
    pairs = make_pairs(load_images(cfg.data.val, "val", data_root=cfg.data.data_root), s)
    psnr = lambda m: evaluate(lambda x: m(x), pairs, s, ssim=False)["psnr"]  # noqa: E731
    with torch.no_grad():
        before = psnr(net.eval())
    out = Path(args.out) if args.out else cfg.out_dir / "prune"
    timer = timer_for(cfg)
    target = _target(cfg, args.target_ms) if args.reweighted else 0.0
    if args.reweighted:
        latency_fn = _latency_fn(cfg, net, path, timer, args.config) if target > 0 else None
        pm = prune_to_target(cfg, lambda: net, path, args.scheme, out, timer, latency_fn, target, redo=args.redo)
    else:
        plan = {n: (args.scheme, args.rate) for n, _ in net.prunable()}
        pm = record(cfg, net, path, apply_plan(net, plan, cfg.pruning), plan, timer)
        pm.save(out / "pruned.pt")
    with torch.no_grad():
        after = psnr(pm.net())
    ex = pm.executor
    report = {"path": list(path), "plan": {k: list(v) for k, v in pm.plan.items()}, "psnr_before": before,
              "psnr_after": after, "measured_ms": pm.measured_ms, "target_ms": target or None,
              "backend": ex.backend, "precision": ex.precision, "layout": ex.layout, "lr_hw": list(ex.lr_hw),
              "threads": ex.threads}
    (out / "prune.json").write_text(json.dumps(report, indent=1))
    for k, (sch, r) in pm.plan.items():
        print(f"{k:<18} {sch:<13} {r:.2f}")
    print(f"PSNR before {before:.2f} dB, after {after:.2f} dB; measured {pm.measured_ms:.1f} ms at "
          f"{ex.lr_hw[1]}x{ex.lr_hw[0]} ({ex.backend}, {ex.threads or 'all'} threads); wrote {out / 'pruned.pt'}")
    return 0


def _export(args) -> int:
    cfg = config_of(args)
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

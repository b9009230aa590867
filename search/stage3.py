"""Stage 3: the winner of a run (or any path, `srnas prune`) through pruning's one stage-3 function, with
latency wired in here: LUT estimates, and timing on the configured executor (latency.backend, threads).

`stage3` (for `srnas run`) then exports, scores every benchmark of the config and writes final.json.
For an INT8 executor, pruning's stage 3 ends with a quantization-aware fine-tune onto the grid of
the executor's INT8 file (`qat_grid`), and the file quantized and scored here holds those weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

import srnas.latency as latency
import srnas.pruning as pruning
from srnas.latency import is_foreign
from srnas.latency.deploy import make_infer, torch_infer
from srnas.latency.fingerprint import layout_of
from srnas.latency.quantize import int8_weight_bits
from srnas.latency.timing import measure_module
from srnas.pruning.reweighted import LatencyFn
from srnas.pruning.stage3 import qat_steps_for
from srnas.supernet import checkpoint
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import Config, ModelConfig, build_section, config_of
from srnas.supernet.data import load_images, lr_crops, make_pairs
from srnas.supernet.errors import UserError
from srnas.supernet.elastic import is_elastic
from srnas.supernet.evaluate import evaluate, evaluate_bicubic
from srnas.supernet.model import parse_path
from srnas.supernet.record import Recorder
from srnas.supernet.rundir import RunDir
from srnas.supernet.runlock import lock_folder, run_lock
from srnas.supernet.train import load_supernet, load_train_images
from srnas.supernet.writes import atomic_write_text

from .candidate import Candidate
from .evaluator import member_net
from .resolve import make_space, resolve_executor, resolve_target
from .results import Stage3Result


STAGE3_PASSES = 3   # stage 3 keeps the fastest of 3 timings of a plan or the final model (timing.measure_module)


def timer_for(cfg: Config, foreign: bool = False) -> pruning.Timer:
    """Timing on the config's executor (latency.backend, precision, threads, LR size): every stage-3 measurement;
    ``foreign``: the LUT describes another device, so timings here do not correct its rates."""
    lat = cfg.latency
    hw = (lat.lr_height, lat.lr_width)
    ex = pruning.Executor(lat.backend, lat.precision, layout_of(lat.backend), hw, lat.threads)
    return pruning.Timer(ex, lambda module, repeats: measure_module(module, hw, lat.backend, lat.threads, lat.warmup,
                                                                    repeats, precision=lat.precision,
                                                                    passes=STAGE3_PASSES),
                         checks_plans=not foreign)


def qat_grid() -> str:
    """The int8 grid QAT trains for: that of the QDQ file the INT8 executors run (pruning.quant.GRIDS)."""
    return "qdq" if int8_weight_bits() == 8 else "qdq7"


# ---- stage 3 of `srnas run` ------------------------------------------------------------------------
def stage3(cfg: Config, run: RunDir, winner: Candidate, lat_model, supernet: Path | None = None,
           rec: Recorder | None = None) -> Stage3Result:
    """Reweighted dynamic regularization of the winner under the target, fine-tune, compact, export, measure.

    Resumable at every point: pruning continues from its checkpoint, a finished pruned.pt is
    exported again if final.json is missing, and a complete final.json ends the stage.
    ``supernet``: the weights to start from (default: the run's own; a front's targets share one).
    ``rec``: records what stage 3 and the export are made from (record.json) as each starts.
    """
    sdir = run.stage3_dir
    record = rec or (lambda *a, **k: None)
    sources = [run.winner, supernet or run.supernet, lat_model.lut.path if lat_model is not None else None]
    done = _finished(run.final, winner, qat_steps_for(cfg))
    if done is not None:
        print(f"stage 3: {run.final} exists; skipping pruning and export")
        record("stage3", sources)
        record("export", [sdir / "pruned.pt"])
        return done
    record("stage3", sources)
    target = cfg.latency.target_ms
    if winner.width:
        # a member of an elastic space: pruning, QAT and export see only the fixed-size network it is
        cfg = dataclasses.replace(cfg, model=make_space(cfg).model_of(winner))
        lat_model = lat_model.at(winner.width) if lat_model is not None else None
    latency_fn = (lambda plan: lat_model.predict(winner.path, plan)) if lat_model is not None else None
    foreign = lat_model is not None and is_foreign(lat_model.lut, cfg)
    space = make_space(cfg)
    schemes = winner.scheme_map(space)
    if all(s == "none" for s in schemes.values()):
        # a winner that met the target dense carries no schemes: should the device disagree, stage 3 prunes
        # with the space's fastest scheme per layer (only as far as the measurement asks: relax_to_target)
        schemes = space.fastest_schemes(winner.path)
    if not foreign and latency_fn is not None:
        # the plans' timings set the rates: on a busy machine a winner that meets its target dense measures slow and
        # is pruned to 0.75 (an x3 front's 1x-ABPN member lost 0.26 dB on Set5 so while tests ran beside it)
        latency.build.warn_if_busy("stage 3 (its timings set the pruning rates: a busy machine prunes too much)")
    pm = pruning.prune_to_target(
        cfg, lambda: member_net(load_supernet(supernet or run.supernet), winner), winner.path, schemes, sdir,
        timer_for(cfg, foreign), latency_fn, target, candidate=winner.to_dict(), qat_grid=qat_grid())
    record("export", [sdir / "pruned.pt"])
    compact = pm.compact()
    files = pruning.export_model(compact, run.export_dir, lr_hw=tuple(pm.lr_hw), channels_last=pm.layout == "nhwc")
    infer, deployed = deployed_infer(compact, cfg, run)
    if deployed is not None:
        files = {**(files or {}), "deploy": deployed}
    quality = benchmark_quality(infer, cfg)
    first = next(iter(quality))
    q = quality[first]
    res = Stage3Result(
        benchmark=first, psnr=q["psnr"], ssim=q["ssim"], bicubic_psnr=q["bicubic_psnr"],
        gain_db=q["psnr"] - q["bicubic_psnr"], benchmarks=quality, measured_ms=pm.measured_ms,
        measured_iqr_ms=pm.measured_iqr_ms, lut_ms=pm.predicted_ms if pm.predicted_ms is not None else float("nan"),
        target_ms=target, backend=pm.backend, precision=pm.precision, layout=pm.layout, lr_hw=list(pm.lr_hw),
        threads=pm.threads, candidate=winner.to_dict(), plan={k: list(v) for k, v in pm.plan.items()},
        qat_steps=pm.qat_steps, judged_by="lut" if foreign else "measured",
        files={"model": str(sdir / "pruned.pt"), **{k: str(v) for k, v in (files or {}).items()}})
    res.save(run.final, run.root)
    return res


def deployed_infer(compact: nn.Module, cfg: Config, run) -> tuple:
    """The winner as the config's executor runs it (a function of the LR input) and the file it runs, if any.

    Quality is that of what the user deploys: an ONNX Runtime / OpenVINO executor scores the exported
    file (for INT8, the quantized one, calibrated on crops of the training images), not the torch model.
    """
    lat = cfg.latency
    if lat.backend.startswith("torch"):
        return torch_infer(compact, lat.backend, lat.precision), None
    calib = [[c] for c in lr_crops(load_train_images(cfg), cfg.data.scale)] if lat.precision == "int8" else None
    work = run.export_dir / "deploy"
    infer = make_infer(compact, [torch.rand(1, 3, 64, 64)], lat.backend, lat.threads, lat.precision, calib,
                       dynamic=True, workdir=work)
    return infer, work / ("model_int8.onnx" if lat.precision == "int8" else "model.onnx")


def benchmark_quality(model, cfg: Config) -> dict[str, dict]:
    """PSNR / SSIM (Y) of ``model`` and of bicubic on every benchmark of the config, reported together."""
    out = {}
    for name in cfg.data.benchmarks or ["skimage"]:
        pairs = make_pairs(load_images(name, "val", data_root=cfg.data.data_root), cfg.data.scale)
        with torch.no_grad():
            q = evaluate(lambda x: model(x), pairs, cfg.data.scale)
        out[name] = {"psnr": q["psnr"], "ssim": q["ssim"], "bicubic_psnr": evaluate_bicubic(pairs, cfg.data.scale)["psnr"]}
    return out


def _finished(path: Path, winner: Candidate, qat_steps: int) -> Stage3Result | None:
    """final.json of this winner, with the QAT steps asked for, when it and every file it names exist; else None."""
    if not path.exists():
        return None
    try:
        final = Stage3Result.load(path)
    except (KeyError, ValueError):   # written by an older version: do the stage again
        return None
    if final.candidate != winner.to_dict() or not all(Path(f).exists() for f in final.files.values()):
        return None
    if final.qat_steps != qat_steps:   # e.g. scored before QAT was asked for: stage 3 adds it and scores again
        return None
    return final


# ---- `srnas prune` ---------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    """Add the `prune` command."""
    p = sub.add_parser("prune", help="stage 3: prune a path (fixed scheme/rate, or reweighted to a latency target)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--model", help="supernet weights (default <run>/supernet/supernet.pt) or a pruned.pt")
    p.add_argument("--path", help="architecture, e.g. wdsr_b,wdsr_b,wdsr_a,wdsr_b (needed with supernet weights)")
    p.add_argument("--width", type=int, default=0,
                   help="an elastic supernet's member width (default its largest; the depth is the path's length)")
    p.add_argument("--scheme", default="filter", help="scheme for every prunable layer (default filter)")
    p.add_argument("--rate", type=float, default=0.5, help="rate for every layer (fixed mode)")
    p.add_argument("--reweighted", action="store_true",
                   help="reweighted dynamic regularization decides the rates (stage 3 of `srnas run`; resumable)")
    p.add_argument("--target-ms", type=float, default=0.0, help="latency target (default latency.target)")
    p.add_argument("--out", help="output dir (default <run>/prune)")
    p.add_argument("--redo", action="store_true",
                   help="discard an earlier reweighted result (pruned.pt) or its checkpoint and prune again")
    p.set_defaults(func=_prune)


def _prune(args) -> int:
    cfg = config_of(args)
    run = cfg.run()   # the supernet and LUT come from the config's run; --out only says where to write
    with run_lock(lock_folder(run.root, args.out)):
        return _prune_locked(args, cfg, run)


def _prune_locked(args, cfg: Config, run: RunDir) -> int:
    space_cfg = resolve_executor(cfg, run)
    net, path, cfg = _load_net(space_cfg, run, args.model, args.path, args.width)
    s = cfg.data.scale
    pairs = make_pairs(load_images(cfg.data.val, "val", data_root=cfg.data.data_root), s)
    psnr = lambda m: evaluate(lambda x: m(x), pairs, s, ssim=False)["psnr"]  # noqa: E731
    with torch.no_grad():
        before = psnr(net.eval())
    out = Path(args.out) if args.out else run.prune_dir
    timer = timer_for(cfg)
    target = 0.0
    if args.reweighted:
        lat_model = _lut_model(space_cfg, run, cfg.model.n_feats)
        target = _target(cfg, args.target_ms, lat_model)
        latency_fn = _latency_fn(cfg, run, net, path, lat_model, timer, args.config) if target > 0 else None
        pm = pruning.prune_to_target(cfg, lambda: net, path, args.scheme, out, timer, latency_fn, target,
                                     redo=args.redo, qat_grid=qat_grid())
    else:
        plan = {n: (args.scheme, args.rate) for n, _ in net.prunable()}
        pm = pruning.record(cfg, net, path, pruning.apply_plan(net, plan, cfg.pruning), plan, timer)
        pm.save(out / "pruned.pt")
    with torch.no_grad():
        after = psnr(pm.net())
    ex = pm.executor
    report = {"path": list(path), "plan": {k: list(v) for k, v in pm.plan.items()}, "psnr_before": before,
              "psnr_after": after, "qat_steps": pm.qat_steps, "measured_ms": pm.measured_ms,
              "target_ms": target or None, "backend": ex.backend, "precision": ex.precision, "layout": ex.layout,
              "lr_hw": list(ex.lr_hw), "threads": ex.threads}
    atomic_write_text(out / "prune.json", json.dumps(report, indent=1))
    for k, (sch, r) in pm.plan.items():
        print(f"{k:<18} {sch:<13} {r:.2f}")
    print(f"PSNR before {before:.2f} dB, after {after:.2f} dB; measured {pm.measured_ms:.1f} ms at "
          f"{ex.lr_hw[1]}x{ex.lr_hw[0]} ({ex.backend}, {ex.threads or 'all'} threads); model {out / 'pruned.pt'}")
    return 0


def _load_net(cfg: Config, run: RunDir, model: str | None, path_text: str | None,
              width: int = 0) -> tuple[nn.Module, tuple[str, ...], Config]:
    """(fused net, path, config with the net's model section) from supernet weights + path (+ width, of an
    elastic supernet), or a pruned.pt."""
    f = Path(model) if model else run.supernet
    if not f.exists():
        raise UserError(f"no model at {f}: train a supernet (`srnas supernet train -c CONFIG`) or pass --model")
    blob = checkpoint.load(f)
    if isinstance(blob, dict) and "masks" in blob:
        pm = pruning.PrunedModel.load(f)
        mcfg, scale, net, path = build_section(ModelConfig, pm.model_cfg), pm.scale, pm.net(), tuple(pm.path)
    else:
        if not path_text:
            raise UserError("--path is required with supernet weights, e.g. --path wdsr_b,wdsr_b,wdsr_a,wdsr_b")
        sn = load_supernet(f)
        if is_elastic(sn):
            path, width = sn.check_arch(parse_path(path_text, sn.block_names), width or max(sn.widths))
            mcfg, scale, net = sn.path_config(len(path), width), sn.scale, sn.extract(path, width)
        else:
            path = sn.check_path(parse_path(path_text, sn.block_names))
            mcfg, scale, net = sn.cfg, sn.scale, sn.extract(path)
    if scale != cfg.data.scale:
        raise UserError(f"{f} upscales x{scale} but the config says data.scale {cfg.data.scale}")
    # the net's own model section rules: LUT rows, MACs and the model file describe this net
    return fuse_weight_norm(net), path, dataclasses.replace(cfg, model=mcfg)


def _lut_model(cfg: Config, run: RunDir, width: int = 0):
    """The LatencyModel of the config's LUT (of an elastic space: that of ``width``), or None without a LUT yet."""
    path = latency.default_lut_path(cfg, run=run)
    if not path.exists():
        return None
    model = latency.LatencyModel.for_config(latency.load_lut(cfg, path), cfg)
    return model.at(width) if cfg.model.elastic else model


def _target(cfg: Config, target_ms: float, lat_model) -> float:
    """The absolute target: --target-ms, else latency.target (a relative one resolved on the LUT as `srnas run` does)."""
    if target_ms > 0:
        return target_ms
    if cfg.latency.target_rel > 0 and lat_model is None:
        raise UserError(f"latency.target {cfg.latency.target} is relative to the fastest dense path by the LUT, "
                        f"and there is no LUT: build one (`srnas latency build -c CONFIG`) or pass --target-ms")
    return resolve_target(cfg, lat_model).latency.target_ms


def _latency_fn(cfg: Config, run: RunDir, net: nn.Module, path: Sequence[str], lat_model, timer: pruning.Timer,
                config_path: str) -> LatencyFn:
    """The LUT estimate of a plan; without a LUT, MACs scaled by the measured dense latency."""
    if lat_model is not None:
        return lambda plan: lat_model.predict(path, plan)
    print(f"no LUT at {run.latency_dir}: estimating latency from MACs, checked by measurement "
          f"(build one with `srnas latency build -c {config_path}` for better rates)")
    return pruning.mac_latency_fn(net, cfg.pruning, timer(net, max(cfg.latency.repeats, 5))["median_ms"])

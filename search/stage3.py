"""Stage 3 of a run: reweighted dynamic regularization of the winner under the target, fine-tune,
compact, export, measure."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from supernet import checkpoint
from supernet.blocks import fuse_weight_norm
from supernet.config import Config
from supernet.data import load_images, make_pairs
from supernet.evaluate import evaluate, evaluate_bicubic
from supernet.model import build_path_net
from supernet.train import load_supernet

from .candidate import Candidate
from .history import atomic_write_json



def stage3(cfg: Config, out_dir: Path, winner: Candidate, lat_model) -> dict:
    """Reweighted dynamic regularization of the winner under the target, fine-tune, compact, export, measure."""
    import pruning
    from latency.timing import measure_module

    from .pipeline import candidate_builder, lr_hw, make_space, train_sampler

    space = make_space(cfg)
    sdir = out_dir / "stage3"
    sdir.mkdir(parents=True, exist_ok=True)
    state_path = sdir / "pruned.pt"
    supernet = load_supernet(out_dir / "supernet" / "supernet.pt")
    if state_path.exists():
        blob = checkpoint.load(state_path)
        # weight norm leaves unpicklable hooks on modules, so the state (not the module) is saved
        net = fuse_weight_norm(build_path_net(cfg.model, cfg.data.scale, winner.path))
        net.load_state_dict(blob["state"])
        masks, plan = blob["masks"], {k: tuple(v) for k, v in blob["plan"].items()}
        print(f"stage 3: {state_path} exists; skipping the pruning fine-tune")
    else:
        net = supernet.extract(winner.path)
        target = cfg.latency.target_ms
        latency_fn = measure_fn = None
        if lat_model is not None and target > 0:
            latency_fn = lambda plan: lat_model.predict(winner.path, plan)  # noqa: E731
            build = candidate_builder(cfg)
            measure_fn = lambda plan: measure_module(  # noqa: E731
                build(winner.path, plan), lr_hw(cfg), cfg.latency.backend, cfg.latency.threads,
                cfg.latency.warmup, max(cfg.latency.repeats, 5))["median_ms"]
        t0 = time.time()
        net, masks, plan = pruning.reweighted_prune(
            net, train_sampler(cfg, cfg.search.seed + 1), cfg.pruning, latency_fn=latency_fn, target_ms=target,
            schemes=winner.scheme_map(space), grid=cfg.latency.rates, measure_fn=measure_fn)
        print(f"stage 3: reweighted pruning + fine-tune took {time.time() - t0:.0f} s; plan {plan}")
        checkpoint.atomic_save({"state": net.state_dict(), "masks": masks, "plan": plan,
                                "candidate": winner.to_dict()}, state_path)
    compact = pruning.compact(net, masks).eval()
    export_dir = out_dir / "export"
    files = pruning.export_model(compact, export_dir, lr_hw=lr_hw(cfg),
                                 channels_last=cfg.latency.backend == "torch-cpu-cl")
    t = measure_module(compact, lr_hw(cfg), cfg.latency.backend, cfg.latency.threads, cfg.latency.warmup,
                       max(cfg.latency.repeats, 10))
    pred = lat_model.predict(winner.path, plan) if lat_model is not None else float("nan")
    set5 = cfg.data.benchmarks[0] if cfg.data.benchmarks else "Set5"
    pairs = make_pairs(load_images(set5, "val", data_root=cfg.data.data_root), cfg.data.scale)
    with torch.no_grad():
        q = evaluate(lambda x: compact(x), pairs, cfg.data.scale)
    bic = evaluate_bicubic(pairs, cfg.data.scale)
    res = {"benchmark": set5, "psnr": q["psnr"], "ssim": q["ssim"], "bicubic_psnr": bic["psnr"],
           "gain_db": q["psnr"] - bic["psnr"], "measured_ms": t["median_ms"], "measured_iqr_ms": t.get("iqr_ms"),
           "lut_ms": pred, "target_ms": cfg.latency.target_ms,
           "ratio_to_target": t["median_ms"] / cfg.latency.target_ms if cfg.latency.target_ms > 0 else None,
           "meets_target": (t["median_ms"] <= 1.05 * cfg.latency.target_ms) if cfg.latency.target_ms > 0 else None,
           "plan": {k: list(v) for k, v in plan.items()},
           "files": {k: str(v) for k, v in (files or {}).items()}}
    atomic_write_json(res, sdir / "final.json")
    return res

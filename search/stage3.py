"""Stage 3 of a run: the winner through pruning's stage 3 (the function `srnas prune --reweighted` runs too),
then export, quality on the first benchmark, and final.json."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from supernet.config import Config
from supernet.data import load_images, make_pairs
from supernet.evaluate import evaluate, evaluate_bicubic
from supernet.train import load_supernet

from .candidate import Candidate
from .history import atomic_write_json


def stage3(cfg: Config, out_dir: Path, winner: Candidate, lat_model) -> dict:
    """Reweighted dynamic regularization of the winner under the target, fine-tune, compact, export, measure.

    Resumable at every point: pruning continues from its checkpoint, a finished pruned.pt is
    exported again if final.json is missing, and a complete final.json ends the stage.
    """
    import pruning
    from pruning.cli import timer_for

    from .pipeline import make_space

    sdir = out_dir / "stage3"
    done = _finished(sdir / "final.json", winner)
    if done is not None:
        print(f"stage 3: {sdir / 'final.json'} exists; skipping pruning and export")
        return done
    target = cfg.latency.target_ms
    latency_fn = (lambda plan: lat_model.predict(winner.path, plan)) if lat_model is not None else None
    pm = pruning.prune_to_target(
        cfg, lambda: load_supernet(out_dir / "supernet" / "supernet.pt").extract(winner.path), winner.path,
        winner.scheme_map(make_space(cfg)), sdir, timer_for(cfg), latency_fn, target, candidate=winner.to_dict())
    compact = pm.compact()
    files = pruning.export_model(compact, out_dir / "export", lr_hw=tuple(pm.lr_hw), channels_last=pm.layout == "nhwc")
    set5 = cfg.data.benchmarks[0] if cfg.data.benchmarks else "Set5"
    pairs = make_pairs(load_images(set5, "val", data_root=cfg.data.data_root), cfg.data.scale)
    with torch.no_grad():
        q = evaluate(lambda x: compact(x), pairs, cfg.data.scale)
    bic = evaluate_bicubic(pairs, cfg.data.scale)
    ms = pm.measured_ms
    res = {"benchmark": set5, "psnr": q["psnr"], "ssim": q["ssim"], "bicubic_psnr": bic["psnr"],
           "gain_db": q["psnr"] - bic["psnr"], "measured_ms": ms, "measured_iqr_ms": pm.measured_iqr_ms,
           "lut_ms": pm.predicted_ms if pm.predicted_ms is not None else float("nan"), "target_ms": target,
           "ratio_to_target": ms / target if target > 0 else None,
           "meets_target": (ms <= 1.05 * target) if target > 0 else None,
           "backend": pm.backend, "precision": pm.precision, "layout": pm.layout, "lr_hw": list(pm.lr_hw),
           "threads": pm.threads, "candidate": winner.to_dict(),
           "plan": {k: list(v) for k, v in pm.plan.items()},
           "files": {"model": str(sdir / "pruned.pt"), **{k: str(v) for k, v in (files or {}).items()}}}
    atomic_write_json(res, sdir / "final.json")
    return res


def _finished(path: Path, winner: Candidate) -> dict | None:
    """final.json of this winner when it and every file it names exist; None when the stage is to be (re)done."""
    if not path.exists():
        return None
    final = json.loads(path.read_text())
    if final.get("candidate") != winner.to_dict() or not all(Path(f).exists() for f in final["files"].values()):
        return None
    return final

"""Stage 3 as one function for `srnas run` and `srnas prune --reweighted`: reweighted regularization,
collapsed rates, the latency target, masked fine-tune (all resumable), then the measured model file.

Latency comes in as functions (an estimate of a plan, a timer of a module on the configured
executor), so this module needs only pruning and supernet; the CLI modules wire latency in.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from torch import nn

from supernet.config import Config
from supernet.data import PatchSampler
from supernet.errors import UserError
from supernet.train import load_train_images

from .compaction import compact
from .masks import Masks, Plan, apply_plan
from .model_file import Executor, PrunedModel
from .reweighted import LatencyFn, reweighted_prune


class Timer:
    """Times a module on one executor: ``timer(module, repeats)`` -> dict(median_ms, iqr_ms, ...)."""

    def __init__(self, executor: Executor, run: Callable[[nn.Module, int], dict]):
        self.executor, self.run = executor, run

    def __call__(self, module: nn.Module, repeats: int) -> dict:
        return self.run(module, repeats)


def stage3_sampler(cfg: Config) -> PatchSampler:
    """Training batches of stage 3 (seeded apart from the search's fine-tunes)."""
    d = cfg.data
    return PatchSampler(load_train_images(cfg), d.scale, d.patch_size, d.batch_size, d.augment, cfg.search.seed + 1, 0)


def plan_timer(net: nn.Module, cfg: Config, timer: Timer) -> LatencyFn:
    """Measured latency of a plan: the net masked by it (on a copy) and compacted, as it would be exported."""
    def measure(plan: Plan) -> float:
        trial = copy.deepcopy(net)
        return timer(compact(trial, apply_plan(trial, plan, cfg.pruning)), max(cfg.latency.repeats, 5))["median_ms"]
    return measure


def record(cfg: Config, net: nn.Module, path: Sequence[str], masks: Masks, plan: Plan, timer: Timer,
           predicted_ms: float | None = None, target_ms: float = 0.0, candidate: dict | None = None) -> PrunedModel:
    """The pruned-model record of a masked net, its compact form measured on the timer's executor."""
    t = timer(compact(net, masks), max(cfg.latency.repeats, 10))
    ex = timer.executor
    return PrunedModel(model_cfg=asdict(cfg.model), path=list(path), scale=cfg.data.scale,
                       plan={k: (s, float(r)) for k, (s, r) in plan.items()}, masks=masks, state=net.state_dict(),
                       pruning_cfg=asdict(cfg.pruning), backend=ex.backend, precision=ex.precision,
                       layout=ex.layout, lr_hw=tuple(ex.lr_hw), threads=ex.threads, measured_ms=t["median_ms"],
                       measured_iqr_ms=t.get("iqr_ms"), predicted_ms=predicted_ms, target_ms=target_ms,
                       candidate=candidate)


def prune_to_target(cfg: Config, make_net: Callable[[], nn.Module], path: Sequence[str],
                    schemes: dict[str, str] | str, out_dir: Path, timer: Timer,
                    latency_fn: LatencyFn | None = None, target_ms: float = 0.0, candidate: dict | None = None,
                    redo: bool = False, log: Callable[[str], None] = print) -> PrunedModel:
    """Stage 3 of a path: reweighted pruning under ``target_ms`` and fine-tune, into ``out_dir/pruned.pt``.

    Resumable: progress goes to ``out_dir/checkpoint.pt`` as it is made, and a restarted run
    continues from it. An existing ``pruned.pt`` is returned as it is (``redo`` prunes again).
    ``make_net`` gives the dense path network (called only when there is pruning to do);
    plans are measured with ``timer`` when ``latency_fn`` estimates them against a target.
    """
    final, progress = out_dir / "pruned.pt", out_dir / "checkpoint.pt"
    if redo:
        for f in (final, progress):
            f.unlink(missing_ok=True)
    if final.exists():
        done = PrunedModel.load(final)
        if candidate is not None and done.candidate != candidate:
            raise UserError(f"{final} was pruned from candidate {done.candidate}, not {candidate}: "
                            f"remove {out_dir} (or pass --redo) to run stage 3 on the new one")
        log(f"stage 3: {final} exists; skipping the pruning fine-tune")
        return done
    out_dir.mkdir(parents=True, exist_ok=True)
    net = make_net()
    use_target = latency_fn is not None and target_ms > 0
    t0 = time.time()
    net, masks, plan = reweighted_prune(
        net, stage3_sampler(cfg), cfg.pruning, latency_fn=latency_fn if use_target else None, target_ms=target_ms,
        schemes=schemes, grid=cfg.latency.rates, measure_fn=plan_timer(net, cfg, timer) if use_target else None,
        checkpoint=progress, log=log)
    log(f"stage 3: reweighted pruning + fine-tune took {time.time() - t0:.0f} s; plan {plan}")
    done = record(cfg, net, path, masks, plan, timer, latency_fn(plan) if latency_fn is not None else None,
                  target_ms, candidate)
    done.save(final)
    progress.unlink(missing_ok=True)   # the model file now holds everything the progress file did
    return done

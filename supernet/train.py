"""Training: a generic resumable loop (L1, Adam, cosine schedule) and single-path supernet training."""
from __future__ import annotations

import csv
import io
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .config import Config, ModelConfig, build_section, save_config
from .data import PatchSampler, load_images, make_pairs
from .distributed import DistInfo, barrier, init_distributed
from .elastic import arch_name, build_supernet
from .errors import UserError
from .evaluate import evaluate
from .model import SuperNet
from .progress import progress_bar
from .rundir import RunDir
from .writes import append_text, atomic_write_text


@dataclass
class Recipe:
    """The optimisation recipe shared by the supernet and the baseline zoo."""

    steps: int
    epoch_steps: int
    lr: float
    lr_min: float
    weight_decay: float = 0.0


Forward = Callable[[nn.Module, torch.Tensor, int], torch.Tensor]
Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]   # (model, lr, hr, step) -> loss
Validate = Callable[[nn.Module], list[dict]]


class StageExists(UserError, RuntimeError):
    """A stage's checkpoint exists and neither resume nor redo was asked for."""


class NonFiniteLoss(UserError, FloatingPointError):
    """The training loss became NaN or infinite; training stopped before the bad step touched the weights."""


def non_finite_loss(value: float, step: int, label: str, lr: float, lr_key: str, kept: str) -> NonFiniteLoss:
    """The one-line error for a loss ``value`` that is not finite at 1-based ``step``, naming the likely cause."""
    return NonFiniteLoss(f"{label}: the loss became {value} at step {step}, so training stopped; the likely cause is "
                         f"a learning rate too high for this model ({lr_key} {lr:g}: try {min(lr / 10, 1e-3):g}); {kept}")


def _all_finite(value: float, dist_info: DistInfo) -> float:
    """``value``, or NaN when any rank's loss is not finite (every rank then stops at the same step)."""
    if dist_info.world <= 1:
        return value
    import torch.distributed as dist
    flag = torch.tensor([0.0 if math.isfinite(value) else 1.0], device=dist_info.device)   # NCCL: on the GPU
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return float("nan") if flag.item() else value


def stage_done(label: str, stage_dir: Path, final: Path, redo: bool, main: bool = True,
               again: str = "pass --redo to train again") -> bool:
    """True when a training stage's ``final`` output exists (skip it); with ``redo``, clear its outputs."""
    if final.exists() and not redo:
        if main:
            print(f"{label}: {final} exists; skipping ({again})")
        return True
    if redo and main:
        for f in (stage_dir / "checkpoint.pt", stage_dir / "train_log.csv", final):
            f.unlink(missing_ok=True)
    return False


def train_loop(model: nn.Module, sampler: PatchSampler, recipe: Recipe, stage_dir: Path, forward: Forward,
               validate: Validate, dist_info: DistInfo, resume: bool = False, desc: str = "train",
               lr_key: str = "train.lr", loss_fn: Loss | None = None) -> nn.Module:
    """Train ``model`` on ``sampler`` batches; checkpoint and validate every epoch.

    The loss is L1 of ``forward`` against the HR batch, or ``loss_fn`` where given (several paths per step).

    Writes ``checkpoint.pt`` (model, optimiser, schedule, step) and ``train_log.csv``
    (one row per validation entry per epoch) into ``stage_dir``. With ``resume`` it
    continues from the last checkpoint; the batch of every step is a function of the
    step, so a resumed run sees the same data as an uninterrupted one. A loss that is not
    finite stops training at once (NonFiniteLoss naming the step and ``lr_key``, the
    config key of the learning rate), before that step changes the weights.
    """
    stage_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = stage_dir / "checkpoint.pt", stage_dir / "train_log.csv"
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.steps, eta_min=recipe.lr_min)
    start = 0
    if ckpt_path.exists():
        if not resume:
            raise StageExists(f"{ckpt_path} exists from an earlier run: pass --resume to continue it "
                              f"or --redo to start over")
        state = checkpoint.load(ckpt_path, fix="remove it (or pass --redo) to train this stage from its start")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
    if dist_info.main:
        _truncate_log(log_path, start)
    ddp = model
    if dist_info.world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    model.train()
    bar = progress_bar(total=recipe.steps, initial=start, desc=desc, disable=not dist_info.main)
    losses, t0 = [], time.time()
    for step in range(start, recipe.steps):
        lr_batch, hr_batch = (t.to(dist_info.device) for t in sampler.sample(step))
        loss = (loss_fn(ddp, lr_batch, hr_batch, step) if loss_fn is not None
                else F.l1_loss(forward(ddp, lr_batch, step), hr_batch))
        value = _all_finite(loss.item(), dist_info)
        if not math.isfinite(value):   # before the step: the weights, and the checkpoint, never hold NaN
            last = (step // recipe.epoch_steps) * recipe.epoch_steps
            raise non_finite_loss(value, step + 1, desc, recipe.lr, lr_key, (
                f"the last good checkpoint {ckpt_path} (step {last}) is kept; lower the learning rate and start this "
                f"stage again (--redo, or delete that file): a resumed run keeps its learning rate" if last > 0 else
                "no checkpoint was written yet; lower the learning rate and run the same command again"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        done = step + 1
        if done % recipe.epoch_steps == 0 or done == recipe.steps:
            if dist_info.main:
                model.eval()
                rows = validate(model)
                model.train()
                base = {"epoch": done // recipe.epoch_steps, "step": done, "loss": float(np.mean(losses)),
                        "lr": sched.get_last_lr()[0], "time_s": round(time.time() - t0, 2)}
                # the log row first: a kill between the two leaves a row past the checkpoint, which the resume
                # drops and writes again; the other order could leave a checkpoint whose row never gets written
                _append_log(log_path, [{**base, **r} for r in rows])
                checkpoint.atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                        "scheduler": sched.state_dict(), "step": done}, ckpt_path)
                bar.write(f"step {done}: loss {base['loss']:.4f}, " + ", ".join(
                    f"{r.get('path', r.get('name', ''))} {r['psnr']:.2f} dB" for r in rows))
            losses = []
            barrier()
    bar.close()
    return model


def _csv_text(rows: list[dict], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    if header:
        w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _append_log(path: Path, rows: list[dict]) -> None:
    """Append rows (one write; a failed one is cut back off, so no torn row is left)."""
    if rows:
        append_text(path, _csv_text(rows, header=not path.exists() or not path.stat().st_size))


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a run starts from, and rows that were cut (warned)."""
    if not path.exists():
        return
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    if not lines:
        return
    header = next(csv.reader([lines[0]]))
    kept, bad = [], 0
    for i, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader([line]), [])
        row = dict(zip(header, fields))
        try:
            ok = len(fields) == len(header) and (i < len(lines) or text.endswith("\n"))
            after = int(row.get("step", "")) > step
        except ValueError:
            ok, after = False, False
        if not ok:
            bad += 1
        elif not after:
            kept.append(row)
    if bad:
        warnings.warn(f"{path}: dropped {bad} damaged row(s) (cut short, e.g. by a kill or a full disk)", stacklevel=2)
    if bad or len(kept) != len(lines) - 1:
        atomic_write_text(path, _csv_text(kept, header=True) if kept else ",".join(header) + "\n")


def path_name(path) -> str:
    """A path as one readable token, e.g. 'wdsr_a-wdsr_b-wdsr_a-wdsr_b'."""
    return "-".join(path)


def val_paths(net: SuperNet, n: int, seed: int) -> list[tuple[str, ...]]:
    """The fixed validation paths: each block type everywhere, then random ones."""
    paths = [tuple([b] * net.n_cells) for b in net.block_names]
    rng = np.random.default_rng([seed, 12345])
    for _ in range(1000):
        if len(paths) >= max(n, len(net.block_names)):
            break
        p = net.random_path(rng)
        if p not in paths:
            paths.append(p)
    return paths[:max(n, 1)]


def train_supernet(cfg: Config, run: RunDir | None = None, resume: bool = False, redo: bool = False,
                   started: Callable[[], None] | None = None) -> Path:
    """Stage 0: single-path sampling training of the supernet; returns the weights file. ``started`` is called
    (rank 0) once the stage is found done or about to write (the command records what it is made from)."""
    dist_info = init_distributed(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    if not cfg.model.elastic and not (isinstance(cfg.model.n_cells, int) and isinstance(cfg.model.n_feats, int)):
        raise UserError(f"model.n_cells {cfg.model.n_cells!r} / n_feats {cfg.model.n_feats!r} are settled from the LUT "
                        f"by `srnas run`, which trains the supernet at the size it chose; run that, or give numbers")
    run = run or cfg.run()
    stage_dir, final = run.supernet_dir, run.supernet
    done = stage_done("supernet", stage_dir, final, redo, dist_info.main,
                      "`srnas run --redo supernet` or `srnas supernet train --redo` trains it again")
    if started is not None and dist_info.main:
        started()
    if done:
        return final
    barrier()
    if dist_info.main:
        stage_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run.config)
    d, t = cfg.data, cfg.train
    if d.batch_size % dist_info.world:
        raise ValueError(f"data.batch_size {d.batch_size} must divide evenly over {dist_info.world} processes")
    sampler = PatchSampler(load_train_images(cfg), d.scale, d.patch_size, d.batch_size // dist_info.world,
                           d.augment, t.seed, dist_info.rank)
    net = build_supernet(cfg.model, d.scale).to(dist_info.device)
    # The global skip stays what it starts as (bicubic, or the anchor) while paths share weights: a learnable
    # skip takes the linear part of the residual within a few hundred steps, the tail (started at zero) then
    # has nothing to gain from the paths' features and stays at zero, and no path learns anything (path PSNRs
    # within 0.001 dB after 4000 steps of cpu_x2). The winner's fine-tune trains it.
    net.skip.requires_grad_(False)
    pairs = make_pairs(load_images(d.val, "val", data_root=d.data_root), d.scale)
    if cfg.model.elastic:
        if dist_info.world > 1:
            raise UserError("an elastic supernet trains several paths per step, which DDP does not take yet: "
                            "train it in one process (drop torchrun)")
        _train_elastic(cfg, net, sampler, pairs, stage_dir, dist_info, resume)
        if dist_info.main:
            save_supernet(net, cfg, final)
        return final
    paths = val_paths(net, t.val_paths, t.seed)

    def forward(m: nn.Module, x: torch.Tensor, step: int) -> torch.Tensor:
        # every rank draws the same path for a step, so DDP reduces matching gradients
        return m(x, net.random_path(np.random.default_rng([t.seed, step]), t.block_probs))

    def validate(m: SuperNet) -> list[dict]:
        return [{"path": path_name(p), **evaluate(lambda x, p=p: m(x.to(dist_info.device), p).cpu(), pairs, d.scale,
                                                  ssim=False)} for p in paths]

    recipe = Recipe(t.steps, t.epoch_steps, t.lr, t.lr_min, t.weight_decay)
    train_loop(net, sampler, recipe, stage_dir, forward, validate, dist_info, resume, desc="supernet")
    if dist_info.main:
        save_supernet(net, cfg, final)
    barrier()
    return final


def sandwich_loss(net, seed: int, n_random: int, distill: float, probs=None) -> Loss:
    """The elastic supernet's loss of one step: the largest path against the HR batch, plus the smallest and
    ``n_random`` random paths against the largest's output (in-place distillation, weight ``distill``) and the
    HR batch (1 - ``distill``); the paths of a step are a function of the step (resume sees the same)."""

    def loss(m: nn.Module, x: torch.Tensor, hr: torch.Tensor, step: int) -> torch.Tensor:
        archs = net.sandwich(np.random.default_rng([seed, step]), n_random, probs)
        teacher = m(x, *archs[0])
        total = F.l1_loss(teacher, hr)
        target = teacher.detach()
        for arch in archs[1:]:
            y = m(x, *arch)
            total = total + distill * F.l1_loss(y, target) + (1.0 - distill) * F.l1_loss(y, hr)
        return total

    return loss


def elastic_val_archs(net, n: int, seed: int) -> list:
    """The fixed validation paths of an elastic supernet: largest, smallest, then random ones."""
    archs = [net.largest(), net.smallest()]
    rng = np.random.default_rng([seed, 12345])
    for _ in range(1000):
        if len(archs) >= max(n, 2):
            break
        a = net.random_arch(rng)
        if a not in archs:
            archs.append(a)
    return archs


def _train_elastic(cfg: Config, net, sampler: PatchSampler, pairs, stage_dir: Path, dist_info: DistInfo,
                   resume: bool) -> None:
    """Stage 0 of an elastic supernet: the sandwich rule (BigNAS / OFA), in-place distillation weighted by
    train.distill (default 0: measured, it kept every member at bicubic; see TrainConfig.distill)."""

    d, t = cfg.data, cfg.train
    if t.max_gmacs > 0:
        net.set_budget(t.max_gmacs * 1e9 / (cfg.latency.lr_height * cfg.latency.lr_width))
    archs = elastic_val_archs(net, t.val_paths, t.seed)

    def validate(m) -> list[dict]:
        return [{"path": arch_name(a), **evaluate(lambda x, a=a: m(x.to(dist_info.device), *a).cpu(), pairs,
                                                  d.scale, ssim=False)} for a in archs]

    recipe = Recipe(t.steps, t.epoch_steps, t.lr, t.lr_min, t.weight_decay)
    loss = sandwich_loss(net, t.seed, t.sandwich_random, t.distill, t.block_probs)
    train_loop(net, sampler, recipe, stage_dir, lambda m, x, step: m(x, *net.largest()), validate, dist_info,
               resume, desc="supernet", loss_fn=loss)


def load_train_images(cfg: Config):
    """All HR images of the config's training sources."""
    return [im for s in cfg.data.train for im in load_images(s, "train", data_root=cfg.data.data_root)]


def save_supernet(net: SuperNet, cfg: Config, path: Path) -> None:
    """Save supernet weights with the model config and scale needed to rebuild it."""
    checkpoint.atomic_save({"model_cfg": asdict(cfg.model), "scale": net.scale, "state": net.state_dict()}, path)


def load_supernet(path: str | Path) -> SuperNet:
    """Rebuild a supernet saved by save_supernet."""
    blob = checkpoint.load(path, fix="remove it and run `srnas supernet train` (or `srnas run`) again to retrain it")
    net = build_supernet(build_section(ModelConfig, blob["model_cfg"]), blob["scale"])
    net.load_state_dict(blob["state"])
    return net.eval()

"""`srnas zoo train`: one shared recipe (the config's data + zoo sections) for every zoo model."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from srnas.supernet import checkpoint
from srnas.supernet.config import Config, save_config
from srnas.supernet.data import PatchSampler, load_images, make_pairs
from srnas.supernet.distributed import DistInfo, init_distributed
from srnas.supernet.errors import UserError
from srnas.supernet.evaluate import evaluate
from srnas.supernet.train import Recipe, load_train_images, stage_done, train_loop

from . import YOnly, build, entry, export_state, trainable_core
from .common import rgb_to_y


class YSampler:
    """A PatchSampler whose batches are converted to BT.601 Y (what Y-only models train on)."""

    def __init__(self, inner: PatchSampler):
        self.inner = inner

    def sample(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The Y batch of training step ``step``."""
        lr, hr = self.inner.sample(step)
        return rgb_to_y(lr), rgb_to_y(hr)


def zoo_recipe(cfg: Config) -> Recipe:
    """The one recipe every zoo model trains with: the config's train section, as the supernet's."""
    t = cfg.train
    return Recipe(t.steps, t.epoch_steps, t.lr, t.lr_min, t.weight_decay)


def train_zoo_model(cfg: Config, name: str, out_dir: Path | None = None, resume: bool = False,
                    redo: bool = False, sampler: PatchSampler | None = None) -> Path:
    """Train zoo model ``name`` with the shared recipe; returns its weights file (<run>/zoo/<name>_x<s>.pt)."""
    e = entry(name)
    if not e.trainable:
        raise UserError(f"{name!r} has no weights to train")
    dist_info: DistInfo = init_distributed(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    d = cfg.data
    zoo_dir = cfg.run(out_dir).zoo_dir
    stage_dir = zoo_dir / f"{name}_x{d.scale}"
    final = zoo_dir / f"{name}_x{d.scale}.pt"
    if stage_done(f"zoo {name}", stage_dir, final, redo):
        return final
    stage_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, stage_dir / "config.yaml")
    if sampler is None:
        sampler = PatchSampler(load_train_images(cfg), d.scale, d.patch_size, d.batch_size, d.augment,
                               cfg.train.seed, 0)
    model = build(name, d.scale)
    core = trainable_core(model)
    train_sampler = YSampler(sampler) if isinstance(model, YOnly) else sampler
    pairs = make_pairs(load_images(d.val, "val", data_root=d.data_root), d.scale)

    def forward(m: nn.Module, x: torch.Tensor, step: int) -> torch.Tensor:
        return m(x)

    def validate(_: nn.Module) -> list[dict]:
        return [{"name": name, **evaluate(model, pairs, d.scale, ssim=False)}]

    train_loop(core, train_sampler, zoo_recipe(cfg), stage_dir, forward, validate, dist_info, resume,
               desc=f"zoo {name}")
    model.eval()
    checkpoint.atomic_save({"name": name, "scale": d.scale, "state": export_state(model), "steps": cfg.train.steps},
                           final)
    return final


class Offset:
    """Batches the fp32 run did not see first: a QAT fine-tune continues the data stream instead of replaying it."""

    def __init__(self, inner, offset: int = 1_000_000):
        self.inner, self.offset = inner, offset

    def sample(self, step: int):
        """The batch of step ``step`` + the offset."""
        return self.inner.sample(step + self.offset)

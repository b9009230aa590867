"""Compaction: rewrite a masked SRNet into one whose pruned work is really removed."""
from __future__ import annotations

import copy

import torch
from torch import nn

from supernet.blocks import ResidualBlock, fuse_weight_norm
from supernet.config import ModelConfig, PruningConfig
from supernet.model import build_path_net

from .executors import executor
from .masks import Masks, Plan, apply_plan


def _compact_block(blk: ResidualBlock, prefix: str, masks: Masks, cfg: PruningConfig) -> ResidualBlock:
    """One residual block with filter-pruned channels removed and block layers as executors."""
    mods = list(blk.body)
    conv_pos = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    names = [f"{prefix}.body.{i}" for i in conv_pos]
    convs = [mods[i] for i in conv_pos]
    wmask = [masks.weight.get(n) for n in names]
    schemes = [masks.plan.get(n, ("none", 0.0))[0] for n in names]
    # channels surviving between consecutive convs: a filter-pruned output (untied) or a
    # filter-pruned input (tied, last conv) removes the channel on both sides
    keep_out = [torch.arange(c.out_channels) for c in convs]
    for j, (c, m, s) in enumerate(zip(convs, wmask, schemes)):
        if s != "filter" or m is None:
            continue
        if j < len(convs) - 1:
            keep_out[j] = torch.nonzero(m.flatten(1).sum(1) > 0).flatten()
        elif j > 0:
            kin = torch.nonzero(m.transpose(0, 1).flatten(1).sum(1) > 0).flatten()
            keep_out[j - 1] = keep_out[j - 1][torch.isin(keep_out[j - 1], kin)]
    new = []
    for j, (c, m, s) in enumerate(zip(convs, wmask, schemes)):
        rows = keep_out[j]
        cols = keep_out[j - 1] if j > 0 else torch.arange(c.in_channels)
        w = c.weight.detach()[rows][:, cols]
        b = c.bias.detach()[rows] if c.bias is not None else None
        mm = m[rows][:, cols] if m is not None else None
        new.append(executor(s if s != "filter" else "none", w, mm, b, cfg))
    body = [new[conv_pos.index(i)] if i in conv_pos else copy.deepcopy(m) for i, m in enumerate(mods)]
    return ResidualBlock(nn.Sequential(*body), blk.res_scale)


@torch.no_grad()
def compact(net: nn.Module, masks: Masks, cfg: PruningConfig) -> nn.Module:
    """A copy of the masked ``net`` whose pruned work is removed; same outputs (max abs diff <= 1e-4)."""
    out = copy.deepcopy(net).eval()
    masks.apply(out)
    out.body = nn.Sequential(*(_compact_block(blk, f"body.{i}", masks, cfg) for i, blk in enumerate(out.body)))
    return out.eval()


def pruned_path_net(model_cfg: ModelConfig, scale: int, path, plan: Plan, cfg: PruningConfig) -> nn.Module:
    """A freshly initialised path network pruned by ``plan`` and compacted: what a candidate costs to run."""
    net = fuse_weight_norm(build_path_net(model_cfg, scale, path))
    return compact(net, apply_plan(net, dict(plan), cfg), cfg).eval()

"""Compaction: rewrite a masked SRNet into one whose pruned work is really removed."""
from __future__ import annotations

import copy

import torch
from torch import nn

from supernet.blocks import ResidualBlock, fuse_weight_norm
from supernet.config import ModelConfig, PruningConfig
from supernet.model import build_path_net
from supernet.widths import padded

from .executors import masked_conv
from .masks import Masks, Plan, apply_plan


def live_channels(convs: list[nn.Conv2d], wmask: list[torch.Tensor | None],
                  multiple: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per conv, the output channels worth computing (the last conv keeps all) and which of them are padding.

    A channel between two convs is dead when the consumer's mask reads it in no row
    (tied filter pruning, or block pruning whose row-blocks all dropped that column), or
    when the producer computes a constant zero for it (an all-zero row whose bias was
    masked too, as untied filter pruning leaves). A dead channel is removed on both sides:
    the producer no longer computes it and the consumer no longer reads it. More than
    ``multiple`` live channels are padded with dead ones up to a multiple of it (exact:
    a dead channel adds nothing), because conv kernels run fastest at such widths.
    """
    live = []
    for j, c in enumerate(convs[:-1]):
        m, nxt = wmask[j], wmask[j + 1]
        made = torch.ones(c.out_channels, dtype=torch.bool) if m is None else m.flatten(1).sum(1) > 0
        if c.bias is not None:
            made |= c.bias.detach() != 0
        read = torch.ones_like(made) if nxt is None else nxt.transpose(0, 1).flatten(1).sum(1) > 0
        keep = made & read
        n = int(keep.sum())
        computed = keep.clone()
        computed[torch.nonzero(~keep).flatten()[:padded(n, c.out_channels, multiple) - n]] = True
        idx = torch.nonzero(computed).flatten()
        live.append((idx, ~keep[idx]))
    n_last = convs[-1].out_channels
    return live + [(torch.arange(n_last), torch.zeros(n_last, dtype=torch.bool))]


def _compact_block(blk: ResidualBlock, prefix: str, masks: Masks) -> ResidualBlock:
    """One residual block with dead channels removed; masked weights run as dense convs.

    Zeros left inside a conv (unstructured, pattern, block) still run: on the CPUs measured
    (experiments/bench_pruning.py) neither a sparse kernel nor a per-row-block gather +
    grouped conv beat the dense conv over the live channels, so block pruning pays through
    the channels it kills, which is what the latency model predicts.
    """
    mods = list(blk.body)
    conv_pos = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    names = [f"{prefix}.body.{i}" for i in conv_pos]
    convs = [mods[i] for i in conv_pos]
    wmask = [masks.weight.get(n) for n in names]
    live = live_channels(convs, wmask, masks.channel_multiple)
    new = []
    for j, (c, m) in enumerate(zip(convs, wmask)):
        (rows, pad), cols = live[j], (live[j - 1][0] if j > 0 else torch.arange(c.in_channels))
        w = c.weight.detach()[rows][:, cols]
        b = c.bias.detach()[rows].clone() if c.bias is not None else None
        if m is not None:
            w = w * m[rows][:, cols]
        w[pad] = 0   # padding channels compute plain zeros: no weights count
        if b is not None:
            b[pad] = 0
        new.append(masked_conv(w, b, c.kernel_size[0]))
    body = [new[conv_pos.index(i)] if i in conv_pos else copy.deepcopy(m) for i, m in enumerate(mods)]
    return ResidualBlock(nn.Sequential(*body), blk.res_scale)


@torch.no_grad()
def compact(net: nn.Module, masks: Masks) -> nn.Module:
    """A copy of the masked ``net`` whose pruned work is removed; same outputs (max abs diff <= 1e-4)."""
    out = copy.deepcopy(net).eval()
    masks.apply(out)
    out.body = nn.Sequential(*(_compact_block(blk, f"body.{i}", masks) for i, blk in enumerate(out.body)))
    return out.eval()


def pruned_path_net(model_cfg: ModelConfig, scale: int, path, plan: Plan, cfg: PruningConfig) -> nn.Module:
    """A freshly initialised path network pruned by ``plan`` and compacted: what a candidate costs to run."""
    net = fuse_weight_norm(build_path_net(model_cfg, scale, path))
    return compact(net, apply_plan(net, dict(plan), cfg)).eval()

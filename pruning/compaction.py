"""Compaction: rewrite a masked SRNet into one whose pruned work is really removed."""
from __future__ import annotations

import copy

import torch
from torch import nn

from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import ModelConfig, PruningConfig
from srnas.supernet.model import build_path_net
from srnas.supernet.widths import Chain, padded

from .executors import masked_conv
from .masks import Masks, Plan, apply_plan


def live_channels(chain: Chain, convs: list[nn.Conv2d], wmask: list[torch.Tensor | None],
                  multiple: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per conv of the chain, the output channels worth computing and which of them are padding.

    A channel of an untied group is dead when the consumer's mask reads it in no row
    (tied filter pruning, or block pruning whose row-blocks all dropped that column), or
    when the group computes a constant zero for it: the producer's row is all zero and its
    bias masked (untied filter pruning), and each depthwise conv in the group passes that
    zero on (or zeroes the channel itself) with no bias of its own. A dead channel is
    removed from the whole group: the producer and the depthwise convs no longer compute
    it, the consumer no longer reads it. More than ``multiple`` live channels are padded
    with dead ones up to a multiple of it (exact: a dead channel adds nothing), because
    conv kernels run fastest at such widths. Tied groups and the last conv keep all.
    """
    live = [(torch.arange(c.out_channels), torch.zeros(c.out_channels, dtype=torch.bool)) for c in convs]
    for first, last, tied in chain.groups():
        if tied:
            continue
        made = None
        for j in range(first, last + 1):
            c, m = convs[j], wmask[j]
            rows = torch.ones(c.out_channels, dtype=torch.bool) if m is None else m.flatten(1).sum(1) > 0
            made = rows if made is None else made & rows    # a depthwise conv: its own channel, or nothing
            if c.bias is not None:
                made = made | (c.bias.detach() != 0)
        nxt = wmask[last + 1]
        read = torch.ones_like(made) if nxt is None else nxt.transpose(0, 1).flatten(1).sum(1) > 0
        keep = made & read
        n, full = int(keep.sum()), convs[first].out_channels
        computed = keep.clone()
        computed[torch.nonzero(~keep).flatten()[:padded(n, full, multiple) - n]] = True
        idx = torch.nonzero(computed).flatten()
        for j in range(first, last + 1):
            live[j] = (idx, ~keep[idx])
    return live


def _set_module(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


@torch.no_grad()
def compact(net: nn.Module, masks: Masks) -> nn.Module:
    """A copy of the masked ``net`` whose pruned work is removed; same outputs (max abs diff <= 1e-4).

    Every conv of the chain (head and tail too, which neighbours may narrow) is rewritten
    as a dense conv over its live channels. Zeros left inside a conv (unstructured,
    pattern, block) still run: on the CPUs measured (experiments/bench_pruning.py) neither
    a sparse kernel nor a per-row-block gather + grouped conv beat the dense conv over the
    live channels, so block pruning pays through the channels it kills, which is what the
    latency model predicts.
    """
    out = copy.deepcopy(net).eval()
    masks.apply(out)
    chain = out.chain()
    convs = [out.get_submodule(c.name) for c in chain.convs]
    wmask = [masks.weight.get(c.name) for c in chain.convs]
    live = live_channels(chain, convs, wmask, masks.channel_multiple)
    for j, (spec, c, m) in enumerate(zip(chain.convs, convs, wmask)):
        rows, pad = live[j]
        # a depthwise conv reads its own channels (its rows); any other conv the live outputs of the one before
        cols = torch.arange(c.weight.shape[1]) if spec.depthwise or j == 0 else live[j - 1][0]
        w = c.weight.detach()[rows][:, cols]
        if m is not None:
            w = w * m[rows][:, cols]
        b = c.bias.detach()[rows].clone() if c.bias is not None else None
        w[pad] = 0   # padding channels compute plain zeros and are read by nothing: no weights count
        if not spec.depthwise and j > 0:
            w[:, live[j - 1][1]] = 0
        if b is not None:
            b[pad] = 0
        _set_module(out, spec.name, masked_conv(w, b, c.kernel_size[0], groups=len(rows) if spec.depthwise else 1))
    return out.eval()


def pruned_path_net(model_cfg: ModelConfig, scale: int, path, plan: Plan, cfg: PruningConfig) -> nn.Module:
    """A freshly initialised path network pruned by ``plan`` and compacted: what a candidate costs to run."""
    net = fuse_weight_norm(build_path_net(model_cfg, scale, path))
    return compact(net, apply_plan(net, dict(plan), cfg)).eval()

"""Masks: the hard 0/1 masks of a pruning plan, applied to an SRNet in place."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from supernet.blocks import fuse_weight_norm
from supernet.config import PruningConfig
from supernet.errors import UserError

from .schemes import SCHEMES, check_rate

Plan = dict[str, tuple[str, float]]


def tied_layers(net: nn.Module) -> set[str]:
    """Prunable layers whose output channels feed a residual add (the last conv of each block)."""
    out = set()
    for i, blk in enumerate(net.body):
        convs = blk.convs()
        if convs:
            out.add(f"body.{i}.{convs[-1][0]}")
    return out


def check_plan(net: nn.Module, plan: Plan) -> None:
    """Raise UserError naming a plan key that is not a prunable layer, or a bad scheme/rate."""
    names = {n for n, _ in net.prunable()}
    for name, (scheme, rate) in plan.items():
        if name not in names:
            raise UserError(f"pruning plan names layer {name!r}, which is not prunable here; "
                            f"prunable layers: {sorted(names)}")
        check_rate(scheme, float(rate))


@dataclass
class Masks:
    """Per-layer weight and bias masks plus the plan that made them; picklable."""

    plan: Plan
    weight: dict[str, torch.Tensor] = field(default_factory=dict)
    bias: dict[str, torch.Tensor] = field(default_factory=dict)
    channel_multiple: int = 1   # pruning.channel_multiple: compaction pads live channels to it

    @torch.no_grad()
    def apply(self, net: nn.Module) -> None:
        """Zero the pruned weights again (call after every optimiser step)."""
        layers = dict(net.prunable())
        for name, m in self.weight.items():
            conv = layers[name]
            conv.weight.mul_(m.to(conv.weight))
            if conv.bias is not None and name in self.bias:
                conv.bias.mul_(self.bias[name].to(conv.bias))

    def hook_grads(self, net: nn.Module) -> list:
        """Register gradient hooks zeroing pruned weights' gradients; returns the handles."""
        layers = dict(net.prunable())
        handles = []
        for name, m in self.weight.items():
            conv = layers[name]
            handles.append(conv.weight.register_hook(lambda g, m=m: g * m.to(g)))
            if conv.bias is not None and name in self.bias:
                handles.append(conv.bias.register_hook(lambda g, m=self.bias[name]: g * m.to(g)))
        return handles

    def sparsity(self) -> dict[str, float]:
        """Fraction of weights removed per masked layer."""
        return {n: 1.0 - m.mean().item() for n, m in self.weight.items()}


def make_masks(net: nn.Module, plan: Plan, cfg: PruningConfig) -> Masks:
    """Magnitude-based masks for ``plan`` from the net's current (fused) weights."""
    check_plan(net, plan)
    if cfg.prune_tail:
        raise UserError("pruning.prune_tail is not supported yet: the tail conv feeding PixelShuffle stays "
                        "dense; set pruning.prune_tail: false")
    tied = tied_layers(net)
    prev_layer = {}
    for i, blk in enumerate(net.body):
        names = [f"body.{i}.{n}" for n, _ in blk.convs()]
        prev_layer.update(zip(names[1:], names[:-1]))
    masks = Masks(plan={k: (s, float(r)) for k, (s, r) in plan.items()}, channel_multiple=cfg.channel_multiple)
    for name, conv in net.prunable():
        scheme, rate = plan.get(name, ("none", 0.0))
        if scheme == "none" or rate <= 0:
            continue
        sch = SCHEMES[scheme]
        w = conv.weight.detach()
        prev = prev_layer.get(name)
        if prev in masks.weight and masks.plan[prev][0] == "filter":
            # inputs the previous filter-pruned conv already removed score zero, so the kept weights
            # are chosen among live channels (and two filter masks never leave the block empty)
            alive = (masks.weight[prev].flatten(1).sum(1) > 0).to(w.dtype)
            w = w * alive.view(1, -1, 1, 1)
        wm = sch.mask(w, float(rate), cfg, tied_out=name in tied)
        masks.weight[name] = wm
        masks.bias[name] = sch.bias_mask(wm)
    return masks


def apply_plan(net: nn.Module, plan: Plan, cfg: PruningConfig) -> Masks:
    """Fuse weight norm, compute magnitude masks for ``plan`` and zero the pruned weights in place."""
    fuse_weight_norm(net)
    masks = make_masks(net, plan, cfg)
    masks.apply(net)
    return masks

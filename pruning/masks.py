"""Masks: the hard 0/1 masks of a pruning plan, applied to an SRNet in place."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import PruningConfig
from srnas.supernet.errors import UserError
from srnas.supernet.rep import fold_branches

from .schemes import SCHEMES, check_rate

Plan = dict[str, tuple[str, float]]


def tied_layers(net: nn.Module) -> set[str]:
    """Prunable layers whose output channels must all stay: they feed a residual add (the last conv of a
    residual block, a plain cell before one) or the network's end."""
    names = {n for n, _ in net.prunable()}
    chain = net.chain()
    return {c.name for c, tied in zip(chain.convs, chain.out_tied()) if tied and c.name in names}


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
    """Per-layer weight and bias masks plus the plan that made them; saved as a plain dict (``to_dict``)."""

    plan: Plan
    weight: dict[str, torch.Tensor] = field(default_factory=dict)
    bias: dict[str, torch.Tensor] = field(default_factory=dict)
    channel_multiple: int = 1   # pruning.channel_multiple: compaction pads live channels to it

    def to_dict(self) -> dict:
        """Plain containers and tensors only, as model files are read (weights-only, no code)."""
        return {"plan": {k: [s, float(r)] for k, (s, r) in self.plan.items()}, "weight": dict(self.weight),
                "bias": dict(self.bias), "channel_multiple": self.channel_multiple}

    @classmethod
    def from_dict(cls, d: dict) -> "Masks":
        """Inverse of ``to_dict``."""
        return cls({k: (s, float(r)) for k, (s, r) in d["plan"].items()}, dict(d["weight"]), dict(d["bias"]),
                   int(d.get("channel_multiple", 1)))

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
    layers = dict(net.prunable())
    chain = net.chain()
    masks = Masks(plan={k: (s, float(r)) for k, (s, r) in plan.items()}, channel_multiple=cfg.channel_multiple)
    alive = None   # the input channels of the next conv that a filter mask before it removed (None: all live)
    for j, spec in enumerate(chain.convs):
        conv = layers.get(spec.name)
        scheme, rate = plan.get(spec.name, ("none", 0.0))
        pruned = conv is not None and scheme != "none" and rate > 0
        made = None
        if pruned or (conv is not None and spec.depthwise and alive is not None):
            w = conv.weight.detach()
            if alive is not None:
                # inputs a filter-pruned conv before already removed score zero, so the kept weights are
                # chosen among live channels (and two filter masks never leave a block empty)
                w = w * (alive.view(-1, 1, 1, 1) if spec.depthwise else alive.view(1, -1, 1, 1))
            if pruned:
                wm = SCHEMES[scheme].mask(w, float(rate), cfg, tied_out=spec.name in tied)
                bm = SCHEMES[scheme].bias_mask(wm)
            else:
                wm, bm = torch.ones_like(w), torch.ones(w.shape[0], dtype=w.dtype)
            if spec.depthwise and alive is not None:
                # a depthwise channel whose input is gone is gone too, bias and all: it lives or dies with
                # its pointwise neighbours
                wm, bm = wm * alive.view(-1, 1, 1, 1), bm * alive
            masks.weight[spec.name], masks.bias[spec.name] = wm, bm
            if spec.depthwise or (scheme == "filter" and spec.name not in tied):
                made = ((wm.flatten(1).sum(1) > 0) | (bm > 0)).to(w.dtype)
        untied_next = j < len(chain.tied) and not chain.tied[j]
        alive = made if untied_next else None
    return masks


def apply_plan(net: nn.Module, plan: Plan, cfg: PruningConfig) -> Masks:
    """Fuse weight norm, compute magnitude masks for ``plan`` and zero the pruned weights in place; a masked
    conv's training-time branches are folded first (masks hold plain weights), an unmasked one keeps them."""
    fuse_weight_norm(net)
    masks = make_masks(net, plan, cfg)
    fold_masked(net, masks)
    masks.apply(net)
    return masks


def fold_masked(net: nn.Module, masks: Masks) -> None:
    """Fold the training-time branches of the convs ``masks`` covers: the form apply_plan leaves a net in (a
    resumed fine-tune loads its saved weights into that form)."""
    layers = dict(net.prunable())
    for name in masks.weight:
        fold_branches(layers[name])

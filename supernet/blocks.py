"""Registered block types a supernet cell can choose from: WDSR-A, WDSR-B, plain (ABPN), dws (MobileNet)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from .rep import has_branches, own_class, rep_conv

BLOCKS: dict[str, Callable[..., nn.Module]] = {}


def register_block(name: str) -> Callable:
    """Class decorator: make a block type available to configs under ``name``."""
    def deco(cls):
        if name in BLOCKS:
            raise ValueError(f"block type {name!r} is already registered")
        BLOCKS[name] = cls
        cls.block_type = name
        return cls
    return deco


def make_block(name: str, n_feats: int, **kwargs) -> nn.Module:
    """Instantiate a registered block; unknown names list the registered ones."""
    if name not in BLOCKS:
        raise KeyError(f"unknown block type {name!r}; registered: {sorted(BLOCKS)}")
    return BLOCKS[name](n_feats, **kwargs)


def wn_conv(cin: int, cout: int, k: int, groups: int = 1, rep: str = "none") -> nn.Conv2d:
    """A weight-normalized conv with 'same' padding, as WDSR uses (``groups == cin == cout``: depthwise); a
    3x3 conv with training-time branches instead of weight norm when ``rep`` names them (model.rep)."""
    if rep != "none":
        if k != 3 or groups != 1:
            raise ValueError(f"training-time branches {rep!r} are for dense 3x3 convs, not k={k}, groups={groups}")
        return rep_conv(cin, cout, rep)
    return weight_norm(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups))


def is_depthwise(conv: nn.Conv2d) -> bool:
    """Whether each output channel of ``conv`` reads only its own input channel."""
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


class Block(nn.Module):
    """A cell's block: ``body`` (an nn.Sequential of convs and ReLUs), residual or not.

    Every conv in ``body`` is a prunable layer.
    """

    residual = False

    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def convs(self) -> list[tuple[str, nn.Conv2d]]:
        """The block's prunable layers, in execution order, with names relative to the block."""
        return [(f"body.{i}", m) for i, m in enumerate(self.body) if isinstance(m, nn.Conv2d)]


class ResidualBlock(Block):
    """x + res_scale * body(x): the last conv's output channels are tied to the trunk by the add."""

    residual = True

    def __init__(self, body: nn.Sequential, res_scale: float):
        super().__init__(body)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


@register_block("wdsr_a")
class WDSRA(ResidualBlock):
    """WDSR-A: 3x3 conv expanding to a wide activation, ReLU, 3x3 conv back."""

    def __init__(self, n_feats: int, expansion_a: int = 4, res_scale: float = 1.0, **_):
        wide = n_feats * expansion_a
        super().__init__(nn.Sequential(wn_conv(n_feats, wide, 3), nn.ReLU(inplace=True),
                                       wn_conv(wide, n_feats, 3)), res_scale)


@register_block("wdsr_b")
class WDSRB(ResidualBlock):
    """WDSR-B: 1x1 expand, ReLU, 1x1 linear low-rank, 3x3 conv back."""

    def __init__(self, n_feats: int, expansion_b: int = 6, low_rank: float = 0.8, res_scale: float = 1.0, **_):
        wide, narrow = n_feats * expansion_b, max(1, int(n_feats * low_rank))
        super().__init__(nn.Sequential(wn_conv(n_feats, wide, 1), nn.ReLU(inplace=True),
                                       wn_conv(wide, narrow, 1), wn_conv(narrow, n_feats, 3)), res_scale)


@register_block("plain")
class Plain(Block):
    """ABPN's cell: a 3x3 conv and ReLU, no residual add (filter pruning narrows the next cell's input).

    With ``rep`` (model.rep) the conv trains with ECBSR's branches instead of weight norm: +0.12 / +0.11 /
    +0.07 dB (skimage / Set14 / B100) for WDSR-B, plain, WDSR-B, plain trained alone for 3000 steps, +0.15 /
    +0.13 / +0.10 for plain x4. On WDSR-B's 12 -> 16 3x3 conv (no identity branch) they broke training
    (-1.0 dB on B100), so only this square conv takes them.
    """

    def __init__(self, n_feats: int, rep: str = "none", **_):
        super().__init__(nn.Sequential(wn_conv(n_feats, n_feats, 3, rep=rep), nn.ReLU(inplace=True)))


@register_block("dws")
class DWS(ResidualBlock):
    """Depthwise-separable inverted residual (MobileNetV2 / Agora): 1x1 expand, ReLU, depthwise 3x3, ReLU,
    1x1 project; the depthwise channels live or die with the expand's filters and the project's inputs."""

    def __init__(self, n_feats: int, expansion_dws: int = 2, res_scale: float = 1.0, **_):
        wide = n_feats * expansion_dws
        super().__init__(nn.Sequential(wn_conv(n_feats, wide, 1), nn.ReLU(inplace=True),
                                       wn_conv(wide, wide, 3, groups=wide), nn.ReLU(inplace=True),
                                       wn_conv(wide, n_feats, 1)), res_scale)


def fuse_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-norm parametrization into a plain weight (in place); returns module.

    Pruning, latency measurement and export work on plain convs: the fused weight is
    the one the network computes with, so outputs are unchanged. Training-time branches
    (model.rep) stay until ``fold_branches``: a conv keeps them while it trains unpruned.
    """
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight") and not has_branches(m):
            parametrize.remove_parametrizations(own_class(m), "weight", leave_parametrized=True)
    return module

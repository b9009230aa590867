"""The module a pruned conv really runs as: a dense conv over the channels left alive.

See pruning.compaction.live_channels; the zeros left inside a conv still run. The latency
LUT times the same thing: plain convs at the widths of supernet.widths.
"""
from __future__ import annotations

import torch
from torch import nn


def masked_conv(weight: torch.Tensor, bias: torch.Tensor | None, k: int, groups: int = 1) -> nn.Conv2d:
    """A plain conv carrying (already sliced, masked) weights; ``groups`` = channels for a depthwise conv."""
    co, ci = weight.shape[:2]
    conv = nn.Conv2d(ci * groups, co, k, padding=k // 2, bias=bias is not None, groups=groups)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv

"""Executors of pruned convs: the modules a pruned layer really runs as.

``pruned_layer`` builds one conv exactly as ``compact`` runs such a layer, so the latency
LUT measures what the export runs. Every scheme runs as a dense conv over the channels
left alive (see pruning.compaction.live_channels); the zeros inside it still run.
"""
from __future__ import annotations

import torch
from torch import nn

from supernet.config import PruningConfig

from .schemes import SCHEMES, check_rate, kept_in_channels, kept_out_channels


def masked_conv(weight: torch.Tensor, bias: torch.Tensor | None, k: int) -> nn.Conv2d:
    """A plain conv carrying (already sliced, masked) weights."""
    co, ci = weight.shape[:2]
    conv = nn.Conv2d(ci, co, k, padding=k // 2, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def pruned_layer(cin: int, cout: int, k: int, scheme: str, rate: float, cfg: PruningConfig, seed: int = 0,
                 tied_out: bool = False) -> nn.Module:
    """Executor of ONE conv (cin -> cout, kxk, same size) pruned by ``scheme`` at ``rate``, random weights.

    For untied `filter` the output has ``kept_out_channels(cout, ...)`` channels; with
    ``tied_out`` (a conv feeding a residual add) `filter` keeps cout and takes
    ``kept_in_channels(cin, ...)`` input channels instead.
    """
    check_rate(scheme, rate)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
    b = torch.randn(cout, generator=g) * 0.01
    if scheme == "none" or rate <= 0:
        return masked_conv(w, b, k).eval()
    if scheme == "filter":
        co = kept_out_channels(cout, scheme, rate, cfg, tied_out)
        ci = kept_in_channels(cin, scheme, rate, cfg, tied_out)
        return masked_conv(w[:co, :ci].contiguous(), b[:co].contiguous(), k).eval()
    return masked_conv(w * SCHEMES[scheme].mask(w, rate, cfg, tied_out=tied_out), b, k).eval()

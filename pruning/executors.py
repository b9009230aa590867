"""Executors of pruned convs: modules that really skip the pruned work.

``pruned_layer`` builds the executor of one conv exactly as ``compact`` runs such a layer,
so the latency LUT measures what the export runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.config import PruningConfig

from .schemes import SCHEMES, check_rate, kept_in_channels, kept_out_channels


class BlockConv(nn.Module):
    """A block-pruned conv: each row-block is a dense conv over only its kept input channels.

    All row-blocks run in ONE grouped conv: one gather (index_select) lines up every
    block's kept input channels, padded to the same count with zero weights, and group g
    of the conv computes row-block g. The last, partial block is padded with zero rows
    that are sliced off.
    """

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None, rows: int):
        super().__init__()
        co, ci, kh, kw = weight.shape
        w = (weight * mask).detach()
        starts = list(range(0, co, rows))
        chans = [torch.nonzero(mask[s:s + rows].abs().sum(dim=(0, 2, 3)) > 0).flatten() for s in starts]
        chans = [c if c.numel() else torch.zeros(1, dtype=torch.long) for c in chans]
        m = max(c.numel() for c in chans)
        idx, wg = [], torch.zeros(len(starts) * rows, m, kh, kw)
        for g, (s, c) in enumerate(zip(starts, chans)):
            pad = torch.cat([c, c[:1].expand(m - c.numel())])
            idx.append(pad)
            blk = w[s:s + rows][:, c]
            wg[g * rows:g * rows + blk.shape[0], :c.numel()] = blk
        self.register_buffer("idx", torch.cat(idx))
        self.weight = nn.Parameter(wg)
        b = torch.zeros(len(starts) * rows)
        if bias is not None:
            b[:co] = bias.detach()
        self.bias = nn.Parameter(b)
        self.groups, self.cout, self.padding = len(starts), co, (kh // 2, kw // 2)
        self.trim = len(starts) * rows != co
        self.identity_gather = bool(self.idx.numel() == ci and torch.equal(self.idx, torch.arange(ci)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.identity_gather:
            x = x.index_select(1, self.idx)
        y = F.conv2d(x, self.weight, self.bias, padding=self.padding, groups=self.groups)
        if self.trim:
            y = y[:, :self.cout]
        return y


def masked_conv(weight: torch.Tensor, bias: torch.Tensor | None, k: int) -> nn.Conv2d:
    """A plain conv carrying (already sliced, masked) weights."""
    co, ci = weight.shape[:2]
    conv = nn.Conv2d(ci, co, k, padding=k // 2, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def executor(scheme: str, weight: torch.Tensor, mask: torch.Tensor | None, bias: torch.Tensor | None,
             cfg: PruningConfig) -> nn.Module:
    """The executor of a conv whose weight/mask are already sliced to the kept channels.

    `none`, `unstructured` and `pattern` run dense-with-zeros (measured fastest here, see
    experiments/bench_pruning.py); `filter` layers are already physically smaller; `block`
    runs a BlockConv.
    """
    k = weight.shape[-1]
    if mask is not None:
        weight = weight * mask
    if scheme == "block" and mask is not None:
        return BlockConv(weight, mask, bias, cfg.block_size[0])
    return masked_conv(weight, bias, k)


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
        co, ci = kept_out_channels(cout, scheme, rate, cfg, tied_out), kept_in_channels(cin, scheme, rate, cfg, tied_out)
        return masked_conv(w[:co, :ci].contiguous(), b[:co].contiguous(), k).eval()
    mask = SCHEMES[scheme].mask(w, rate, cfg, tied_out=tied_out)
    return executor(scheme, w, mask, b, cfg).eval()

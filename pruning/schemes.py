"""Pruning schemes: how a conv's weights are grouped, scored and masked.

Every scheme has the same interface: ``groups`` (a group id per weight, used by the
reweighted regularizer), ``mask`` (a 0/1 weight mask removing ``rate`` of the weights by
magnitude) and ``bias_mask``. A layer is "tied" when its output channels feed a residual
add (the last conv of a block): ``filter`` then removes whole *input* channels instead of
output filters, which removes the matching output filters of the previous conv too and
never breaks the add.
"""
from __future__ import annotations

import itertools
from collections import Counter

import torch

from srnas.supernet.config import PruningConfig
from srnas.supernet.errors import UserError
from srnas.supernet.widths import n_keep


def check_rate(scheme: str, rate: float) -> None:
    """Raise UserError for an unknown scheme or a rate outside [0, 1)."""
    if scheme not in SCHEMES:
        raise UserError(f"unknown pruning scheme {scheme!r}; choose from {sorted(SCHEMES)}")
    if not 0.0 <= rate < 1.0:
        raise UserError(f"pruning rate {rate} for scheme {scheme!r} is outside [0, 1); use e.g. 0.5")


class Scheme:
    """A way to group a conv's weights and prune whole groups by magnitude."""

    name = "none"

    def groups(self, weight: torch.Tensor, cfg: PruningConfig, tied_out: bool = False) -> torch.Tensor:
        """Group id (long, same shape as weight) of every weight."""
        return torch.zeros_like(weight, dtype=torch.long)

    def mask(self, weight: torch.Tensor, rate: float, cfg: PruningConfig, tied_out: bool = False) -> torch.Tensor:
        """0/1 mask (same shape as weight) removing ``rate`` of the weights, smallest groups first."""
        return torch.ones_like(weight)

    def bias_mask(self, wmask: torch.Tensor) -> torch.Tensor:
        """0/1 mask of the bias: an output channel with no weight left also loses its bias."""
        return torch.ones(wmask.shape[0], dtype=wmask.dtype)


class NoPruning(Scheme):
    """Dense layer."""

    name = "none"


class Unstructured(Scheme):
    """Single weights by magnitude."""

    name = "unstructured"

    def groups(self, weight, cfg, tied_out=False):
        return torch.arange(weight.numel()).view_as(weight)

    def mask(self, weight, rate, cfg, tied_out=False):
        n_prune = weight.numel() - n_keep(weight.numel(), rate)
        m = torch.ones(weight.numel())
        if n_prune > 0:
            m[weight.detach().abs().flatten().argsort()[:n_prune]] = 0
        return m.view_as(weight)


class Filter(Scheme):
    """Whole output filters (or, for a tied layer, whole input channels)."""

    name = "filter"

    def groups(self, weight, cfg, tied_out=False):
        co, ci, kh, kw = weight.shape
        if tied_out:
            return torch.arange(ci).view(1, ci, 1, 1).expand_as(weight).clone()
        return torch.arange(co).view(co, 1, 1, 1).expand_as(weight).clone()

    def mask(self, weight, rate, cfg, tied_out=False):
        dim = (0, 2, 3) if tied_out else (1, 2, 3)
        norms = weight.detach().pow(2).sum(dim=dim)
        keep = norms.argsort(descending=True)[:n_keep(norms.numel(), rate)]
        m = torch.zeros_like(norms)
        m[keep] = 1
        return (m.view(1, -1, 1, 1) if tied_out else m.view(-1, 1, 1, 1)).expand_as(weight).clone()

    def bias_mask(self, wmask):
        return (wmask.flatten(1).sum(1) > 0).to(wmask.dtype)


def column_ids(weight: torch.Tensor) -> torch.Tensor:
    """Column id per weight in the block scheme's GEMM view.

    A 1x1 conv has one column per input channel; for k>1 the k*k taps of one input
    channel form one column group, so a pruned column removes a whole input channel of a
    row-block and the executor can run each row-block as a conv over fewer channels.
    """
    co, ci, kh, kw = weight.shape
    return torch.arange(ci).view(1, ci, 1, 1).expand_as(weight)


class Block(Scheme):
    """Block-based: rows in blocks of block_size[0]; whole columns pruned within each block."""

    name = "block"

    def groups(self, weight, cfg, tied_out=False):
        co, ci = weight.shape[:2]
        rb = torch.arange(co).div(cfg.block_size[0], rounding_mode="floor").view(co, 1, 1, 1)
        return rb * ci + column_ids(weight)

    def mask(self, weight, rate, cfg, tied_out=False):
        co, ci = weight.shape[:2]
        r = cfg.block_size[0]
        m = torch.zeros(co, ci)
        n_cols = n_keep(ci, rate)
        sq = weight.detach().pow(2).sum(dim=(2, 3))
        for start in range(0, co, r):
            norms = sq[start:start + r].sum(0)
            m[start:start + r, norms.argsort(descending=True)[:n_cols]] = 1
        return m[:, :, None, None].expand_as(weight).clone()


def pattern_library(weight: torch.Tensor, cfg: PruningConfig) -> list[tuple[int, ...]]:
    """The ``n_patterns`` tap sets (of ``pattern_taps`` of 9) most often the top taps of a kernel."""
    co, ci, kh, kw = weight.shape
    taps = kh * kw
    t = min(cfg.pattern_taps, taps)
    top = weight.detach().abs().flatten(2).topk(t, dim=2).indices.sort(dim=2).values.flatten(0, 1)
    counts = Counter(tuple(x) for x in top.tolist())
    lib = [p for p, _ in counts.most_common(cfg.n_patterns)]
    # pad from the patterns nearest the centre so the library is never smaller than asked
    centre = sorted(range(taps), key=lambda i: abs(i // kw - kh // 2) + abs(i % kw - kw // 2))
    for p in itertools.combinations(sorted(centre[:t + 1]), t):
        if len(lib) >= cfg.n_patterns:
            break
        if p not in lib:
            lib.append(p)
    return lib


class Pattern(Scheme):
    """Pattern-based: each kxk kernel keeps one library pattern, plus connectivity pruning of kernels."""

    name = "pattern"

    def groups(self, weight, cfg, tied_out=False):
        co, ci = weight.shape[:2]
        return torch.arange(co * ci).view(co, ci, 1, 1).expand_as(weight).clone()

    def mask(self, weight, rate, cfg, tied_out=False):
        co, ci, kh, kw = weight.shape
        w = weight.detach().abs().flatten(2)           # (co, ci, taps)
        taps = kh * kw
        m = torch.ones_like(w)
        if taps > 1:
            lib = pattern_library(weight, cfg)
            pm = torch.zeros(len(lib), taps)
            for i, p in enumerate(lib):
                pm[i, list(p)] = 1
            best = (w.pow(2) @ pm.t()).argmax(-1)       # pattern keeping the most energy per kernel
            m = pm[best]
        kept_frac = m.sum(-1).mean().item() / taps
        # connectivity: drop whole kernels until `rate` of the weights are gone (patterns alone may exceed it)
        conn = max(0.0, 1.0 - (1.0 - rate) / kept_frac) if kept_frac > 0 else 0.0
        n_drop = co * ci - n_keep(co * ci, conn) if conn > 0 else 0
        if n_drop > 0:
            energy = (w.pow(2) * m).sum(-1).flatten()
            drop = energy.argsort()[:n_drop]
            mf = m.view(co * ci, taps)
            mf[drop] = 0
        return m.view_as(weight)

    def bias_mask(self, wmask):
        return torch.ones(wmask.shape[0], dtype=wmask.dtype)


SCHEMES: dict[str, Scheme] = {s.name: s for s in (NoPruning(), Unstructured(), Filter(), Block(), Pattern())}

"""Cost counts of (compact) models: MACs of the work a model really does."""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from srnas.supernet.config import PruningConfig

from .compaction import compact
from .masks import Plan, apply_plan


def count_macs(model: nn.Module, hw: tuple[int, int]) -> float:
    """MACs of every conv at LR size ``hw``, counting only non-zero weights."""
    total = 0.0
    hooks = []

    def hook(m, inp, out):
        nonlocal total
        total += float((m.weight != 0).sum()) * out.shape[2] * out.shape[3]

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, *hw))
    for h in hooks:
        h.remove()
    return total


def mac_latency_fn(net: nn.Module, cfg: PruningConfig, dense_ms: float) -> Callable[[Plan], float]:
    """A stand-in latency model when no LUT exists: dense_ms scaled by the plan's MAC share.

    Coarse (MACs are not latency); callers should check the result by measurement.
    """
    base = count_macs(net, (16, 16))

    def fn(plan: Plan) -> float:
        m = copy.deepcopy(net)
        return dense_ms * count_macs(compact(m, apply_plan(m, plan, cfg)), (16, 16)) / base

    return fn

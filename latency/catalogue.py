"""The op catalogue: every op a candidate network can contain, read off real networks.

A block type is walked once into a *template* (its convs, ReLUs and residual add in
execution order); the LUT build measures each template op at every scheme/rate and at
every channel width filter or block pruning can leave, and the latency model walks the
same templates to add up a candidate. Both sides therefore agree on what an op is.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from supernet.blocks import ResidualBlock, fuse_weight_norm
from supernet.config import ModelConfig
from supernet.model import build_path_net, make_skip
from supernet.widths import DENSE, WidthRule, normalise, zero_options


@dataclass(frozen=True)
class Step:
    """One op of a block template: a conv (with its plan-local name), a ReLU or the residual add."""
    op: str            # "conv" | "relu" | "resadd"
    cin: int = 0
    cout: int = 0
    k: int = 0
    name: str = ""     # for convs: name relative to the block, e.g. "body.0"


@dataclass(frozen=True)
class OpKey:
    """The key of a LUT row (device and backend live in the fingerprint)."""
    op: str
    cin: int
    cout: int
    k: int
    h: int
    w: int
    scheme: str = "none"
    rate: float = 0.0


def block_templates(model_cfg: ModelConfig, scale: int) -> dict[str, list[Step]]:
    """Each configured block type walked into its op sequence (from a real built block)."""
    net = fuse_weight_norm(build_path_net(model_cfg, scale, tuple(model_cfg.blocks)))
    out: dict[str, list[Step]] = {}
    for name, blk in zip(model_cfg.blocks, net.body):
        steps, ch = [], model_cfg.n_feats
        for i, m in enumerate(blk.body):
            if isinstance(m, nn.Conv2d):
                steps.append(Step("conv", m.in_channels, m.out_channels, m.kernel_size[0], f"body.{i}"))
                ch = m.out_channels
            elif isinstance(m, nn.ReLU):
                steps.append(Step("relu", ch, ch))
            else:
                raise TypeError(f"block {name}: the latency catalogue does not know op {type(m).__name__}")
        steps.append(Step("resadd", model_cfg.n_feats, model_cfg.n_feats))
        out[name] = steps
    return out


def fixed_keys(model_cfg: ModelConfig, scale: int, h: int, w: int) -> list[OpKey]:
    """The ops every candidate has: head, tail, global skip, global add, PixelShuffle."""
    n, c_up = model_cfg.n_feats, 3 * scale * scale
    return [OpKey("conv", 3, n, 3, h, w), OpKey("conv", n, c_up, 3, h, w),
            OpKey(f"skip_{model_cfg.skip}", 3, c_up, 5 if model_cfg.skip == "bicubic_conv" else 0, h, w),
            OpKey("add", c_up, c_up, 0, h, w), OpKey("shuffle", c_up, 3, scale, h, w)]


class ResAdd(nn.Module):
    """The residual add exactly as ResidualBlock computes it: x + y * res_scale."""

    def __init__(self, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y * self.res_scale


class Add(nn.Module):
    """The global add of tail output and skip."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


def conv_probe(cin: int, cout: int, k: int, scheme: str = "none", rate: float = 0.0, seed: int = 0) -> nn.Conv2d:
    """A conv as compaction runs one: plain, random weights; a zeros scheme leaves ``rate`` of them zero.

    Filter and block pruning run as a dense conv at the narrower widths they leave (their
    rows are dense rows at those widths); unstructured and pattern zeros run as dense, so
    where they fall does not change the time.
    """
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / (cin * k * k) ** 0.5)
        conv.bias.copy_(torch.randn(cout, generator=g) * 0.01)
        if normalise(scheme, rate) != DENSE:
            conv.weight.mul_((torch.rand(conv.weight.shape, generator=g) >= rate).float())
    return conv.eval()


def op_module(key: OpKey, model_cfg: ModelConfig, scale: int) -> tuple[nn.Module, list[tuple[int, ...]]]:
    """The module that executes ``key`` and the shapes of its inputs."""
    hw = (key.h, key.w)
    if key.op == "conv":
        return conv_probe(key.cin, key.cout, key.k, key.scheme, key.rate), [(1, key.cin, *hw)]
    if key.op == "relu":
        return nn.ReLU(inplace=True), [(1, key.cin, *hw)]
    if key.op == "resadd":
        return ResAdd(model_cfg.res_scale), [(1, key.cin, *hw)] * 2
    if key.op == "add":
        return Add(), [(1, key.cin, *hw)] * 2
    if key.op == "shuffle":
        return nn.PixelShuffle(key.k), [(1, key.cin, *hw)]
    if key.op.startswith("skip_"):
        return make_skip(key.op[len("skip_"):], scale), [(1, 3, *hw)]
    if key.op.startswith("block_"):
        block = block_at_widths(key.op[len("block_"):], (key.cin, key.cout), model_cfg, scale)
        return block, [(1, model_cfg.n_feats, *hw)]
    raise ValueError(f"no executor for op {key.op!r}")


def block_at_widths(name: str, inner: Sequence[int], model_cfg: ModelConfig, scale: int) -> ResidualBlock:
    """A block of type ``name`` whose convs run dense at the given inner widths, as compaction leaves it."""
    steps = block_templates(model_cfg, scale)[name]
    convs = [st for st in steps if st.op == "conv"]
    chans = [convs[0].cin, *list(inner)[:len(convs) - 1], convs[-1].cout]
    body: list[nn.Module] = []
    for st in steps:
        if st.op == "conv":
            j = sum(isinstance(m, nn.Conv2d) for m in body)
            body.append(conv_probe(chans[j], chans[j + 1], st.k, seed=j))
        elif st.op == "relu":
            body.append(nn.ReLU(inplace=True))
    return ResidualBlock(nn.Sequential(*body), model_cfg.res_scale)


def block_keys(steps: list[Step], h: int, w: int, schemes: list[str], rates: list[float],
               rule: WidthRule = WidthRule()) -> list[OpKey]:
    """The LUT rows a block template needs, op by op.

    `filter` and `block` run as dense convs over fewer channels: every width any grid
    plan leaves is measured dense, as the full grid of input x output widths per conv so
    that off-grid rates interpolate bilinearly. The other schemes run dense-with-zeros
    at their layer's full width (transferred to narrower widths as a ratio); ReLUs are
    measured at each width.
    """
    convs = [st for st in steps if st.op == "conv"]
    sets = rule.sets(convs, schemes, rates)
    others = zero_options(schemes, rates)
    keys: list[OpKey] = []
    j = -1
    for st in steps:
        if st.op == "conv":
            j += 1
            keys += [OpKey("conv", a, b, st.k, h, w) for a in sorted(sets[j][0]) for b in sorted(sets[j][1])]
            keys += [OpKey("conv", st.cin, st.cout, st.k, h, w, s, r) for s, r in others]
        elif st.op == "relu":
            keys += [OpKey("relu", c, c, 0, h, w) for c in sorted(sets[j][1] if j >= 0 else {st.cin})]
        else:
            keys.append(OpKey("resadd", st.cin, st.cout, 0, h, w))
    return keys


def whole_block_key(name: str, inner: Sequence[int], h: int, w: int) -> OpKey:
    """The row of a whole block by its inner widths (the channels between its convs).

    cin / cout hold the first and last inner width. A block timed as one piece keeps
    what a runtime fuses inside it (ONNX Runtime fuses conv + ReLU and keeps its blocked
    layout from conv to conv), which op rows miss.
    """
    if not 1 <= len(inner) <= 2:
        raise ValueError(f"block {name}: whole-block LUT rows need 2 or 3 convs, it has {len(inner) + 1}; "
                         f"use latency.granularity: op")
    return OpKey(f"block_{name}", inner[0], inner[-1], 0, h, w)


def whole_block_keys(name: str, steps: list[Step], h: int, w: int, schemes: list[str], rates: list[float],
                     rule: WidthRule = WidthRule()) -> list[OpKey]:
    """One block type's whole-block rows: the full grid of its inner widths (bilinear off it).

    Unstructured and pattern zeros run dense, so only filter / block widths make rows.
    """
    convs = [st for st in steps if st.op == "conv"]
    inner = [sorted(outs) for _, outs in rule.sets(convs, schemes, rates)[:-1]]
    return [whole_block_key(name, ws, h, w) for ws in itertools.product(*inner)]


def catalogue(model_cfg: ModelConfig, scale: int, lr_hw: tuple[int, int], schemes: list[str],
              rates: list[float], rule: WidthRule = WidthRule(), granularity: str = "op") -> list[OpKey]:
    """All distinct LUT keys the search space of ``model_cfg`` can need at ``lr_hw``.

    ``granularity`` "op" times every conv, ReLU and add of a block on its own; "block"
    times each block type whole at every width pruning can leave it.
    """
    h, w = lr_hw
    keys = fixed_keys(model_cfg, scale, h, w)
    for name, steps in block_templates(model_cfg, scale).items():
        if granularity == "block":
            keys += whole_block_keys(name, steps, h, w, schemes, rates, rule)
        else:
            keys += block_keys(steps, h, w, schemes, rates, rule)
    seen, out = set(), []
    for k in keys:
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out

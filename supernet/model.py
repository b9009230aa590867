"""The weight-sharing supernet (N cells x K blocks) and the standalone SR network of one path."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .blocks import is_depthwise, make_block, wn_conv
from .config import ModelConfig
from .imaging import imresize
from .widths import CellSpec, Chain, ConvSpec

Path = tuple[str, ...]


def bicubic_phase_kernels(scale: int, k: int = 5) -> torch.Tensor:
    """(scale^2, k, k) kernels whose PixelShuffle reproduces bicubic upscaling.

    Read off the reference resize: upscaling a unit impulse at LR position c gives, at
    HR position s*i + p, the weight of LR tap c - i for output phase p.
    """
    n = 2 * k + 1
    c = n // 2
    impulse = torch.zeros(1, 1, n, n)
    impulse[0, 0, c, c] = 1.0
    up = imresize(impulse, (n * scale, n * scale))[0, 0]
    w = torch.zeros(scale * scale, k, k)
    r = k // 2
    for p in range(scale):
        for q in range(scale):
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    w[p * scale + q, dy + r, dx + r] = up[scale * (c - dy) + p, scale * (c - dx) + q]
    return w


def block_kwargs(cfg: ModelConfig) -> dict:
    """The block constructor arguments a model config fixes."""
    return dict(expansion_a=cfg.expansion_a, expansion_b=cfg.expansion_b, low_rank=cfg.low_rank,
                expansion_dws=cfg.expansion_dws, res_scale=cfg.res_scale, rep=cfg.rep)


class BicubicSkip(nn.Module):
    """Global skip: a 5x5 (or 3x3) conv to 3*s^2 channels, initialised to bicubic upscaling (pre-shuffle).

    WDSR's learnable skip, started where the literature's baseline is, so every path
    begins at bicubic quality and the body only learns the residual. At 3x3 each phase
    loses bicubic's outermost tap (x2: -0.023) and is rescaled to sum to one.
    """

    def __init__(self, scale: int, k: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, k, padding=k // 2, padding_mode="replicate")
        w = bicubic_phase_kernels(scale, k)
        w = w / w.sum(dim=(1, 2), keepdim=True)
        with torch.no_grad():
            self.conv.weight.zero_()
            for ch in range(3):
                self.conv.weight[ch * scale * scale:(ch + 1) * scale * scale, ch] = w
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class AnchorSkip(nn.Module):
    """ABPN's anchor: the input repeated s^2 times (nearest upscaling after the shuffle)."""

    def __init__(self, scale: int):
        super().__init__()
        self.reps = scale * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.repeat_interleave(x, self.reps, dim=1)


class ConvSkip(nn.Module):
    """Global skip: a 3x3 conv to 3*s^2 channels, initialised to the anchor (nearest upscaling, pre-shuffle)."""

    def __init__(self, scale: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            for ch in range(3):
                self.conv.weight[ch * scale * scale:(ch + 1) * scale * scale, ch, 1, 1] = 1.0
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


SKIP_KERNEL = {"bicubic_conv": 5, "bicubic_conv3": 3, "conv": 3, "anchor": 0}   # ModelConfig.skip -> conv size


def make_skip(kind: str, scale: int) -> nn.Module:
    """The global skip module named by ModelConfig.skip."""
    if kind.startswith("bicubic_conv"):
        return BicubicSkip(scale, SKIP_KERNEL[kind])
    return {"conv": ConvSkip, "anchor": AnchorSkip}[kind](scale)


def make_head(cfg: ModelConfig) -> nn.Module:
    """The head: a 3x3 conv from RGB to n_feats, with a ReLU after it when head_act is relu (ABPN)."""
    conv = wn_conv(3, cfg.n_feats, 3)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if cfg.head_act == "relu" else conv


def make_tail(cfg: ModelConfig, scale: int) -> nn.Module:
    """The tail to 3*s^2 channels: one 3x3 conv, or ABPN's conv + ReLU + conv."""
    c = 3 * scale * scale
    if cfg.tail == "abpn":
        return nn.Sequential(wn_conv(cfg.n_feats, c, 3), nn.ReLU(inplace=True), wn_conv(c, c, 3))
    return wn_conv(cfg.n_feats, c, 3)


def convs_of(module: nn.Module, prefix: str) -> list[tuple[str, nn.Conv2d]]:
    """The convs of a head or tail (a conv, or a Sequential of convs and activations) by module name."""
    if isinstance(module, nn.Conv2d):
        return [(prefix, module)]
    return [(f"{prefix}.{i}", m) for i, m in enumerate(module) if isinstance(m, nn.Conv2d)]


def conv_spec(name: str, conv: nn.Conv2d) -> ConvSpec:
    """What the width rule needs of a conv."""
    return ConvSpec(name, conv.in_channels, conv.out_channels, conv.kernel_size[0], is_depthwise(conv))


class SRNet(nn.Module):
    """A plain SR network: head, a stack of blocks, tail + skip, PixelShuffle, optionally clamped to [0, 1].

    This is what one supernet path extracts to, what pruning rewrites and what export
    saves; it depends on nothing in this package at run time.
    """

    def __init__(self, head: nn.Module, body: nn.Sequential, tail: nn.Module, skip: nn.Module, scale: int,
                 clamp: bool = False):
        super().__init__()
        self.head, self.body, self.tail, self.skip = head, body, tail, skip
        self.shuffle = nn.PixelShuffle(scale)
        self.scale, self.clamp = scale, clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.tail(self.body(self.head(x))) + self.skip(x))
        return y.clamp(0.0, 1.0) if self.clamp else y

    def prunable(self) -> list[tuple[str, nn.Conv2d]]:
        """The prunable layers (every conv inside the blocks), in execution order, by module name.

        The names ('body.<cell>.body.<i>') are the keys of a pruning plan everywhere.
        """
        return [(f"body.{i}.{name}", conv) for i, blk in enumerate(self.body) for name, conv in blk.convs()]

    def chain(self) -> Chain:
        """Every conv of head, blocks and tail in execution order, with the edges residual adds tie."""
        cells = [CellSpec(tuple(conv_spec(n, c) for n, c in blk.convs()), blk.residual) for blk in self.body]
        return Chain.of([conv_spec(n, c) for n, c in convs_of(self.head, "head")], cells,
                        [conv_spec(n, c) for n, c in convs_of(self.tail, "tail")])


class SuperNet(nn.Module):
    """N cells, each holding every configured block type with its own weights."""

    def __init__(self, cfg: ModelConfig, scale: int):
        super().__init__()
        self.cfg, self.scale = cfg, scale
        self.block_names = list(cfg.blocks)
        n = cfg.n_feats
        kw = block_kwargs(cfg)
        self.head = make_head(cfg)
        self.cells = nn.ModuleList(
            nn.ModuleDict({b: make_block(b, n, **kw) for b in self.block_names}) for _ in range(cfg.n_cells))
        self.tail = make_tail(cfg, scale)
        last = convs_of(self.tail, "tail")[-1][1]
        with torch.no_grad():  # start every path at exactly the skip's output (bicubic, or the anchor)
            last.parametrizations.weight.original0.zero_()
            last.bias.zero_()
        self.skip = make_skip(cfg.skip, scale)
        self.shuffle = nn.PixelShuffle(scale)

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def check_path(self, path: Sequence[str]) -> Path:
        """Validate a path (one block name per cell) and return it as a tuple."""
        path = tuple(path)
        if len(path) != self.n_cells:
            raise ValueError(f"path {path} has {len(path)} blocks; this supernet has {self.n_cells} cells")
        bad = [b for b in path if b not in self.block_names]
        if bad:
            raise ValueError(f"path {path}: unknown block(s) {bad}; choose from {self.block_names}")
        return path

    def forward(self, x: torch.Tensor, path: Sequence[str]) -> torch.Tensor:
        h = self.head(x)
        for cell, b in zip(self.cells, path):
            h = cell[b](h)
        y = self.shuffle(self.tail(h) + self.skip(x))
        return y.clamp(0.0, 1.0) if self.cfg.clamp else y

    def extract(self, path: Sequence[str]) -> SRNet:
        """A standalone SRNet of one path, with copies of the inherited weights.

        Built fresh and loaded by key rather than deep-copied: copies of a weight-normed
        conv share torch's generated parametrized class, so fusing one copy would break
        the supernet and every other copy.
        """
        path = self.check_path(path)
        net = build_path_net(self.cfg, self.scale, path)
        prefixes = {f"cells.{i}.{b}.": f"body.{i}." for i, b in enumerate(path)}
        state = {}
        for key, value in self.state_dict().items():
            if not key.startswith("cells."):
                state[key] = value.clone()
                continue
            for src, dst in prefixes.items():
                if key.startswith(src):
                    state[dst + key[len(src):]] = value.clone()
        net.load_state_dict(state)
        return net.to(next(self.parameters()).device)

    def random_path(self, rng: np.random.Generator, probs: Sequence[float] | None = None) -> Path:
        """One block per cell, drawn independently (uniform unless ``probs`` is given)."""
        p = None if not probs else np.asarray(probs, dtype=float) / float(np.sum(probs))
        return tuple(self.block_names[i] for i in rng.choice(len(self.block_names), size=self.n_cells, p=p))


def parse_path(text: str, block_names: Sequence[str]) -> Path:
    """Parse 'wdsr_a,wdsr_b,...', 'a,b,...' or '0,1,...' into block names."""
    out = []
    for tok in (t.strip() for t in text.split(",") if t.strip()):
        matches = [b for b in block_names if tok == b or tok.lower() == b.split("_")[-1].lower()]
        if tok.isdigit() and int(tok) < len(block_names):
            matches = [block_names[int(tok)]]
        if len(matches) != 1:
            raise ValueError(f"cannot read {tok!r} in path {text!r}: use block names {list(block_names)}, "
                             f"their last letters, or indices")
        out.append(matches[0])
    return tuple(out)


def build_path_net(cfg: ModelConfig, scale: int, path: Sequence[str]) -> SRNet:
    """A freshly initialised SRNet of one path (layer shapes without a trained supernet)."""
    kw = block_kwargs(cfg)
    body = nn.Sequential(*(make_block(b, cfg.n_feats, **kw) for b in path))
    return SRNet(make_head(cfg), body, make_tail(cfg, scale), make_skip(cfg.skip, scale), scale, cfg.clamp)


def cell_specs(cfg: ModelConfig) -> dict[str, CellSpec]:
    """Each configured block type as the width rule sees it (walked from a real block)."""
    kw = block_kwargs(cfg)
    out = {}
    for b in cfg.blocks:
        blk = make_block(b, cfg.n_feats, **kw)
        out[b] = CellSpec(tuple(conv_spec(n, c) for n, c in blk.convs()), blk.residual)
    return out


def path_chain(cfg: ModelConfig, scale: int, path: Sequence[str],
               cells: dict[str, CellSpec] | None = None) -> Chain:
    """The conv chain of one path without building it (``cells``: cell_specs(cfg), to reuse)."""
    cells = cells if cells is not None else cell_specs(cfg)
    c = 3 * scale * scale
    head = [ConvSpec("head.0" if cfg.head_act == "relu" else "head", 3, cfg.n_feats, 3)]
    tail = ([ConvSpec("tail.0", cfg.n_feats, c, 3), ConvSpec("tail.2", c, c, 3)] if cfg.tail == "abpn"
            else [ConvSpec("tail", cfg.n_feats, c, 3)])
    return Chain.of(head, [cells[b] for b in path], tail)

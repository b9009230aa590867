"""The elastic supernet: one set of weights at the largest depth and width, every smaller network a slice of it.

A path here is a width w and blocks b_1..b_d: cells 1..d, every conv of head, cells and tail taking the first
channels of weights allocated at the largest width (OFA / BigNAS slicing; the residual trunk carries one width,
so one width per path). Every tensor of a path net (weight-norm direction and gain, bias, training-time
branches) is the leading slice of the supernet's tensor of the same name, so the supernet's forward of a path
and the standalone net ``extract`` returns compute the same function, and a gradient through a small path
updates the same leading channels the large paths use.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .config import ModelConfig, at_size, depths, widths
from .errors import UserError
from .model import Path, SRNet, SuperNet, build_path_net, cell_specs


class Arch(NamedTuple):
    """One network of an elastic space: its blocks (one per cell, depth = len) and its width."""
    path: Path
    width: int


def arch_name(arch: Arch) -> str:
    """A readable token, e.g. 'w16:plain-wdsr_b'."""
    return f"w{arch.width}:" + "-".join(arch.path)


def leading(t: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The leading slice of ``t`` with ``shape`` (a view: gradients reach ``t``)."""
    if tuple(t.shape) == tuple(shape):
        return t
    return t[tuple(slice(0, n) for n in shape)]


def conv_macs(convs) -> float:
    """Multiply-accumulates per output pixel of a sequence of ConvSpecs (a depthwise conv: one input each)."""
    return float(sum(c.cout * (1 if c.depthwise else c.cin) * c.k * c.k for c in convs))


class ElasticSuperNet(SuperNet):
    """A SuperNet of the largest depth and width whose forward and extract take any (path, width) of the space."""

    def __init__(self, cfg: ModelConfig, scale: int):
        self.depths, self.widths = depths(cfg), widths(cfg)
        super().__init__(at_size(cfg, max(self.depths), max(self.widths)), scale)
        self.cfg = cfg     # saved with the weights: load_supernet rebuilds the elastic net
        self._skeletons: dict[int, tuple[dict, dict]] = {}
        cost = {b: conv_macs(spec.convs) for b, spec in cell_specs(at_size(cfg, 1, max(self.widths))).items()}
        self.costliest = max(self.block_names, key=lambda b: cost[b])
        self.cheapest = min(self.block_names, key=lambda b: cost[b])
        self.max_macs_px = math.inf   # set_budget: the members training samples
        self._macs: dict[tuple[str, int], float] = {}

    # ---- the space -----------------------------------------------------------------------------------
    def check_arch(self, path: Sequence[str], width: int) -> Arch:
        """Validate an elastic path (a listed depth, known blocks) and width; return it as an Arch."""
        path = tuple(path)
        if len(path) not in self.depths:
            raise ValueError(f"path {path} has {len(path)} cells; this elastic supernet allows {self.depths}")
        if int(width) not in self.widths:
            raise ValueError(f"width {width} is not one of this elastic supernet's widths {self.widths}")
        bad = [b for b in path if b not in self.block_names]
        if bad:
            raise ValueError(f"path {path}: unknown block(s) {bad}; choose from {self.block_names}")
        return Arch(path, int(width))

    def macs_per_px(self, arch: Arch) -> float:
        """Multiply-accumulates per LR pixel of a member (head, cells and tail; the skip is every member's)."""
        for part in {"ends", *arch.path}:
            if (part, arch.width) not in self._macs:
                net = build_path_net(at_size(self.cfg, 1, arch.width), self.scale, [self.block_names[0]])
                chain = net.chain()
                ends = [c for c in chain.convs if not c.name.startswith("body.")]
                specs = {"ends": ends, **{b: s.convs for b, s in cell_specs(at_size(self.cfg, 1, arch.width)).items()}}
                for name, convs in specs.items():
                    self._macs[(name, arch.width)] = conv_macs(convs)
        return self._macs[("ends", arch.width)] + sum(self._macs[(b, arch.width)] for b in arch.path)

    def set_budget(self, max_macs_px: float) -> None:
        """Train only members of at most ``max_macs_px`` MACs per LR pixel (the largest target's size, roughly):
        the sandwich's largest becomes the costliest member within it, random members are drawn within it."""
        if self.macs_per_px(self.smallest()) > max_macs_px:
            raise UserError(f"train.max_gmacs admits no member: the smallest ({arch_name(self.smallest())}) needs "
                            f"{self.macs_per_px(self.smallest()):.0f} MACs per LR pixel, the budget allows "
                            f"{max_macs_px:.0f}; raise train.max_gmacs (0 = no limit)")
        self.max_macs_px = float(max_macs_px)

    def within(self, arch: Arch) -> bool:
        """Whether a member is inside the training budget (set_budget)."""
        return self.macs_per_px(arch) <= self.max_macs_px

    def largest(self) -> Arch:
        """The teacher of the sandwich rule: the costliest block in every cell at the depth and width that cost
        most within the training budget (with none: every cell at the largest width)."""
        homogeneous = [Arch((self.costliest,) * d, w) for d in self.depths for w in self.widths]
        return max((a for a in homogeneous if self.within(a)), key=lambda a: (self.macs_per_px(a), len(a.path)))

    def smallest(self) -> Arch:
        """The fewest cells at the smallest width, the cheapest block."""
        return Arch((self.cheapest,) * min(self.depths), min(self.widths))

    def random_arch(self, rng: np.random.Generator, probs: Sequence[float] | None = None) -> Arch:
        """A depth and a width drawn uniformly from the lists, then one block per cell (``probs``, else uniform);
        drawn again while outside the training budget (the smallest member when nothing drawn fits)."""
        p = None if not probs else np.asarray(probs, dtype=float) / float(np.sum(probs))
        for _ in range(1000):
            d = int(self.depths[int(rng.integers(len(self.depths)))])
            w = int(self.widths[int(rng.integers(len(self.widths)))])
            arch = Arch(tuple(self.block_names[i] for i in rng.choice(len(self.block_names), size=d, p=p)), w)
            if self.within(arch):
                return arch
        return self.smallest()

    def sandwich(self, rng: np.random.Generator, n_random: int = 2,
                 probs: Sequence[float] | None = None) -> list[Arch]:
        """The paths of one training step (BigNAS's sandwich rule): largest, smallest, then ``n_random`` random."""
        return [self.largest(), self.smallest()] + [self.random_arch(rng, probs) for _ in range(n_random)]

    # ---- the sliced forward and extraction ------------------------------------------------------------
    def _skeleton(self, width: int) -> tuple[dict, dict]:
        """Modules of one width (head, tail, one block per type) to run with sliced tensors, and their shapes.

        Kept out of the module tree: they own no weights of the supernet.
        """
        if width not in self._skeletons:
            net = build_path_net(at_size(self.cfg, len(self.block_names), width), self.scale, self.block_names)
            mods = {"head": net.head, "tail": net.tail, **dict(zip(self.block_names, net.body))}
            shapes = {name: {k: tuple(v.shape) for k, v in m.state_dict().items()} for name, m in mods.items()}
            self._skeletons[width] = (mods, shapes)
        return self._skeletons[width]

    def _run(self, tensors: dict, mod: nn.Module, shapes: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
        return functional_call(mod, {k: leading(tensors[prefix + k], s) for k, s in shapes.items()}, (x,))

    def forward(self, x: torch.Tensor, path: Sequence[str], width: int | None = None) -> torch.Tensor:
        """The output of path ``path`` at ``width`` (default: the largest) through the sliced weights."""
        path, width = self.check_arch(path, max(self.widths) if width is None else width)
        mods, shapes = self._skeleton(width)
        tensors = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        h = self._run(tensors, mods["head"], shapes["head"], "head.", x)
        for i, b in enumerate(path):
            h = self._run(tensors, mods[b], shapes[b], f"cells.{i}.{b}.", h)
        y = self.shuffle(self._run(tensors, mods["tail"], shapes["tail"], "tail.", h) + self.skip(x))
        return y.clamp(0.0, 1.0) if self.cfg.clamp else y

    def extract(self, path: Sequence[str], width: int | None = None) -> SRNet:
        """A standalone SRNet of exactly ``len(path)`` cells at ``width``, holding copies of the sliced weights."""
        path, width = self.check_arch(path, max(self.widths) if width is None else width)
        net = build_path_net(self.path_config(len(path), width), self.scale, path)
        source = self.state_dict()
        renames = {f"body.{i}.": f"cells.{i}.{b}." for i, b in enumerate(path)}
        state = {}
        for key, value in net.state_dict().items():
            src = next((s + key[len(d):] for d, s in renames.items() if key.startswith(d)), key)
            state[key] = leading(source[src], value.shape).clone()
        net.load_state_dict(state)
        return net.to(next(self.parameters()).device)

    def path_config(self, n_cells: int, width: int) -> ModelConfig:
        """The model section of one member: a fixed-size network (pruning, QAT and export see only it)."""
        return at_size(self.cfg, n_cells, width)

    def random_path(self, rng: np.random.Generator, probs: Sequence[float] | None = None) -> Path:
        """A random path of the largest width (use random_arch for the width too)."""
        return self.random_arch(rng, probs).path


def is_elastic(net: nn.Module) -> bool:
    """Whether a supernet takes a width with its paths."""
    return isinstance(net, ElasticSuperNet)


def build_supernet(cfg: ModelConfig, scale: int) -> SuperNet:
    """Construct a SuperNet from the model section of a config (an ElasticSuperNet where model.elastic)."""
    return ElasticSuperNet(cfg, scale) if cfg.elastic else SuperNet(cfg, scale)

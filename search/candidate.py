"""Candidates (path + per-layer pruning scheme + rate): the search space, encoding and YAML/JSON form."""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from srnas.supernet.config import ModelConfig, at_size, depths, widths
from srnas.supernet.errors import UserError
from srnas.supernet.model import SKIP_KERNEL, cell_specs, path_chain
from srnas.supernet.widths import DENSE, WIDTH_SCHEMES, ConvSpec, WidthRule, kept, normalise
from srnas.supernet.writes import atomic_write_text

Plan = dict[str, tuple[str, float]]
Slot = ConvSpec   # one prunable conv of a block type: its name inside the block ('body.0') and its shape


@dataclass(frozen=True)
class Candidate:
    """A path (one block per cell), a scheme per prunable layer of that path, and one rate; of an elastic space
    also its width (its depth is the path's length).

    ``schemes[i]`` lists the schemes of cell i's layers in the block's slot order. The
    rate is the stage-2 choice: one grid rate for every layer whose scheme is not "none",
    the smallest that meets the constraints (see ``Constraints.assign``).
    """

    path: tuple[str, ...]
    schemes: tuple[tuple[str, ...], ...]
    rate: float = 0.0
    width: int = 0          # an elastic space's member width; 0: the one width of a fixed-size space

    def key(self) -> str:
        """Identity for de-duplication: width, path and schemes (the rate follows from them)."""
        body = "|".join(f"{b}:{','.join(s)}" for b, s in zip(self.path, self.schemes))
        return f"w{self.width}/{body}" if self.width else body

    def with_rate(self, rate: float) -> "Candidate":
        """The same architecture and schemes at another rate."""
        return dataclasses.replace(self, rate=float(rate))

    def dense(self) -> "Candidate":
        """The same network unpruned (every scheme none, rate 0)."""
        return dataclasses.replace(self, schemes=tuple(("none",) * len(s) for s in self.schemes), rate=0.0)

    def scheme_map(self, space: "Space") -> dict[str, str]:
        """Prunable layer name -> scheme."""
        return {name: s for name, s in zip(space.layer_names(self.path), (x for c in self.schemes for x in c))}

    def plan(self, space: "Space") -> Plan:
        """The pruning plan of the cross-package contract: layer -> (scheme, rate)."""
        return {name: (s, self.rate if s != "none" else 0.0) for name, s in self.scheme_map(space).items()}

    def to_dict(self) -> dict:
        """Plain form for YAML/JSON (a width only where the space is elastic)."""
        out = {"path": list(self.path), "schemes": [list(s) for s in self.schemes], "rate": self.rate}
        return {**out, "width": self.width} if self.width else out

    @staticmethod
    def from_dict(d: dict) -> "Candidate":
        """Inverse of to_dict."""
        try:
            return Candidate(tuple(d["path"]), tuple(tuple(s) for s in d["schemes"]), float(d.get("rate", 0.0)),
                             int(d.get("width", 0)))
        except (KeyError, TypeError) as e:
            raise UserError(f"not a candidate mapping ({e}); expected keys path, schemes, rate") from None

    def to_json(self) -> str:
        """One-line JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> "Candidate":
        """Inverse of to_json."""
        return Candidate.from_dict(json.loads(text))


def save_candidate(cand: Candidate, space: "Space", path: str | Path, extra: dict | None = None) -> None:
    """Write a candidate (with its plan spelled out per layer) as YAML for people."""
    doc = {**cand.to_dict(), "plan": {k: list(v) for k, v in cand.plan(space).items()}, **(extra or {})}
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))


def load_candidate(path: str | Path) -> Candidate:
    """Read a candidate written by save_candidate."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"candidate file {p} does not exist")
    return Candidate.from_dict(yaml.safe_load(p.read_text()))


class Space:
    """The search space: N cells x K blocks, and the schemes each block's layers may take; an elastic one
    (model.elastic) also each candidate's depth (1..N of its listed cell counts) and width."""

    def __init__(self, model_cfg: ModelConfig, schemes: Sequence[str], scale: int, rule: WidthRule = WidthRule()):
        self.model_cfg, self.scale, self.rule = model_cfg, scale, rule
        self.blocks = list(model_cfg.blocks)
        self.elastic = model_cfg.elastic
        self.depths, self.widths = (depths(model_cfg), widths(model_cfg)) if self.elastic else ([], [])
        self.n_cells = max(self.depths) if self.elastic else model_cfg.n_cells
        self.schemes = list(schemes) or ["none"]
        if "none" not in self.schemes:
            self.schemes = ["none"] + self.schemes
        self._cells = {w: cell_specs(at_size(model_cfg, 1, w)) for w in self.widths}
        self.cells = self._cells[max(self.widths)] if self.elastic else cell_specs(model_cfg)
        self.slots: dict[str, list[Slot]] = {b: list(self.cells[b].convs) for b in self.blocks}

    def model_of(self, cand: Candidate) -> ModelConfig:
        """The model section of a candidate's network: of an elastic space, the member of its depth and width."""
        return at_size(self.model_cfg, len(cand.path), cand.width) if self.elastic else self.model_cfg

    def allowed(self, slot: Slot) -> list[str]:
        """Schemes that make sense for a layer: pattern pruning needs kernels larger than 1x1, and block
        pruning of a depthwise conv (one column per row) removes nothing."""
        return [s for s in self.schemes
                if not (s == "pattern" and slot.k < 3) and not (s == "block" and slot.depthwise)]

    def layer_names(self, path: Sequence[str]) -> list[str]:
        """Prunable layer names of a path, in execution order (SRNet.prunable() names)."""
        return [f"body.{i}.{s.name}" for i, b in enumerate(path) for s in self.slots[b]]

    @property
    def dim(self) -> int:
        """Length of the binary encoding."""
        per_cell = len(self.blocks) + sum(len(v) for v in self.slots.values()) * len(self.schemes)
        return self.n_cells * per_cell + len(self.widths)

    def encode(self, cand: Candidate) -> np.ndarray:
        """Fixed-length binary vector: per cell a one-hot block, then a one-hot scheme per layer slot of
        every block type (zeros for the blocks not chosen); of an elastic space a one-hot width first, and
        zeros for the cells past the candidate's depth."""
        out = [1.0 if w == cand.width else 0.0 for w in self.widths]
        S = len(self.schemes)
        for b, sch in zip(cand.path, cand.schemes):
            out.extend(1.0 if x == b else 0.0 for x in self.blocks)
            for bb in self.blocks:
                for j, _ in enumerate(self.slots[bb]):
                    v = [0.0] * S
                    if bb == b:
                        v[self.schemes.index(sch[j])] = 1.0
                    out.extend(v)
        out.extend([0.0] * (self.dim - len(out)))
        return np.asarray(out, dtype=np.float32)

    def features(self, cand: Candidate) -> np.ndarray:
        """The predictor's input: share of cells per block, share of layers per scheme times the rate, the rate,
        and the kept MACs and parameters relative to the costliest dense homogeneous path.

        Costs generalise where a one-hot encoding cannot: with 32 evaluations, the quick config's predictor
        ranked 24 held-out candidates at Kendall tau 0.75 from these (mean of 3 seeds) and 0.34 from ``encode``.
        An elastic space adds the depth and width relative to the largest (block shares are of the path's cells).
        """
        counts = [sum(b == x for b in cand.path) / max(len(cand.path), 1) for x in self.blocks]
        layers = [s for c in cand.schemes for s in c]
        shares = [cand.rate * sum(s == x for s in layers) / max(len(layers), 1) for x in self.schemes]
        macs, params = self.cost(cand, (1, 1))   # MACs scale with the pixels: one pixel ranks the same
        ref_macs, ref_params = self._dense_ref
        size = [len(cand.path) / self.n_cells, cand.width / max(self.widths)] if self.elastic else []
        return np.asarray(counts + shares + [cand.rate, macs / ref_macs, params / ref_params] + size,
                          dtype=np.float32)

    @functools.cached_property
    def _dense_ref(self) -> tuple[float, float]:
        width = max(self.widths) if self.elastic else 0
        costs = [self.cost(Candidate((b,) * self.n_cells, tuple(("none",) * len(self.slots[b]) for _ in
                                                                 range(self.n_cells)), 0.0, width), (1, 1))
                 for b in self.blocks]
        return max(c[0] for c in costs), max(c[1] for c in costs)

    def check(self, cand: Candidate) -> Candidate:
        """Raise UserError if a candidate does not fit this space."""
        if self.elastic:
            if len(cand.path) not in self.depths or len(cand.schemes) != len(cand.path):
                raise UserError(f"candidate {cand.key()} has {len(cand.path)} cells; the elastic space allows "
                                f"{self.depths}")
            if cand.width not in self.widths:
                raise UserError(f"candidate {cand.key()} has width {cand.width}; the elastic space allows "
                                f"{self.widths}")
        elif cand.width or len(cand.path) != self.n_cells or len(cand.schemes) != self.n_cells:
            raise UserError(f"candidate {cand.key()} has {len(cand.path)} cells"
                            f"{f' and width {cand.width}' if cand.width else ''}; the space has {self.n_cells} "
                            f"cells of one width")
        for b, sch in zip(cand.path, cand.schemes):
            if b not in self.slots:
                raise UserError(f"candidate block {b!r} is not one of {self.blocks}")
            if len(sch) != len(self.slots[b]) or any(s not in self.allowed(sl) for s, sl in zip(sch, self.slots[b])):
                raise UserError(f"candidate schemes {list(sch)} do not fit block {b!r} "
                                f"({len(self.slots[b])} layers; schemes {self.schemes})")
        return cand

    def random(self, rng: np.random.Generator) -> Candidate:
        """A uniformly random path with random schemes (rate 0; the constraints choose it); of an elastic space
        a uniformly drawn depth and width first."""
        if self.elastic:
            depth = int(self.depths[int(rng.integers(len(self.depths)))])
            width = int(self.widths[int(rng.integers(len(self.widths)))])
            path = tuple(self.blocks[i] for i in rng.integers(len(self.blocks), size=depth))
            return Candidate(path, tuple(self._random_schemes(b, rng) for b in path), 0.0, width)
        path = tuple(self.blocks[i] for i in rng.integers(len(self.blocks), size=self.n_cells))
        return Candidate(path, tuple(self._random_schemes(b, rng) for b in path))

    def _random_schemes(self, block: str, rng: np.random.Generator) -> tuple[str, ...]:
        out = []
        for sl in self.slots[block]:
            allowed = self.allowed(sl)
            out.append(allowed[int(rng.integers(len(allowed)))])
        return tuple(out)

    def mutate(self, cand: Candidate, rng: np.random.Generator) -> Candidate:
        """Change one cell's block (its layers get random schemes) or one layer's scheme; of an elastic space
        also the depth (drop the last cells, or add cells of random blocks, to the next listed depth) or the
        width (one step of the list)."""
        path, schemes = list(cand.path), [list(s) for s in cand.schemes]
        n_layers = sum(len(s) for s in schemes)
        # pick among all single edits uniformly: (K-1) block changes per cell, one scheme change per layer,
        # one move per neighbouring depth and width
        n_block_moves = len(path) if len(self.blocks) > 1 else 0
        sizes = self._size_moves(cand) if self.elastic else []
        pick = rng.random() * (n_block_moves + n_layers + len(sizes))
        if pick >= n_block_moves + n_layers:
            kind, value = sizes[min(int(pick - n_block_moves - n_layers), len(sizes) - 1)]
            if kind == "width":
                return dataclasses.replace(cand, width=value, rate=0.0)
            extra = tuple(self.blocks[i] for i in rng.integers(len(self.blocks), size=max(0, value - len(path))))
            return Candidate(tuple(path[:value]) + extra, tuple(tuple(s) for s in schemes[:value])
                             + tuple(self._random_schemes(b, rng) for b in extra), 0.0, cand.width)
        if pick < n_block_moves:
            i = int(rng.integers(len(path)))
            others = [b for b in self.blocks if b != path[i]]
            path[i] = others[int(rng.integers(len(others)))]
            schemes[i] = list(self._random_schemes(path[i], rng))
        else:
            flat = [(i, j) for i, s in enumerate(schemes) for j in range(len(s))]
            i, j = flat[int(rng.integers(len(flat)))]
            others = [s for s in self.allowed(self.slots[path[i]][j]) if s != schemes[i][j]]
            if others:
                schemes[i][j] = others[int(rng.integers(len(others)))]
        return Candidate(tuple(path), tuple(tuple(s) for s in schemes), 0.0, cand.width)

    def _size_moves(self, cand: Candidate) -> list[tuple[str, int]]:
        """An elastic candidate's neighbouring sizes: the next listed depth down and up, the next width down and up."""
        out = []
        for kind, values, now in (("depth", self.depths, len(cand.path)), ("width", self.widths, cand.width)):
            i = values.index(now)
            out += [(kind, values[j]) for j in (i - 1, i + 1) if 0 <= j < len(values)]
        return out

    def bounding_paths(self, n_cells: int | None = None) -> list[tuple[str, ...]]:
        """The paths to price when looking for the fastest: all of them up to 256, else the homogeneous ones
        (too many to enumerate: they bound the cheapest block choice)."""
        n = self.n_cells if n_cells is None else n_cells
        if len(self.blocks) ** n <= 256:
            return list(itertools.product(self.blocks, repeat=n))
        return [(b,) * n for b in self.blocks]

    def bounding_archs(self) -> list[tuple[tuple[str, ...], int]]:
        """(path, width) pairs that bound the fastest network: the bounding paths (width 0) of a fixed-size
        space; of an elastic one those of its fewest cells at every width (every cell adds time, but a
        narrower conv is not always faster on every executor)."""
        if not self.elastic:
            return [(p, 0) for p in self.bounding_paths()]
        return [(p, w) for w in self.widths for p in self.bounding_paths(min(self.depths))]

    def fastest_schemes(self, path: Sequence[str]) -> dict[str, str]:
        """A scheme map that prunes every layer (unstructured first: it applies everywhere)."""
        pref = [s for s in ("filter", "unstructured", "block", "pattern") if s in self.schemes]
        out = {}
        for i, b in enumerate(path):
            for sl in self.slots[b]:
                allowed = [s for s in pref if s in self.allowed(sl)]
                out[f"body.{i}.{sl.name}"] = allowed[0] if allowed else "none"
        return out

    # ---- analytic cost (MACs at the LR size, parameters) ----
    def cost(self, cand: Candidate, lr_hw: tuple[int, int]) -> tuple[float, float]:
        """(MACs, params) of the pruned candidate's non-zero weights, counted from layer shapes and rates.

        Channel widths follow supernet.widths.WidthRule over the whole conv chain (what
        pruning.compact leaves: filter narrows, block kills the channels no row-block reads,
        a plain cell narrows its neighbours and the head or tail); inside a conv, block and a
        tied filter keep their columns (per row-block) and the other schemes keep (1 - rate)
        of the weights.
        """
        h, w = lr_hw
        c_up = 3 * self.scale * self.scale
        k_skip = SKIP_KERNEL[self.model_cfg.skip]
        params = (3 * c_up * k_skip * k_skip + c_up) if k_skip else 0
        macs = 3 * c_up * k_skip * k_skip * h * w
        chain = path_chain(self.model_of(cand), self.scale, cand.path,
                           self._cells[cand.width] if self.elastic else self.cells)
        plan = cand.plan(self)
        layers = [normalise(*plan.get(c.name, DENSE)) for c in chain.convs]
        rule = dataclasses.replace(self.rule, multiple=1)   # padding carries no weights
        widths = rule.widths(chain, layers)
        for c, (ci, co), (scheme, rate), tied in zip(chain.convs, widths, layers, chain.out_tied()):
            # zeros are spent on the inputs a filter before already removed first (pruning.masks scores them
            # zero), so a narrowed input keeps more of what is left
            frac = min(1.0, (1.0 - rate) * (c.cout / co if c.depthwise else c.cin / ci))
            if scheme in WIDTH_SCHEMES:
                # the columns a row (block) or a tied filter keeps; where its input could not narrow (a tied
                # edge) they stay inside the conv as zeros
                reads = scheme == "block" or tied
                frac = min(1.0, kept(c.cin, rate) / ci) if reads and not c.depthwise else 1.0
            wts = co * (1 if c.depthwise else ci) * c.k * c.k * frac
            params += wts + co
            macs += wts * h * w
        return float(macs), float(params)

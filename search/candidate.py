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

from supernet.config import ModelConfig
from supernet.errors import UserError
from supernet.model import cell_specs, path_chain
from supernet.widths import DENSE, WIDTH_SCHEMES, ConvSpec, WidthRule, kept, normalise
from supernet.writes import atomic_write_text

Plan = dict[str, tuple[str, float]]
Slot = ConvSpec   # one prunable conv of a block type: its name inside the block ('body.0') and its shape


@dataclass(frozen=True)
class Candidate:
    """A path (one block per cell), a scheme per prunable layer of that path, and one rate.

    ``schemes[i]`` lists the schemes of cell i's layers in the block's slot order. The
    rate is the stage-2 choice: one grid rate for every layer whose scheme is not "none",
    the smallest that meets the constraints (see ``Constraints.assign``).
    """

    path: tuple[str, ...]
    schemes: tuple[tuple[str, ...], ...]
    rate: float = 0.0

    def key(self) -> str:
        """Identity for de-duplication: path and schemes (the rate follows from them)."""
        return "|".join(f"{b}:{','.join(s)}" for b, s in zip(self.path, self.schemes))

    def with_rate(self, rate: float) -> "Candidate":
        """The same architecture and schemes at another rate."""
        return Candidate(self.path, self.schemes, float(rate))

    def scheme_map(self, space: "Space") -> dict[str, str]:
        """Prunable layer name -> scheme."""
        return {name: s for name, s in zip(space.layer_names(self.path), (x for c in self.schemes for x in c))}

    def plan(self, space: "Space") -> Plan:
        """The pruning plan of the cross-package contract: layer -> (scheme, rate)."""
        return {name: (s, self.rate if s != "none" else 0.0) for name, s in self.scheme_map(space).items()}

    def to_dict(self) -> dict:
        """Plain form for YAML/JSON."""
        return {"path": list(self.path), "schemes": [list(s) for s in self.schemes], "rate": self.rate}

    @staticmethod
    def from_dict(d: dict) -> "Candidate":
        """Inverse of to_dict."""
        try:
            return Candidate(tuple(d["path"]), tuple(tuple(s) for s in d["schemes"]), float(d.get("rate", 0.0)))
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
    """The search space: N cells x K blocks, and the schemes each block's layers may take."""

    def __init__(self, model_cfg: ModelConfig, schemes: Sequence[str], scale: int, rule: WidthRule = WidthRule()):
        self.model_cfg, self.scale, self.rule = model_cfg, scale, rule
        self.blocks = list(model_cfg.blocks)
        self.n_cells = model_cfg.n_cells
        self.schemes = list(schemes) or ["none"]
        if "none" not in self.schemes:
            self.schemes = ["none"] + self.schemes
        self.cells = cell_specs(model_cfg)
        self.slots: dict[str, list[Slot]] = {b: list(self.cells[b].convs) for b in self.blocks}

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
        return self.n_cells * per_cell

    def encode(self, cand: Candidate) -> np.ndarray:
        """Fixed-length binary vector: per cell a one-hot block, then a one-hot scheme per layer slot of
        every block type (zeros for the blocks not chosen)."""
        out = []
        S = len(self.schemes)
        for b, sch in zip(cand.path, cand.schemes):
            out.extend(1.0 if x == b else 0.0 for x in self.blocks)
            for bb in self.blocks:
                for j, _ in enumerate(self.slots[bb]):
                    v = [0.0] * S
                    if bb == b:
                        v[self.schemes.index(sch[j])] = 1.0
                    out.extend(v)
        return np.asarray(out, dtype=np.float32)

    def features(self, cand: Candidate) -> np.ndarray:
        """The predictor's input: share of cells per block, share of layers per scheme times the rate, the rate,
        and the kept MACs and parameters relative to the costliest dense homogeneous path.

        Costs generalise where a one-hot encoding cannot: with 32 evaluations, the quick config's predictor
        ranked 24 held-out candidates at Kendall tau 0.75 from these (mean of 3 seeds) and 0.34 from ``encode``.
        """
        counts = [sum(b == x for b in cand.path) / self.n_cells for x in self.blocks]
        layers = [s for c in cand.schemes for s in c]
        shares = [cand.rate * sum(s == x for s in layers) / max(len(layers), 1) for x in self.schemes]
        macs, params = self.cost(cand, (1, 1))   # MACs scale with the pixels: one pixel ranks the same
        ref_macs, ref_params = self._dense_ref
        return np.asarray(counts + shares + [cand.rate, macs / ref_macs, params / ref_params], dtype=np.float32)

    @functools.cached_property
    def _dense_ref(self) -> tuple[float, float]:
        costs = [self.cost(Candidate((b,) * self.n_cells, tuple(("none",) * len(self.slots[b]) for _ in
                                                                 range(self.n_cells))), (1, 1)) for b in self.blocks]
        return max(c[0] for c in costs), max(c[1] for c in costs)

    def check(self, cand: Candidate) -> Candidate:
        """Raise UserError if a candidate does not fit this space."""
        if len(cand.path) != self.n_cells or len(cand.schemes) != self.n_cells:
            raise UserError(f"candidate {cand.key()} has {len(cand.path)} cells; the space has {self.n_cells}")
        for b, sch in zip(cand.path, cand.schemes):
            if b not in self.slots:
                raise UserError(f"candidate block {b!r} is not one of {self.blocks}")
            if len(sch) != len(self.slots[b]) or any(s not in self.allowed(sl) for s, sl in zip(sch, self.slots[b])):
                raise UserError(f"candidate schemes {list(sch)} do not fit block {b!r} "
                                f"({len(self.slots[b])} layers; schemes {self.schemes})")
        return cand

    def random(self, rng: np.random.Generator) -> Candidate:
        """A uniformly random path with random schemes (rate 0; the constraints choose it)."""
        path = tuple(self.blocks[i] for i in rng.integers(len(self.blocks), size=self.n_cells))
        return Candidate(path, tuple(self._random_schemes(b, rng) for b in path))

    def _random_schemes(self, block: str, rng: np.random.Generator) -> tuple[str, ...]:
        out = []
        for sl in self.slots[block]:
            allowed = self.allowed(sl)
            out.append(allowed[int(rng.integers(len(allowed)))])
        return tuple(out)

    def mutate(self, cand: Candidate, rng: np.random.Generator) -> Candidate:
        """Change one cell's block (its layers get random schemes) or one layer's scheme."""
        path, schemes = list(cand.path), [list(s) for s in cand.schemes]
        n_layers = sum(len(s) for s in schemes)
        # pick among all single edits uniformly: (K-1) block changes per cell, one scheme change per layer
        n_block_moves = self.n_cells if len(self.blocks) > 1 else 0
        if rng.random() < n_block_moves / max(1, n_block_moves + n_layers):
            i = int(rng.integers(self.n_cells))
            others = [b for b in self.blocks if b != path[i]]
            path[i] = others[int(rng.integers(len(others)))]
            schemes[i] = list(self._random_schemes(path[i], rng))
        else:
            flat = [(i, j) for i, s in enumerate(schemes) for j in range(len(s))]
            i, j = flat[int(rng.integers(len(flat)))]
            others = [s for s in self.allowed(self.slots[path[i]][j]) if s != schemes[i][j]]
            if others:
                schemes[i][j] = others[int(rng.integers(len(others)))]
        return Candidate(tuple(path), tuple(tuple(s) for s in schemes))

    def bounding_paths(self) -> list[tuple[str, ...]]:
        """The paths to price when looking for the fastest: all of them up to 256, else the homogeneous ones
        (too many to enumerate: they bound the cheapest block choice)."""
        if len(self.blocks) ** self.n_cells <= 256:
            return list(itertools.product(self.blocks, repeat=self.n_cells))
        return [(b,) * self.n_cells for b in self.blocks]

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
        k_skip = {"bicubic_conv": 5, "conv": 3}.get(self.model_cfg.skip, 0)
        params = (3 * c_up * k_skip * k_skip + c_up) if k_skip else 0
        macs = 3 * c_up * k_skip * k_skip * h * w
        chain = path_chain(self.model_cfg, self.scale, cand.path, self.cells)
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

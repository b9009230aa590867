"""Candidate generation: random valid candidates and evolution (mutate the top H until C new, valid, unseen)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from srnas.supernet.errors import UserError

from .candidate import Candidate, Space
from .constraints import Constraints


@dataclass
class Proposal:
    """A valid candidate (rate assigned) with its LUT latency, MACs and params."""

    cand: Candidate
    measures: dict = field(default_factory=dict)


def random_valid(space: Space, cons: Constraints, n: int, rng: np.random.Generator, seen: set[str],
                 max_tries: int = 0) -> list[Proposal]:
    """Up to ``n`` random, valid candidates whose keys are not in ``seen`` (``seen`` is updated)."""
    out: list[Proposal] = []
    max_tries = max_tries or 200 * max(n, 1)
    invalid = 0
    for _ in range(max_tries):
        if len(out) >= n:
            break
        c = space.random(rng)
        if c.key() in seen:
            continue
        got = cons.assign(c)
        invalid += got is None
        if got is None or got[0].key() in seen:   # invalid, or the dense path of one already seen
            continue
        seen.update((c.key(), got[0].key()))
        out.append(Proposal(*got))
    if n and not out and not invalid:
        raise UserError(f"every candidate drawn in {max_tries} tries was evaluated already (or prunes nothing "
                        f"and is a dense path evaluated already): the space holds no unseen network under "
                        f"these budgets")
    if n and not out:
        raise UserError(f"no random candidate met the constraints in {max_tries} tries (latency target "
                        f"{cons.target_ms} ms, floor {cons.min_ms:g} ms, max_macs {cons.max_macs:g}, max_params "
                        f"{cons.max_params:g}); relax the budgets or add higher rates to latency.rates")
    return out


def anchors(space: Space, cons: Constraints, n: int, seen: set[str]) -> list[Proposal]:
    """Up to ``n`` unseen dense homogeneous paths (one block in every cell), the deepest that meets the budgets
    at each width, slowest first (``seen`` is updated).

    These are the hand-designed shapes (ABPN is a chain of plain cells, WDSR one of its blocks) that a short
    search must not miss: at x3 and 26.3 ms, 36 random and evolved evaluations never tried w16 with five plain
    cells, which the search's own evaluation scores 0.22 dB above the winner they found (a 3-cell net with a
    pruned WDSR-B block). A fixed-size space gets one only where its dense path meets the budgets.
    """
    out: list[Proposal] = []
    depths = sorted(space.depths, reverse=True) if space.elastic else [space.n_cells]
    for width in (space.widths if space.elastic else [0]):
        for block in space.blocks:
            for depth in depths:
                cand = Candidate((block,) * depth, tuple(("none",) * len(space.slots[block])
                                                         for _ in range(depth)), 0.0, width)
                got = cons.assign(cand)
                if got is not None:
                    if got[0].key() not in seen:
                        out.append(Proposal(*got))
                    break
    out.sort(key=lambda p: -p.measures["lat_pred_ms"])
    seen.update(p.cand.key() for p in out[:n])
    return out[:n]


def initial_pool(space: Space, cons: Constraints, n: int, rng: np.random.Generator, seen: set[str]) -> list[Proposal]:
    """A search's first ``n`` candidates: up to half of them anchors (dense homogeneous paths), the rest random."""
    first = anchors(space, cons, n // 2, seen)
    return first + (_try_random(space, cons, n - len(first), rng, seen) if first else
                    random_valid(space, cons, n, rng, seen))


def evolve(space: Space, cons: Constraints, parents: list[Candidate], c: int, rng: np.random.Generator,
           seen: set[str], max_tries: int = 0) -> list[Proposal]:
    """Mutate random parents (one edit each) until ``c`` new, valid, unseen candidates exist.

    When the neighbourhood of the parents is exhausted the pool is topped up with random
    valid candidates, so an iteration never stalls.
    """
    pool: list[Proposal] = []
    max_tries = max_tries or 50 * max(c, 1)
    tries = 0
    while len(pool) < c and parents and tries < max_tries:
        tries += 1
        child = space.mutate(parents[int(rng.integers(len(parents)))], rng)
        if child.key() in seen:
            continue
        got = cons.assign(child)
        seen.add(child.key())  # invalid children are not retried either
        if got is None or (got[0].key() != child.key() and got[0].key() in seen):
            continue           # ... nor one that prunes nothing at its rate: its dense path was seen
        seen.add(got[0].key())
        pool.append(Proposal(*got))
    if len(pool) < c:
        pool += random_valid(space, cons, c - len(pool), rng, seen, max_tries) if not pool else \
            _try_random(space, cons, c - len(pool), rng, seen)
    return pool


def _try_random(space: Space, cons: Constraints, n: int, rng: np.random.Generator, seen: set[str]) -> list[Proposal]:
    try:
        return random_valid(space, cons, n, rng, seen, 20 * n)
    except UserError:
        return []

"""Validity of candidates: latency target (and floor) by the LUT, optional MAC and parameter budgets, rate choice."""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

from srnas.supernet.errors import UserError

from .candidate import Candidate, Plan, Space

try:  # the latency package defines the shared error types; keep search importable without it
    from srnas.latency.lut import MissingRow
    from srnas.latency.model import InfeasibleTarget
except ImportError:  # pragma: no cover - only while latency is not installed
    class InfeasibleTarget(UserError):
        """A target no candidate can meet."""

    class MissingRow(UserError, KeyError):
        """A latency the LUT cannot give."""

LatencyFn = Callable[..., float]   # (path, plan) -> predicted end-to-end ms; (path, plan, width) of an elastic space


class Constraints:
    """Decides the rate of a candidate (smallest grid rate meeting every budget) and its costs."""

    def __init__(self, space: Space, rates: Sequence[float], latency_fn: LatencyFn | None = None,
                 target_ms: float = 0.0, max_macs: float = 0.0, max_params: float = 0.0,
                 lr_hw: tuple[int, int] = (360, 640), min_ms: float = 0.0):
        self.space, self.rates = space, sorted(float(r) for r in rates) or [0.0]
        self.latency_fn, self.target_ms, self.min_ms = latency_fn, float(target_ms), float(min_ms)
        self.max_macs, self.max_params, self.lr_hw = float(max_macs), float(max_params), lr_hw
        self.missing: dict[str, str] = {}  # LUT rows that made candidates unpredictable (reported, not fatal)

    def measures(self, cand: Candidate) -> dict:
        """LUT-predicted latency (ms, NaN without a LUT), MACs and parameters of a candidate at its rate."""
        macs, params = self.space.cost(cand, self.lr_hw)
        lat = float("nan")
        if self.latency_fn:
            try:
                plan = cand.plan(self.space)
                lat = float(self.latency_fn(cand.path, plan, cand.width) if cand.width else
                            self.latency_fn(cand.path, plan))
            except MissingRow as e:
                # a candidate the LUT cannot price is treated as invalid (never as fast)
                if str(e) not in self.missing:
                    self.missing[str(e)] = cand.key()
                    warnings.warn(f"candidate skipped: {e}", stacklevel=2)
                lat = float("inf")
        return {"lat_pred_ms": lat, "macs": macs, "params": params}

    def ok(self, m: dict) -> bool:
        """Whether measures meet every budget that is set."""
        if self.target_ms > 0 and not m["lat_pred_ms"] <= self.target_ms:
            return False
        if self.min_ms > 0 and not m["lat_pred_ms"] >= self.min_ms:
            return False
        if m["lat_pred_ms"] == float("inf"):
            return False
        if self.max_macs > 0 and m["macs"] > self.max_macs:
            return False
        return not (self.max_params > 0 and m["params"] > self.max_params)

    def assign(self, cand: Candidate) -> tuple[Candidate, dict] | None:
        """The candidate at the smallest grid rate that meets every budget, with its measures; None if none."""
        prunes = any(s != "none" for c in cand.schemes for s in c)
        for r in (self.rates if prunes else [0.0]):
            # at rate 0 the schemes prune nothing: one key for the dense path, so it is evaluated once
            c = cand.with_rate(r) if r > 0 else cand.dense()
            m = self.measures(c)
            if self.ok(m):
                return c, m
        return None

    def fastest(self) -> tuple[float, Candidate]:
        """The lowest LUT latency any candidate can reach: highest rate, every layer pruned, fastest blocks."""
        sp = self.space
        best = (float("inf"), None)
        top = max(self.rates)
        for path, width in sp.bounding_archs():
            for scheme in sp.schemes:  # "none" too: pruned executors are not always faster than dense
                schemes = tuple(tuple(scheme if scheme in sp.allowed(sl) else sp.fastest_schemes(path)[f"body.{i}.{sl.name}"]
                                      for sl in sp.slots[b]) for i, b in enumerate(path))
                c = Candidate(path, schemes, top if scheme != "none" else 0.0, width)
                m = self.measures(c)
                if m["lat_pred_ms"] < best[0]:
                    best = (m["lat_pred_ms"], c)
        return best

    def check_feasible(self) -> None:
        """Fail early (InfeasibleTarget) when no candidate can meet the latency target."""
        if self.target_ms <= 0 or self.latency_fn is None:
            return
        ms, cand = self.fastest()
        if ms > self.target_ms:
            raise InfeasibleTarget(
                f"latency target {self.target_ms:.2f} ms cannot be met: the fastest candidate in this space "
                f"({'-'.join(cand.path)}{f' at width {cand.width}' if cand.width else ''}, every layer pruned at rate "
                f"{cand.rate:g}, {len(cand.path)} cells) "
                f"takes {ms:.2f} ms by the LUT at {self.lr_hw[0]}x{self.lr_hw[1]}; raise latency.target to at "
                f"least {ms:.2f}, lower model.n_cells / n_feats, or add higher rates to latency.rates")

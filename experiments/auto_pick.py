"""`auto`: the largest member of this CPU's front that keeps a frame rate here, found by bisection over the
members (fastest first), each timed at most once."""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from srnas.supernet.errors import UserError

from . import zoo

if TYPE_CHECKING:
    from .upscaler import Upscaler


def frames_rate(up: Upscaler, frames: Sequence[np.ndarray], jobs: int = 2) -> float:
    """Frames/s of ``up``'s model on ``frames`` through a flight, the first frame (compile, warm-up) left out."""
    frames = list(frames)
    flight = up.flight(frames[0], jobs)
    flight.submit(flight.prepare(frames[0]))
    flight.take()
    timed = frames[1:] or frames
    t0 = time.perf_counter()
    try:
        collections.deque(flight.outputs(timed), maxlen=0)   # each output dropped as it comes
    finally:
        flight.close()
    return len(timed) / max(time.perf_counter() - t0, 1e-9)


DEFAULT_FPS = 30.0     # the rate `auto` keeps where none is given (Upscaler; srnas upscale takes the source's)
RateOf = Callable[[str], float]   # a member's name -> the frames/s it keeps here


@dataclass
class AutoChoice:
    """Which member of the front `auto` picked to keep ``target`` frames/s, and the rates that decided it."""

    name: str
    target: float
    members: list[str]                               # this machine's front, fastest first
    rates: dict[str, float] = field(default_factory=dict)   # the members timed, frames/s
    how: str = "end to end"                          # what was timed, for the line

    def to_json(self) -> dict:
        return {"model": self.name, "target_fps": self.target, "keeps": self.keeps, "members": self.members,
                "fps": {k: round(v, 2) for k, v in self.rates.items()}, "line": self.line()}

    @property
    def keeps(self) -> bool:
        """Whether the chosen member keeps the target rate (False: the fastest, and still too slow)."""
        return self.rates.get(self.name, 0.0) >= self.target

    def line(self) -> str:
        """One line: which member, its rate, and why not the next larger one (or that none keeps the rate)."""
        rate = self.rates.get(self.name, 0.0)
        if not self.keeps:
            return (f"auto: {self.name} (the fastest member), {rate:.1f} frames/s {self.how}: NOT real time, "
                    f"{rate / self.target:.2f}x the {self.target:g} fps to keep; no member of this CPU's front "
                    f"keeps it here (a lower rate or a smaller input would)")
        i = self.members.index(self.name)
        larger = self.members[i + 1] if i + 1 < len(self.members) else None
        # the bisection has timed the next larger member wherever there is one: it fell short
        why = ("the largest member of this CPU's front" if larger is None else
               f"the next larger, {larger}, does not ({self.rates.get(larger, 0.0):.1f})")
        return f"auto: {self.name} keeps {self.target:g} fps here ({rate:.1f} frames/s {self.how}); {why}"


def pick_member(members: Sequence[str], rate_of: RateOf, target: float, how: str = "end to end") -> AutoChoice:
    """The largest of ``members`` (fastest first) whose rate keeps ``target``, by bisection over the order (a
    larger member is slower): each is timed at most once, and the search stops when the next larger is known
    to fall short; none keeps it: the fastest."""
    members = list(members)
    if not members:
        raise UserError("auto: this machine has no searched front at this scale (srnas zoo front lists it)")
    rates: dict[str, float] = {}
    lo, hi = -1, len(members)   # members[lo] keeps the rate, members[hi] does not (virtual ends)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        rates[members[mid]] = rate = float(rate_of(members[mid]))
        lo, hi = (mid, hi) if rate >= target else (lo, mid)
    return AutoChoice(members[max(lo, 0)], float(target), members, rates, how)


def front_members(scale: int, weights_dir: str | Path | None = None) -> list[str]:
    """This CPU's front at ``scale``, fastest first (zoo.search_members; timed here once where not cached)."""
    return zoo.search_members(weights_dir, scale)


def pick_keeping(members: Sequence[str], rate_of: RateOf, target: float, how: str, made: dict) -> AutoChoice:
    """pick_member, closing every Upscaler in ``made`` (name -> the one ``rate_of`` built) but the chosen one's,
    and all of them where the pick fails."""
    try:
        choice = pick_member(members, rate_of, target, how)
    except BaseException:
        for up in made.values():
            up.close()
        raise
    for name, up in made.items():
        if name != choice.name:
            up.close()
    return choice

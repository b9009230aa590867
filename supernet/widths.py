"""The width rule: how many channels a pruned conv keeps, how live channels are padded, the rate grid.

Pruning masks and compacts by it, the latency catalogue and model price the widths it
leaves, the search counts MACs with it: one owner, so a change here changes all of them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from .config import PruningConfig

Layer = tuple[str, float]            # (scheme, rate) of one conv
DENSE: Layer = ("none", 0.0)
WIDTH_SCHEMES = ("filter", "block")  # run as dense convs over fewer channels; the rest run their zeros


def normalise(scheme: str, rate: float) -> Layer:
    """A rate-0 layer is dense whatever its scheme: one (scheme, rate) serves all."""
    rate = round(float(rate), 6)
    return DENSE if scheme == "none" or rate <= 0.0 else (scheme, rate)


def n_keep(n: int, rate: float) -> int:
    """How many of ``n`` units (channels, columns, weights) survive pruning at ``rate`` (at least one)."""
    return max(1, n - int(round(rate * n)))


def kept(c: int, rate: float) -> int:
    """Channels left of ``c`` after filter pruning at ``rate`` (all of them at rate 0)."""
    return c if rate <= 0 else n_keep(c, rate)


def kept_out_channels(cout: int, scheme: str, rate: float, tied_out: bool = False) -> int:
    """Output channels a conv keeps: only untied `filter` pruning removes output filters."""
    return kept(cout, rate) if scheme == "filter" and not tied_out else cout


def kept_in_channels(cin: int, scheme: str, rate: float, tied_out: bool = False) -> int:
    """Input channels a conv keeps: tied `filter` pruning (outputs feed an add) removes inputs instead."""
    return kept(cin, rate) if scheme == "filter" and tied_out else cin


def padded(n: int, full: int, multiple: int) -> int:
    """``n`` live channels (of ``full``) padded up to a multiple of ``multiple`` when n exceeds it.

    Conv kernels run much faster at such widths; a padding channel computes zeros, so
    outputs are unchanged.
    """
    return n if n <= multiple else min(full, -(-n // multiple) * multiple)


def width_options(schemes: Iterable[str], rates: Iterable[float]) -> list[Layer]:
    """The grid's (scheme, rate) choices that change widths, dense first."""
    return [DENSE] + sorted({normalise(s, r) for s in schemes for r in rates if s in WIDTH_SCHEMES} - {DENSE})


def zero_options(schemes: Iterable[str], rates: Iterable[float]) -> list[Layer]:
    """The grid's (scheme, rate) choices that leave zeros inside a conv at its width (timed as such)."""
    return sorted({normalise(s, r) for s in schemes for r in rates if s not in WIDTH_SCHEMES} - {DENSE})


class Conv(Protocol):
    """What the rule needs to know of a conv: its full input and output channels."""

    cin: int
    cout: int


@dataclass(frozen=True)
class WidthRule:
    """How pruning changes the channels a block's convs run with.

    ``block_rows``: rows of a block-scheme GEMM block; ``multiple``: live channels are
    padded up to a multiple of it (pruning.channel_multiple).
    """
    block_rows: int = 8
    multiple: int = 1

    @classmethod
    def of(cls, cfg: PruningConfig) -> "WidthRule":
        """The rule of a pruning config."""
        return cls(cfg.block_size[0], cfg.channel_multiple)

    def read(self, live: int, conv: Conv, layer: Layer, tied: bool) -> int:
        """How many of ``live`` input channels a conv pruned as ``layer`` still reads.

        As pruning's masks pick them (live inputs first): a tied `filter` layer keeps
        kept(cin) inputs; a `block` layer keeps kept(cin) columns in each row-block and
        reads their union, taken at its expected size (independent magnitudes; trained
        weights that agree across blocks read fewer, so this errs slow). Channels nobody
        reads are never computed (pruning.compaction.live_channels).
        """
        scheme, rate = layer
        if rate <= 0 or live <= 0:
            return live
        n = min(kept(conv.cin, rate), live)
        if scheme == "filter" and tied:
            return n
        if scheme == "block":
            n_blocks = -(-conv.cout // self.block_rows)
            return max(1, round(live * (1 - (1 - n / live) ** n_blocks)))
        return live

    def widths(self, convs: Sequence[Conv], layers: Sequence[Layer]) -> list[tuple[int, int]]:
        """(input, output) channels each conv of a block really runs with under ``layers``.

        As pruning.compact does it: a channel between two convs survives when the producer
        makes it (untied `filter` removes output filters) and the consumer reads it, and
        the survivors are padded up to ``multiple``. The last conv feeds the residual add
        and keeps all its outputs.
        """
        last = len(convs) - 1
        outs = []
        for j, conv in enumerate(convs[:-1]):
            scheme, rate = layers[j]
            made = kept_out_channels(conv.cout, scheme, rate)
            outs.append(padded(self.read(made, convs[j + 1], layers[j + 1], j + 1 == last), conv.cout, self.multiple))
        outs.append(convs[-1].cout)
        return [(convs[0].cin if j == 0 else outs[j - 1], outs[j]) for j in range(len(convs))]

    def sets(self, convs: Sequence[Conv], schemes: Iterable[str],
             rates: Iterable[float]) -> list[tuple[set[int], set[int]]]:
        """Per conv, every (input, output) width a grid plan of filter / block pruning can leave it."""
        options = width_options(schemes, rates)
        sets: list[tuple[set[int], set[int]]] = [(set(), set()) for _ in convs]
        for layers in itertools.product(options, repeat=len(convs)):
            for j, (a, b) in enumerate(self.widths(convs, list(layers))):
                sets[j][0].add(a)
                sets[j][1].add(b)
        return sets

"""The width rule: how many channels a pruned conv keeps, how live channels are padded, the rate grid.

Pruning masks and compacts by it, the latency catalogue and model price the widths it
leaves, the search counts MACs with it: one owner, so a change here changes all of them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Sequence

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


@dataclass(frozen=True)
class ConvSpec:
    """A conv as the rule sees it: its name in the network, full widths, kernel, depthwise or not."""
    name: str
    cin: int
    cout: int
    k: int
    depthwise: bool = False   # groups == channels: output channel c reads input channel c only


@dataclass(frozen=True)
class CellSpec:
    """One block type's convs (names relative to the block) and whether a residual add wraps them."""
    convs: tuple[ConvSpec, ...]
    residual: bool


@dataclass(frozen=True)
class Chain:
    """A network's convs in execution order and, per edge (conv j -> conv j+1), whether it is tied.

    A tied edge carries channels a residual add also reads or writes: it keeps every
    channel. An untied edge carries only what its producer makes and its consumer reads.
    A depthwise conv maps channel c to channel c, so the edges on both sides of one are a
    single group of channels: it loses a channel only together with its neighbours.
    """
    convs: tuple[ConvSpec, ...]
    tied: tuple[bool, ...]

    @classmethod
    def of(cls, head: Sequence[ConvSpec], cells: Sequence[CellSpec], tail: Sequence[ConvSpec]) -> "Chain":
        """The chain of a network: head convs, then each cell's (named body.<i>.<name>), then the tail's."""
        convs, tied = list(head), [False] * max(0, len(head) - 1)
        prev_residual = False
        for i, cell in enumerate(cells):
            if convs and cell.convs:
                tied.append(prev_residual or cell.residual)
            convs += [ConvSpec(f"body.{i}.{c.name}", c.cin, c.cout, c.k, c.depthwise) for c in cell.convs]
            tied += [False] * max(0, len(cell.convs) - 1)
            prev_residual = cell.residual
        if convs and tail:
            tied.append(prev_residual)
        convs += list(tail)
        tied += [False] * max(0, len(tail) - 1)
        return cls(tuple(convs), tuple(tied))

    @classmethod
    def block(cls, convs: Sequence) -> "Chain":
        """One block on its own: its input and output keep every channel (the residual add)."""
        specs = tuple(ConvSpec(getattr(c, "name", ""), c.cin, c.cout, getattr(c, "k", 0),
                               getattr(c, "depthwise", False)) for c in convs)
        return cls(specs, (False,) * (len(specs) - 1))

    def groups(self) -> list[tuple[int, int, bool]]:
        """The channel groups as (first edge, last edge, tied): edges joined by depthwise convs are one."""
        out, j, n = [], 0, len(self.convs)
        while j < n - 1:
            k = j
            while k + 1 < n - 1 and self.convs[k + 1].depthwise:
                k += 1
            out.append((j, k, any(self.tied[j:k + 1])))
            j = k + 1
        return out

    def out_tied(self) -> list[bool]:
        """Per conv: its outputs keep every channel (a tied group, or the last conv of the network)."""
        res = [True] * len(self.convs)
        for first, last, tied in self.groups():
            for e in range(first, last + 1):
                res[e] = tied
        return res


@dataclass(frozen=True)
class WidthRule:
    """How pruning changes the channels a network's convs run with.

    ``block_rows``: rows of a block-scheme GEMM block; ``multiple``: live channels are
    padded up to a multiple of it (pruning.channel_multiple).
    """
    block_rows: int = 8
    multiple: int = 1

    @classmethod
    def of(cls, cfg: PruningConfig) -> "WidthRule":
        """The rule of a pruning config."""
        return cls(cfg.block_size[0], cfg.channel_multiple)

    def read(self, live: int, conv: ConvSpec, layer: Layer, tied: bool) -> int:
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

    def widths(self, chain: Chain | Sequence, layers: Sequence[Layer]) -> list[tuple[int, int]]:
        """(input, output) channels each conv of a chain (or of one block) really runs with under ``layers``.

        As pruning.compact does it: a channel of an untied group survives when its
        producer makes it (untied `filter` removes output filters; a depthwise conv in the
        group drops the channels its own `filter` removes) and the consumer reads it, and
        the survivors are padded up to ``multiple``. Tied groups and the last conv's
        outputs keep every channel.
        """
        chain = chain if isinstance(chain, Chain) else Chain.block(chain)
        convs, out_tied = chain.convs, chain.out_tied()
        edge = [0] * (len(convs) - 1)
        for first, last, tied in chain.groups():
            full = convs[first].cout
            if tied:
                width = full
            else:
                live = kept_out_channels(full, *layers[first])
                for d in range(first + 1, last + 1):   # depthwise convs inside the group
                    live = min(live, kept_out_channels(convs[d].cout, *layers[d]))
                q = last + 1
                width = padded(self.read(live, convs[q], layers[q], out_tied[q]), full, self.multiple)
            for e in range(first, last + 1):
                edge[e] = width
        return [(convs[0].cin if j == 0 else edge[j - 1], convs[-1].cout if j == len(convs) - 1 else edge[j])
                for j in range(len(convs))]

    def sets(self, convs: Sequence, schemes: Iterable[str],
             rates: Iterable[float]) -> list[tuple[set[int], set[int]]]:
        """Per conv of one block, every (input, output) width a grid plan of filter / block pruning can leave it."""
        chain = Chain.block(convs)
        options = width_options(schemes, rates)
        sets: list[tuple[set[int], set[int]]] = [(set(), set()) for _ in chain.convs]
        for layers in itertools.product(options, repeat=len(chain.convs)):
            for j, (a, b) in enumerate(self.widths(chain, list(layers))):
                sets[j][0].add(a)
                sets[j][1].add(b)
        return sets

    def trunk(self, head: Sequence[ConvSpec], cells: Iterable[CellSpec], tail: Sequence[ConvSpec],
              schemes: Iterable[str], rates: Iterable[float]) -> set[int]:
        """Every width an edge between two cells (or between the head or tail and a cell) can take.

        Edges beside a residual cell keep every channel; between plain cells, and between
        a plain cell and the head or tail (dense producer and consumer), any grid layer of
        the producer (the last conv before the edge) and of the consumer (the first after
        it, whose own outputs may or may not be tied) decides the width.
        """
        plain = [c for c in cells if not c.residual and c.convs]
        out = {head[-1].cout}
        if not plain:
            return out
        options = width_options(schemes, rates)
        producers = [(head[-1], [DENSE])] + [(c.convs[-1], options) for c in plain]
        consumers = [(tail[0], [DENSE], len(tail) == 1)]
        consumers += [(c.convs[0], options, tied) for c in plain
                      for tied in ((True, False) if len(c.convs) == 1 else (False,))]
        for p, p_layers in producers:
            for q, q_layers, q_tied in consumers:
                after = () if q_tied else (ConvSpec("", q.cout, q.cout, 1),)
                chain = Chain((p, q, *after), (False,) * (1 + len(after)))
                for lp in p_layers:
                    for lq in q_layers:
                        out.add(self.widths(chain, [lp, lq, *([DENSE] * len(after))])[0][1])
        return out

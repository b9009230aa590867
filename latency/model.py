"""Predicted end-to-end latency of a candidate (path + pruning plan) from a LUT."""
from __future__ import annotations

from typing import Mapping, Sequence

from srnas.supernet.config import Config, ModelConfig, at_size, depths, widths
from srnas.supernet.errors import UserError
from srnas.supernet.widths import DENSE, WIDTH_SCHEMES, Chain, WidthRule, normalise

from .catalogue import (OpKey, Step, block_templates, cell_spec, conv_key, end_templates, fixed_keys, row_trunk,
                        row_widths, specs, whole_block_key)
from .lut import LUT

Plan = Mapping[str, tuple[str, float]]


class InfeasibleTarget(UserError):
    """A latency target that no candidate of the search space can meet."""


class LatencyModel:
    """Sums LUT rows over a candidate's ops, optionally through a fitted linear calibration.

    The calibration (``scale * sum + offset``) comes from the LUT header when the build
    measured a few whole networks end to end; it absorbs what the op sum misses (framework
    overhead between ops, cache effects) and is 1, 0 otherwise. A block type the LUT holds
    whole-block rows for (latency.granularity: block) is priced by those instead of its ops.
    Widths come from supernet.widths over the candidate's whole conv chain, so a plain
    block that narrows the trunk narrows its neighbours (and the head or tail) too.
    ``schemes`` are those the search may use (default: every one the LUT can price).
    """

    def __init__(self, lut: LUT, model_cfg: ModelConfig, scale: int, lr_hw: tuple[int, int],
                 rates: Sequence[float] | None = None, calibrate: bool = True, rule: WidthRule = WidthRule(),
                 schemes: Sequence[str] | None = None, trunk_keys: bool = False):
        self.lut, self.cfg, self.scale, self.rule = lut, model_cfg, scale, rule
        self.trunk_keys = trunk_keys   # one width of an elastic space: residual block rows carry it (row_trunk)
        self.schemes = sorted(set(schemes) if schemes is not None else
                              {k.scheme for k in lut.rows if k.op in ("conv", "dwconv")} | set(WIDTH_SCHEMES))
        self.whole = {k.op[len("block_"):] for k in lut.rows if k.op.startswith("block_")}
        self.h, self.w = int(lr_hw[0]), int(lr_hw[1])
        self.templates = block_templates(model_cfg, scale)
        self.cells = {name: cell_spec(steps) for name, steps in self.templates.items()}
        self.head, self.tail = end_templates(model_cfg, scale)
        self.head_convs, self.tail_convs = specs(self.head), specs(self.tail)
        cal = lut.calibration if calibrate else None
        self.cal_scale = float(cal["scale"]) if cal else 1.0
        self.cal_offset = float(cal["offset"]) if cal else 0.0
        grid = rates if rates is not None else sorted({k.rate for k in lut.rows} | {0.0})
        self.rates = sorted(float(r) for r in grid)
        self._fixed = sum(lut.ms(k) for k in fixed_keys(model_cfg, scale, self.h, self.w))
        self._cache: dict = {}
        self._ends = self.ops_ms(self.head, [(c.cin, c.cout) for c in self.head_convs]) + \
            self.ops_ms(self.tail, [(c.cin, c.cout) for c in self.tail_convs])   # at full width

    @classmethod
    def for_config(cls, lut: LUT, cfg: Config, calibrate: bool = True) -> "LatencyModel | ElasticLatencyModel":
        """The latency model of a run config: its model, scale, LR size, rate grid and block geometry (an
        ElasticLatencyModel where model.elastic)."""
        lat = cfg.latency
        if cfg.model.elastic:
            return ElasticLatencyModel(lut, cfg.model, cfg.data.scale, (lat.lr_height, lat.lr_width), rates=lat.rates,
                                       calibrate=calibrate, rule=WidthRule.of(cfg.pruning), schemes=cfg.pruning.schemes)
        return cls(lut, cfg.model, cfg.data.scale, (lat.lr_height, lat.lr_width), rates=lat.rates,
                   calibrate=calibrate, rule=WidthRule.of(cfg.pruning), schemes=cfg.pruning.schemes)

    # ---- prediction --------------------------------------------------------------------------
    def raw(self, path: Sequence[str], plan: Plan | None = None) -> float:
        """Uncalibrated sum of the LUT rows of every op of the candidate (ms)."""
        plan = dict(plan or {})
        for block in path:
            if block not in self.templates:
                raise UserError(f"path {tuple(path)}: block {block!r} is not in model.blocks {self.cfg.blocks}")
        chain = Chain.of(self.head_convs, [self.cells[b] for b in path], self.tail_convs)
        unknown = sorted(set(plan) - {c.name for c in chain.convs if c.name.startswith("body.")})
        if unknown:
            raise UserError(f"pruning plan names layer(s) {unknown} that path {tuple(path)} does not have; "
                            f"layer names come from SRNet.prunable()")
        layers = [normalise(*plan.get(c.name, DENSE)) for c in chain.convs]
        widths = self.rule.widths(chain, layers)
        n_head = len(self.head_convs)
        total = self._fixed + self.ops_ms(self.head, widths[:n_head]) + \
            self.ops_ms(self.tail, widths[len(widths) - len(self.tail_convs):])
        j = n_head
        for block in path:
            n = len(self.cells[block].convs)
            total += self.cell_ms(block, tuple(layers[j:j + n]), tuple(widths[j:j + n]))
            j += n
        return total

    def predict(self, path: Sequence[str], plan: Plan | None = None, width: int = 0) -> float:
        """Predicted end-to-end latency in ms (head, blocks, tail, skip, shuffle and adds); ``width``, if given,
        must be the model's own."""
        if width and width != self.cfg.n_feats:
            raise UserError(f"this latency model prices width {self.cfg.n_feats}, not {width}")
        return self.cal_scale * self.raw(path, plan) + self.cal_offset

    def block_ms(self, block: str, layers: tuple[tuple[str, float], ...]) -> float:
        """One block's latency with its convs pruned as ``layers`` (scheme, rate) in order, its input and
        output at full width."""
        return self.cell_ms(block, layers, tuple(self.rule.widths(self.cells[block].convs, list(layers))))

    def cell_ms(self, block: str, layers: tuple[tuple[str, float], ...], widths: tuple[tuple[int, int], ...]) -> float:
        """One block's latency with its convs pruned as ``layers`` and running at ``widths`` (input, output)."""
        ck = (block, layers, widths)
        if ck not in self._cache:
            if block in self.whole:
                cell = self.cells[block]
                key = whole_block_key(block, row_widths(cell, widths), self.h, self.w,
                                      row_trunk(cell, self.cfg.n_feats, self.trunk_keys))
                self._cache[ck] = self.lut.ms(key)
            else:
                self._cache[ck] = self.ops_ms(self.templates[block], widths, layers)
        return self._cache[ck]

    def ops_ms(self, steps: Sequence[Step], widths: Sequence[tuple[int, int]],
               layers: Sequence[tuple[str, float]] | None = None) -> float:
        """A template's ops summed at ``widths`` (per conv) under ``layers`` (default dense)."""
        total, j = 0.0, -1
        for st in steps:
            if st.op == "conv":
                j += 1
                total += self.conv_ms(st, widths[j], layers[j] if layers is not None else DENSE)
            elif st.op == "relu":
                total += self.channelwise_ms(OpKey("relu", *(2 * [widths[j][1] if j >= 0 else st.cin]), 0,
                                                   self.h, self.w))
            else:
                total += self.lut.ms(OpKey("resadd", st.cin, st.cout, 0, self.h, self.w))
        return total

    def conv_ms(self, st: Step, width: tuple[int, int], layer: tuple[str, float]) -> float:
        """A conv at its real (input, output) width; filter and block pruning run as a narrower dense conv.

        Another scheme at a narrowed width (a pruned neighbour) is the dense narrow conv
        times the scheme's measured speed-up at the layer's full width.
        """
        scheme, rate = layer
        if scheme in WIDTH_SCHEMES:
            scheme, rate = DENSE
        cin, cout = width
        exact = conv_key(st, cin, cout, self.h, self.w, scheme, rate)
        if st.depthwise and (scheme, rate) == DENSE:
            return self.channelwise_ms(exact)
        if exact in self.lut or (scheme, rate) == DENSE or (cin, cout) == (st.cin, st.cout):
            return self.lut.ms(exact)
        full = self.lut.ms(conv_key(st, st.cin, st.cout, self.h, self.w, scheme, rate))
        full_dense = self.lut.ms(conv_key(st, st.cin, st.cout, self.h, self.w))
        return self.conv_ms(st, width, DENSE) * full / full_dense

    def channelwise_ms(self, key: OpKey) -> float:
        """An op whose cost is linear in its channels (ReLU, depthwise conv): exact row, else the nearest
        row of its kind scaled by the channels."""
        if key in self.lut:
            return self.lut.ms(key)
        near = [k for k in self.lut.rows if (k.op, k.k, k.h, k.w, k.scheme, k.rate) ==
                (key.op, key.k, key.h, key.w, key.scheme, key.rate) and k.cin == k.cout]
        if not near:
            return self.lut.ms(key)  # raises MissingRow naming it
        k = min(near, key=lambda k: abs(k.cin - key.cin))
        return self.lut.ms(k) * key.cin / k.cin

    def elementwise_ms(self, op: str, c: int) -> float:
        """An elementwise op over ``c`` channels: exact row, else the nearest row scaled by c."""
        return self.channelwise_ms(OpKey(op, c, c, 0, self.h, self.w))

    # ---- targets -----------------------------------------------------------------------------
    def fastest_block_ms(self) -> float:
        """The cheapest one block can be: best block type, every conv at its fastest scheme and rate (a
        plain block between the narrowest trunk widths its neighbours can leave)."""
        best = float("inf")
        narrowest = min(self.rule.trunk(self.head_convs, self.cells.values(), self.tail_convs, self.schemes,
                                        self.rates))
        for block, cell in self.cells.items():
            n_conv = len(cell.convs)
            tries = [(block, (normalise(s, r),) * n_conv, None) for s in self.schemes for r in self.rates]
            if not cell.residual and n_conv == 1:
                tries.append((block, (DENSE,), ((narrowest, narrowest),)))
            for b, layers, widths in tries:
                try:
                    best = min(best, self.block_ms(b, layers) if widths is None else self.cell_ms(b, layers, widths))
                except UserError:
                    continue
        if best == float("inf"):
            raise UserError("the LUT holds no complete block; rebuild it with `srnas latency build`")
        return best

    def fastest_ms(self, n_cells: int) -> float:
        """Predicted latency of the fastest candidate with ``n_cells`` cells (head and tail at full width)."""
        return self.cal_scale * (self._fixed + self._ends + n_cells * self.fastest_block_ms()) + self.cal_offset

    def max_cells(self, target_ms: float, limit: int = 1024) -> int:
        """The largest cell count N whose fastest candidate meets ``target_ms``."""
        if self.fastest_ms(1) > target_ms:
            raise InfeasibleTarget(
                f"latency target {target_ms:.1f} ms at {self.w}x{self.h} cannot be met: the fastest one-cell "
                f"candidate takes {self.fastest_ms(1):.1f} ms on this LUT's device; raise latency.target "
                f"or lower the input size")
        n = 1
        while n < limit and self.fastest_ms(n + 1) <= target_ms:
            n += 1
        return n


class ElasticLatencyModel:
    """The latency of an elastic space: one LatencyModel per width over the one LUT, the path's d cells summed at
    its width (the head, tail and upsampler rows of that width, chained as for a fixed size)."""

    def __init__(self, lut: LUT, model_cfg: ModelConfig, scale: int, lr_hw: tuple[int, int],
                 rates: Sequence[float] | None = None, calibrate: bool = True, rule: WidthRule = WidthRule(),
                 schemes: Sequence[str] | None = None):
        self.lut, self.cfg, self.scale, self.rule = lut, model_cfg, scale, rule
        deepest = max(depths(model_cfg))
        self.models = {n: LatencyModel(lut, at_size(model_cfg, deepest, n), scale, lr_hw, rates, calibrate, rule,
                                       schemes, trunk_keys=True) for n in widths(model_cfg)}
        first = next(iter(self.models.values()))
        self.h, self.w, self.rates, self.schemes = first.h, first.w, first.rates, first.schemes
        self.cal_scale, self.cal_offset = first.cal_scale, first.cal_offset

    def at(self, width: int) -> LatencyModel:
        """The latency model of one width (what stage 3 of a member of that width uses)."""
        if width not in self.models:
            raise UserError(f"width {width} is not one of the elastic space's widths {sorted(self.models)}")
        return self.models[width]

    def raw(self, path: Sequence[str], plan: Plan | None = None, width: int = 0) -> float:
        """Uncalibrated sum of the LUT rows of the candidate's ops at ``width``."""
        return self.at(width).raw(path, plan)

    def predict(self, path: Sequence[str], plan: Plan | None = None, width: int = 0) -> float:
        """Predicted end-to-end latency in ms of ``path`` at ``width``."""
        return self.at(width).predict(path, plan)

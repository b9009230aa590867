"""Predicted end-to-end latency of a candidate (path + pruning plan) from a LUT."""
from __future__ import annotations

from typing import Mapping, Sequence

from supernet.config import Config, ModelConfig
from supernet.errors import UserError
from supernet.widths import DENSE, WIDTH_SCHEMES, WidthRule, normalise

from .catalogue import OpKey, Step, block_templates, fixed_keys, whole_block_key
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
    ``schemes`` are those the search may use (default: every one the LUT can price).
    """

    def __init__(self, lut: LUT, model_cfg: ModelConfig, scale: int, lr_hw: tuple[int, int],
                 rates: Sequence[float] | None = None, calibrate: bool = True, rule: WidthRule = WidthRule(),
                 schemes: Sequence[str] | None = None):
        self.lut, self.cfg, self.scale, self.rule = lut, model_cfg, scale, rule
        self.schemes = sorted(set(schemes) if schemes is not None else
                              {k.scheme for k in lut.rows if k.op == "conv"} | set(WIDTH_SCHEMES))
        self.whole = {k.op[len("block_"):] for k in lut.rows if k.op.startswith("block_")}
        self.h, self.w = int(lr_hw[0]), int(lr_hw[1])
        self.templates = block_templates(model_cfg, scale)
        cal = lut.calibration if calibrate else None
        self.cal_scale = float(cal["scale"]) if cal else 1.0
        self.cal_offset = float(cal["offset"]) if cal else 0.0
        grid = rates if rates is not None else sorted({k.rate for k in lut.rows} | {0.0})
        self.rates = sorted(float(r) for r in grid)
        self._fixed = sum(lut.ms(k) for k in fixed_keys(model_cfg, scale, self.h, self.w))
        self._cache: dict = {}

    @classmethod
    def for_config(cls, lut: LUT, cfg: Config, calibrate: bool = True) -> "LatencyModel":
        """The latency model of a run config: its model, scale, LR size, rate grid and block geometry."""
        lat = cfg.latency
        return cls(lut, cfg.model, cfg.data.scale, (lat.lr_height, lat.lr_width), rates=lat.rates,
                   calibrate=calibrate, rule=WidthRule.of(cfg.pruning), schemes=cfg.pruning.schemes)

    # ---- prediction --------------------------------------------------------------------------
    def raw(self, path: Sequence[str], plan: Plan | None = None) -> float:
        """Uncalibrated sum of the LUT rows of every op of the candidate (ms)."""
        plan = dict(plan or {})
        known = set()
        total = self._fixed
        for i, block in enumerate(path):
            if block not in self.templates:
                raise UserError(f"path {tuple(path)}: block {block!r} is not in model.blocks {self.cfg.blocks}")
            layers = tuple(normalise(*plan.get(f"body.{i}.{st.name}", ("none", 0.0)))
                           for st in self.templates[block] if st.op == "conv")
            known.update(f"body.{i}.{st.name}" for st in self.templates[block] if st.op == "conv")
            total += self.block_ms(block, layers)
        unknown = sorted(set(plan) - known)
        if unknown:
            raise UserError(f"pruning plan names layer(s) {unknown} that path {tuple(path)} does not have; "
                            f"layer names come from SRNet.prunable()")
        return total

    def predict(self, path: Sequence[str], plan: Plan | None = None) -> float:
        """Predicted end-to-end latency in ms (head, blocks, tail, skip, shuffle and adds)."""
        return self.cal_scale * self.raw(path, plan) + self.cal_offset

    def block_ms(self, block: str, layers: tuple[tuple[str, float], ...]) -> float:
        """One block's latency with its convs pruned as ``layers`` (scheme, rate) in order."""
        ck = (block, layers)
        if ck in self._cache:
            return self._cache[ck]
        steps = self.templates[block]
        convs = [st for st in steps if st.op == "conv"]
        widths = self.rule.widths(convs, list(layers))
        if block in self.whole:
            self._cache[ck] = self.lut.ms(whole_block_key(block, [b for _, b in widths[:-1]], self.h, self.w))
            return self._cache[ck]
        total, j = 0.0, -1
        for st in steps:
            if st.op == "conv":
                j += 1
                total += self.conv_ms(st, widths[j], layers[j])
            elif st.op == "relu":
                c = widths[j][1] if j >= 0 else st.cin
                total += self.elementwise_ms("relu", c)
            else:
                total += self.lut.ms(OpKey("resadd", st.cin, st.cout, 0, self.h, self.w))
        self._cache[ck] = total
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
        exact = OpKey("conv", cin, cout, st.k, self.h, self.w, scheme, rate)
        if exact in self.lut or (scheme, rate) == DENSE or (cin, cout) == (st.cin, st.cout):
            return self.lut.ms(exact)
        full = self.lut.ms(OpKey("conv", st.cin, st.cout, st.k, self.h, self.w, scheme, rate))
        full_dense = self.lut.ms(OpKey("conv", st.cin, st.cout, st.k, self.h, self.w))
        return self.lut.ms(OpKey("conv", cin, cout, st.k, self.h, self.w)) * full / full_dense

    def elementwise_ms(self, op: str, c: int) -> float:
        """An elementwise op over ``c`` channels: exact row, else the nearest row scaled by c."""
        key = OpKey(op, c, c, 0, self.h, self.w)
        if key in self.lut:
            return self.lut.ms(key)
        near = [k for k in self.lut.rows if k.op == op and (k.h, k.w) == (self.h, self.w)]
        if not near:
            return self.lut.ms(key)  # raises MissingRow naming it
        k = min(near, key=lambda k: abs(k.cin - c))
        return self.lut.ms(k) * c / k.cin

    # ---- targets -----------------------------------------------------------------------------
    def fastest_block_ms(self) -> float:
        """The cheapest one block can be: best block type, every conv at its fastest scheme and rate."""
        best = float("inf")
        for block, steps in self.templates.items():
            n_conv = sum(st.op == "conv" for st in steps)
            for s in self.schemes:
                for r in self.rates:
                    try:
                        best = min(best, self.block_ms(block, (normalise(s, r),) * n_conv))
                    except UserError:
                        continue
        if best == float("inf"):
            raise UserError("the LUT holds no complete block; rebuild it with `srnas latency build`")
        return best

    def fastest_ms(self, n_cells: int) -> float:
        """Predicted latency of the fastest candidate with ``n_cells`` cells."""
        return self.cal_scale * (self._fixed + n_cells * self.fastest_block_ms()) + self.cal_offset

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

"""The op catalogue: every op a candidate network can contain, read off real networks.

A block type (and the head and tail) is walked once into a *template* (its convs,
ReLUs and residual add in execution order); the LUT build measures each template op at
every scheme/rate and at every channel width filter or block pruning can leave (the
widths of supernet.widths), and the latency model walks the same templates to add up a
candidate. Both sides therefore agree on what an op is.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from srnas.supernet.blocks import BLOCKS, Block, ResidualBlock, fuse_weight_norm, is_depthwise
from srnas.supernet.config import ModelConfig, at_size, depths, widths
from srnas.supernet.model import SKIP_KERNEL, build_path_net, convs_of, make_skip
from srnas.supernet.widths import DENSE, CellSpec, Chain, ConvSpec, WidthRule, normalise, zero_options


@dataclass(frozen=True)
class Step:
    """One op of a template: a conv (with its plan-local name), a ReLU or the residual add."""
    op: str            # "conv" | "relu" | "resadd"
    cin: int = 0
    cout: int = 0
    k: int = 0
    name: str = ""     # for convs: name relative to the block, e.g. "body.0" (head/tail: in the network)
    depthwise: bool = False


@dataclass(frozen=True)
class OpKey:
    """The key of a LUT row (device and backend live in the fingerprint)."""
    op: str
    cin: int
    cout: int
    k: int
    h: int
    w: int
    scheme: str = "none"
    rate: float = 0.0


def walk(module: nn.Module, in_ch: int, names: Sequence[str] | None = None) -> list[Step]:
    """The ops of a conv, or of a Sequential of convs and ReLUs, in order (``names``: one per conv)."""
    mods = [module] if isinstance(module, nn.Conv2d) else list(module)
    conv_names = iter(names if names is not None else [f"body.{i}" for i, m in enumerate(mods)
                                                       if isinstance(m, nn.Conv2d)])
    steps, ch = [], in_ch
    for m in mods:
        if isinstance(m, nn.Conv2d):
            steps.append(Step("conv", m.in_channels, m.out_channels, m.kernel_size[0], next(conv_names),
                              is_depthwise(m)))
            ch = m.out_channels
        elif isinstance(m, nn.ReLU):
            steps.append(Step("relu", ch, ch))
        else:
            raise TypeError(f"the latency catalogue does not know op {type(m).__name__}")
    return steps


def block_templates(model_cfg: ModelConfig, scale: int) -> dict[str, list[Step]]:
    """Each configured block type walked into its op sequence (from a real built block)."""
    net = fuse_weight_norm(build_path_net(model_cfg, scale, tuple(model_cfg.blocks)))
    out: dict[str, list[Step]] = {}
    for name, blk in zip(model_cfg.blocks, net.body):
        steps = walk(blk.body, model_cfg.n_feats, [n for n, _ in blk.convs()])
        if blk.residual:
            steps.append(Step("resadd", model_cfg.n_feats, model_cfg.n_feats))
        out[name] = steps
    return out


def end_templates(model_cfg: ModelConfig, scale: int) -> tuple[list[Step], list[Step]]:
    """The head's and the tail's op sequences (conv names as in the network, e.g. 'head', 'tail.2')."""
    net = build_path_net(model_cfg, scale, ())
    return (walk(net.head, 3, [n for n, _ in convs_of(net.head, "head")]),
            walk(net.tail, model_cfg.n_feats, [n for n, _ in convs_of(net.tail, "tail")]))


def specs(steps: Sequence[Step]) -> tuple[ConvSpec, ...]:
    """The convs of a template as the width rule sees them."""
    return tuple(ConvSpec(st.name, st.cin, st.cout, st.k, st.depthwise) for st in steps if st.op == "conv")


def cell_spec(steps: Sequence[Step]) -> CellSpec:
    """A block template as the width rule sees it."""
    return CellSpec(specs(steps), any(st.op == "resadd" for st in steps))


def conv_key(st: Step, cin: int, cout: int, h: int, w: int, scheme: str = "none", rate: float = 0.0) -> OpKey:
    """The row of a conv step at a width (a depthwise conv has rows of its own, op 'dwconv')."""
    return OpKey("dwconv" if st.depthwise else "conv", cin, cout, st.k, h, w, scheme, rate)


def fixed_keys(model_cfg: ModelConfig, scale: int, h: int, w: int) -> list[OpKey]:
    """The ops every candidate has at fixed widths: global skip, global add, PixelShuffle, clamp."""
    c_up = 3 * scale * scale
    k = SKIP_KERNEL[model_cfg.skip]
    keys = [OpKey(f"skip_{model_cfg.skip}", 3, c_up, k, h, w), OpKey("add", c_up, c_up, 0, h, w),
            OpKey("shuffle", c_up, 3, scale, h, w)]
    return keys + ([OpKey("clamp", 3, 3, scale, h, w)] if model_cfg.clamp else [])


class ResAdd(nn.Module):
    """The residual add exactly as ResidualBlock computes it: x + y * res_scale."""

    def __init__(self, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y * self.res_scale


class Add(nn.Module):
    """The global add of tail output and skip."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class Clamp(nn.Module):
    """The output clip to [0, 1] (model.clamp)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


def conv_probe(cin: int, cout: int, k: int, scheme: str = "none", rate: float = 0.0, seed: int = 0,
               depthwise: bool = False) -> nn.Conv2d:
    """A conv as compaction runs one: plain, random weights; a zeros scheme leaves ``rate`` of them zero.

    Filter and block pruning run as a dense conv at the narrower widths they leave (their
    rows are dense rows at those widths); unstructured and pattern zeros run as dense, so
    where they fall does not change the time.
    """
    g = torch.Generator().manual_seed(seed)
    groups = cin if depthwise else 1
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / (cin // groups * k * k) ** 0.5)
        conv.bias.copy_(torch.randn(cout, generator=g) * 0.01)
        if normalise(scheme, rate) != DENSE:
            conv.weight.mul_((torch.rand(conv.weight.shape, generator=g) >= rate).float())
    return conv.eval()


def op_inputs(key: OpKey, model_cfg: ModelConfig) -> list[tuple[int, ...]]:
    """The shapes of an op's inputs."""
    hw = (key.h, key.w)
    if key.op.startswith("skip_"):
        return [(1, 3, *hw)]
    if key.op == "clamp":
        return [(1, 3, key.h * key.k, key.w * key.k)]
    if key.op.startswith("block_"):   # a residual block reads the trunk, a plain one its key's input width
        return [(1, probe_config(key, model_cfg).n_feats if BLOCKS[key.op[len("block_"):]].residual else key.cin,
                 *hw)]
    return [(1, key.cin, *hw)] * (2 if key.op in ("add", "resadd") else 1)


def op_module(key: OpKey, model_cfg: ModelConfig, scale: int) -> tuple[nn.Module, list[tuple[int, ...]]]:
    """The module that executes ``key`` and the shapes of its inputs."""
    shapes = op_inputs(key, model_cfg)
    if key.op in ("conv", "dwconv"):
        return conv_probe(key.cin, key.cout, key.k, key.scheme, key.rate, depthwise=key.op == "dwconv"), shapes
    if key.op == "relu":
        return nn.ReLU(inplace=True), shapes
    if key.op == "resadd":
        return ResAdd(model_cfg.res_scale), shapes
    if key.op == "add":
        return Add(), shapes
    if key.op == "shuffle":
        return nn.PixelShuffle(key.k), shapes
    if key.op == "clamp":
        return Clamp(), shapes
    if key.op.startswith("skip_"):
        return make_skip(key.op[len("skip_"):], scale), shapes
    if key.op.startswith("block_"):
        return block_at_widths(key.op[len("block_"):], (key.cin, key.cout), probe_config(key, model_cfg), scale), shapes
    raise ValueError(f"no executor for op {key.op!r}")


def probe_config(key: OpKey, model_cfg: ModelConfig) -> ModelConfig:
    """The model a whole-block row's probe is built from: of an elastic space, the size at the row's trunk width
    (``k`` of a residual block's row, see whole_block_key; a plain block's own widths are its key's)."""
    if not model_cfg.elastic:
        return model_cfg
    return at_size(model_cfg, 1, key.k or key.cin)


CHAIN = 5  # blocks in a chain probe: a block row is the chain's extra time over one block, per block


def chained(key: OpKey, granularity: str) -> bool:
    """Whether ``key``'s row is its share of a chain probe (``chain_probe``): every whole block, and in a
    block-granularity LUT the convs of the head and tail too.

    Timed alone, an INT8 conv's row pays quantizing its input and dequantizing its output, which the
    network pays once: on the 2-core EPYC in OpenVINO INT8 the 3 -> 16 head row took 8.7 ms alone and
    3 -> 4 took 2.2 ms, so a pruning that narrowed the head looked 6.5 ms faster; measured, such
    candidates ran 1.5-1.8x slower than that LUT said (all 19 of 100 misses of the check).
    """
    return key.op.startswith("block_") or (granularity == "block" and key.op == "conv")


def chain_probe(key: OpKey, model_cfg: ModelConfig, scale: int) -> tuple[nn.Module, int]:
    """A chained row's probe (whole block, or conv): ``CHAIN`` of ``key`` in a row, and how many it adds over one.

    A block timed alone pays its runtime's fixed costs at both ends (an INT8 file quantizes
    its float input and dequantizes its output, a blocked layout is entered and left),
    which inside a network it shares with its neighbours. The chain minus the single block
    is what the block adds in a network. A block (or conv) whose input and output widths differ
    alternates with its mirror (output back to input width), whose cost it shares equally:
    the same MACs, read and written the other way round.
    """
    a, b = key.cin, key.cout
    mirror = OpKey(key.op, b, a, key.k, key.h, key.w, key.scheme, key.rate)
    alternate = key.op == "conv" or not BLOCKS[key.op[len("block_"):]].residual
    blocks = [op_module(mirror if alternate and i % 2 else key, model_cfg, scale)[0] for i in range(CHAIN)]
    return nn.Sequential(*blocks).eval(), CHAIN - 1


def row_widths(cell: CellSpec, widths: Sequence[tuple[int, int]]) -> list[int]:
    """The widths a whole-block row is keyed by: a residual block's inner channel groups (a depthwise conv
    keeps its group), a plain block's input and output."""
    if not cell.residual:
        return [widths[0][0], widths[-1][1]]
    return [widths[first][1] for first, _, _ in Chain.block(cell.convs).groups()]


def block_at_widths(name: str, key_widths: Sequence[int], model_cfg: ModelConfig, scale: int) -> Block:
    """A block of type ``name`` whose convs run dense at the widths of its row, as compaction leaves it."""
    steps = block_templates(model_cfg, scale)[name]
    cell = cell_spec(steps)
    convs = cell.convs
    if cell.residual:
        groups = Chain.block(convs).groups()
        inner = list(key_widths)[:len(groups)] if len(groups) > 1 else [key_widths[0]]
        edge = [0] * (len(convs) - 1)
        for (first, last, _), width in zip(groups, inner):
            edge[first:last + 1] = [width] * (last - first + 1)
        chans = [convs[0].cin, *edge, convs[-1].cout]
    else:
        chans = [key_widths[0], *[0] * (len(convs) - 1), key_widths[-1]]
    body: list[nn.Module] = []
    for st in steps:
        if st.op == "conv":
            j = sum(isinstance(m, nn.Conv2d) for m in body)
            cin = chans[j]
            cout = cin if st.depthwise else chans[j + 1]
            body.append(conv_probe(cin, cout, st.k, seed=j, depthwise=st.depthwise))
        elif st.op == "relu":
            body.append(nn.ReLU(inplace=True))
    return ResidualBlock(nn.Sequential(*body), model_cfg.res_scale) if cell.residual else Block(nn.Sequential(*body))


def width_sets(model_cfg: ModelConfig, scale: int, schemes: Sequence[str], rates: Sequence[float],
               rule: WidthRule = WidthRule()) -> dict[str, list[tuple[set[int], set[int]]]]:
    """Per template (each block type, 'head', 'tail'), per conv, every (input, output) width a grid plan
    of filter / block pruning can leave it, in any path.

    Residual blocks keep their input and output, so their own convs decide; a plain block
    and the head and tail take any width an edge between cells can have (WidthRule.trunk).
    """
    templates = block_templates(model_cfg, scale)
    head, tail = end_templates(model_cfg, scale)
    cells = {name: cell_spec(steps) for name, steps in templates.items()}
    trunk = rule.trunk(specs(head), cells.values(), specs(tail), schemes, rates)
    out: dict[str, list[tuple[set[int], set[int]]]] = {}
    for name, cell in cells.items():
        if cell.residual:
            out[name] = rule.sets(cell.convs, schemes, rates)
        elif len(cell.convs) == 1:
            out[name] = [(set(trunk), set(trunk))]
        else:
            raise ValueError(f"block {name}: a block without a residual add must have one conv to be priced")
    for end, steps, free in (("head", head, -1), ("tail", tail, 0)):
        convs = specs(steps)
        out[end] = [({c.cin}, {c.cout}) for c in convs]
        side = out[end][free]
        out[end][free] = (side[0], trunk) if free == -1 else (trunk, side[1])
    return out


def block_keys(steps: list[Step], sets: list[tuple[set[int], set[int]]], h: int, w: int,
               others: Sequence[tuple[str, float]] = ()) -> list[OpKey]:
    """The LUT rows a template needs, op by op.

    `filter` and `block` run as dense convs over fewer channels: every width any grid
    plan leaves is measured dense, as the full grid of input x output widths per conv so
    that off-grid rates interpolate bilinearly (a depthwise conv: its one width). The
    other schemes (``others``) run dense-with-zeros at their layer's full width
    (transferred to narrower widths as a ratio); ReLUs are measured at each width.
    """
    keys: list[OpKey] = []
    j = -1
    for st in steps:
        if st.op == "conv":
            j += 1
            ins, outs = sorted(sets[j][0]), sorted(sets[j][1])
            pairs = [(c, c) for c in outs] if st.depthwise else [(a, b) for a in ins for b in outs]
            keys += [conv_key(st, a, b, h, w) for a, b in pairs]
            keys += [conv_key(st, st.cin, st.cout, h, w, s, r) for s, r in others]
        elif st.op == "relu":
            keys += [OpKey("relu", c, c, 0, h, w) for c in sorted(sets[j][1] if j >= 0 else {st.cin})]
        else:
            keys.append(OpKey("resadd", st.cin, st.cout, 0, h, w))
    return keys


def whole_block_key(name: str, inner: Sequence[int], h: int, w: int, trunk: int = 0) -> OpKey:
    """The row of a whole block by its key widths (row_widths: inner channel groups, or a plain block's
    input and output), and in an elastic space a residual block's trunk width (``trunk``, in the k column:
    the inner widths alone do not say which trunk the block reads and writes; 0 = the config's one width).

    cin / cout hold the first and last of them. A block timed as one piece keeps what a
    runtime fuses inside it (ONNX Runtime fuses conv + ReLU and keeps its blocked layout
    from conv to conv), which op rows miss.
    """
    if not 1 <= len(inner) <= 2:
        raise ValueError(f"block {name}: whole-block LUT rows need at most 2 varying widths, it has {len(inner)}; "
                         f"use latency.granularity: op")
    return OpKey(f"block_{name}", inner[0], inner[-1], trunk, h, w)


def row_trunk(cell: CellSpec, n_feats: int, trunk_keys: bool) -> int:
    """The trunk width a whole-block row of ``cell`` is keyed by: only residual blocks of an elastic space."""
    return n_feats if trunk_keys and cell.residual else 0


def whole_block_keys(name: str, steps: list[Step], sets: list[tuple[set[int], set[int]]], h: int,
                     w: int, trunk: int = 0) -> list[OpKey]:
    """One block type's whole-block rows: the full grid of its key widths (bilinear off it).

    Unstructured and pattern zeros run dense, so only filter / block widths make rows.
    """
    cell = cell_spec(steps)
    if cell.residual:
        axes = [sorted(sets[first][1]) for first, _, _ in Chain.block(cell.convs).groups()]
    else:
        axes = [sorted(sets[0][0]), sorted(sets[-1][1])]
    return [whole_block_key(name, ws, h, w, trunk) for ws in itertools.product(*axes)]


def catalogue(model_cfg: ModelConfig, scale: int, lr_hw: tuple[int, int], schemes: list[str],
              rates: list[float], rule: WidthRule = WidthRule(), granularity: str = "op") -> list[OpKey]:
    """All distinct LUT keys the search space of ``model_cfg`` can need at ``lr_hw``.

    ``granularity`` "op" times every conv, ReLU and add of a block on its own; "block"
    times each block type whole at every width pruning can leave it. The head and tail
    are timed op by op at every width their neighbours can leave them. An elastic space
    (model.elastic) needs all of that at each of its widths.
    """
    if model_cfg.elastic:
        keys = [k for n in widths(model_cfg) for k in _catalogue(at_size(model_cfg, max(depths(model_cfg)), n), scale,
                                                                lr_hw, schemes, rates, rule, granularity, True)]
        return list(dict.fromkeys(keys))
    return _catalogue(model_cfg, scale, lr_hw, schemes, rates, rule, granularity, False)


def _catalogue(model_cfg: ModelConfig, scale: int, lr_hw: tuple[int, int], schemes: list[str], rates: list[float],
               rule: WidthRule, granularity: str, trunk_keys: bool) -> list[OpKey]:
    """The keys of one fixed-size model (``trunk_keys``: key residual block rows by its width, see row_trunk)."""
    h, w = lr_hw
    sets = width_sets(model_cfg, scale, schemes, rates, rule)
    head, tail = end_templates(model_cfg, scale)
    keys = block_keys(head, sets["head"], h, w) + block_keys(tail, sets["tail"], h, w) \
        + fixed_keys(model_cfg, scale, h, w)
    others = zero_options(schemes, rates)
    for name, steps in block_templates(model_cfg, scale).items():
        if granularity == "block":
            keys += whole_block_keys(name, steps, sets[name], h, w,
                                     row_trunk(cell_spec(steps), model_cfg.n_feats, trunk_keys))
        else:
            keys += block_keys(steps, sets[name], h, w, others)
    seen, out = set(), []
    for k in keys:
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out

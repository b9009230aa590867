"""Catalogue, resumable LUT build, the latency model (predict / max_cells) and check."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from srnas.latency.build import build_lut
from srnas.latency.catalogue import OpKey, block_templates, catalogue
from srnas.latency.check import accuracy
from srnas.latency.fingerprint import fingerprint
from srnas.latency.lut import LUT, MissingRow, Row
from srnas.latency.model import InfeasibleTarget, LatencyModel
from srnas.latency.timing import measure_module, time_interleaved
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import load_config
from srnas.supernet.model import build_path_net, path_chain
from srnas.supernet.widths import WidthRule, kept

from conftest import tiny_config

HW = (6, 10)


def synthetic_ms(k: OpKey) -> float:
    """A known cost per row: MAC-like for convs, channel-proportional otherwise."""
    if k.op == "conv":
        return 1.0 + k.cin * k.cout * k.k * k.k * (1 - k.rate) / 100.0
    return 0.5 + k.cin / 10.0


def _cfg(tmp_path, model: dict | None = None, **lat):
    return load_config(tiny_config(tmp_path, model=model or {}, latency={
        "lr_height": HW[0], "lr_width": HW[1], "warmup": 0, "repeats": 2, "threads": 1, "calib_samples": 0, **lat}))


def _synthetic(tmp_path, cfg):
    lut = LUT.create(tmp_path / "syn.csv", fingerprint("torch-cpu", 1))
    for k in catalogue(cfg.model, cfg.data.scale, HW, cfg.pruning.schemes, cfg.latency.rates):
        lut.add(Row(k, synthetic_ms(k), 0.0, 1))
    return LatencyModel(lut, cfg.model, cfg.data.scale, HW)


def test_catalogue_matches_the_real_network(tmp_path):
    cfg = _cfg(tmp_path)
    tpl = block_templates(cfg.model, cfg.data.scale)
    for i, b in enumerate(cfg.model.blocks):
        net = build_path_net(cfg.model, cfg.data.scale, (b,))
        want = [(c.in_channels, c.out_channels, c.kernel_size[0]) for _, c in net.prunable()]
        assert [(s.cin, s.cout, s.k) for s in tpl[b] if s.op == "conv"] == want
        assert tpl[b][-1].op == "resadd"


def test_predict_is_the_sum_of_the_rows(tmp_path):
    cfg = _cfg(tmp_path)
    m = _synthetic(tmp_path, cfg)
    n, s = cfg.model.n_feats, cfg.data.scale
    a_convs = [(n, n * cfg.model.expansion_a, 3), (n * cfg.model.expansion_a, n, 3)]
    fixed = synthetic_ms(OpKey("conv", 3, n, 3, *HW)) + synthetic_ms(OpKey("conv", n, 3 * s * s, 3, *HW)) \
        + sum(synthetic_ms(OpKey(op, c, c, 0, *HW)) for op, c in
              [("skip", 3), ("add", 3 * s * s), ("shuffle", 3 * s * s)])
    block_a = sum(synthetic_ms(OpKey("conv", a, b, k, *HW)) for a, b, k in a_convs) \
        + synthetic_ms(OpKey("relu", n * cfg.model.expansion_a, 0, 0, *HW)) + synthetic_ms(OpKey("resadd", n, n, 0, *HW))
    assert m.predict(("wdsr_a", "wdsr_a")) == pytest.approx(fixed + 2 * block_a)
    # unstructured 0.5 on the first conv halves its MAC term
    plan = {"body.0.body.0": ("unstructured", 0.5)}
    saved = (synthetic_ms(OpKey("conv", *a_convs[0], *HW)) - 1) / 2
    assert m.predict(("wdsr_a", "wdsr_a"), plan) == pytest.approx(fixed + 2 * block_a - saved)


def test_filter_pruning_narrows_the_next_layer(tmp_path):
    cfg = _cfg(tmp_path)
    m = _synthetic(tmp_path, cfg)
    tpl = block_templates(cfg.model, cfg.data.scale)["wdsr_a"]
    convs = [s for s in tpl if s.op == "conv"]
    w = WidthRule().widths(convs, [("filter", 0.5), ("none", 0.0)])
    assert w == [(convs[0].cin, kept(convs[0].cout, 0.5)), (kept(convs[0].cout, 0.5), convs[1].cout)]
    # tied last conv: its input channels go, and with them the predecessor's outputs
    w2 = WidthRule().widths(convs, [("none", 0.0), ("filter", 0.5)])
    assert w2[0][1] == kept(convs[0].cout, 0.5) and w2[1][1] == convs[1].cout
    dense = m.predict(("wdsr_a", "wdsr_b"))
    assert m.predict(("wdsr_a", "wdsr_b"), {"body.0.body.0": ("filter", 0.5)}) < dense
    with pytest.raises(Exception, match="body.5.body.0"):
        m.predict(("wdsr_a", "wdsr_b"), {"body.5.body.0": ("filter", 0.5)})


def test_max_cells(tmp_path):
    cfg = _cfg(tmp_path)
    m = _synthetic(tmp_path, cfg)
    n = m.max_cells(m.fastest_ms(3) + 1e-6)
    assert n == 3
    with pytest.raises(InfeasibleTarget, match="fastest"):
        m.max_cells(m.fastest_ms(1) - 1.0)


def test_build_is_resumable_and_complete(tmp_path):
    cfg = _cfg(tmp_path)
    out = tmp_path / "lut.csv"
    torch.manual_seed(0)
    lut = build_lut(cfg, out=out, progress=False)
    keys = catalogue(cfg.model, cfg.data.scale, HW, cfg.pruning.schemes, cfg.latency.rates, WidthRule.of(cfg.pruning))
    assert set(keys) <= set(lut.rows) and all(r.latency_ms > 0 and r.n >= 2 for r in lut.rows.values())
    lines = out.read_text().splitlines()
    # simulate an interrupted build: drop the last 5 rows, then resume
    out.write_text("\n".join(lines[:-5]) + "\n")
    again = build_lut(cfg, out=out, progress=False)
    assert len(again) == len(lut) and len(out.read_text().splitlines()) == len(lines)
    m = LatencyModel(LUT.load(out), cfg.model, cfg.data.scale, HW)
    assert m.predict(("wdsr_a", "wdsr_b"), {"body.1.body.2": ("filter", 0.25)}) > 0


def test_load_drift_during_a_build_is_flagged(tmp_path, monkeypatch):
    import srnas.latency.build as build
    from srnas.latency.timing import Timing
    cfg = _cfg(tmp_path)
    chunks = {"n": 0}

    def fake(runners, anchor, reference, **kw):  # every op costs 1 ms, but chunks after the first run under x2 load
        chunks["n"] += 1
        level = 1.0 if chunks["n"] == 1 else 2.0
        return [Timing(level, 0.1 * level, 3, [level] * 3) for _ in [*runners, anchor]]
    monkeypatch.setattr(build, "time_steady", fake)
    with pytest.warns(UserWarning, match="2.00x slower.*quiet machine"):
        lut = build_lut(cfg, out=tmp_path / "a.csv", chunk=3, progress=False)
    assert chunks["n"] > 2 and build.load_drift(lut) == pytest.approx(2.0)
    # rows stay as measured (no rescaling by the anchor)
    assert sorted({r.latency_ms for r in lut.rows.values()}) == [1.0, 2.0]


def test_a_lut_extended_to_a_wider_space_keeps_its_anchor_op(tmp_path, monkeypatch):
    """Widening an elastic space (n_feats 8 -> 16) resumes its LUT with the file's 8-wide anchor: the new rows'
    rounds compare like with like, so a steady machine is not called 2x slower (nor every chunk timed again)."""
    import warnings

    import srnas.latency.build as build
    from srnas.latency.timing import Timing
    anchors = []

    def runner(cfg, backend, key=None):  # an anchor whose time is its width in ms: a wider anchor is a slower op
        key = key or build.anchor_key(cfg)
        anchors.append(key.cin)
        return key

    def fake(runners, anchor, reference, **kw):
        return [Timing(1.0, 0.0, 3, [1.0] * 3) for _ in runners] + [Timing(float(anchor.cin), 0.0, 3, [1.0] * 3)]
    monkeypatch.setattr(build, "make_anchor_runner", runner)
    monkeypatch.setattr(build, "time_steady", fake)
    monkeypatch.setattr(build, "busy_message", lambda: "")   # other work on this machine is not what is tested
    narrow = _cfg(tmp_path, rates=[0.0])
    wide = _cfg(tmp_path / "wide", model={"elastic": True, "n_cells": [1, 2], "n_feats": [8, 16]}, rates=[0.0])
    out = tmp_path / "lut.csv"
    build_lut(narrow, out=out, chunk=4, progress=False)
    n = len(LUT.load(out))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        lut = build_lut(wide, out=out, chunk=4, progress=False)
    assert len(lut) > n and set(anchors) == {8} and build.load_drift(lut) == 1.0
    assert build.anchor_key(wide) == OpKey("conv", 16, 16, 3, *HW)   # a new LUT of the wide space: its own width


def test_model_on_another_size_names_the_missing_row(tmp_path):
    cfg = _cfg(tmp_path)
    lut = _synthetic(tmp_path, cfg).lut
    with pytest.raises(MissingRow, match="h=12 w=20"):
        LatencyModel(lut, cfg.model, cfg.data.scale, (12, 20))


def test_timing_harness_and_measure_module():
    calls = []
    runners = [lambda: calls.append("a"), lambda: calls.append("b")]
    ts = time_interleaved(runners, warmup=1, repeats=4, threads=1)
    assert [t.n >= 4 for t in ts] == [True, True] and calls.count("a") >= 5
    r = measure_module(fuse_weight_norm(build_path_net(load_config_default().model, 2, ("wdsr_a",))), (8, 8),
                       threads=1, warmup=1, repeats=3)
    assert r["median_ms"] > 0 and r["iqr_ms"] >= 0 and r["n"] >= 3


def load_config_default():
    from srnas.supernet.config import Config
    return Config()


def test_accuracy_figures():
    res = accuracy([100, 109, 199, 340], [100, 101, 190, 300])
    assert res["n"] == 4 and res["within_5"] == 0.5 and res["within_10"] == 0.75 and res["within_15"] == 1.0
    assert res["spearman"] == pytest.approx(1.0)
    assert res["mape"] == pytest.approx((0 + 800 / 101 + 900 / 190 + 40 / 3) / 4, rel=1e-6)


def test_onnxruntime_backend_times_an_op():
    r = measure_module(nn.Conv2d(4, 8, 3, padding=1), (8, 8), backend="onnxruntime", threads=1, warmup=1, repeats=3)
    assert r["median_ms"] > 0


def test_cli_build_and_check(tmp_path, capsys):
    from srnas.search.cli import main
    cfg_path = tiny_config(tmp_path, latency={"lr_height": HW[0], "lr_width": HW[1], "warmup": 0, "repeats": 2,
                                              "threads": 1, "calib_samples": 2})
    assert main(["latency", "build", "-c", str(cfg_path)]) == 0
    capsys.readouterr()
    assert main(["latency", "check", "-c", str(cfg_path), "--samples", "4", "--repeats", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("n", "within_5", "within_10", "within_15", "mape", "rmse", "spearman"):
        assert key in res
    assert res["n"] == 4
    assert (tmp_path / "runs" / "tiny" / "latency" / "check_scatter.png").is_file()


def test_every_scheme_rate_combination_is_predictable(tmp_path):
    import itertools
    cfg = _cfg(tmp_path)
    m = _synthetic(tmp_path, cfg)
    grid = [(s, r) for s in cfg.pruning.schemes for r in cfg.latency.rates]
    for block, steps in m.templates.items():
        n_conv = sum(st.op == "conv" for st in steps)
        for layers in itertools.product(grid, repeat=n_conv):
            assert m.block_ms(block, tuple(layers)) > 0  # no MissingRow for any combination


ALL_BLOCKS = ["wdsr_a", "wdsr_b", "plain", "dws"]


def _widths_agree(cfg, path, layers_by_name, seed):
    """Compact the path pruned by the plan; compare every conv's widths (head and tail too) with the rule's."""
    from srnas.pruning import pruned_path_net
    chain = path_chain(cfg.model, cfg.data.scale, path)
    layers = [layers_by_name.get(c.name, ("none", 0.0)) for c in chain.convs]
    plan = {n: lay for n, lay in layers_by_name.items() if lay[0] != "none"}
    torch.manual_seed(seed)
    net = pruned_path_net(cfg.model, cfg.data.scale, path, plan, cfg.pruning)
    got = [(m.in_channels, m.out_channels) for m in (net.get_submodule(c.name) for c in chain.convs)]
    want = WidthRule.of(cfg.pruning).widths(chain, layers)
    if all(s != "block" for s, _ in layers):
        assert got == want, (path, layers)
    # block reads a random union, priced at its expected size; padding may round it one step apart
    tol = lambda n: max(2, 0.2 * n, cfg.pruning.channel_multiple)  # noqa: E731
    for (gi, go), (wi, wo) in zip(got, want):
        assert abs(go - wo) <= tol(wo) and abs(gi - wi) <= tol(wi), (path, layers, got, want)


@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_predicted_widths_match_the_compacted_network(block):
    """What the latency model prices is what pruning.compact builds: exact for filter, near for block.

    A plain block narrows the trunk, so it is judged as two in a row: head -> plain, plain -> plain and
    plain -> tail edges all take part.
    """
    cfg = load_config("experiments/configs/quick.yaml", {"model": {"blocks": ALL_BLOCKS}})
    path = (block, block) if block == "plain" else (block,)
    names = [c.name for c in path_chain(cfg.model, cfg.data.scale, path).convs if c.name.startswith("body.")]
    options = [("none", 0.0)] + [(s, r) for s in ("filter", "block") for r in (0.25, 0.5, 0.75)]
    for seed, layers in enumerate(itertools.product(options, repeat=len(names))):
        _widths_agree(cfg, path, dict(zip(names, layers)), seed)


def test_predicted_widths_match_in_mixed_paths():
    """Plain cells next to residual ones (tied), to the head and tail (ABPN's), with every scheme."""
    cfg = load_config("experiments/configs/fast_x2.yaml", {"model": {"blocks": ALL_BLOCKS, "n_cells": 4}})
    rng = np.random.default_rng(0)
    options = [("none", 0.0)] + [(s, r) for s in ("filter", "block", "unstructured") for r in (0.25, 0.5, 0.75)]
    for seed in range(40):
        path = tuple(ALL_BLOCKS[i] for i in rng.integers(len(ALL_BLOCKS), size=4))
        names = [c.name for c in path_chain(cfg.model, cfg.data.scale, path).convs if c.name.startswith("body.")]
        _widths_agree(cfg, path, {n: options[rng.integers(len(options))] for n in names}, seed)


def test_whole_block_granularity_prices_blocks_by_their_own_rows(tmp_path):
    cfg = _cfg(tmp_path, granularity="block")
    lut = build_lut(cfg, out=tmp_path / "b.csv", progress=False)
    ops = {k.op for k in lut.rows}
    assert {"block_wdsr_a", "block_wdsr_b"} <= ops and "relu" not in ops and "resadd" not in ops
    m = LatencyModel.for_config(lut, cfg, calibrate=False)
    convs = [s for s in block_templates(cfg.model, cfg.data.scale)["wdsr_b"] if s.op == "conv"]
    layers = [("block", 0.5), ("filter", 0.5), ("none", 0.0)]
    w = WidthRule.of(cfg.pruning).widths(convs, layers)
    row = lut.ms(OpKey("block_wdsr_b", w[0][1], w[1][1], 0, *HW))
    assert m.block_ms("wdsr_b", tuple(layers)) == pytest.approx(row)
    # the whole-block module is the block as compaction leaves it: dense convs at those widths
    from srnas.latency.catalogue import block_at_widths
    blk = block_at_widths("wdsr_b", (w[0][1], w[1][1]), cfg.model, cfg.data.scale)
    assert [(c.in_channels, c.out_channels) for c in blk.body if isinstance(c, nn.Conv2d)] == w
    assert blk(torch.rand(1, cfg.model.n_feats, *HW)).shape == (1, cfg.model.n_feats, *HW)
    # off the grid (a rate between grid rates): bilinear over the two inner widths
    assert m.predict(("wdsr_b", "wdsr_a"), {"body.0.body.2": ("filter", 0.4)}) > 0
    assert m.max_cells(m.fastest_ms(2) + 1e-6) == 2


def _fast_cfg(tmp_path, **lat):
    return load_config(tiny_config(
        tmp_path, model={"blocks": ["plain", "dws", "wdsr_b"], "head_act": "relu", "tail": "abpn", "skip": "anchor",
                         "clamp": True},
        latency={"lr_height": HW[0], "lr_width": HW[1], "warmup": 0, "repeats": 2, "threads": 1, "calib_samples": 0,
                 **lat}))


def test_a_plain_path_is_priced_op_by_op_with_its_narrowed_neighbours(tmp_path):
    """Filter pruning of the first of two plain cells narrows its output and the next cell's input; the head
    (conv + ReLU), ABPN tail (conv + ReLU + conv), anchor, add, shuffle and clamp are priced too."""
    cfg = _fast_cfg(tmp_path)
    lut = LUT.create(tmp_path / "syn.csv", fingerprint("torch-cpu", 1))
    rule = WidthRule.of(cfg.pruning)
    for k in catalogue(cfg.model, cfg.data.scale, HW, cfg.pruning.schemes, cfg.latency.rates, rule):
        lut.add(Row(k, synthetic_ms(k), 0.0, 1))
    m = LatencyModel(lut, cfg.model, cfg.data.scale, HW, rule=rule)
    n, c = cfg.model.n_feats, 3 * cfg.data.scale ** 2
    conv = lambda a, b: synthetic_ms(OpKey("conv", a, b, 3, *HW))   # noqa: E731
    relu = lambda a: synthetic_ms(OpKey("relu", a, a, 0, *HW))     # noqa: E731
    s = cfg.data.scale
    fixed = sum(synthetic_ms(k) for k in (OpKey("skip_anchor", 3, c, 0, *HW), OpKey("add", c, c, 0, *HW),
                                          OpKey("shuffle", c, 3, s, *HW), OpKey("clamp", 3, 3, s, *HW)))
    half = kept(n, 0.5)
    want = conv(3, n) + relu(n) + conv(n, half) + relu(half) + conv(half, n) + relu(n) + conv(n, c) + relu(c) \
        + conv(c, c) + fixed
    assert m.predict(("plain", "plain"), {"body.0.body.0": ("filter", 0.5)}) == pytest.approx(want)


@pytest.mark.parametrize("granularity", ["op", "block"])
def test_the_fast_space_is_timed_and_priced_in_full(tmp_path, granularity):
    """A built LUT of plain / dws / wdsr_b cells prices every path under every grid plan (no missing row), and
    its whole-block probes are the blocks as compaction leaves them."""
    from srnas.latency.catalogue import block_at_widths, row_widths
    cfg = _fast_cfg(tmp_path, granularity=granularity)
    lut = build_lut(cfg, out=tmp_path / "f.csv", progress=False)
    ops = {k.op for k in lut.rows}
    assert {"skip_anchor", "clamp", "relu"} <= ops
    assert {"block_plain", "block_dws", "block_wdsr_b"} <= ops if granularity == "block" else "dwconv" in ops
    m = LatencyModel.for_config(lut, cfg, calibrate=False)
    grid = [(s, r) for s in cfg.pruning.schemes for r in cfg.latency.rates]
    space = cfg.model.blocks
    for path in itertools.product(space, repeat=cfg.model.n_cells):
        chain = path_chain(cfg.model, cfg.data.scale, path)
        names = [c.name for c in chain.convs if c.name.startswith("body.")]
        for s, r in grid:
            assert m.predict(path, {nm: (s, r) for nm in names}) > 0
    rule = WidthRule.of(cfg.pruning)
    for block in ("plain", "dws"):
        cell = m.cells[block]
        widths = [(3, 5)] if block == "plain" else rule.widths(cell.convs, [("filter", 0.5)] * 3)
        blk = block_at_widths(block, row_widths(cell, widths), cfg.model, cfg.data.scale)
        assert [(c.in_channels, c.out_channels) for c in blk.body if isinstance(c, nn.Conv2d)] == list(widths)
        x = torch.rand(1, widths[0][0], *HW)
        assert blk(x).shape == (1, widths[-1][1], *HW)

"""The LUT of an elastic space: rows per width, a residual block's rows keyed by its trunk, depth x width pricing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srnas.latency.build import build_lut, calibration_candidates, lut_keys
from srnas.latency.catalogue import OpKey, catalogue, chain_probe, op_module
from srnas.latency.fingerprint import fingerprint
from srnas.latency.lut import LUT, Row
from srnas.latency.model import ElasticLatencyModel, LatencyModel
from srnas.supernet.config import at_size, load_config
from srnas.supernet.widths import WidthRule

from conftest import tiny_config

HW = (6, 10)
WIDTHS = [4, 8, 12]


def _cfg(tmp_path, granularity="block", **model):
    return load_config(tiny_config(
        tmp_path, model={"n_cells": [1, 2, 3], "n_feats": WIDTHS, "blocks": ["plain", "wdsr_b"], "elastic": True,
                         **model},
        latency={"lr_height": HW[0], "lr_width": HW[1], "warmup": 0, "repeats": 2, "threads": 1,
                 "calib_samples": 0, "granularity": granularity}), check_data=False)


def synthetic_ms(k: OpKey) -> float:
    """A known cost that grows with every width of a row (a whole block: its trunk too)."""
    if k.op.startswith("block_"):
        return 1.0 + (k.cin + k.cout + 2 * k.k) / 10.0
    if k.op == "conv":
        return 1.0 + k.cin * k.cout * k.k * k.k * (1 - k.rate) / 100.0
    return 0.5 + k.cin / 10.0


def _synthetic(tmp_path, cfg) -> ElasticLatencyModel:
    lut = LUT.create(tmp_path / "syn.csv", fingerprint("torch-cpu", 1))
    for k in lut_keys(cfg):
        lut.add(Row(k, synthetic_ms(k), 0.0, 1))
    model = LatencyModel.for_config(lut, cfg)
    assert isinstance(model, ElasticLatencyModel)
    return model


def test_rows_exist_per_width_and_residual_rows_carry_their_trunk(tmp_path):
    cfg = _cfg(tmp_path)
    keys = catalogue(cfg.model, 2, HW, list(cfg.pruning.schemes), cfg.latency.rates, WidthRule.of(cfg.pruning),
                     "block")
    assert len(keys) == len(set(keys))
    for n in WIDTHS:
        assert OpKey("conv", 3, n, 3, *HW) in keys                     # the head of width n
        assert OpKey("conv", n, 12, 3, *HW) in keys                    # the tail (n -> 3 * 2^2)
        assert OpKey("block_plain", n, n, 0, *HW) in keys
        # WDSR-B at trunk n, dense: expansion 2 and low rank 0.8 inside, the trunk in k
        assert OpKey("block_wdsr_b", 2 * n, int(0.8 * n), n, *HW) in keys
    # a fixed-size model of one of these widths keys its residual rows as before (k = 0)
    fixed = catalogue(at_size(cfg.model, 3, 8), 2, HW, list(cfg.pruning.schemes), cfg.latency.rates,
                      WidthRule.of(cfg.pruning), "block")
    assert OpKey("block_wdsr_b", 16, 6, 0, *HW) in fixed and OpKey("block_wdsr_b", 16, 6, 8, *HW) not in fixed


def test_every_row_of_an_elastic_lut_builds_its_probe_at_its_trunk(tmp_path):
    cfg = _cfg(tmp_path)
    for key in [k for k in lut_keys(cfg) if k.op.startswith("block_")]:
        module, shapes = op_module(key, cfg.model, 2)
        x = torch.rand(shapes[0])
        assert module(x).shape[1] == (key.k or key.cout)
        chain, _ = chain_probe(key, cfg.model, 2)
        chain(x)


def test_prediction_grows_with_depth_and_width(tmp_path):
    cfg = _cfg(tmp_path)
    model = _synthetic(tmp_path, cfg)
    for block in ("plain", "wdsr_b"):
        by_size = np.array([[model.predict((block,) * d, {}, n) for n in WIDTHS] for d in (1, 2, 3)])
        assert (np.diff(by_size, axis=0) > 0).all() and (np.diff(by_size, axis=1) > 0).all()
    # a member's price is that of the fixed-size model of its width, whose rows are the same
    plan = {"body.0.body.0": ("filter", 0.5)}
    assert model.predict(("plain", "wdsr_b"), plan, 8) == model.at(8).predict(("plain", "wdsr_b"), plan)
    with pytest.raises(Exception, match="width"):
        model.predict(("plain",), {}, 5)


@pytest.mark.parametrize("granularity", ["block", "op"])
def test_an_elastic_lut_builds_and_prices_members(tmp_path, granularity):
    cfg = _cfg(tmp_path, granularity, n_cells=[1, 2], n_feats=[4, 8])
    lut = build_lut(cfg, out=tmp_path / f"{granularity}.csv", progress=False)
    model = LatencyModel.for_config(lut, cfg)
    cands = calibration_candidates(cfg, 6)
    for path, plan, width in cands:
        assert len(path) in (1, 2) and width in (4, 8)
        assert model.predict(path, plan, width) > 0
    # the calibration's fit spans the space: its smallest and largest dense members come first
    assert cands[:2] == [(("plain",), {}, 4), (("wdsr_b",) * 2, {}, 8)]


def test_cli_builds_calibrates_and_checks_an_elastic_lut(tmp_path, capsys):
    """`srnas latency build` / `check` over an elastic space: calibration and check draw members of every size."""
    import json

    from srnas.search.cli import main
    cfg_path = tiny_config(tmp_path, model={"n_cells": [1, 2], "n_feats": [4, 8], "blocks": ["plain", "wdsr_b"],
                                            "elastic": True},
                           latency={"lr_height": HW[0], "lr_width": HW[1], "warmup": 0, "repeats": 2, "threads": 1,
                                    "calib_samples": 3, "granularity": "block"})
    assert main(["latency", "build", "-c", str(cfg_path)]) == 0
    capsys.readouterr()
    assert main(["latency", "check", "-c", str(cfg_path), "--samples", "6", "--repeats", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["n"] == 6 and res["calibration"]["n"] == 3
    rows = (tmp_path / "runs" / "tiny" / "latency" / "check.csv").read_text().splitlines()[1:]
    assert all(r.startswith(('"w4:', '"w8:')) for r in rows)

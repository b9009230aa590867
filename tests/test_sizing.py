"""model.n_cells / n_feats as a list or auto: settled from the LUT before the supernet trains (the paper's N)."""
from __future__ import annotations

import json

import pytest

from srnas.latency import LatencyModel, load_lut
from srnas.search.sizing import resolve_size
from srnas.supernet.config import ConfigError, load_config

from conftest import tiny_config

LAT = {"lr_height": 12, "lr_width": 16, "threads": 1, "warmup": 0, "repeats": 2, "calib_samples": 0,
       "rates": [0.0, 0.5]}


def sized(tmp_path, target_ms: float, cells, feats, lut: str = ""):
    cfg = load_config(tiny_config(tmp_path, model={"n_cells": cells, "n_feats": feats},
                                  latency={**LAT, "target": f"{target_ms}ms", "lut": lut},
                                  pruning={"schemes": ["none", "filter"]}))
    return cfg, resolve_size(cfg, cfg.run())


def test_largest_size_whose_fastest_path_meets_the_target(tmp_path):
    cfg, got = sized(tmp_path, 1e6, [1, 2, 3], [4, 8])       # everything fits: the largest of both
    assert (got.model.n_cells, got.model.n_feats) == (3, 8)
    saved = json.loads(cfg.run().size.read_text())
    assert (saved["n_cells"], saved["n_feats"]) == (3, 8) and {r["n_feats"] for r in saved["table"]} == {4, 8}


def test_the_choice_meets_the_target_and_one_size_more_would_not(tmp_path):
    _, probe = sized(tmp_path / "probe", 1e6, [1, 2, 3, 4], 8)
    model = LatencyModel.for_config(load_lut(probe), probe, calibrate=False)
    target = (model.fastest_ms(2) + model.fastest_ms(3)) / 2   # between two and three cells
    _, got = sized(tmp_path / "run", target, [1, 2, 3, 4], 8, lut=str(model.lut.path))   # the same measured rows
    assert got.model.n_cells == 2 and got.model.n_feats == 8


def test_no_feasible_size_says_so(tmp_path):
    from srnas.latency import InfeasibleTarget
    with pytest.raises(InfeasibleTarget, match="no size"):
        sized(tmp_path, 0.01, [1, 2], [4, 8])   # the smallest budget the config takes


def test_a_list_needs_an_absolute_target(tmp_path):
    with pytest.raises(ConfigError, match="model.n_cells.*absolute latency.target"):
        load_config(tiny_config(tmp_path, model={"n_cells": "auto"}, latency={"target": "0.9x"}))


def test_run_trains_the_supernet_at_the_chosen_size(tmp_path, monkeypatch):
    import srnas.search.pipeline as pipeline
    cfg = load_config(tiny_config(tmp_path, model={"n_cells": [1, 2], "n_feats": [4, 8]},
                                  latency={**LAT, "target": "1000000ms"}, pruning={"schemes": ["none", "filter"]}))
    seen = {}

    def fake_train(cfg, out_dir, resume=False):
        seen["model"] = (cfg.model.n_cells, cfg.model.n_feats)
        raise KeyboardInterrupt
    monkeypatch.setattr(pipeline, "train_supernet", fake_train)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_all(cfg, cfg.run())
    assert seen["model"] == (2, 8)
    assert "n_cells: 2" in cfg.run().config.read_text()      # the saved config states the size it trains

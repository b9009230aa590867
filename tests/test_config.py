from pathlib import Path

import pytest

from supernet.config import ConfigError, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["quick.yaml", "paper_x2.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "experiments" / "configs" / name)
    assert cfg.data.scale == 2
    assert cfg.model.blocks == ["wdsr_a", "wdsr_b"]


def test_unknown_key_names_its_path():
    with pytest.raises(ConfigError, match=r"model\.n_feat\b"):
        config_from_dict({"model": {"n_feat": 8}})


def test_unknown_section_is_an_error():
    with pytest.raises(ConfigError, match="modle"):
        config_from_dict({"modle": {}})


@pytest.mark.parametrize("data, where", [
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"data": {"scale": 2.5}}, "data.scale"),
    ({"data": {"train": "Set5"}}, "data.train"),
    ({"model": {"blocks": ["wdsr_a", 3]}}, r"model.blocks\[1\]"),
    ({"latency": {"backend": "tpu"}}, "latency.backend"),
    ({"data": {"augment": "yes"}}, "data.augment"),
])
def test_wrong_types_name_the_key(data, where):
    with pytest.raises(ConfigError, match=where):
        config_from_dict(data)


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="data.scale"):
        config_from_dict({"data": {"scale": 5}})
    with pytest.raises(ConfigError, match="block_probs"):
        config_from_dict({"train": {"block_probs": [1.0]}})


def test_ints_are_accepted_as_floats_and_overrides_win(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {lr: 1}\nmodel: {n_feats: 8}\n")
    cfg = load_config(p, overrides={"model": {"n_cells": 3}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert (cfg.model.n_feats, cfg.model.n_cells) == (8, 3)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)

from pathlib import Path

import pytest

from srnas.supernet.config import ConfigError, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["quick.yaml", "paper_x2.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "experiments" / "configs" / name, check_data=False)
    assert cfg.data.scale == 2
    assert cfg.model.blocks == ["wdsr_a", "wdsr_b"]


def test_demo_config_needs_only_the_clone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # no ../shared beside this folder
    monkeypatch.delenv("SRNAS_DATA", raising=False)
    cfg = load_config(ROOT / "experiments" / "configs" / "quick.yaml")
    assert cfg.data.train == ["skimage"] and cfg.data.benchmarks == ["skimage"]


def test_missing_datasets_fail_at_load_one_line_each(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SRNAS_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = tmp_path / "c.yaml"
    p.write_text(f"data: {{train: [skimage, {empty}], val: NoSuchSet, benchmarks: [skimage, Set5]}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    lines = str(e.value).splitlines()
    assert "3 problem(s)" in lines[0]
    assert [ln.split(":")[0].strip() for ln in lines[1:]] == ["data.train[1]", "data.val", "data.benchmarks[1]"]
    assert "no images" in lines[1] and "SRNAS_DATA" in lines[2]


def test_every_problem_is_listed_not_only_the_first():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"train": {"lr": -0.001, "steps": 0}, "latency": {"target": "-5ms", "rates": [0.5, 1.0]},
                          "model": {"n_feets": 8}})
    text = str(e.value)
    assert "5 problem(s)" in text
    for where in ("train.lr: -0.001 must be above 0", "train.steps: 0 must be above 0", "latency.target: '-5ms'",
                  "latency.rates:", "model.n_feets: unknown config key"):
        assert where in text


@pytest.mark.parametrize("old, new", [({"latency": {"target_ms": 50}}, "latency.target"),
                                      ({"search": {"target_rel": 0.85}}, "0.85x")])
def test_renamed_keys_say_where_they_went(old, new):
    with pytest.raises(ConfigError, match=f"renamed to .*{new}"):
        config_from_dict(old)


@pytest.mark.parametrize("text, ms, rel", [("50ms", 50.0, 0.0), ("0.85x", 0.0, 0.85), ("", 0.0, 0.0),
                                           (" 12.5 MS", 12.5, 0.0)])
def test_target_is_one_key(text, ms, rel):
    cfg = config_from_dict({"latency": {"target": text}})
    assert (cfg.latency.target_ms, cfg.latency.target_rel) == (ms, rel)


def test_set_overrides_are_validated_like_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: a\nlatency: {target: 0.9x}\n")
    cfg = load_config(p, ["latency.target=50ms", "name=q50", "data.benchmarks=[skimage]", "model.n_cells=2"])
    assert (cfg.name, cfg.latency.target_ms, cfg.data.benchmarks, cfg.model.n_cells) == ("q50", 50.0, ["skimage"], 2)
    with pytest.raises(ConfigError, match=r"model.n_cells: 'two' is not an integer, a list of integers, or one "):
        load_config(p, ["model.n_cells=two"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(p, ["latency.target"])


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
    import srnas.latency.runtimes.registry  # noqa: F401 (the runtimes latency.backend may name, loaded as the CLI loads them)
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

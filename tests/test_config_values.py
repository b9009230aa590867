"""Values a config must not hold: NaN / inf anywhere, an empty file, targets repeated or too small to be real."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_config
from srnas.search.cli import main
from srnas.supernet.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", ".NaN"])
@pytest.mark.parametrize("key", ["train.lr", "model.low_rank", "pruning.lr", "latency.rates"])
def test_non_finite_numbers_are_refused_at_load(tmp_path, text, key):
    cfg = tiny_config(tmp_path)
    value = f"[0, {text}]" if key == "latency.rates" else text
    with pytest.raises(ConfigError) as e:
        load_config(cfg, [f"{key}={value}"])
    assert key in str(e.value) and "not a finite number" in str(e.value)


def test_non_finite_lr_stops_the_cli_before_any_folder_is_made(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    assert main(["run", "-c", str(cfg), "--set", "train.lr=.inf"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: inf is not a finite number" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def _refused_in_one_line(path: Path, data: bytes, says: str, capsys) -> str:
    """Write ``data`` as a config: load_config raises ConfigError matching ``says``, and `srnas run` on it exits 2
    with one line and no traceback; that line."""
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=says):
        load_config(path)
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_config_file_is_an_error(tmp_path, capsys, text):
    assert "is empty" in _refused_in_one_line(tmp_path / "empty.yaml", text.encode(), "is empty", capsys)


def test_duplicate_targets_are_named():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"latency": {"targets": ["1000ms", "50ms", "1000 ms"]}})
    assert "latency.targets[2]: '1000 ms' is the same target as latency.targets[0] ('1000ms')" in str(e.value)


@pytest.mark.parametrize("text", ["0.0001ms", "0.001x", "infms", "nanx", "-3ms", "0ms"])
def test_every_target_in_targets_is_checked_like_target(text):
    with pytest.raises(ConfigError) as single:
        config_from_dict({"latency": {"target": text}})
    with pytest.raises(ConfigError) as listed:
        config_from_dict({"latency": {"targets": ["50ms", text]}})
    assert "latency.target:" in str(single.value) and "latency.targets[1]:" in str(listed.value)
    assert str(single.value).split(": ", 2)[-1] == str(listed.value).split(": ", 2)[-1]


def test_a_tiny_target_is_refused_with_what_to_check():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"latency": {"targets": ["0.0001ms", "50ms"]}})
    msg = str(e.value)
    assert "latency.targets[0]: '0.0001ms' is below 0.01ms" in msg and "'0ms'" not in msg


def test_realistic_targets_still_load():
    cfg = config_from_dict({"latency": {"targets": ["25ms", "50ms", "0.9x", "0.01ms"]}})
    assert cfg.latency.targets == ["25ms", "50ms", "0.9x", "0.01ms"]


@pytest.mark.parametrize("data", [bytes(range(256)), "name: caf\xe9\n".encode("latin-1")])
def test_a_config_that_is_not_utf8_text_is_one_line(tmp_path, capsys, data):
    _refused_in_one_line(tmp_path / "c.yaml", data, "not UTF-8 text", capsys)


@pytest.mark.parametrize("text, says", [("model: [unclosed\n", "at line 2, column 1: expected ',' or ']'"),
                                        ("model:\n\tn_feats: 8\n", "at line 2, column 1: found character '\\t'")])
def test_invalid_yaml_is_one_line_with_where(tmp_path, capsys, text, says):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    assert main(["run", "-c", str(p)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML " + says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["", " ", ".", "..", "../../elsewhere", "a/b"])
def test_the_run_name_is_one_folder_name(tmp_path, name):
    """An empty name wrote the run into run_dir itself; '../..' outside it."""
    with pytest.raises(ConfigError, match="name: .* must be one folder name"):
        load_config(tiny_config(tmp_path), [f"name={name}"])


@pytest.mark.parametrize("schemes, says", [("[none,magic]", r"pruning.schemes\[1\]: 'magic' is not one of"),
                                           ("[]", "at least one"), ("[none,filter,none]", "distinct")])
def test_pruning_schemes_are_checked(tmp_path, schemes, says):
    """An unknown scheme was ignored and the run exited 0."""
    with pytest.raises(ConfigError, match=says):
        load_config(tiny_config(tmp_path), [f"pruning.schemes={schemes}"])


def test_config_schemes_are_the_pruning_schemes():
    import typing

    from srnas.pruning.schemes import SCHEMES
    from srnas.supernet.config import PruningConfig
    (item,) = typing.get_args(typing.get_type_hints(PruningConfig)["schemes"])
    assert set(typing.get_args(item)) == set(SCHEMES) == set(PruningConfig().schemes)


@pytest.mark.parametrize("key, value", [("model.n_feats", "100000"), ("model.n_feats", "[8,100000]"),
                                        ("model.n_cells", "1000"), ("model.expansion_a", "5000")])
def test_sizes_far_past_any_search_are_refused_before_anything_is_built(tmp_path, capsys, key, value):
    """n_feats 100000 tried to allocate 720 GB in a traceback."""
    cfg = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match=f"{key}: .* is far past any searched network; use at most"):
        load_config(cfg, [f"{key}={value}"])
    assert main(["supernet", "train", "-c", str(cfg), "--set", f"{key}={value}"]) == 2
    assert "Traceback" not in capsys.readouterr().err and not (tmp_path / "runs").exists()

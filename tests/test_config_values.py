"""Values a config must not hold: NaN / inf anywhere, an empty file, targets repeated or too small to be real."""
from __future__ import annotations

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


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_config_file_is_an_error(tmp_path, capsys, text):
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="is empty"):
        load_config(p)
    assert main(["run", "-c", str(p)]) == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


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

"""The srnas command: help, clear errors, and supernet eval."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_config


def _run(*args):
    return subprocess.run([sys.executable, "-m", "srnas", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_help_lists_the_stages():
    r = _run("--help")
    assert r.returncode == 0 and "supernet" in r.stdout


def test_bad_config_key_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {n_feets: 8}\n")
    r = _run("supernet", "train", "-c", str(bad))
    assert r.returncode == 2
    assert "model.n_feets" in r.stderr and "Traceback" not in r.stderr


def test_eval_without_weights_says_what_to_run(tmp_path):
    r = _run("supernet", "eval", "-c", str(tiny_config(tmp_path)))
    assert r.returncode == 2 and "supernet train" in r.stderr


@pytest.mark.slow
def test_train_then_eval_table(tmp_path):
    cfg = tiny_config(tmp_path)
    assert _run("supernet", "train", "-c", str(cfg)).returncode == 0
    r = _run("supernet", "eval", "-c", str(cfg), "--datasets", "skimage", "--path", "a,b", "--sample", "2",
             "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["model"] for row in rows][:2] == ["bicubic", "wdsr_a-wdsr_b"]
    assert len(rows) == 4 and all(0 < row["ssim"] <= 1 for row in rows)
    assert len({row["model"] for row in rows}) == 4  # sampled paths are distinct


def test_every_command_with_a_config_takes_set_and_allow_foreign_lut():
    from srnas.search.cli import _commands, build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_config = [c for c in _commands(sub) if any(a.dest == "config" for a in c._actions)]
    names = {c.prog.split(" ", 1)[1] for c in with_config}
    assert {"run", "latency build", "latency check", "latency import", "prune", "bench"} <= names
    for c in with_config:
        flags = {o for a in c._actions for o in a.option_strings}
        assert {"--set", "--allow-foreign-lut"} <= flags, c.prog

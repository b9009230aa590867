"""One process per run folder: a second command on a run in use exits 2 naming the holder; a killed holder's
lock is taken over."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, tiny_config
from srnas.search.cli import main
from srnas.supernet.runlock import HOLDER_NAME, LOCK_NAME, RunLocked, holder, lock_folder, run_lock

HOLD = ("import sys, time; from supernet.runlock import run_lock\n"
        "with run_lock(sys.argv[1], 'srnas run -c held.yaml'):\n"
        "    print('held', flush=True); time.sleep(120)\n")


def _holding(root: Path) -> subprocess.Popen:
    """A process that holds the lock of ``root`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_with_the_holders_pid_and_command(tmp_path):
    root = tmp_path / "runs" / "tiny"
    proc = _holding(root)
    try:
        with pytest.raises(RunLocked) as e:
            with run_lock(root):
                pass
        msg = str(e.value)
        assert f"process {proc.pid}" in msg and "srnas run -c held.yaml" in msg and str(root) in msg
        assert "\n" not in msg
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    root = tmp_path / "run"
    proc = _holding(root)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert holder(root)["pid"] == proc.pid          # the killed process left its holder file behind
    with run_lock(root, "srnas run -c again.yaml"):
        assert holder(root)["pid"] == os.getpid() and holder(root)["command"] == "srnas run -c again.yaml"
    assert not (root / HOLDER_NAME).exists()


def test_the_lock_is_released_and_a_folder_made_only_for_it_removed(tmp_path):
    root = tmp_path / "new"
    with pytest.raises(ValueError):
        with run_lock(root):
            assert (root / LOCK_NAME).exists()
            raise ValueError("bad input")
    assert not root.exists()
    kept = tmp_path / "kept"
    with run_lock(kept):
        (kept / "config.yaml").write_text("x")
    with run_lock(kept):      # free again once the first block ended
        pass
    assert (kept / "config.yaml").exists() and not (kept / HOLDER_NAME).exists()


def test_only_rank_0_takes_the_lock_under_torchrun(tmp_path, monkeypatch):
    root = tmp_path / "run"
    proc = _holding(root)
    try:
        monkeypatch.setenv("RANK", "1")
        with run_lock(root):      # rank 0 of the same command holds it
            pass
    finally:
        proc.kill()
        proc.wait()


def test_lock_folder_is_the_run_unless_the_output_lies_outside_it(tmp_path):
    run = tmp_path / "runs" / "x"
    assert lock_folder(run) == run
    assert lock_folder(run, run / "export") == run
    assert lock_folder(run, tmp_path / "elsewhere") == tmp_path / "elsewhere"


@pytest.mark.parametrize("argv", [["supernet", "train"], ["run"], ["search"], ["latency", "build"], ["prune"],
                                  ["export"], ["ablate"]])
def test_every_writing_command_refuses_a_run_in_use(tmp_path, capsys, argv):
    cfg = tiny_config(tmp_path)
    root = tmp_path / "runs" / "tiny"
    proc = _holding(root)
    try:
        assert main([*argv, "-c", str(cfg)]) == 2
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err
    assert f"is in use by process {proc.pid}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert {p.name for p in root.iterdir()} == {LOCK_NAME, HOLDER_NAME}   # nothing written


@pytest.mark.slow
def test_two_runs_on_one_name_at_once(tmp_path):
    from test_search_pipeline import TINY
    cfg = tiny_config(tmp_path, **{**TINY, "latency": {**TINY["latency"], "target": "1000ms"}})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "srnas", "run", "-c", str(cfg)]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = tmp_path / "runs" / "tiny"
    deadline = time.time() + 60
    while holder(root) is None and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"is in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    hist = pd.read_csv(root / "search" / "history.csv")
    assert len(hist) > 0 and hist["key"].is_unique
    log = pd.read_csv(root / "supernet" / "train_log.csv")
    assert not log.duplicated(["step", "path"]).any()


def test_bench_into_a_run_and_latency_import_wait_their_turn(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    root = tmp_path / "runs" / "tiny"
    src = tmp_path / "phone.csv"
    src.write_text("op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,2.5\n")
    proc = _holding(root)
    try:
        assert main(["bench", "--run", str(root)]) == 2
        assert main(["latency", "import", "-c", str(cfg), str(src), "--backend", "onnxruntime",
                     "--cpu-model", "Phone"]) == 2
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err
    assert err.count(f"is in use by process {proc.pid}") == 2
    assert not (root / "latency").exists()


@pytest.mark.parametrize("where", ["file", "under_a_file", "read_only"])
def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path, capsys, monkeypatch, where):
    """`--out` (or run_dir) a file, under a file or read-only: a FileExistsError / NotADirectoryError / EROFS
    traceback from the lock's mkdir, in every command that writes a run folder."""
    import errno
    import os

    import srnas.supernet.writes as writes
    from srnas.search.cli import main
    cfg = tiny_config(tmp_path)
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    out = {"file": taken, "under_a_file": taken / "run", "read_only": tmp_path / "ro"}[where]
    if where == "read_only":   # root writes through chmod; a read-only mount stops root too
        def read_only(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr(writes, "write_probe", read_only)
    said = {"file": f"{taken} is", "under_a_file": f"cannot be created: {taken} is a file",   # run_dir a file: a file
            "read_only": "is not writable (Read-only file system)"}[where]                # above <run_dir>/tiny
    for argv in (["supernet", "train", "-c", str(cfg), "--out", str(out)],
                 ["latency", "build", "-c", str(cfg), "--out", str(out / "lut.csv")],
                 ["run", "-c", str(cfg), "--set", f"run_dir={out}"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and said in err, err
    assert taken.read_text() == "keep me" and not (tmp_path / "runs").exists()

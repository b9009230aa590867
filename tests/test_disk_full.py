"""A full disk (an injected ENOSPC) during training, the LUT build, upscale and export: one line each (exit 2, no
traceback), nothing half-written under a final name and no temporary file left, and the command run again after
space was freed completes."""
from __future__ import annotations

import builtins
import errno
import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import srnas.supernet.writes as writes
from conftest import tiny_config
from srnas.latency.lut import LUT
from srnas.search.cli import main
from srnas.supernet import checkpoint


class _Full:
    """A file whose next write stores ``room`` bytes of its data and then fails for want of space (or with
    ``code``)."""

    def __init__(self, f, room: int, code: int = errno.ENOSPC):
        self._f, self._room, self._code = f, room, code

    def write(self, data):
        self._f.write(data[:self._room])
        self._f.flush()
        raise OSError(self._code, os.strerror(self._code))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


class FullFrom:
    """Stands in for ``open`` in supernet.writes: the ``n``-th file opened for writing (and every later one) runs
    out of space part-way through its write."""

    def __init__(self, n: int, room: int = 7):
        self.n, self.room, self.opened = n, room, 0

    def __call__(self, file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wa"):
            self.opened += 1
            if self.opened >= self.n:
                return _Full(f, self.room)
        return f


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


def _files(folder) -> list[str]:
    """The files of ``folder`` but its hidden ones (the run lock of a command writing there)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _no_tmp(folder) -> None:
    assert not [p for p in folder.rglob("*.tmp")], list(folder.rglob("*.tmp"))


def test_full_disk_while_training_keeps_the_last_checkpoint_and_resumes(tmp_path, capsys, monkeypatch):
    cfg = tiny_config(tmp_path, train={"steps": 9, "epoch_steps": 3})
    stage = tmp_path / "runs" / "tiny" / "supernet"
    calls = []

    def open_(file, mode="r", *args, **kwargs):   # the second checkpoint write runs out of space part-way
        f = builtins.open(file, mode, *args, **kwargs)
        if str(file).endswith("checkpoint.pt.tmp"):
            calls.append(file)
            if len(calls) == 2:
                return _Full(f, 16)
        return f

    monkeypatch.setattr(writes, "open", open_, raising=False)
    assert main(["supernet", "train", "-c", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"no space left on device writing {stage / 'checkpoint.pt'}" in line and "free some space" in line
    _no_tmp(tmp_path)
    assert checkpoint.load(stage / "checkpoint.pt")["step"] == 3 and not (stage / "supernet.pt").exists()
    monkeypatch.setattr(writes, "open", builtins.open, raising=False)   # space freed
    assert main(["supernet", "train", "-c", str(cfg), "--resume"]) == 0
    assert (stage / "supernet.pt").exists()
    _no_tmp(tmp_path)


def test_full_disk_during_the_lut_build_leaves_whole_rows_and_the_rebuild_completes(tmp_path, capsys, monkeypatch):
    cfg = tiny_config(tmp_path, latency={"lr_height": 8, "lr_width": 8, "warmup": 0, "repeats": 1, "threads": 1,
                                         "calib_samples": 0}, pruning={"schemes": ["none"]})
    path = tmp_path / "runs" / "tiny" / "latency" / "lut-torch-cpu.csv"
    monkeypatch.setattr(writes, "open", FullFrom(7), raising=False)    # record.json, the file, 4 rows, then full
    assert main(["latency", "build", "-c", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"no space left on device writing {path}" in line
    _no_tmp(tmp_path)
    text = path.read_text()
    assert text.endswith("\n")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)   # no damaged row: the torn one was cut back off
        warnings.filterwarnings("ignore", message=".*BUSY")
        assert len(LUT.load(path)) == 4
    monkeypatch.undo()
    assert main(["latency", "build", "-c", str(cfg)]) == 0
    lut = LUT.load(path)
    assert len(lut) > 4 and len([ln for ln in path.read_text().splitlines() if not ln.startswith("#")]) == len(lut) + 1


def test_full_disk_during_upscale_leaves_no_empty_png_and_the_rerun_writes_all(tmp_path, capsys, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(frames / f"f{i}.png", (rng.random((12, 10, 3)) * 255).astype(np.uint8))
    out = tmp_path / "up"
    monkeypatch.setattr(writes, "open", FullFrom(2), raising=False)
    assert main(["upscale", "bicubic", str(frames), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"no space left on device writing {out / 'f1.png'}" in line and "1 of 3 frame(s) were written" in line
    assert _files(out) == ["f0.png"]     # whole, and nothing under f1's or f2's name
    assert iio.imread(out / "f0.png").shape == (24, 20, 3)
    monkeypatch.undo()
    assert main(["upscale", "bicubic", str(frames), "--out", str(out)]) == 0
    assert _files(out) == ["f0.png", "f1.png", "f2.png"]
    assert all(iio.imread(out / f"f{i}.png").shape == (24, 20, 3) for i in range(3))


@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
def test_an_image_whose_write_fails_anywhere_is_absent_and_listed(tmp_path, capsys, monkeypatch, where):
    """Issue 33: an I/O error part-way through one image's write, at its fsync or at its rename leaves nothing of
    it under its name or as a .tmp; the other images are written whole and the run exits 1 naming it."""
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(frames / f"f{i}.png", (rng.random((12, 10, 3)) * 255).astype(np.uint8))
    out = tmp_path / "up"
    bad = out / "f1.png"
    eio = OSError(errno.EIO, "Input/output error")
    real_fsync, real_replace = os.fsync, os.replace

    def open_(file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        return _Full(f, 100, errno.EIO) if str(file) == f"{bad}.tmp" else f

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == f"{bad}.tmp":
            raise eio
        real_fsync(fd)

    def replace(src, dst):
        if str(dst) == str(bad):
            raise eio
        real_replace(src, dst)

    if where == "write":
        monkeypatch.setattr(writes, "open", open_, raising=False)
    else:   # writes.os is os itself: undone by monkeypatch when the test ends
        monkeypatch.setattr(writes.os, where.replace("rename", "replace"), fsync if where == "fsync" else replace)
    assert main(["upscale", "bicubic", str(frames), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"cannot write {bad} (Input/output error)" in err
    assert _files(out) == ["f0.png", "f2.png"]
    assert all(iio.imread(out / f"f{i}.png").shape == (24, 20, 3) for i in (0, 2))
    _no_tmp(tmp_path)


def test_full_disk_during_export_leaves_no_tmp_and_the_rerun_writes_both(tmp_path, capsys, monkeypatch):
    from test_pruning_export import _stage3_model
    cfg_path, model, _ = _stage3_model(tmp_path)
    out = tmp_path / "X"
    monkeypatch.setattr(writes, "open", FullFrom(2), raising=False)    # model.ts fits, model.onnx does not
    assert main(["export", "-c", str(cfg_path), "--model", str(model), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"no space left on device writing {out / 'model.onnx'}" in line
    assert _files(out) == ["model.ts"]
    torch.jit.load(str(out / "model.ts"))                              # whole
    monkeypatch.undo()
    assert main(["export", "-c", str(cfg_path), "--model", str(model), "--out", str(out)]) == 0
    assert _files(out) == ["model.onnx", "model.ts"]


@pytest.mark.parametrize("error, said", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/x.bin"), "no space left on device writing /data/run/x.bin"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "no space left on device"),
    (RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file "
                  "write failed"), "writing a file failed (")])
def test_a_full_disk_in_any_write_is_one_line(tmp_path, capsys, monkeypatch, error, said):
    """A write no stage wrapped still ends in one line, not a traceback (the CLI's last handler)."""
    import srnas.supernet.cli as supernet_cli
    cfg = tiny_config(tmp_path)

    def train(*a, **k):
        raise error

    monkeypatch.setattr(supernet_cli, "train_supernet", train)
    assert main(["supernet", "train", "-c", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert said in line and "free some space" in line


def test_other_errors_are_not_taken_for_a_full_disk(tmp_path, monkeypatch):
    import srnas.supernet.cli as supernet_cli
    cfg = tiny_config(tmp_path)
    monkeypatch.setattr(supernet_cli, "train_supernet", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output"):
        main(["supernet", "train", "-c", str(cfg)])


def test_full_disk_while_bench_writes_leaves_no_empty_file(tmp_path, capsys, monkeypatch):
    """bench.png was left empty (0 bytes) under its name, and the error named no file."""
    out = tmp_path / "b"
    monkeypatch.setattr(writes, "open", FullFrom(3), raising=False)    # bench.csv, bench.md fit; bench.png does not
    assert main(["bench", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8", "--repeats", "1",
                 "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"no space left on device writing {out / 'bench.png'}" in line
    assert _files(out) == ["bench.csv", "bench.md"]
    _no_tmp(tmp_path)


def test_full_disk_while_writing_a_probe_kit_names_the_file(tmp_path, capsys, monkeypatch):
    """The ONNX exporter wrote each probe itself: the error named no file and could leave a torn probe."""
    cfg = tiny_config(tmp_path, latency={"lr_height": 8, "lr_width": 8}, pruning={"schemes": ["none"]})
    out = tmp_path / "kit"
    monkeypatch.setattr(writes, "open", FullFrom(3), raising=False)
    assert main(["latency", "probes", "-c", str(cfg), "--out", str(out), "--backend", "onnxruntime"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"no space left on device writing {out}/" in line and line.startswith("srnas latency: error:")
    _no_tmp(tmp_path)
    import onnx
    for f in out.glob("*.onnx"):   # what was written is whole
        onnx.load(str(f))

"""A model file is data, not code: every .pt srnas opens is read weights-only, and a file whose pickle would
run code is refused with one line (exit 2) before anything in it runs; damaged files name themselves."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from srnas.experiments import zoo
from srnas.pruning.model_file import PrunedModel
from srnas.search.cli import main
from srnas.supernet import checkpoint
from srnas.supernet.errors import UserError

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = zoo.weights_path("srnas_abpn", 2)   # the front member srnas_abpn names


class Payload:
    """Unpickling this creates ``marker``: what a malicious model file could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def evil_copy(src: Path, dst: Path, marker: Path) -> Path:
    """A real srnas file with a payload added to its dict (it would still work if unpickled fully)."""
    blob = torch.load(src, map_location="cpu", weights_only=True)
    blob["extra"] = Payload(marker)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, dst)
    return dst


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of the srnas command."""
    code = main(argv)
    return code, capsys.readouterr().err


def one_line_refusal(code: int, err: str, path: Path) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(path) in lines[0] and "convert-model" in lines[0]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    m = tmp_path / "PAYLOAD_RAN"
    yield m
    assert not m.exists(), "the model file's pickle ran code"


def test_payload_would_run_if_unpickled(tmp_path: Path):
    """The payload is real: a full unpickle (what srnas did before) creates the marker."""
    m = tmp_path / "ran"
    f = evil_copy(SHIPPED, tmp_path / "evil.pt", m)
    torch.load(f, weights_only=False)
    assert m.exists()


def test_upscale_refuses(tmp_path: Path, marker: Path, capsys):
    f = evil_copy(SHIPPED, tmp_path / "evil.pt", marker)
    img = tmp_path / "in.png"
    import imageio.v3 as iio
    import numpy as np
    iio.imwrite(img, np.zeros((24, 24, 3), np.uint8))
    one_line_refusal(*run_cli(["upscale", str(f), str(img), "--out", str(tmp_path / "out")], capsys), f)


def test_bench_refuses(tmp_path: Path, marker: Path, capsys):
    f = evil_copy(SHIPPED, tmp_path / "evil.pt", marker)
    cfg = tiny_config(tmp_path)
    one_line_refusal(*run_cli(["bench", "-c", str(cfg), "--models", str(f), "--datasets", "skimage",
                               "--out", str(tmp_path / "b")], capsys), f)


def test_export_refuses(tmp_path: Path, marker: Path, capsys):
    f = evil_copy(SHIPPED, tmp_path / "evil.pt", marker)
    cfg = tiny_config(tmp_path)
    one_line_refusal(*run_cli(["export", "-c", str(cfg), "--model", str(f)], capsys), f)


def test_zoo_weights_dir_refuses(tmp_path: Path, marker: Path, capsys):
    wdir = tmp_path / "weights"
    evil_copy(ROOT / "experiments" / "weights" / "espcn_x2.pt", wdir / "espcn_x2.pt", marker)
    cfg = tiny_config(tmp_path)
    code, err = run_cli(["bench", "-c", str(cfg), "--models", "espcn", "--weights-dir", str(wdir),
                         "--datasets", "skimage", "--out", str(tmp_path / "b")], capsys)
    one_line_refusal(code, err, wdir / "espcn_x2.pt")


@pytest.mark.slow
def test_run_folder_files_refused_on_resume_and_eval(tmp_path: Path, marker: Path, capsys):
    """A shared run folder: its supernet checkpoint, supernet weights and stage-3 progress are data too."""
    cfg = tiny_config(tmp_path)
    assert main(["supernet", "train", "-c", str(cfg)]) == 0
    sdir = tmp_path / "runs" / "tiny" / "supernet"
    capsys.readouterr()
    # supernet eval opens supernet.pt
    weights = sdir / "supernet.pt"
    evil_copy(weights, weights, marker)
    one_line_refusal(*run_cli(["supernet", "eval", "-c", str(cfg)], capsys), weights)
    # a resumed training (killed before it wrote supernet.pt) opens checkpoint.pt
    weights.unlink()
    ckpt = sdir / "checkpoint.pt"
    evil_copy(ckpt, ckpt, marker)
    one_line_refusal(*run_cli(["supernet", "train", "-c", str(cfg), "--resume"], capsys), ckpt)


def test_stage3_progress_refused(tmp_path: Path, marker: Path):
    """pruning's progress file (stage3/checkpoint.pt) is read through the same door."""
    from srnas.pruning.resume import Progress
    f = tmp_path / "checkpoint.pt"
    torch.save({"signature": {}, "phase": "finetune", "x": Payload(marker)}, f)
    with pytest.raises(UserError, match="convert-model"):
        Progress(f, {}).load()


def test_damaged_checkpoint_names_file_and_fix(tmp_path: Path):
    f = tmp_path / "checkpoint.pt"
    shutil.copy(SHIPPED, f)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(UserError) as e:
        checkpoint.load(f, fix="remove it (or pass --redo)")
    msg = str(e.value)
    assert str(f) in msg and "damaged" in msg and "--redo" in msg and "\n" not in msg


def test_convert_trusted_round_trip(tmp_path: Path):
    """An older file (pickled Masks object) is refused, converted once on request, then loads as data."""
    from srnas.pruning.masks import Masks
    pm = PrunedModel.load(SHIPPED)
    old = tmp_path / "old.pt"
    blob = {"format": "srnas-pruned/2", **{k: getattr(pm, k) for k in pm.__dataclass_fields__}}
    torch.save(blob, old)   # the Masks instance pickles as an object, as srnas <= 0.1 wrote it
    assert isinstance(blob["masks"], Masks)
    with pytest.raises(UserError, match="convert-model"):
        PrunedModel.load(old)
    assert main(["convert-model", str(old)]) == 0
    back = PrunedModel.load(old)
    x = torch.rand(1, 3, 20, 24)
    torch.testing.assert_close(back.compact()(x), pm.compact()(x))
    assert (tmp_path / "old.pt.pickled").exists()
    with pytest.raises(UserError, match="nothing to convert"):
        checkpoint.convert_old(old, [Masks])


def test_convert_refuses_a_payload(tmp_path: Path, marker: Path, capsys):
    """The converter rebuilds srnas's own classes only: a payload stays unopened there too."""
    f = evil_copy(SHIPPED, tmp_path / "evil.pt", marker)
    code, err = run_cli(["convert-model", str(f)], capsys)
    assert code == 2 and "not converted" in err and str(f) in err
    assert f.exists() and not (tmp_path / "evil.pt.pickled").exists()


def test_saved_files_hold_plain_data_only(tmp_path: Path):
    """What srnas writes loads weights-only (the shipped searched models included)."""
    for f in sorted((ROOT / "experiments" / "weights").glob("*.pt")):
        torch.load(f, map_location="cpu", weights_only=True)
    pm = PrunedModel.load(SHIPPED)
    pm.save(tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=True)


def test_convert_names_every_file_it_cannot_convert(tmp_path: Path, marker: Path, capsys):
    """`convert-model a.pt b.pt c.pt` stopped at a.pt: b.pt was never named and c.pt never converted."""
    from srnas.pruning.masks import Masks
    pm = PrunedModel.load(SHIPPED)
    a = evil_copy(SHIPPED, tmp_path / "a.pt", marker)
    b = tmp_path / "b.pt"
    b.write_text("a note, not a model")
    c = tmp_path / "c.pt"
    torch.save({"format": "srnas-pruned/2", **{k: getattr(pm, k) for k in pm.__dataclass_fields__}}, c)
    assert isinstance(torch.load(c, weights_only=False)["masks"], Masks)
    code, err = run_cli(["convert-model", str(a), str(b), str(c)], capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert "2 of 3 file(s) not converted" in lines[0] and len(lines) == 3
    assert str(a) in lines[1] and str(b) in lines[2]
    PrunedModel.load(c)   # converted, though two before it were not

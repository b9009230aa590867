"""`srnas upscale`: tiling with a context margin gives the untiled result; folders of frames; speed printed;
bad inputs (unreadable frames, alpha, 16 bits, grey, a bad --out) handled."""
from __future__ import annotations

import pytest

import errno
import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from srnas.experiments import zoo
from srnas.experiments.quantize import export_torchscript
from srnas.experiments import upscale as upscale_mod
from srnas.experiments.upscale import tiled_upscale
from srnas.search.cli import main
from srnas.supernet import writes
from srnas.supernet.imaging import read_pixels, write_png

torch.set_num_threads(1)


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]  # blocky, with edges everywhere
    return np.clip(img.astype(int) + rng.integers(-20, 20, size=img.shape), 0, 255).astype(np.uint8)


def test_tiled_equals_untiled_for_every_family():
    x = torch.from_numpy(_image(70, 90)).permute(2, 0, 1)[None].float() / 255
    for name in ["bicubic", "fsrcnn", "esr_cnn", "abpn", "wdsr_b"]:
        m = zoo.build(name, 2).eval()
        with torch.no_grad():
            full = m(x)
            tiled = tiled_upscale(m, x, 2, tile=32, margin=16)
        assert (full - tiled).abs().max() < 1e-4, name


def test_fixed_size_model_is_fed_exact_tiles():
    m = zoo.build("abpn", 2).eval()
    x = torch.rand(1, 3, 50, 70)
    seen = set()

    def run(t):
        seen.add(tuple(t.shape[-2:]))
        return m(t)

    with torch.no_grad():
        out = tiled_upscale(run, x, 2, margin=8, fixed_hw=(32, 40))
        full = m(x)
    assert seen == {(32, 40)} and out.shape == full.shape
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert (out[inner] - full[inner]).abs().max() < 1e-4


@pytest.mark.slow
def test_cli_upscale_1080p_tiled_equals_untiled(tmp_path, capsys):
    model = export_torchscript(zoo.build("abpn", 2).eval(), tmp_path / "abpn.ts")
    frames = tmp_path / "frames"
    frames.mkdir()
    iio.imwrite(frames / "f0.png", _image(1080, 1920))
    assert main(["upscale", str(model), str(frames), "--out", str(tmp_path / "full"), "--threads", "1"]) == 0
    assert main(["upscale", str(model), str(frames / "f0.png"), "--out", str(tmp_path / "tiled"), "--tile", "256",
                 "--margin", "16", "--threads", "1"]) == 0
    a = iio.imread(tmp_path / "full" / "f0.png").astype(int)
    b = iio.imread(tmp_path / "tiled" / "f0.png").astype(int)
    assert a.shape == (2160, 3840, 3)
    assert np.abs(a - b).max() <= 1
    assert "fps" in capsys.readouterr().out


def test_cli_upscale_bad_input_is_user_error(tmp_path, capsys):
    assert main(["upscale", "bicubic", str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert "neither an image or video file nor a folder" in capsys.readouterr().err


# --- bad inputs: unreadable frames, alpha, 16 bits, grey, bad --out (issue 10, item 6) ---

def _upscale(*args) -> int:
    """Run `srnas upscale` on one thread."""
    return main(["upscale", *map(str, args), "--threads", "1"])


def _model_must_not_load(monkeypatch):
    """Fail the test if the model is loaded, i.e. if work started before --out was checked."""
    def boom(*a, **k):
        raise AssertionError("the model was loaded before --out was refused")
    monkeypatch.setattr(upscale_mod, "Upscaler", boom)


def _bicubic_x2(x: np.ndarray) -> np.ndarray:
    """What the bicubic zoo model makes of HxWxC floats in [0, 1], as HxWxC floats."""
    t = torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = zoo.build("bicubic", 2)(t.repeat(1, 3 // t.shape[1], 1, 1))  # the model takes 3 channels
    return y.clamp(0, 1)[0, : t.shape[1]].permute(1, 2, 0).numpy()


def test_cli_upscale_writes_every_readable_frame_and_lists_the_rest(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    iio.imwrite(frames / "f0.png", _image(24, 32, seed=1))
    good = (frames / "f0.png").read_bytes()
    (frames / "f1.png").write_bytes(good[: len(good) // 2])         # a PNG cut short
    (frames / "f2.png").write_bytes(b"")                             # an empty file
    (frames / "f3.png").write_bytes(b"this is not an image at all")  # wrong content
    iio.imwrite(frames / "f4.png", _image(24, 32, seed=2))
    assert _upscale("bicubic", frames, "--out", tmp_path / "out") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f4.png"]
    assert iio.imread(tmp_path / "out" / "f4.png").shape == (48, 64, 3)
    out, err = capsys.readouterr()
    assert "2 frame(s)" in out
    assert "3 of 5 input(s) not upscaled" in err
    assert f"{frames / 'f1.png'} is not a readable image: corrupt data" in err
    assert f"{frames / 'f2.png'} is not a readable image: the file is empty" in err
    assert f"{frames / 'f3.png'} is not a readable image" in err
    assert "pip install" not in err and "Traceback" not in err


def test_cli_upscale_keeps_alpha(tmp_path):
    rgb = _image(20, 28, seed=3)
    yy, xx = np.mgrid[0:20, 0:28]
    alpha = np.clip(xx * 9 + yy * 3, 0, 255).astype(np.uint8)  # a ramp: bicubic has something to do
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    iio.imwrite(tmp_path / "a" / "x.png", np.dstack([rgb, alpha]))
    iio.imwrite(tmp_path / "b" / "x.png", rgb)
    assert _upscale("bicubic", tmp_path / "a", "--out", tmp_path / "rgba") == 0
    assert _upscale("bicubic", tmp_path / "b", "--out", tmp_path / "rgb") == 0
    out = iio.imread(tmp_path / "rgba" / "x.png")
    assert out.shape == (40, 56, 4) and out.dtype == np.uint8
    assert np.array_equal(out[..., :3], iio.imread(tmp_path / "rgb" / "x.png"))  # colour as without alpha
    want = np.round(_bicubic_x2(alpha[..., None] / 255.0)[..., 0] * 255)
    assert np.abs(out[..., 3].astype(int) - want).max() <= 1
    assert len(np.unique(out[..., 3])) > len(np.unique(alpha))  # really upscaled, not copied or flattened


def test_16bit_png_reads_back_exactly():
    rng = np.random.default_rng(4)
    for channels in (1, 2, 3, 4):
        a = rng.integers(0, 65536, size=(9, 13, channels), dtype=np.uint16).squeeze()
        path = Path(tempfile.mkdtemp()) / f"c{channels}.png"
        write_png(path, a)
        b = read_pixels(path)
        assert b.dtype == np.uint16 and np.array_equal(a, b), channels  # low bytes kept, not just 8 bits


def test_cli_upscale_keeps_16_bits(tmp_path):
    yy, xx = np.mgrid[0:16, 0:24]
    ramp = (xx * 2000 + yy * 700 + 13).astype(np.uint16)  # steps far finer than 8 bits resolve
    rgb16 = np.dstack([ramp, 65535 - ramp, ramp // 2])
    (tmp_path / "in").mkdir()
    write_png(tmp_path / "in" / "c.png", rgb16)
    write_png(tmp_path / "in" / "g.png", ramp)
    assert _upscale("bicubic", tmp_path / "in", "--out", tmp_path / "out") == 0
    c = read_pixels(tmp_path / "out" / "c.png")
    g = read_pixels(tmp_path / "out" / "g.png")
    assert c.dtype == np.uint16 and c.shape == (32, 48, 3)
    assert g.dtype == np.uint16 and g.shape == (32, 48)
    want = np.round(_bicubic_x2(rgb16 / 65535.0) * 65535)
    assert np.abs(c.astype(np.int64) - want).max() <= 1
    assert (c % 257 != 0).mean() > 0.9  # not 8-bit values stretched to 16 bits


def test_cli_upscale_grey_in_grey_out(tmp_path):
    grey = _image(20, 24, seed=5)[..., 1]
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "one.png", grey)                          # stored with one channel
    iio.imwrite(tmp_path / "in" / "three.png", np.dstack([grey] * 3))       # stored as RGB, all equal
    iio.imwrite(tmp_path / "in" / "colour.png", _image(20, 24, seed=5))     # control: stays colour
    assert _upscale("abpn", tmp_path / "in", "--out", tmp_path / "out", "--backend", "torch-cpu") == 0  # RGB model
    one = iio.imread(tmp_path / "out" / "one.png")
    assert one.shape == (40, 48)
    assert np.array_equal(one, iio.imread(tmp_path / "out" / "three.png"))
    assert iio.imread(tmp_path / "out" / "colour.png").shape == (40, 48, 3)
    m = zoo.load("abpn", 2).eval()
    with torch.no_grad():
        sr = m(torch.from_numpy(grey / 255.0).float()[None, None].repeat(1, 3, 1, 1)).clamp(0, 1)[0]
    assert (sr.max(0).values - sr.min(0).values).max() > 1 / 255  # the model tints: a channel would differ
    luma = sum(w * sr[c] for c, w in enumerate(upscale_mod.LUMA)).numpy()
    assert np.abs(one.astype(int) - np.round(luma * 255)).max() <= 1


def test_cli_upscale_out_is_an_existing_file(tmp_path, capsys, monkeypatch):
    iio.imwrite(tmp_path / "f.png", _image(16, 16))
    target = tmp_path / "taken.png"
    target.write_bytes(b"keep me")
    _model_must_not_load(monkeypatch)
    assert _upscale("bicubic", tmp_path / "f.png", "--out", target) == 2
    err = capsys.readouterr().err
    assert "is an existing file; give a folder" in err and "Traceback" not in err
    assert target.read_bytes() == b"keep me"


def test_cli_upscale_out_cannot_be_created(tmp_path, capsys, monkeypatch):
    # a folder below a regular file cannot be made, not even by root
    iio.imwrite(tmp_path / "f.png", _image(16, 16))
    (tmp_path / "notes.txt").write_text("x")
    _model_must_not_load(monkeypatch)
    assert _upscale("bicubic", tmp_path / "f.png", "--out", tmp_path / "notes.txt" / "sr") == 2
    err = capsys.readouterr().err
    assert f"cannot be created: {tmp_path / 'notes.txt'} is a file" in err and "Traceback" not in err


def test_cli_upscale_out_read_only(tmp_path, capsys, monkeypatch):
    iio.imwrite(tmp_path / "f.png", _image(16, 16))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        try:
            writes.write_probe(ro)
            # root writes through chmod; a read-only mount stops root too, with EROFS: answer as one would
            def read_only_mount(folder):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            monkeypatch.setattr(writes, "write_probe", read_only_mount)
        except PermissionError:
            pass  # not root: chmod itself makes the folder read-only
        _model_must_not_load(monkeypatch)
        assert _upscale("bicubic", tmp_path / "f.png", "--out", ro) == 2
        err = capsys.readouterr().err
        assert f"--out {ro} is not writable" in err and "Traceback" not in err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_cli_upscale_refused_model_leaves_no_out_folder(tmp_path, capsys):
    iio.imwrite(tmp_path / "f.png", _image(16, 16))
    out = tmp_path / "new" / "sr"
    assert _upscale("srnas_abpm", tmp_path / "f.png", "--out", out) == 2
    err = capsys.readouterr().err
    assert "srnas_abpn" in err and "Traceback" not in err   # the name it meant is suggested
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("threads", ["-3", "-1"])
def test_cli_upscale_refuses_negative_threads(tmp_path, capsys, threads):
    iio.imwrite(tmp_path / "f.png", _image(16, 16))
    assert main(["upscale", "bicubic", str(tmp_path / "f.png"), "--out", str(tmp_path / "sr"),
                 "--threads", threads]) == 2
    assert f"--threads {threads}: give a number of threads" in capsys.readouterr().err
    assert not (tmp_path / "sr").exists()


def test_cli_upscale_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    iio.imwrite(frames / "f0.png", _image(16, 16))
    before = (frames / "f0.png").read_bytes()
    assert _upscale("bicubic", frames, "--out", frames) == 2
    assert "would overwrite that input" in capsys.readouterr().err
    assert (frames / "f0.png").read_bytes() == before


@pytest.mark.parametrize("mode, name", [("CMYK", "print.jpg"), ("CMYK", "print.tif"), ("LAB", "lab.tif")])
def test_cli_upscale_other_colour_spaces_come_out_rgb(tmp_path, mode, name):
    """A CMYK JPEG was read as four channels and written as RGBA (K as alpha, C, M, Y as colour): exit 0, wrong."""
    from PIL import Image
    rgb = _image(16, 24, seed=6)
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb).convert(mode).save(tmp_path / "in" / name)
    iio.imwrite(tmp_path / "in" / "rgb.png", rgb)
    assert _upscale("bicubic", tmp_path / "in", "--out", tmp_path / "out") == 0
    got = iio.imread(tmp_path / "out" / f"{Path(name).stem}.png").astype(int)
    want = iio.imread(tmp_path / "out" / "rgb.png").astype(int)
    assert got.shape == want.shape == (32, 48, 3)
    assert np.abs(got - want).mean() < 10   # JPEG and PIL's LAB round trip lose a little, never the colours

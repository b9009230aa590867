"""`srnas upscale`: tiling with a context margin gives the untiled result; folders of frames; speed printed."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import torch

from experiments import zoo
from experiments.quantize import export_torchscript
from experiments.upscale import tiled_upscale
from search.cli import main

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
    assert "neither an image file nor a folder" in capsys.readouterr().err

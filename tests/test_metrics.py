"""The data pipeline against the literature: bicubic PSNR on Set5 / Set14 / B100 (Y, border cropped), x2-x4."""
import numpy as np
import pytest

from conftest import need_benchmarks
from srnas.supernet.data import load_images, make_pairs
from srnas.supernet.evaluate import evaluate_bicubic
from srnas.supernet.metrics import psnr_y, rgb_to_y, ssim_y

LITERATURE = {("Set5", 2): 33.66, ("Set5", 3): 30.39, ("Set5", 4): 28.42,
              ("Set14", 2): 30.24, ("Set14", 3): 27.55, ("Set14", 4): 26.00,
              ("B100", 2): 29.56, ("B100", 3): 27.21, ("B100", 4): 25.96}


@pytest.mark.parametrize("dataset, scale", sorted(LITERATURE))
def test_bicubic_matches_literature(dataset, scale):
    root = need_benchmarks()
    pairs = make_pairs(load_images(dataset, data_root=str(root)), scale)
    got = evaluate_bicubic(pairs, scale, ssim=False)["psnr"]
    assert abs(got - LITERATURE[dataset, scale]) <= 0.05, f"{dataset} x{scale}: {got:.3f} dB"


def test_psnr_and_ssim_basics():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr_y(hr, hr, 2) == float("inf")
    assert ssim_y(hr, hr, 2) == pytest.approx(1.0)
    noisy = np.clip(hr.astype(int) + rng.integers(-8, 9, hr.shape), 0, 255).astype(np.uint8)
    assert 20 < psnr_y(noisy, hr, 2) < 60
    assert ssim_y(noisy, hr, 2) < 1.0
    # only the cropped border differs -> identical after cropping
    edge = hr.copy()
    edge[0, :] = 0
    assert psnr_y(edge, hr, 2) == float("inf")
    assert psnr_y(edge, hr, 0) < 60


def test_y_channel_is_bt601():
    white = np.full((1, 1, 3), 255, np.uint8)
    black = np.zeros((1, 1, 3), np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)


def test_greyscale_file_is_scored_on_raw_values():
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8).repeat(3, axis=2)
    h = np.clip(g.astype(int) + 5, 0, 255).astype(np.uint8)
    # a greyscale file is scored on its 0..255 values: 20*log10(255/219) dB lower than on Y
    assert psnr_y(h, g, 0) - psnr_y(h, g, 0, grey=True) == pytest.approx(20 * np.log10(255 / 219), abs=0.05)

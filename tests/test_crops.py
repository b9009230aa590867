"""Zoomed crops side by side: the crop lands where the model adds detail; `srnas upscale --compare` on images
and `srnas bench --crops` write them."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import torch

from srnas.experiments.bench import run_bench
from srnas.experiments.crops import crop_sheet
from srnas.search.cli import main

torch.set_num_threads(1)


def test_crop_lands_where_the_output_differs_from_bicubic():
    lr = torch.full((1, 3, 40, 60), 0.5)
    sr = torch.full((1, 3, 80, 120), 0.5)
    sr[..., 50:66, 90:106] = torch.rand(1, 3, 16, 16)   # detail in one corner only
    sheet = crop_sheet(lr, {"model": sr}, side=32, zoom=2)
    assert sheet.shape == (64, 2 * 64 + 4, 3)
    right = sheet[20:, 68:].astype(int)                 # below the labels: the model's panel holds the detail
    assert right.std() > 20


def test_bench_writes_crops_per_dataset(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    iio.imwrite(folder / "a.png", np.kron(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
                                          np.ones((8, 8, 1), np.uint8)))
    run_bench(["bicubic", "abpn"], [str(folder)], 2, tmp_path / "bench", lr_hw=(24, 32), threads=1, repeats=1,
              crops=True)
    sheet = iio.imread(tmp_path / "bench" / "crops" / "imgs.png")
    assert sheet.shape[1] == 3 * sheet.shape[0] + 2 * 4   # bicubic | abpn | HR


def test_upscale_compare_writes_crops_for_images(tmp_path):
    rng = np.random.default_rng(1)
    iio.imwrite(tmp_path / "f.png", np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
                                            np.ones((8, 8, 1), np.uint8)))
    assert main(["upscale", "abpn", str(tmp_path / "f.png"), "--out", str(tmp_path / "out"), "--backend",
                 "torch-cpu", "--compare", "--threads", "1"]) == 0
    sheet = iio.imread(tmp_path / "out" / "f.compare.png")
    assert sheet.shape[1] == 2 * sheet.shape[0] + 4 and (tmp_path / "out" / "f.png").is_file()

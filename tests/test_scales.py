"""x3 and x4 through every command: a model file says its scale and srnas takes it from there; a mismatch is
one line; a whole run at x3 and x4 records its scale in the LUT, the model file and its export."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from srnas.experiments.models import load_model
from srnas.latency.onnx_export import export_onnx
from srnas.pruning.model_file import PrunedModel
from srnas.search.cli import main
from srnas.supernet.errors import UserError
from srnas.supernet.imaging import write_png

from test_demo_fresh import run_on_bare_clone


class Shuffle3(nn.Module):
    """A tiny x3 network: one conv to 27 channels, then depth-to-space."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 27, 3, padding=1)
        self.up = nn.PixelShuffle(3)

    def forward(self, x):
        return self.up(self.conv(x))


@pytest.fixture
def x3_onnx(tmp_path):
    return export_onnx(Shuffle3().eval(), [torch.rand(1, 3, 8, 8)], tmp_path / "x3.onnx", dynamic=True)


def test_a_model_file_says_its_scale(x3_onnx):
    assert load_model(str(x3_onnx)).scale == 3
    assert load_model(str(x3_onnx), 3).scale == 3
    with pytest.raises(UserError, match=r"upscales x3, but --scale 4 was asked for: leave --scale out"):
        load_model(str(x3_onnx), 4)


def test_upscale_takes_the_scale_from_the_file_and_a_mismatch_is_one_line(x3_onnx, tmp_path, capsys):
    write_png(tmp_path / "img.png", np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8))
    assert main(["upscale", str(x3_onnx), str(tmp_path / "img.png"), "--out", str(tmp_path / "up")]) == 0
    import imageio.v3 as iio
    assert iio.imread(tmp_path / "up" / "img.png").shape == (30, 36, 3)
    capsys.readouterr()
    assert main(["upscale", str(x3_onnx), str(tmp_path / "img.png"), "--out", str(tmp_path / "up4"),
                 "--scale", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "upscales x3, but --scale 4" in err[0]


def test_a_name_loads_at_x2_unless_asked(tmp_path):
    assert load_model("bicubic").scale == 2 and load_model("bicubic", 3).scale == 3
    assert load_model("espcn").scale == 2


@pytest.mark.slow
@pytest.mark.parametrize("scale", [3, 4])
def test_a_whole_run_at_x3_and_x4(tmp_path, scale):
    """srnas run (supernet, LUT, search, stage 3, export) at x3 / x4: the scale is in the LUT header, the model
    file and the exported graph; `srnas bench --run` and `srnas upscale` read it from there."""
    run = run_on_bare_clone("quick", tmp_path, [f"data.scale={scale}", "model.n_cells=2",
                                                "pruning.schemes=[none,filter]"])
    lut = next((run / "latency").glob("lut-*.csv"))
    header = json.loads(lut.read_text().splitlines()[0].split(": ", 1)[1])
    assert header["scale"] == str(scale)
    pm = PrunedModel.load(run / "stage3" / "pruned.pt")
    assert pm.scale == scale
    assert load_model(str(run / "export" / "model.onnx")).scale == scale
    env = {k: v for k, v in os.environ.items() if k != "SRNAS_DATA"}
    p = subprocess.run([sys.executable, "-m", "srnas", "bench", "--run", str(run), "--models", "bicubic",
                        "--lr-size", "12x16", "--repeats", "1", "--threads", "1"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    import pandas as pd
    assert set(pd.read_csv(run / "bench" / "bench.csv")["scale"]) == {scale}
    img = tmp_path / "img.png"
    write_png(img, np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8))
    p = subprocess.run([sys.executable, "-m", "srnas", "upscale", str(run / "stage3" / "pruned.pt"), str(img),
                        "--out", str(tmp_path / "up"), "--threads", "1"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    import imageio.v3 as iio
    assert iio.imread(tmp_path / "up" / "img.png").shape == (9 * scale, 11 * scale, 3)
    # the config at another scale is refused, naming the LUT's scale (a LUT of x<s> prices x<s> tails)
    other = 2 if scale != 2 else 3
    p = subprocess.run([sys.executable, "-m", "srnas", "latency", "check", "-c", str(run / "config.yaml"),
                        "--set", f"data.scale={other}", "--samples", "1"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600, env=env)
    assert p.returncode == 2 and f"x{scale} models, and this config upscales x{other}" in p.stderr, p.stderr[-2000:]

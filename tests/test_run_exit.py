"""`srnas run` exit status: a winner that misses its target by measurement fails the run (report kept)."""
from __future__ import annotations

import dataclasses

import pytest

import srnas.search.pipeline as pipeline
from srnas.search.cli import main
from srnas.search.pipeline import RunResult, latency_warnings
from srnas.search.results import Stage3Result

from conftest import tiny_config

FINAL = Stage3Result(benchmark="skimage", psnr=30.0, ssim=0.9, bicubic_psnr=28.0, gain_db=2.0,
                     benchmarks={"skimage": {"psnr": 30.0, "ssim": 0.9, "bicubic_psnr": 28.0}}, measured_ms=6.82,
                     measured_iqr_ms=0.1, lut_ms=1.27, target_ms=3.0, backend="torch-cpu", precision="fp32",
                     layout="nchw", lr_hw=[12, 16], threads=1, candidate={}, plan={}, files={})


def test_warnings_name_the_miss_and_the_mispriced_lut():
    w = latency_warnings(FINAL)
    assert len(w) == 2
    assert "predicted 1.27 ms" in w[0] and "outside [0.8, 1.25]" in w[0] and "--recalibrate" in w[0]
    assert "MISSES the target" in w[1] and "soft_target" in w[1]
    assert latency_warnings(dataclasses.replace(FINAL, measured_ms=1.3)) == []


def test_final_json_roundtrip(tmp_path):
    FINAL.save(tmp_path / "final.json")
    back = Stage3Result.load(tmp_path / "final.json")
    assert back == FINAL and back.meets_target is False and back.ratio_to_target == pytest.approx(6.82 / 3.0)


@pytest.mark.parametrize("soft, code", [(False, 3), (True, 0)])
def test_missed_target_exit_code(tmp_path, monkeypatch, capsys, soft, code):
    cfg = tiny_config(tmp_path, latency={"target": "3ms", "soft_target": soft})
    seen = {}

    def fake_run_all(cfg, out_dir):
        seen["soft"] = cfg.latency.soft_target
        return RunResult(None, FINAL, tmp_path / "report.md", {}, [])
    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    assert main(["run", "-c", str(cfg)]) == code
    assert seen["soft"] is soft
    assert ("misses its latency target" in capsys.readouterr().err) is (not soft)


def test_a_foreign_lut_judges_the_target_by_the_lut():
    """With an imported LUT the measured ms is this machine's, not the device's: the LUT's figure decides."""
    foreign = dataclasses.replace(FINAL, judged_by="lut", lut_ms=2.9)
    assert foreign.meets_target is True and foreign.ratio_to_target == pytest.approx(2.9 / 3.0)
    assert latency_warnings(foreign) == []

"""`srnas run` exit status: a winner that misses its target by measurement fails the run (report kept)."""
from __future__ import annotations

import pytest

import search.pipeline as pipeline
from search.cli import main
from search.pipeline import latency_warnings

from conftest import tiny_config

FINAL = {"measured_ms": 6.82, "lut_ms": 1.27, "target_ms": 3.0, "ratio_to_target": 6.82 / 3.0, "meets_target": False}


def test_warnings_name_the_miss_and_the_mispriced_lut():
    w = latency_warnings(FINAL)
    assert len(w) == 2
    assert "predicted 1.27 ms" in w[0] and "outside [0.8, 1.25]" in w[0] and "--recalibrate" in w[0]
    assert "MISSES the target" in w[1] and "soft_target" in w[1]
    assert latency_warnings({**FINAL, "measured_ms": 1.3, "meets_target": True, "ratio_to_target": 0.43}) == []


@pytest.mark.parametrize("soft, code", [(False, 3), (True, 0)])
def test_missed_target_exit_code(tmp_path, monkeypatch, capsys, soft, code):
    cfg = tiny_config(tmp_path, latency={"target": "3ms", "soft_target": soft})
    seen = {}

    def fake_run_all(cfg, out_dir):
        seen["soft"] = cfg.latency.soft_target
        return {"final": FINAL}
    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    assert main(["run", "-c", str(cfg)]) == code
    assert seen["soft"] is soft
    assert ("misses its latency target" in capsys.readouterr().err) is (not soft)

"""`latency.backend: auto` / `precision: auto`: chosen once by timing here, saved, reused on resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from srnas.search.pipeline import resolve_executor
from srnas.supernet.config import load_config

from conftest import tiny_config


def test_auto_is_chosen_once_and_kept(tmp_path, capsys):
    cfg = load_config(tiny_config(tmp_path, latency={"backend": "auto", "precision": "fp32", "lr_height": 12,
                                                     "lr_width": 16, "threads": 1}))
    got = resolve_executor(cfg)
    saved = json.loads(cfg.run().executor.read_text())
    assert got.latency.precision == "fp32" and got.latency.backend != "auto"
    assert (saved["backend"], saved["precision"]) == (got.latency.backend, got.latency.precision)
    timed = {r["executor"] for r in saved["table"] if "geomean_ms" in r and r["geomean_ms"] != float("inf")}
    assert f"{got.latency.backend}/fp32" in timed and all(e.endswith("/fp32") for e in timed)
    assert "auto executor:" in capsys.readouterr().out
    saved["backend"] = "torch-cpu"             # a resumed run keeps the saved choice, it does not time again
    cfg.run().executor.write_text(json.dumps(saved))
    assert resolve_executor(cfg).latency.backend == "torch-cpu"
    assert "chosen by auto earlier" in capsys.readouterr().out


def test_fixed_executor_is_checked_not_timed(tmp_path):
    cfg = load_config(tiny_config(tmp_path, latency={"backend": "onnxruntime", "precision": "int8"}))
    assert resolve_executor(cfg) is cfg and not cfg.run().executor.exists()


@pytest.mark.slow
def test_int8_run_deploys_and_scores_the_quantized_file(tmp_path, capsys):
    """`srnas run` for ONNX Runtime INT8: stage 3 QAT fine-tunes the winner, writes the QDQ file that executor
    runs and scores that file."""
    import onnxruntime as ort
    from srnas.latency.executors import is_quantized
    from srnas.pruning import PrunedModel
    from srnas.search.cli import main

    cfg = tiny_config(tmp_path, data={"benchmarks": ["skimage"]}, train={"qat_steps": 3},
                      latency={"backend": "onnxruntime", "precision": "int8", "lr_height": 12, "lr_width": 16,
                               "rates": [0.0, 0.5], "warmup": 0, "repeats": 2, "calib_samples": 1, "threads": 1,
                               "target": "1.2x", "soft_target": True},
                      pruning={"schemes": ["none", "filter"], "reg_steps": 2, "finetune_steps": 2},
                      search={"iterations": 1, "init_candidates": 2, "top_h": 1, "pool_c": 2, "pick_b": 1,
                              "ensemble": 2, "eval_steps": 1, "eval_batch": 2, "val_crop": 32, "ablation": False})
    assert main(["run", "-c", str(cfg)]) == 0
    final = json.loads((tmp_path / "runs/tiny/stage3/final.json").read_text())
    deployed = str(tmp_path / "runs/tiny" / final["files"]["deploy"])   # relative to the run folder
    assert final["precision"] == "int8" and deployed.endswith("model_int8.onnx") and is_quantized(deployed)
    assert final["qat_steps"] == 3 and PrunedModel.load(tmp_path / "runs/tiny" / final["files"]["model"]).qat_adapted
    sess = ort.InferenceSession(deployed, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.random.rand(1, 3, 20, 24).astype(np.float32)})[0]
    assert out.shape == (1, 3, 40, 48)
    assert final["psnr"] > final["bicubic_psnr"] - 1.0     # the quantized winner is scored, and is no wreck
    capsys.readouterr()
    assert main(["run", "-c", str(cfg)]) == 0            # run again: the finished stage 3 (QAT included) is kept
    assert "stage3/final.json exists; skipping" in capsys.readouterr().out
    assert json.loads((tmp_path / "runs/tiny/stage3/final.json").read_text()) == final

"""`latency.backend: auto` / `precision: auto`: chosen once by timing here, saved, reused on resume."""
from __future__ import annotations

import json

from search.pipeline import resolve_executor
from supernet.config import load_config

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

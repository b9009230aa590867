"""One layout of a run directory: every command and --out name the same files."""
from __future__ import annotations

from srnas.supernet.config import config_from_dict
from srnas.supernet.rundir import RunDir


def test_paths_follow_the_root_and_the_executor(tmp_path):
    cfg = config_from_dict({"name": "q", "run_dir": str(tmp_path), "latency": {"backend": "onnxruntime",
                                                                                "precision": "int8"}})
    run = cfg.run()
    assert run.root == tmp_path / "q" and run.supernet == tmp_path / "q/supernet/supernet.pt"
    assert run.lut("onnxruntime", "int8").name == "lut-onnxruntime-int8.csv"
    assert run.lut("torch-cpu").name == "lut-torch-cpu.csv"          # fp32 keeps the plain name
    other = cfg.run(tmp_path / "elsewhere")                           # --out moves every path with it
    assert other == RunDir(tmp_path / "elsewhere") and other.final == tmp_path / "elsewhere/stage3/final.json"


def test_lut_path_with_out_agrees_everywhere(tmp_path):
    from srnas.latency.build import default_lut_path
    cfg = config_from_dict({"run_dir": str(tmp_path), "latency": {"backend": "onnxruntime"}})
    out = tmp_path / "o"
    assert default_lut_path(cfg, run=cfg.run(out)) == cfg.run(out).lut("onnxruntime") == out / "latency/lut-onnxruntime.csv"

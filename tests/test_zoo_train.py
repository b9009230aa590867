"""`srnas zoo train` with the shared recipe: runs, resumes, refuses to clobber; QAT gives a working INT8 ABPN."""
from __future__ import annotations

import pytest
import torch

from srnas.experiments import zoo
from srnas.experiments.quantize import load_abpn_int8, train_abpn_int8
from srnas.experiments.zoo.training import train_zoo_model
from srnas.search.cli import main
from srnas.supernet.config import config_from_dict
from srnas.supernet.train import StageExists

torch.set_num_threads(1)


def tiny_cfg(tmp_path, steps=4):
    return config_from_dict({
        "name": "t", "run_dir": str(tmp_path),
        "data": {"train": ["skimage"], "val": "skimage", "patch_size": 12, "batch_size": 2},
        "train": {"threads": 1, "steps": steps, "epoch_steps": 2, "lr": 1e-3, "lr_min": 1e-5, "qat_steps": 2}})


def test_train_writes_loadable_weights_and_log(tmp_path):
    cfg = tiny_cfg(tmp_path)
    path = train_zoo_model(cfg, "espcn")
    assert path.exists() and path.name == "espcn_x2.pt"
    log = (path.parent / "espcn_x2" / "train_log.csv").read_text().splitlines()
    assert len(log) == 3  # header + 2 epochs
    m = zoo.load("espcn", 2, weights_dir=path.parent)
    assert m(torch.rand(1, 3, 10, 10)).shape == (1, 3, 20, 20)


def test_interrupted_run_resumes_and_refuses_without_flag(tmp_path):
    cfg = tiny_cfg(tmp_path)
    stage = cfg.out_dir / "zoo" / "esr_max_x2"
    train_zoo_model(cfg, "esr_max")
    (cfg.out_dir / "zoo" / "esr_max_x2.pt").unlink()  # as if killed after the last checkpoint
    with pytest.raises(StageExists):
        train_zoo_model(cfg, "esr_max")
    assert train_zoo_model(cfg, "esr_max", resume=True).exists()
    assert (stage / "checkpoint.pt").exists()


def test_qat_int8_abpn_close_to_fp32(tmp_path):
    cfg = tiny_cfg(tmp_path)
    fp32_path = train_zoo_model(cfg, "abpn")
    int8_path = train_abpn_int8(cfg)
    fp32 = zoo.load("abpn", 2, weights=fp32_path)
    int8 = load_abpn_int8(2, weights=int8_path)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        diff = (int8(x) - fp32(x)).abs().mean().item()
    assert diff < 0.05
    assert any("quantized" in type(mod).__module__ for mod in int8.body.modules())
    # each file says how many optimizer steps its weights saw: the INT8 one adds its QAT
    assert zoo.trained_steps("abpn", 2, weights=fp32_path) == 4
    assert zoo.trained_steps("abpn_int8", 2, weights=int8_path) == 4 + 2
    assert zoo.trained_steps("bicubic", 2) == 0


def test_zoo_budget_is_the_searched_winners(tmp_path, monkeypatch):
    """train_zoo.py trains every model for the steps a winner of its config sees (supernet + stage 3)."""
    from srnas.experiments import train_zoo
    seen = {}
    monkeypatch.setattr(train_zoo, "train_zoo_model", lambda cfg, name, **kw: seen.setdefault(name, cfg.train.steps)
                        and tmp_path / "x.pt")
    monkeypatch.setattr(train_zoo, "PatchSampler", lambda *a, **k: None)
    monkeypatch.setattr(train_zoo, "load_train_images", lambda cfg: [])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path}\ndata: {{train: [skimage]}}\ntrain: {{steps: 100, qat_steps: 7}}\n"
                   f"latency: {{precision: int8}}\npruning: {{reg_steps: 10, finetune_steps: 20}}\n")
    assert train_zoo.main(["-c", str(cfg), "--models", "espcn", "--no-copy"]) == 0
    assert seen == {"espcn": 130}   # float models: the winner's steps before its QAT


def test_cli_zoo_train_unknown_model_is_user_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path}\n")
    assert main(["zoo", "train", "nosuchnet", "-c", str(cfg)]) == 2
    assert "unknown zoo model" in capsys.readouterr().err

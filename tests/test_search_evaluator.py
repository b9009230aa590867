"""Real evaluation pieces: masked fine-tune keeps pruned weights at zero, history repair."""
from __future__ import annotations

import numpy as np
import torch

from srnas.search.candidate import Space
from srnas.search.evaluator import Evaluator, center_crop_pairs
from srnas.search.history import History
from srnas.supernet.config import load_config
from srnas.supernet.data import PatchSampler, load_images, make_pairs
from srnas.supernet.elastic import build_supernet
from conftest import tiny_config


def test_evaluator_prunes_and_keeps_masks(tmp_path):
    cfg = load_config(tiny_config(tmp_path, search={"eval_steps": 3, "val_crop": 32}))
    torch.manual_seed(0)
    sn = build_supernet(cfg.model, 2)
    space = Space(cfg.model, ["none", "unstructured", "filter"], 2)
    sampler = PatchSampler(load_images("skimage", "train"), 2, 16, 2, True, 0, 0)
    pairs = center_crop_pairs(make_pairs(load_images("skimage", "val"), 2), 32, 2)
    assert all(p.hr.shape[:2] == (32, 32) and p.lr.shape[:2] == (16, 16) for p in pairs)
    ev = Evaluator(sn, space, cfg, sampler, pairs)
    cand = space.random(np.random.default_rng(4)).with_rate(0.5)
    net, masks = ev.build(cand)
    layers = dict(net.prunable())
    for name, m in masks.weight.items():
        assert (layers[name].weight[m == 0] == 0).all()  # pruned weights stayed zero through fine-tuning
    r1, r2 = ev(cand), ev(cand)
    assert r1["psnr"] > 15 and abs(r1["psnr"] - r2["psnr"]) < 1e-6  # deterministic per candidate


def test_history_drops_torn_last_line(tmp_path):
    h = History(tmp_path / "h.csv")
    h.append({"search": "guided", "iteration": 0, "key": "a", "candidate": "{}", "psnr": 30.0})
    h.append({"search": "guided", "iteration": 0, "key": "b", "candidate": "{}", "psnr": 31.0})
    with (tmp_path / "h.csv").open("a") as f:
        f.write("guided,0,2,c,{},")  # killed mid-write
    h2 = History(tmp_path / "h.csv")
    assert [r["key"] for r in h2.rows] == ["a", "b"] and h2.best()["key"] == "b"
    h2.append({"search": "guided", "iteration": 1, "key": "c", "candidate": "{}", "psnr": 29.0})
    assert [r["key"] for r in History(tmp_path / "h.csv").rows] == ["a", "b", "c"]

"""Each stage runs with its own threads setting; none silently takes another stage's."""
from __future__ import annotations

import pytest
import torch

import srnas.search.pipeline as pipeline
from srnas.supernet.config import load_config
from srnas.supernet.distributed import init_distributed

from conftest import tiny_config


class Stop(Exception):
    pass


@pytest.mark.parametrize("train_threads, search_threads", [(1, 2), (2, 1), (1, 0)])
def test_search_stage_keeps_its_own_threads(tmp_path, monkeypatch, train_threads, search_threads):
    cfg = load_config(tiny_config(tmp_path, train={"threads": train_threads}, search={"threads": search_threads}))
    seen = {}
    default = torch.get_num_threads()

    def fake_train(cfg, out_dir, resume=False):
        init_distributed(cfg.train.threads)          # as train_supernet does
        seen["train"] = torch.get_num_threads()

    def fake_search(cfg, out_dir, dist_info, lat_model=None):
        seen["search"] = torch.get_num_threads()
        raise Stop
    monkeypatch.setattr(pipeline, "train_supernet", fake_train)
    monkeypatch.setattr(pipeline, "search_stage", fake_search)
    try:
        with pytest.raises(Stop):
            pipeline.run_all(cfg, cfg.run())
    finally:
        torch.set_num_threads(default)
    assert seen == {"train": train_threads, "search": search_threads or default}

"""`srnas ablate`: guided vs random over several seeds, the predictor's held-out Kendall tau, the plot."""
from __future__ import annotations

import json

import pytest

from srnas.search.ablate import ablate_seeds, write_ablation
from srnas.search.candidate import Space
from srnas.search.cli import main
from srnas.search.constraints import Constraints
from srnas.supernet.config import ModelConfig, SearchConfig

from conftest import tiny_config
from test_search_pipeline import TINY

SPACE = Space(ModelConfig(n_cells=3, n_feats=8, expansion_a=2, expansion_b=2), ["none", "unstructured", "filter"], 2)


def _lat(path, plan):
    return 1.0 + sum((2.0 if path[int(n.split(".")[1])] == "wdsr_a" else 1.0) * (1 - r) for n, (s, r) in plan.items())


def test_seeds_are_searched_and_summarised(tmp_path):
    # a smooth PSNR in the encoding: the predictor can learn it, so guided search has something to find
    calls = []

    def psnr(c):
        calls.append(c.key())
        return {"psnr": 30.0 + 0.05 * float(SPACE.encode(c)[::5].sum()) - 0.5 * c.rate}

    cons = Constraints(SPACE, [0.0, 0.25, 0.5, 0.75], _lat, target_ms=8.0)
    cfg = SearchConfig(iterations=2, init_candidates=4, top_h=3, pool_c=10, pick_b=3, ensemble=2, seed=11)
    summary = ablate_seeds(SPACE, cons, psnr, cfg, 3, tmp_path, log=lambda s: None)
    assert [s["seed"] for s in summary["seeds"]] == [11, 12, 13]
    for s in summary["seeds"]:
        assert s["evaluations"] == 4 + 2 * 3 and s["guided_best"] > 29.0 and s["random_best"] > 29.0
        assert -1.0 <= s["kendall_tau"] <= 1.0
    bests = [s["guided_best"] for s in summary["seeds"]]
    assert summary["guided_best"]["mean"] == pytest.approx(sum(bests) / 3)
    assert 0 <= summary["guided_wins"] + summary["ties"] <= 3
    assert len(summary["curves"]["guided"]) == 3 and all(len(c) == 10 for c in summary["curves"]["random"])
    report = write_ablation(summary, tmp_path / "out")
    assert "mean +- std" in report.read_text() and (tmp_path / "out" / "ablate.png").stat().st_size > 0
    # resumable: the same seeds again evaluate nothing
    n = len(calls)
    ablate_seeds(SPACE, cons, psnr, cfg, 3, tmp_path, log=lambda s: None)
    assert len(calls) == n


@pytest.mark.slow
def test_ablate_command_end_to_end(tmp_path, capsys):
    cfg = tiny_config(tmp_path, **{**TINY, "latency": {**TINY["latency"], "target": "1000ms"}})
    assert main(["ablate", "-c", str(cfg), "--seeds", "2"]) == 0
    out = tmp_path / "runs" / "tiny" / "ablate"
    summary = json.loads((out / "ablate.json").read_text())
    assert len(summary["seeds"]) == 2 and (out / "ablate.png").exists() and (out / "ablate.md").exists()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["guided_best"]["mean"] > 10
    assert main(["ablate", "-c", str(cfg), "--seeds", "0"]) == 2

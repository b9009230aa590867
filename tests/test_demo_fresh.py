"""The shipped configs run where only the clone exists: no ../shared beside the working folder, no $SRNAS_DATA.

Each is the real file under experiments/configs, shrunk with --set overrides (the same validation as
the file), run as a user runs it: the console entry point in a fresh process.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SHRINK = ["train.steps=6", "train.epoch_steps=3", "train.val_paths=1", "model.n_feats=8", "data.patch_size=16",
          "data.batch_size=4", "latency.lr_height=12", "latency.lr_width=16", "latency.warmup=0", "latency.repeats=2",
          "latency.calib_samples=1", "latency.threads=1", "latency.rates=[0,0.5]", "latency.target=1.2x",
          "latency.soft_target=true", "pruning.reg_steps=2", "pruning.finetune_steps=2", "search.iterations=1",
          "search.init_candidates=2", "search.top_h=1", "search.pool_c=2", "search.pick_b=1", "search.ensemble=2",
          "search.eval_steps=1", "search.eval_batch=2", "search.val_crop=32", "search.ablation=false"]


def run_on_bare_clone(config: str, tmp_path: Path, extra: list[str]) -> Path:
    """`srnas run` of experiments/configs/<config>.yaml, shrunk, from a folder with nothing beside it; its run dir."""
    work = tmp_path / "user"
    work.mkdir()
    assert not (work.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "SRNAS_DATA"}
    args = [sys.executable, "-m", "srnas", "run", "-c", str(ROOT / f"experiments/configs/{config}.yaml"),
            "--set", f"run_dir={work / 'runs'}"]
    for s in SHRINK + extra:
        args += ["--set", s]
    p = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return work / "runs" / config


@pytest.mark.slow
def test_demo_config_runs_with_only_the_clone(tmp_path):
    run = run_on_bare_clone("quick", tmp_path, ["model.n_cells=2", "pruning.schemes=[none,filter]"])
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["benchmark"] == "skimage" and final["psnr"] > 20
    assert (run / "report.md").is_file() and (run / "export" / "model.onnx").is_file()
    saved = (run / "config.yaml").read_text()
    assert "target: 1.2x" not in saved and "ms" in saved.split("target:")[1].splitlines()[0]
    # make demo's second step: the winner against the zoo, in the run's executor, into its report
    p = subprocess.run([sys.executable, "-m", "srnas", "bench", "--run", str(run), "--models", "bicubic,espcn",
                        "--lr-size", "12x16", "--repeats", "1", "--threads", "1"], cwd=run.parent.parent,
                       capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k != "SRNAS_DATA"})
    assert p.returncode == 0, p.stderr[-3000:]
    report = (run / "report.md").read_text()
    assert "## Against the zoo and the shipped front (each model in the executor it runs best in here" in report
    assert "| espcn |" in report and "stage3/pruned.pt" in report and "this run's winner" in report
    assert (run / "bench" / "bench.png").is_file()


@pytest.mark.slow
def test_fast_config_runs_with_only_the_clone(tmp_path):
    """plain / dws / wdsr_b cells with ABPN's head, tail, anchor and clamp: whole-block LUT rows in ONNX Runtime."""
    run = run_on_bare_clone("fast_x2", tmp_path, ["pruning.schemes=[none,filter,block]"])
    lut = (run / "latency" / "lut-onnxruntime.csv").read_text()
    assert all(f"block_{b}" in lut for b in ("plain", "dws", "wdsr_b")) and "clamp" in lut
    final = json.loads((run / "stage3" / "final.json").read_text())
    assert final["psnr"] > 20 and (run / "export" / "model.onnx").is_file()


@pytest.mark.slow
def test_ship_winners_runs_one_front_and_ships_every_member(tmp_path):
    """experiments/ship_winners.py on cpu_x2 (shrunk): one front run, every target's winner in the weights folder
    by size, searched_x2.json naming what each was searched for, and the aliases loading by name."""
    shrink = [s for s in SHRINK if not s.startswith(("latency.target=", "model.n_feats="))]
    sets = [a for s in shrink + [f"run_dir={tmp_path / 'runs'}", "pruning.schemes=[none,filter]",
                                 "data.train=[skimage]", "data.benchmarks=[skimage]", "model.n_cells=[1,2]",
                                 "model.n_feats=[4,8]", "train.max_gmacs=0"]
            for a in ("--set", s)]
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "srnas_xxl_x2.pt").write_bytes(b"a member of an earlier front")
    # abpn_int8 "takes" 40 ms here: targets a floor (10 ms, or 1.1x the fastest member), 40, 50, 60, 80 and 120 ms
    p = subprocess.run([sys.executable, str(ROOT / "experiments/ship_winners.py"), "--abpn-ms", "40",
                        "--weights-dir", str(weights), *sets], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert re.search(r"the front's targets [\d.]+ ms, 40 ms, 50 ms, 60 ms, 80 ms, 120 ms", p.stdout), p.stdout[-2000:]
    ship = json.loads((weights / "searched_x2.json").read_text())
    members = ship["members"]
    # every target either ships (named by size, tightest first) or is left out as no better than a tighter one
    assert list(members) == ["srnas_xs", "srnas_s", "srnas_m", "srnas_l", "srnas_xl", "srnas_xxl"][:len(members)]
    floor, *rest = sorted([m["target_ms"] for m in members.values()] +
                          [float(t[:-2]) for t in ship["left_out"]])
    assert rest == [40, 50, 60, 80, 120] and 10 <= floor < 40
    scores = [m["val_psnr"] for m in members.values()]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert all(v["val_psnr"] <= max(scores) for v in ship["left_out"].values())
    meets = lambda ms: max((n for n, m in members.items() if m["target_ms"] <= ms),  # noqa: E731
                           key=lambda n: members[n]["target_ms"], default="srnas_xs")
    assert ship["aliases"] == {"srnas_abpn": meets(40), "srnas_50ms": meets(50)} and ship["cpu"]
    assert not (weights / "srnas_xxl_x2.pt").exists()
    from srnas.experiments import zoo
    from srnas.experiments.models import load_model
    assert zoo.search_members(weights) == list(ship["members"])
    for name in (*members, "srnas_abpn", "srnas_50ms"):
        m = load_model(name, 2, weights_dir=weights)
        assert m.info["steps"] > 0 and "cpu_x2 at" in m.config
    assert zoo.weights_path("srnas_abpn", 2, weights) == weights / f"{ship['aliases']['srnas_abpn']}_x2.pt"
    # the rank check reads the same run: members spread over the LUT's range, three scores each
    p = subprocess.run([sys.executable, str(ROOT / "experiments/rank_check.py"), str(tmp_path / "runs" / "cpu_x2"),
                        "--paths", "3", "--steps", "2"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rank = json.loads((tmp_path / "runs" / "cpu_x2" / "rank" / "rank.json").read_text())
    assert len(rank["rows"]) == 3 and rank["finetune_steps"] == 2
    assert sorted(r["lut_ms"] for r in rank["rows"]) == [r["lut_ms"] for r in rank["rows"]]
    assert all(-1.0 <= rank[k] <= 1.0 for k in ("tau_supernet", "tau_search"))
    assert (tmp_path / "runs" / "cpu_x2" / "rank" / "rank.png").stat().st_size > 0

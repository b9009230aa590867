"""Does the elastic supernet rank sizes right? Kendall tau between its PSNR and the fine-tuned PSNR of N members.

    .venv/bin/python experiments/rank_check.py runs/cpu_x2 [--paths 10] [--steps 2000] [--max-ms 50]

Takes a front run's supernet, config and LUT. The N dense members are spread over the LUT latency range
(log-spaced from the fastest to --max-ms, default the run's loosest target), drawn from random members of
the space. Each gets three scores on the held-out images (data.val, whole images): the supernet's own path
(0 steps), the search's evaluation (search.eval_steps from the supernet weights, on centre crops) and a
fine-tune of --steps at train.lr (cosine), as a winner's stage 3 trains it. Writes rank.json, rank.md and
rank.png (fine-tuned vs supernet PSNR) into RUN/rank/.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parent.parent

from srnas.latency.build import load_lut  # noqa: E402
from srnas.latency.model import LatencyModel  # noqa: E402
from srnas.pruning import masked_finetune  # noqa: E402
from srnas.search.candidate import Candidate  # noqa: E402
from srnas.search.evaluator import member_net  # noqa: E402
from srnas.search.pipeline import make_evaluator, make_space, train_sampler  # noqa: E402
from srnas.supernet.config import load_config  # noqa: E402
from srnas.supernet.data import load_images, make_pairs  # noqa: E402
from srnas.supernet.distributed import DistInfo  # noqa: E402
from srnas.supernet.evaluate import evaluate  # noqa: E402
from srnas.supernet.progress import progress_bar  # noqa: E402
from srnas.supernet.rundir import RunDir  # noqa: E402
from srnas.supernet.train import load_supernet  # noqa: E402
from srnas.supernet.writes import atomic_write_text, save_figure  # noqa: E402


def spread_members(space, lat_model, n: int, max_ms: float, seed: int = 0, pool: int = 4000) -> list[tuple]:
    """``n`` dense members (Candidate, LUT ms) whose latencies are nearest log-spaced points up to ``max_ms``."""
    rng = np.random.default_rng(seed)
    seen, priced = set(), []
    for _ in range(pool):
        cand = space.random(rng).dense()
        if cand.key() in seen:
            continue
        seen.add(cand.key())
        ms = lat_model.predict(cand.path, {}, cand.width)
        if ms <= max_ms:
            priced.append((cand, ms))
    lo = min(ms for _, ms in priced)
    out = []
    for goal in np.geomspace(lo, max_ms, n):
        best = min((p for p in priced if p not in out), key=lambda p: abs(math.log(p[1] / goal)))
        out.append(best)
    return sorted(out, key=lambda p: p[1])


def main(argv: list[str] | None = None) -> int:
    """Score the members three ways and report the rank agreement."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a front run folder (runs/cpu_x2)")
    p.add_argument("--paths", type=int, default=10)
    p.add_argument("--steps", type=int, default=2000, help="fine-tune steps per member")
    p.add_argument("--max-ms", type=float, default=0.0, help="the slowest member's LUT ms (default: loosest target)")
    args = p.parse_args(argv)
    run = RunDir(args.run)
    cfg = load_config(run.config)
    space = make_space(cfg)
    lut = load_lut(cfg, run.lut(cfg.latency.backend, cfg.latency.precision))
    lat_model = LatencyModel.for_config(lut, cfg)
    max_ms = args.max_ms or max(json.loads(run.target.read_text())["targets_ms"])
    members = spread_members(space, lat_model, args.paths, max_ms)
    supernet = load_supernet(run.supernet)
    search_eval = make_evaluator(cfg, space, run.supernet, DistInfo())
    pairs = make_pairs(load_images(cfg.data.val, "val", data_root=cfg.data.data_root), cfg.data.scale)
    rows = []
    for cand, ms in progress_bar(members, desc="members", unit="net"):
        t0 = time.time()
        with torch.no_grad():
            zero = evaluate(member_net(supernet, cand).eval(), pairs, cfg.data.scale, ssim=False)["psnr"]
        searched = search_eval(cand)["psnr"]
        net = member_net(supernet, cand)
        masked_finetune(net, train_sampler(cfg, cfg.train.seed), args.steps, cfg.train.lr, desc=cand.key())
        with torch.no_grad():
            tuned = evaluate(net.eval(), pairs, cfg.data.scale, ssim=False)["psnr"]
        rows.append({"member": cand.key(), "lut_ms": round(ms, 3), "supernet_psnr": zero, "search_psnr": searched,
                     "finetuned_psnr": tuned, "seconds": round(time.time() - t0, 1)})
    tuned = [r["finetuned_psnr"] for r in rows]
    summary = {"run": str(args.run), "paths": len(rows), "finetune_steps": args.steps,
               "search_eval_steps": cfg.search.eval_steps, "supernet_steps": cfg.train.steps,
               "tau_supernet": float(kendalltau([r["supernet_psnr"] for r in rows], tuned)[0]),
               "tau_search": float(kendalltau([r["search_psnr"] for r in rows], tuned)[0]), "rows": rows}
    out = run.root / "rank"
    out.mkdir(exist_ok=True)
    atomic_write_text(out / "rank.json", json.dumps(summary, indent=1))
    lines = [f"# Rank check: {len(rows)} members, fine-tuned {args.steps} steps each from the supernet "
             f"({cfg.train.steps} supernet steps); PSNR on {cfg.data.val}", "",
             f"Kendall tau, fine-tuned vs supernet path: **{summary['tau_supernet']:.3f}**; vs the search's "
             f"{cfg.search.eval_steps}-step evaluation: **{summary['tau_search']:.3f}**", "",
             "| member | LUT ms | supernet | search eval | fine-tuned |", "|---|---|---|---|---|"]
    lines += [f"| {r['member']} | {r['lut_ms']:.2f} | {r['supernet_psnr']:.3f} | {r['search_psnr']:.3f} | "
              f"{r['finetuned_psnr']:.3f} |" for r in rows]
    atomic_write_text(out / "rank.md", "\n".join(lines) + "\n")
    _plot(rows, out / "rank.png")
    print("\n".join(lines[:3]))
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([r["supernet_psnr"] for r in rows], [r["finetuned_psnr"] for r in rows], label="supernet path")
    ax.scatter([r["search_psnr"] for r in rows], [r["finetuned_psnr"] for r in rows], marker="x",
               label="search evaluation")
    ax.set_xlabel("PSNR before fine-tune (dB)")
    ax.set_ylabel("fine-tuned PSNR (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

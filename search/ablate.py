"""`srnas ablate -c CONFIG --seeds N`: is the predictor worth its cost? Guided vs random search over N seeds.

Each seed runs the guided search (evolution + predictor + acquisition) and a random search of
valid candidates with the same number of real evaluations, sharing their initial candidates, on
the run's supernet and LUT (trained / built first when missing). Reported per seed and as mean
+- std: best PSNR found by each, and the predictor's Kendall tau on the random search's candidates
it never saw; plotted: best-so-far against evaluations. One seed cannot tell an effect from noise.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from srnas.supernet.config import Config, SearchConfig, config_of
from srnas.supernet.rundir import RunDir
from srnas.supernet.writes import atomic_write_text, save_figure

from .candidate import Space
from .constraints import Constraints
from .history import atomic_write_json
from .loop import EvaluateFn, kendall_tau_heldout, run_search


def ablate_seeds(space: Space, cons: Constraints, evaluate_fn: EvaluateFn, cfg: SearchConfig, seeds: int,
                 out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Guided and random search for seeds 0..N-1 of ``cfg.seed`` (resumable per seed); returns the summary."""
    per_seed, curves = [], {"guided": [], "random": []}
    for k in range(seeds):
        scfg = dataclasses.replace(cfg, seed=cfg.seed + k)
        hist = run_search(space, cons, evaluate_fn, scfg, out_dir / f"seed_{scfg.seed}", ablation=True, log=log)
        g, r = hist["guided"].rows, hist["random"].rows
        held = [row for row in r if row["key"] not in hist["guided"].keys]
        row = {"seed": scfg.seed, "guided_best": max(float(x["psnr"]) for x in g),
               "random_best": max(float(x["psnr"]) for x in r), "evaluations": len(g),
               "kendall_tau": kendall_tau_heldout(space, g, held, scfg), "heldout_n": len(held)}
        per_seed.append(row)
        for mode, rows in (("guided", g), ("random", r)):
            curves[mode].append(np.maximum.accumulate([float(x["psnr"]) for x in rows]).tolist())
        log(f"ablate seed {scfg.seed}: guided {row['guided_best']:.3f} dB, random {row['random_best']:.3f} dB, "
            f"Kendall tau {row['kendall_tau']:.3f} ({row['heldout_n']} held out)")
    return summarize(per_seed, curves)


def summarize(per_seed: list[dict], curves: dict[str, list[list[float]]]) -> dict:
    """Mean +- std over seeds, guided's wins, and the best-so-far curves."""
    def stats(key: str) -> dict:
        v = np.asarray([s[key] for s in per_seed], dtype=float)
        v = v[np.isfinite(v)]
        return {"mean": float(v.mean()) if len(v) else float("nan"), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}

    return {"seeds": per_seed, "guided_best": stats("guided_best"), "random_best": stats("random_best"),
            "kendall_tau": stats("kendall_tau"),
            "guided_wins": sum(s["guided_best"] > s["random_best"] for s in per_seed),
            "ties": sum(s["guided_best"] == s["random_best"] for s in per_seed), "curves": curves}


def write_ablation(summary: dict, out_dir: Path) -> Path:
    """ablate.json, ablate.md (per seed + mean +- std) and ablate.png (best so far vs evaluations)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(summary, out_dir / "ablate.json")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for mode, style in (("guided", "C0"), ("random", "C1")):
        runs = summary["curves"][mode]
        n = min(len(c) for c in runs)
        for c in runs:
            ax.plot(np.arange(1, len(c) + 1), c, color=style, alpha=0.25, lw=0.8)
        ax.plot(np.arange(1, n + 1), np.mean([c[:n] for c in runs], axis=0), color=style, lw=2,
                label=f"{mode} (mean of {len(runs)} seeds)")
    ax.set_xlabel("real evaluations")
    ax.set_ylabel("best validation PSNR so far (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "ablate.png", dpi=120)
    plt.close(fig)
    g, r, tau = summary["guided_best"], summary["random_best"], summary["kendall_tau"]
    lines = ["# Guided vs random search", "",
             f"{len(summary['seeds'])} seeds, the same number of real evaluations each; guided wins "
             f"{summary['guided_wins']}, ties {summary['ties']}.", "",
             "| seed | evaluations | guided best (dB) | random best (dB) | Kendall tau (held-out) | held out |",
             "|---|---|---|---|---|---|"]
    for s in summary["seeds"]:
        lines.append(f"| {s['seed']} | {s['evaluations']} | {s['guided_best']:.3f} | {s['random_best']:.3f} | "
                     f"{s['kendall_tau']:.3f} | {s['heldout_n']} |")
    lines += [f"| mean +- std | | {g['mean']:.3f} +- {g['std']:.3f} | {r['mean']:.3f} +- {r['std']:.3f} | "
              f"{tau['mean']:.3f} +- {tau['std']:.3f} | |", "", "![best so far](ablate.png)", ""]
    atomic_write_text(out_dir / "ablate.md", "\n".join(lines))
    return out_dir / "ablate.md"


def ablate_command(cfg: Config, run: RunDir, seeds: int) -> dict:
    """The run's supernet and LUT (made when missing), then guided vs random for each seed, into <run>/ablate/."""
    from srnas.supernet.errors import UserError

    from .pipeline import lut_stage, make_constraints, make_evaluator, make_space, one_process_supernet, resolve_target

    if seeds < 1:
        raise UserError(f"--seeds {seeds}: give at least 1 (3 or more to tell an effect from noise)")
    if cfg.latency.targets:
        raise UserError("srnas ablate searches one target: set latency.target, not latency.targets")
    cfg, dist_info = one_process_supernet(cfg, run, "srnas ablate")
    lat_model = lut_stage(cfg, run, dist_info) if cfg.latency.target else None
    cfg = resolve_target(cfg, lat_model)
    space = make_space(cfg)
    summary = ablate_seeds(space, make_constraints(cfg, space, lat_model),
                           make_evaluator(cfg, space, run.supernet, dist_info), cfg.search, seeds,
                           run.root / "ablate")
    report = write_ablation(summary, run.root / "ablate")
    g, r, tau = summary["guided_best"], summary["random_best"], summary["kendall_tau"]
    print(f"guided {g['mean']:.3f} +- {g['std']:.3f} dB, random {r['mean']:.3f} +- {r['std']:.3f} dB over {seeds} "
          f"seeds (guided wins {summary['guided_wins']}); predictor Kendall tau {tau['mean']:.3f} +- "
          f"{tau['std']:.3f}; {report}")
    print(json.dumps({k: summary[k] for k in ("guided_best", "random_best", "kendall_tau", "guided_wins")}))
    return summary


def register(sub: argparse._SubParsersAction) -> None:
    """Add `srnas ablate`."""
    a = sub.add_parser("ablate", help="guided vs random search over several seeds, with the predictor's Kendall "
                                      "tau (uses the run's supernet and LUT)")
    a.add_argument("-c", "--config", required=True)
    a.add_argument("--seeds", type=int, default=3, help="searches of each kind (default 3)")
    a.add_argument("--out", help="run directory (default: <run_dir>/<name> from the config)")
    a.set_defaults(func=_ablate)


def _ablate(args) -> int:
    from srnas.supernet.runlock import run_lock

    cfg = config_of(args)
    run = cfg.run(args.out)
    with run_lock(run.root):
        ablate_command(cfg, run, args.seeds)
    return 0

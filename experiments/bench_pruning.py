"""Pruning benchmark: per scheme at rates 0.5 / 0.75 on the quick config's all-WDSR-B model, 640x360 x2.

Reports the MAC reduction, the measured dense/pruned latency ratio (median of interleaved
runs in one process) and Set5 PSNR after a short masked fine-tune from a briefly trained
dense model. Prints a table; the LAST line is a JSON list of rows
(scheme, rate, mac_reduction, speedup, psnr).

    .venv/bin/python experiments/bench_pruning.py            # full (~10 min on 2 cores)
    .venv/bin/python experiments/bench_pruning.py --quick    # smoke run
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import matplotlib
import torch
from torch import nn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from srnas.latency.timing import make_runner  # noqa: E402
from srnas.latency.timing import time_interleaved as latency_time_interleaved  # noqa: E402
from srnas.pruning import masked_finetune, apply_plan, compact, count_macs, mac_latency_fn, reweighted_prune  # noqa: E402
from srnas.supernet.blocks import fuse_weight_norm  # noqa: E402
from srnas.supernet.config import PruningConfig, load_config  # noqa: E402
from srnas.supernet.data import PatchSampler, load_images, make_pairs  # noqa: E402
from srnas.supernet.evaluate import evaluate  # noqa: E402
from srnas.supernet.model import build_path_net  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def time_interleaved(models: dict[str, nn.Module], x: torch.Tensor, reps: int, backend: str) -> dict[str, float]:
    """Median ms per model, timed round-robin by the latency package's harness (as the LUT is)."""
    names = list(models)
    runners = [make_runner(models[k], [x], backend, 0) for k in names]
    timings = latency_time_interleaved(runners, warmup=1, repeats=reps)
    return {k: t.median_ms for k, t in zip(names, timings)}


def reweighted_demo(dense: nn.Module, sampler: PatchSampler, pairs, pcfg: PruningConfig, hw: tuple[int, int],
                    frac: float, reg_steps: int, ft_steps: int, reps: int, dense_psnr: float, backend: str,
                    scheme: str) -> None:
    """Reweighted regularization to a latency target (frac x measured dense ms), checked by measurement."""
    x = torch.rand(1, 3, *hw)
    base = compact(dense, apply_plan(copy.deepcopy(dense), {}, pcfg))
    dense_ms = time_interleaved({"dense": base}, x, reps, backend)["dense"]
    target = frac * dense_ms

    def measure(plan) -> float:
        m = copy.deepcopy(dense)
        small = compact(m, apply_plan(m, plan, pcfg))
        got = time_interleaved({"dense": base, "pruned": small}, x, reps, backend)
        return got["pruned"] * dense_ms / got["dense"]     # rescaled to the first dense timing: load-robust

    cfg = copy.deepcopy(pcfg)
    cfg.reg_steps, cfg.finetune_steps = reg_steps, ft_steps
    net = copy.deepcopy(dense)
    net, masks, plan = reweighted_prune(net, sampler, cfg, latency_fn=mac_latency_fn(dense, pcfg, dense_ms),
                                        target_ms=target, schemes=scheme, measure_fn=measure)
    with torch.no_grad():
        after = evaluate(lambda t: net(t), pairs, 2, ssim=False)["psnr"]
    small = compact(net, masks)
    got = time_interleaved({"dense": base, "pruned": small}, x, reps, backend)
    print(f"reweighted ({scheme}), target {frac:.2f} x dense = {target:.1f} ms at {hw[1]}x{hw[0]}")
    for k, (sch, r) in plan.items():
        print(f"  {k:<16} {sch:<8} {r:.2f}")
    ratio = got["pruned"] / got["dense"]
    print(f"measured dense {got['dense']:.1f} ms, pruned {got['pruned']:.1f} ms: pruned/dense {ratio:.3f} vs target "
          f"{frac:.3f} ({ratio / frac:.3f} x target); Set5 PSNR before {dense_psnr:.2f} dB, after {after:.2f} dB")
    print(json.dumps({"target_frac": frac, "measured_frac": round(ratio, 4), "meets": ratio <= 1.05 * frac,
                      "rates": {k: v[1] for k, v in plan.items()}, "psnr_before": round(dense_psnr, 3),
                      "psnr_after": round(after, 3)}))


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default=str(ROOT / "experiments/configs/quick.yaml"),
                    help="model and pruning sections (the WDSR-B model is built from model.*)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny training, small input, 2 timing reps")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--ft-steps", type=int, default=60)
    ap.add_argument("--out", default="runs/bench_pruning")
    ap.add_argument("--reweighted", type=float, default=0.0, metavar="FRAC",
                    help="instead: reweighted pruning of the trained dense model to FRAC x its measured latency")
    ap.add_argument("--reg-steps", type=int, default=60)
    ap.add_argument("--scheme", default="filter", choices=["filter", "block"],
                    help="with --reweighted: the scheme every layer is pruned by")
    ap.add_argument("--backend", default="torch-cpu", choices=["torch-cpu", "torch-cpu-cl", "onnxruntime"],
                    help="runtime every model (dense and pruned alike) is timed on")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    pcfg = cfg.pruning
    hw = (360, 640)
    reps, train_steps, ft_steps = args.reps, args.train_steps, args.ft_steps
    if args.quick:
        hw, reps, train_steps, ft_steps = (90, 160), 2, 10, 3
    torch.manual_seed(0)
    data_root = ROOT.parent / "shared/data/train/T91"
    images = load_images(str(data_root) if data_root.exists() else "skimage", "train")
    sampler = PatchSampler(images, 2, 32, 16, True, 0, 0)
    pairs = make_pairs(load_images("Set5", "val"), 2)
    path = ["wdsr_b"] * cfg.model.n_cells
    dense = fuse_weight_norm(build_path_net(cfg.model, 2, path))
    masked_finetune(dense, sampler, train_steps, 1e-3, lr_floor=None, desc="dense")
    with torch.no_grad():
        dense_psnr = evaluate(lambda x: dense(x), pairs, 2, ssim=False)["psnr"]
    if args.reweighted:
        reweighted_demo(dense, sampler, pairs, pcfg, hw, args.reweighted, args.reg_steps, ft_steps, reps,
                        dense_psnr, args.backend, args.scheme)
        return
    models, rows = {"dense": compact(dense, apply_plan(copy.deepcopy(dense), {}, pcfg))}, []
    dense_macs = count_macs(models["dense"], (32, 32))
    for scheme in ["unstructured", "filter", "block", "pattern"]:
        for rate in [0.5, 0.75]:
            net = copy.deepcopy(dense)
            masks = apply_plan(net, {n: (scheme, rate) for n, _ in net.prunable()}, pcfg)
            masked_finetune(net, sampler, ft_steps, 2e-4, masks, lr_floor=None, desc=f"{scheme}@{rate}")
            with torch.no_grad():
                psnr = evaluate(lambda x: net(x), pairs, 2, ssim=False)["psnr"]
            small = compact(net, masks)
            key = f"{scheme}@{rate}"
            models[key] = small
            # the channels the first block really computes (what filter / block pruning left alive)
            widths = "-".join(str(c.out_channels) for c in small.body[0].body if isinstance(c, nn.Conv2d))
            rows.append({"scheme": scheme, "rate": rate, "widths": widths,
                         "mac_reduction": round(dense_macs / count_macs(small, (32, 32)), 3), "psnr": round(psnr, 3)})
    ms = time_interleaved(models, torch.rand(1, 3, *hw), reps, args.backend)
    for r in rows:
        r["speedup"] = round(ms["dense"] / ms[f"{r['scheme']}@{r['rate']}"], 3)
        r["ms"] = round(ms[f"{r['scheme']}@{r['rate']}"], 1)
    print(f"WDSR-B x{cfg.model.n_cells}, n_feats {cfg.model.n_feats}, input {hw[1]}x{hw[0]}, {args.backend}, threads "
          f"{torch.get_num_threads()}; dense {ms['dense']:.1f} ms, Set5 {dense_psnr:.2f} dB "
          f"(after {train_steps} steps)")
    dense_w = "-".join(str(c.out_channels) for c in models["dense"].body[0].body if isinstance(c, nn.Conv2d))
    print(f"{'scheme':<13}{'rate':>5}{'MAC red.':>10}{'ms':>9}{'speedup':>9}{'PSNR':>8}"
          f"  block-0 widths (dense {dense_w})")
    for r in rows:
        print(f"{r['scheme']:<13}{r['rate']:>5}{r['mac_reduction']:>10.2f}{r['ms']:>9.1f}{r['speedup']:>9.2f}"
              f"{r['psnr']:>8.2f}  {r['widths']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_pruning.json").write_text(json.dumps(
        {"backend": args.backend, "input": list(hw), "dense_ms": round(ms["dense"], 1),
         "dense_psnr": round(dense_psnr, 3), "rows": rows}, indent=1))
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in rows:
        ax.scatter(r["mac_reduction"], r["speedup"], label=f"{r['scheme']}@{r['rate']}")
    lim = max(r["mac_reduction"] for r in rows)
    ax.plot([1, lim], [1, lim], "k--", lw=0.8, label="speedup = MAC reduction")
    ax.set_xlabel("MAC reduction (x)")
    ax.set_ylabel(f"measured speedup (x), {hw[1]}x{hw[0]}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bench_pruning.png", dpi=120)
    print(json.dumps([{k: r[k] for k in ("scheme", "rate", "mac_reduction", "speedup", "psnr")} for r in rows]))


if __name__ == "__main__":
    main()

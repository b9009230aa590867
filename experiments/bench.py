"""`srnas bench`: PSNR/SSIM (Y) per dataset, latency at a fixed input, params and MACs; CSV, markdown, plot."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from supernet.data import load_images, make_pairs  # noqa: E402
from supernet.evaluate import evaluate  # noqa: E402

from . import zoo  # noqa: E402
from .macs import count_macs, count_params  # noqa: E402
from .models import LoadedModel, load_model  # noqa: E402
from .timing import measure_latency  # noqa: E402
from .upscale import tiled_upscale  # noqa: E402

DEFAULT_MODELS = ["bicubic", "fsrcnn", "espcn", "esr_max", "esr_tm", "esr_tr", "esr_cnn", "abpn", "abpn_int8",
                  "wdsr_b"]
COLUMNS = ["model", "dataset", "scale", "psnr", "ssim", "latency_ms", "params", "macs", "y_only", "precision",
           "config"]


def _size_counts(m: LoadedModel, lr_hw: tuple[int, int]) -> tuple[float, float]:
    """(params, MACs at lr_hw) of a loaded model; NaN where they cannot be counted (exported files)."""
    if m.precision == "int8":  # same architecture as the FP32 ABPN; quantized modules hide their weights
        ref = zoo.build("abpn", m.scale)
        return count_params(ref), count_macs(ref, lr_hw)
    if m.module is not None and not isinstance(m.module, torch.jit.ScriptModule):
        return count_params(m.module), count_macs(m.module, lr_hw)
    path = Path(m.info.get("path", ""))
    onnx_path = path if path.suffix == ".onnx" else path.with_suffix(".onnx")
    if onnx_path.is_file():
        import onnx
        import numpy as np
        g = onnx.load(str(onnx_path)).graph
        return float(sum(int(np.prod(t.dims)) for t in g.initializer)), math.nan
    if m.module is not None:
        n = sum(p.numel() for p in m.module.parameters())
        return (float(n) if n else math.nan), math.nan
    return math.nan, math.nan


def run_bench(specs: list[str], datasets: list[str], scale: int, out_dir: str | Path, data_root: str | None = None,
              lr_hw: tuple[int, int] = (360, 640), threads: int = 0, weights_dir: str | None = None,
              repeats: int = 7) -> pd.DataFrame:
    """Benchmark ``specs`` on ``datasets``; writes bench.csv, bench.md and bench.png into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads > 0:
        torch.set_num_threads(threads)
    models = [load_model(s, scale, weights_dir, threads) for s in specs]  # fail fast on a missing model

    def upscaler(m: LoadedModel):
        return lambda x: tiled_upscale(m.run, x, scale, 0, 16, m.fixed_hw)

    quality: dict[tuple[str, str], dict] = {}
    for ds in datasets:
        pairs = make_pairs(load_images(ds, "val", data_root=data_root), scale)
        for m in tqdm(models, desc=f"evaluate {Path(ds).name}", dynamic_ncols=True):
            quality[(m.name, ds)] = evaluate(upscaler(m), pairs, scale, ssim=True)
    runners = {m.name: upscaler(m) for m in models}
    lat = measure_latency(runners, lr_hw, repeats=repeats, threads=threads)
    rows = []
    for m in models:
        params, macs = _size_counts(m, lr_hw)
        for ds in datasets:
            q = quality[(m.name, ds)]
            rows.append({"model": m.name, "dataset": Path(ds).name, "scale": scale, "psnr": round(q["psnr"], 3),
                         "ssim": round(q["ssim"], 4), "latency_ms": round(lat[m.name], 2), "params": params,
                         "macs": macs, "y_only": "" if m.y_only is None else ("yes" if m.y_only else "no"),
                         "precision": m.precision, "config": m.config})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.to_csv(out_dir / "bench.csv", index=False)
    (out_dir / "bench.md").write_text(markdown_table(df, lr_hw))
    plot_pareto(df, out_dir / "bench.png", lr_hw)
    return df


def _fmt_count(v: float, unit: float, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v / unit:.{digits}f}"


def markdown_table(df: pd.DataFrame, lr_hw: tuple[int, int]) -> str:
    """One row per model: Y-only, precision, params, MACs, latency, PSNR/SSIM per dataset."""
    datasets = list(dict.fromkeys(df["dataset"]))
    head = (["model", "Y-only", "precision", "params (K)", f"GMACs @{lr_hw[1]}x{lr_hw[0]}",
             f"latency ms @{lr_hw[1]}x{lr_hw[0]}"] + [f"{d} PSNR/SSIM" for d in datasets])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in df.groupby("model", sort=False):
        r = g.iloc[0]
        cells = [name, r["y_only"] or "?", r["precision"], _fmt_count(r["params"], 1e3, 1),
                 _fmt_count(r["macs"], 1e9, 2), f"{r['latency_ms']:.1f}"]
        by_ds = {row["dataset"]: row for _, row in g.iterrows()}
        cells += [f"{by_ds[d]['psnr']:.2f} / {by_ds[d]['ssim']:.4f}" if d in by_ds else "-" for d in datasets]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The (latency, psnr, name) points no other point beats on both (lower latency, higher PSNR)."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda t: (t[0], -t[1])):
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


def plot_pareto(df: pd.DataFrame, path: Path, lr_hw: tuple[int, int]) -> None:
    """PSNR (first dataset) vs latency, log latency axis, one point per model, Pareto front drawn."""
    ds = df["dataset"].iloc[0]
    sub = df[df["dataset"] == ds]
    pts = [(float(r["latency_ms"]), float(r["psnr"]), str(r["model"])) for _, r in sub.iterrows()]
    fig, ax = plt.subplots(figsize=(7, 5))
    for x, y, name in pts:
        ax.scatter([x], [y], s=30)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = pareto_front(pts)
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", lw=1, ls="--",
            label="Pareto front")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"latency (ms, {lr_hw[1]}x{lr_hw[0]} input, this device)")
    ax.set_ylabel(f"PSNR Y (dB), {ds} x{int(sub['scale'].iloc[0])}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_json(df: pd.DataFrame) -> str:
    """The final machine-readable line: per model, PSNR per dataset and latency."""
    out: dict = {}
    for _, r in df.iterrows():
        d = out.setdefault(r["model"], {"latency_ms": r["latency_ms"]})
        d[f"psnr_{r['dataset']}"] = r["psnr"]
    return json.dumps(out)

"""report.md with tables and PNG plots: search progress, PSNR vs latency, predictor accuracy, ablation."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from srnas.supernet.writes import atomic_write_text, save_figure  # noqa: E402

from .loop import tau_text  # noqa: E402


def _best_so_far(df: pd.DataFrame) -> np.ndarray:
    return np.maximum.accumulate(df["psnr"].astype(float).to_numpy()) if len(df) else np.array([])


def _save(fig, ax, path: Path, legend_size: int = 8) -> Path:
    """Grid, legend, tight layout, PNG; the figure is closed."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def plot_progress(guided: pd.DataFrame, random: pd.DataFrame | None, path: Path) -> Path:
    """Best PSNR so far against the number of real evaluations."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(np.arange(1, len(guided) + 1), _best_so_far(guided), "o-", label="predictor-guided (evolution + BO)")
    if random is not None and len(random):
        ax.plot(np.arange(1, len(random) + 1), _best_so_far(random), "s--", label="random (valid candidates)")
    ax.set_xlabel("real evaluations")
    ax.set_ylabel("best validation PSNR so far (dB)")
    return _save(fig, ax, path)


def plot_psnr_latency(guided: pd.DataFrame, random: pd.DataFrame | None, target_ms: float, path: Path,
                      winner: dict | None = None) -> Path:
    """PSNR against LUT-predicted latency of every evaluated candidate."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.scatter(guided["lat_pred_ms"].astype(float), guided["psnr"].astype(float), s=18, label="guided")
    if random is not None and len(random):
        ax.scatter(random["lat_pred_ms"].astype(float), random["psnr"].astype(float), s=18, marker="x",
                   label="random")
    if target_ms > 0:
        ax.axvline(target_ms, color="red", ls=":", label=f"target {target_ms:g} ms")
    if winner:
        ax.scatter([winner["lat_pred_ms"]], [winner["psnr"]], s=80, facecolors="none", edgecolors="k",
                   label="winner")
    ax.set_xlabel("LUT-predicted latency (ms)")
    ax.set_ylabel("validation PSNR (dB)")
    return _save(fig, ax, path)


def plot_predictor(guided: pd.DataFrame, heldout: tuple[np.ndarray, np.ndarray] | None, path: Path) -> Path:
    """Predicted (ensemble mean, at pick time) against measured PSNR; held-out points if given."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    g = guided.dropna(subset=["pred_mean"]) if "pred_mean" in guided else guided.iloc[:0]
    g = g[pd.to_numeric(g["pred_mean"], errors="coerce").notna()]
    xs = [pd.to_numeric(g["pred_mean"]).to_numpy()]
    ys = [g["psnr"].astype(float).to_numpy()]
    if len(g):
        ax.errorbar(xs[0], ys[0], xerr=pd.to_numeric(g["pred_std"]).to_numpy(), fmt="o", ms=4, color="C0",
                    label="guided picks (predicted when picked)")
    if heldout is not None and len(heldout[0]):
        ax.scatter(heldout[0], heldout[1], marker="x", color="C1", label="held-out (random search)")
        xs.append(heldout[0])
        ys.append(heldout[1])
    allv = np.concatenate(xs + ys) if any(len(v) for v in xs) else np.array([0.0, 1.0])
    lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
    ax.plot([lo, hi], [lo, hi], "k:", lw=1)
    ax.set_xlabel("predicted PSNR (dB)")
    ax.set_ylabel("measured PSNR (dB)")
    return _save(fig, ax, path, legend_size=7)


def _cell(c) -> str:
    return str(c).replace("|", " / ")  # candidate keys separate cells with '|'


def _table(rows: list[list], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _f(x, fmt: str = ".2f") -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "n/a" if np.isnan(x) else format(x, fmt)


def write_report(out_dir: str | Path, summary: dict, guided: pd.DataFrame, random: pd.DataFrame | None,
                 ablation: dict, heldout: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write <out_dir>/report.md and its PNGs; returns the report path."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    target = float(summary.get("target_ms") or 0.0)
    winner_row = guided.loc[guided["psnr"].astype(float).idxmax()].to_dict() if len(guided) else None
    p1 = plot_progress(guided, random, fig_dir / "search_progress.png")
    p2 = plot_psnr_latency(guided, random, target, fig_dir / "psnr_vs_latency.png", winner_row)
    p3 = plot_predictor(guided, heldout, fig_dir / "predictor_vs_true.png")
    lines = [f"# srnas run report: {summary.get('name', '')}", ""]
    lines += ["## Winner", ""]
    w = summary.get("winner", {})
    lines += [_table([[k, v] for k, v in w.items()], ["field", "value"]), ""]
    if summary.get("final"):
        lines += ["## Final model (after stage 3, exported)", ""]
        lines += [_table([[k, v] for k, v in summary["final"].items()], ["field", "value"]), ""]
    lines += ["## Ablation: predictor-guided vs random search (same budget of real evaluations)", ""]
    lines += [_table([["predictor-guided", ablation.get("guided_evals"), _f(ablation.get("guided_best"), ".3f")],
                      ["random among valid", ablation.get("random_evals"), _f(ablation.get("random_best"), ".3f")]],
                     ["search", "real evaluations", "best validation PSNR (dB)"]), ""]
    tau = tau_text(float(ablation.get("kendall_tau", float("nan"))), int(ablation.get("heldout_n", 0)))
    lines += [f"Predictor Kendall tau on held-out evaluated candidates: **{tau}** "
              f"(ensemble trained on the guided history, tested on the random-search candidates it never saw). "
              f"Both searches share the same "
              f"{ablation.get('shared_init', 0)} initial random evaluations.", ""]
    lines += ["## Figures", "", f"![search progress]({p1.relative_to(out_dir)})",
              f"![PSNR vs latency]({p2.relative_to(out_dir)})", f"![predictor]({p3.relative_to(out_dir)})", ""]
    lines += ["## Top evaluated candidates (guided search)", ""]
    top = guided.assign(_p=guided["psnr"].astype(float)).sort_values("_p", ascending=False).head(10)
    lines += [_table([[int(r["iteration"]), r["key"], _f(r["rate"]), _f(r["psnr"], ".3f"), _f(r["pred_mean"], ".3f"),
                       _f(r["lat_pred_ms"]), _f(float(r["macs"]) / 1e9, ".3f"), _f(float(r["params"]) / 1e3, ".1f")]
                      for _, r in top.iterrows()],
                     ["iter", "candidate (block:schemes per cell)", "rate", "PSNR", "predicted", "LUT ms",
                      "GMACs", "k params"]), ""]
    lines += ["## Search settings", "", _table([[k, v] for k, v in summary.get("search", {}).items()],
                                                ["setting", "value"]), ""]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path

"""`srnas bench`: PSNR/SSIM (Y) per dataset, latency at a fixed input, params and MACs; CSV, markdown, plot."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from srnas.latency.executors import (auto_candidates, available_executors, check_backend, check_executor,  # noqa: E402
                                     file_backends, file_infer, make_infer, pixel_infer, quantize_onnx)
from srnas.latency.runtimes.base import PrecisionFallback  # noqa: E402
from srnas.pruning.model_file import PrunedModel  # noqa: E402
from srnas.supernet.data import load_images, make_pairs  # noqa: E402
from srnas.supernet.errors import UserError  # noqa: E402
from srnas.supernet.evaluate import evaluate  # noqa: E402
from srnas.supernet.imaging import write_png  # noqa: E402
from srnas.supernet.progress import progress_bar  # noqa: E402
from srnas.supernet.writes import atomic_write_text, make_folder, save_figure  # noqa: E402

from . import zoo  # noqa: E402
from .crops import crop_sheet  # noqa: E402
from .macs import count_macs, count_params  # noqa: E402
from .models import LoadedModel, load_model  # noqa: E402
from .precision import calibration_inputs, own_precision  # noqa: E402
from .quantize import abpn_float_from_qat  # noqa: E402
from .timing import measure_latency  # noqa: E402
from .tiling import tiled_upscale  # noqa: E402

BEST = "best"   # --backend best: every model in the executor it runs best in here
DEFAULT_MODELS = ["bicubic", "fsrcnn", "espcn", "esr_max", "esr_tm", "esr_tr", "esr_cnn", "abpn", "abpn_int8",
                  "wdsr_b"]



def default_models(scale: int, backend: str | None = None, precision: str | None = None,
                   weights_dir: str | None = None, say: Callable[[str], None] = print) -> list[str]:
    """What a bench without --models compares: DEFAULT_MODELS that have weights at ``scale`` (bicubic needs
    none; one line names the ones left out), then the shipped INT8 forms and this CPU's front (shipped_models)."""
    have = [n for n in DEFAULT_MODELS if n == "bicubic" or zoo.weights_path(n, scale, weights_dir).is_file()]
    missing = [n for n in DEFAULT_MODELS if n not in have]
    if missing:
        say(f"left out, no x{scale} weights: {', '.join(missing)} (`python experiments/train_zoo.py -c "
            f"experiments/configs/cpu_x{scale}.yaml` trains them)")
    return have + shipped_models(scale, backend, precision, weights_dir, say)


def shipped_models(scale: int, backend: str | None = None, precision: str | None = None,
                   weights_dir: str | None = None, say: Callable[[str], None] = print) -> list[str]:
    """The shipped INT8 zoo forms and searched models a default bench takes: those whose weights are there and
    whose precision ``backend`` (None: torch; best: any executor here) runs; ``say`` gets a line for each left out."""
    out = []
    for name in list(zoo.INT8) + zoo.search_members(weights_dir, scale):
        path = zoo.weights_path(name, scale, weights_dir)
        if not path.is_file():
            continue
        own = precision or ("int8" if name in zoo.INT8 else PrunedModel.load(path).precision)
        try:
            if backend == BEST:   # some executor here runs it
                if not available_executors(auto_candidates("auto", own)):
                    raise UserError(f"no executor here runs {own}")
            else:
                check_executor(backend or "torch-cpu", own)
        except UserError:
            say(f"{name}: left out, it runs in {own} and {backend or 'torch-cpu'} does not "
                f"(bench it with --backend onnxruntime or openvino)")
            continue
        out.append(name)
    return out


@dataclass
class BenchRow:
    """One model on one dataset: quality (Y), latency in its executor, size; a row of bench.csv."""
    model: str
    dataset: str
    scale: int
    psnr: float
    ssim: float
    latency_ms: float
    params: float
    macs: float
    y_only: str
    backend: str
    precision: str
    config: str
    steps: int = 0          # optimizer steps its weights saw (0: none, or not recorded)
    frame_ms: float = math.nan   # ms on 8-bit RGB frames in and out (the upscaler's route), where the runtime has one

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BenchRow":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


COLUMNS = [f.name for f in dataclasses.fields(BenchRow)]


def _size_counts(m: LoadedModel, lr_hw: tuple[int, int]) -> tuple[float, float]:
    """(params, MACs at lr_hw) of a loaded model; NaN where they cannot be counted (exported files)."""
    if m.name == "abpn_int8":  # the FP32 ABPN's architecture; its quantized modules hide their weights
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


@dataclass
class Deployed:
    """A model as one executor runs it: ``run`` for quality (any input size), ``timed`` at the latency size."""

    model: LoadedModel
    run: Callable[[torch.Tensor], torch.Tensor]
    timed: Callable[[torch.Tensor], object]
    backend: str
    precision: str
    frame: Callable[[], object] | None = None   # one lr_hw 8-bit frame through the runtime's pixel route


# each model keeps its fastest of 3 interleaved passes, the estimator stage 3 and ship_winners' targets use: one
# pass put a searched model 20 % over its stage-3 timing and abpn_int8 11 % over the target's (quiet 2-core EPYC)
BENCH_PASSES = 3


def check_bench_args(scale: int, lr_hw: tuple[int, int], repeats: int, threads: int = 0) -> None:
    """UserError for a scale no model has, an input size of no pixels, no timed run or a negative thread count,
    before any work."""
    if isinstance(scale, bool) or scale not in (2, 3, 4):
        raise UserError(f"scale {scale!r}: the zoo and srnas's models upscale x2, x3 or x4")
    if len(lr_hw) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in lr_hw):
        raise UserError(f"latency input size {tuple(lr_hw)!r}: give a height and width of at least 1 pixel "
                        f"(--lr-size 360x640)")
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise UserError(f"repeats {repeats!r}: each model must be timed at least once (--repeats 7)")
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 0:
        raise UserError(f"threads {threads!r}: give a number of threads, or 0 for all cores (--threads 0)")


def run_bench(specs: list[str], datasets: list[str], scale: int, out_dir: str | Path, data_root: str | None = None,
              lr_hw: tuple[int, int] = (360, 640), threads: int = 0, weights_dir: str | None = None,
              repeats: int = 7, backend: str | None = None, precision: str | None = None,
              crops: bool = False) -> pd.DataFrame:
    """Benchmark ``specs`` on ``datasets``; writes bench.csv, bench.md and bench.png into ``out_dir``.

    ``backend`` None: each model as torch runs it (exported .onnx files in ONNX Runtime); ``"best"``: each in
    the executor it runs best in here (a searched model: the one it was searched for; the others: the fastest
    here in their own precision, timed, as the Upscaler picks). Otherwise every model is timed and scored in
    that runtime, each in its own precision (abpn_int8 and INT8 files as
    INT8, the rest fp32) unless ``precision`` forces one: the PSNR is that of what the user deploys.
    ``crops``: also write crops/<dataset>.png, zoomed crops of every model and the HR image side by side.
    """
    check_bench_args(scale, lr_hw, repeats, threads)
    out_dir = make_folder(out_dir)
    if threads > 0:
        torch.set_num_threads(threads)
    if backend not in (None, BEST) and precision is not None:  # an executor that cannot run here fails first
        check_executor(backend, precision)
    elif backend not in (None, BEST):
        check_backend(backend)
    models = [load_model(s, scale, weights_dir, threads) for s in specs]  # fail fast on a missing model
    with tempfile.TemporaryDirectory() as work:
        if backend is None:
            deployed = [_as_loaded(m, scale) for m in models]
        else:
            deployed = []
            for i, m in enumerate(models):
                b, p = (backend, precision) if backend != BEST else best_executor(m, precision, threads, lr_hw,
                                                                                  weights_dir)
                try:
                    deployed.append(deploy(m, b, p, scale, threads, lr_hw, Path(work) / f"m{i}", weights_dir))
                except PrecisionFallback as e:   # e.g. a 1-channel conv OpenVINO keeps f32 in an INT8 file
                    print(f"{m.name}: left out, {e}")
            if not deployed:
                raise UserError(f"no model of {specs} runs in {backend}")
        quality: dict[tuple[str, str], dict] = {}
        for ds in datasets:
            pairs = make_pairs(load_images(ds, "val", data_root=data_root), scale)
            for d in progress_bar(deployed, desc=f"evaluate {Path(ds).name}"):
                quality[(d.model.name, ds)] = evaluate(d.run, pairs, scale, ssim=True)
            if crops:
                write_crops(deployed, pairs[0], out_dir / "crops" / f"{Path(ds).name}.png")
        runners = {d.model.name: d.timed for d in deployed}
        runners.update({(d.model.name, "frame"): (lambda _x, f=d.frame: f()) for d in deployed if d.frame})
        lat = measure_latency(runners, lr_hw, repeats=repeats, threads=threads, passes=BENCH_PASSES)
    rows = []
    for d in deployed:
        m = d.model
        params, macs = _size_counts(m, lr_hw)
        for ds in datasets:
            q = quality[(m.name, ds)]
            rows.append(BenchRow(m.name, Path(ds).name, scale, round(q["psnr"], 3), round(q["ssim"], 4),
                                 round(lat[m.name], 2), params, macs,
                                 "" if m.y_only is None else ("yes" if m.y_only else "no"), d.backend, d.precision,
                                 m.config, int(m.info.get("steps", 0)),
                                 round(lat.get((m.name, "frame"), math.nan), 2)))
    df = pd.DataFrame([r.to_json() for r in rows], columns=COLUMNS)
    # each written whole or not at all (a full disk): never an empty bench.png under its name
    atomic_write_text(out_dir / "bench.csv", df.to_csv(index=False))
    atomic_write_text(out_dir / "bench.md", markdown_table(df, lr_hw))
    plot_pareto(df, out_dir / "bench.png", lr_hw)
    return df


def write_crops(deployed: list[Deployed], pair, path: Path) -> Path:
    """Zoomed crops of one image: bicubic, each model (as deployed) and the HR image, side by side."""
    from srnas.supernet.imaging import to_tensor
    lr = to_tensor(pair.lr)
    with torch.inference_mode():
        outputs = {d.model.name: d.run(lr) for d in deployed if d.model.name != "bicubic"}
    outputs["HR"] = to_tensor(pair.hr)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, crop_sheet(lr, outputs, side=64))
    return path


def _tiled(run: Callable[[torch.Tensor], torch.Tensor], scale: int, fixed_hw: tuple[int, int] | None):
    return lambda x: tiled_upscale(run, x, scale, 0, 16, fixed_hw)


def _as_loaded(m: LoadedModel, scale: int) -> Deployed:
    """Today's default: torch runs torch models, ONNX Runtime runs .onnx files."""
    backend = "onnxruntime" if Path(m.info.get("path", "")).suffix == ".onnx" else "torch-cpu"
    run = _tiled(m.run, scale, m.fixed_hw)
    return Deployed(m, run, run, backend, own_precision(m))


def best_executor(m: LoadedModel, precision: str | None, threads: int, lr_hw: tuple[int, int],
                  weights_dir: str | None) -> tuple[str, str]:
    """(backend, precision) ``m`` runs best in here: recorded in a searched file, else the fastest executor
    here in its own precision (or ``precision``)."""
    from .upscaler import resolve_executor
    backend, prec, _ = resolve_executor(m, None, precision, threads, lr_hw, weights_dir)
    return backend, prec


def deploy(m: LoadedModel, backend: str, precision: str | None, scale: int, threads: int, lr_hw: tuple[int, int],
           workdir: Path, weights_dir: str | None = None) -> Deployed:
    """``m`` in executor (backend, own precision or ``precision``): quality and timing functions, labelled."""
    workdir.mkdir(parents=True, exist_ok=True)
    own = own_precision(m)
    # bicubic is the reference every table starts from, not a network anyone quantizes: always fp32
    prec = "fp32" if m.name == "bicubic" else (precision or own)
    path = Path(m.info.get("path", ""))
    example = [torch.rand(1, 3, *lr_hw)]
    # a pruned-model file (torch module, not TorchScript) deploys from its compact network, as the zoo does
    if path.suffix in (".onnx", ".ts", ".pt") and not (m.module is not None and path.suffix == ".pt"
                                                      and not isinstance(m.module, torch.jit.ScriptModule)):
        return _deploy_file(m, path, backend, prec, own, scale, threads, lr_hw, workdir)
    if m.name == "abpn_int8" and backend == "torch-cpu" and prec == "int8":  # its torch.ao INT8 form, as today
        run = _tiled(m.run, scale, None)
        return Deployed(m, run, run, backend, "int8")
    module = abpn_float_from_qat(scale, weights_dir) if m.name == "abpn_int8" else m.module
    check_executor(backend, prec)
    calib = calibration_inputs(scale) if prec == "int8" else None
    run = make_infer(module, example, backend, threads, prec, calib, dynamic=True, workdir=workdir)
    timed = run
    frame = None
    if backend == "openvino":  # OpenVINO compiles for one input size: time the static compile users deploy
        timed, frame = _at_size(_file_at(workdir, prec), backend, prec, threads, lr_hw)
    return Deployed(m, _tiled(run, scale, None), timed, backend, prec, frame)


def _file_at(workdir: Path, precision: str) -> Path:
    """The file deploy wrote into ``workdir`` for ``precision``."""
    return next((workdir / n for n in ("model_int8.xml", "model_int8.onnx", "model.onnx")
                 if (workdir / n).is_file() and (precision == "int8") == ("int8" in n)))


def _at_size(path: Path, backend: str, precision: str, threads: int, lr_hw: tuple[int, int]):
    """``path`` compiled for exactly 1x3xHxW at ``lr_hw``: a call on a float input, and a call running one 8-bit
    frame through the runtime's pixel route (None where it has none)."""
    infer = file_infer(path, backend, precision, threads, [(1, 3, *lr_hw)])
    pixels = pixel_infer(path, backend, precision, threads, lr_hw)
    frame = np.random.default_rng(0).integers(0, 256, (1, *lr_hw, 3), dtype=np.uint8)
    return (lambda x: infer([_np(x)])), (None if pixels is None else lambda: pixels(frame))


def _np(x: torch.Tensor) -> np.ndarray:
    """A contiguous float32 array of a tensor (tiles are strided views), as runtimes take them."""
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)


def _deploy_file(m: LoadedModel, path: Path, backend: str, prec: str, own: str, scale: int, threads: int,
                 lr_hw: tuple[int, int], workdir: Path) -> Deployed:
    """An exported file in ``backend``: TorchScript in torch, its ONNX (or the .onnx itself) in ORT / OpenVINO."""
    if backend not in file_backends():
        if path.suffix == ".onnx":
            raise UserError(f"{path} is an ONNX file: bench it with --backend onnxruntime or openvino")
        if prec != own:
            raise UserError(f"{path} is a {own} TorchScript file: torch runs it as it is; pass --precision {own} "
                            f"or bench its ONNX in onnxruntime / openvino")
        run = _tiled(m.run, scale, m.fixed_hw)
        return Deployed(m, run, run, backend, own)
    onnx_path = path if path.suffix == ".onnx" else path.with_suffix(".onnx")
    if not onnx_path.is_file():
        raise UserError(f"{path}: {backend} runs ONNX, and no {onnx_path.name} lies beside it (srnas export writes both)")
    check_executor(backend, prec)
    if own == "int8" and prec != "int8":
        raise UserError(f"{onnx_path} is quantized (INT8): it cannot run as {prec}; bench its fp32 export instead")
    if prec == "int8" and own != "int8":
        calib = calibration_inputs(scale, size=min(m.fixed_hw) if m.fixed_hw else 96)
        if m.fixed_hw:
            calib = [[c[0][..., :m.fixed_hw[0], :m.fixed_hw[1]]] for c in calib]
        onnx_path = quantize_onnx(onnx_path, workdir / "model_int8.onnx", calib, backend)
    infer = file_infer(onnx_path, backend, prec, threads)
    run = _tiled(lambda x: torch.from_numpy(infer([_np(x)])), scale, m.fixed_hw)
    timed, frame = run, None
    if backend == "openvino" and m.fixed_hw is None:
        timed, frame = _at_size(onnx_path, backend, prec, threads, lr_hw)
    return Deployed(m, run, timed, backend, prec, frame)


def _fmt_count(v: float, unit: float, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v / unit:.{digits}f}"


def markdown_table(df: pd.DataFrame, lr_hw: tuple[int, int]) -> str:
    """One row per model: Y-only, backend, precision, params, MACs, latency, PSNR/SSIM per dataset."""
    datasets = list(dict.fromkeys(df["dataset"]))
    frames = "frame_ms" in df and df["frame_ms"].notna().any()
    head = (["model", "Y-only", "backend", "precision", "train steps", "params (K)", f"GMACs @{lr_hw[1]}x{lr_hw[0]}",
             f"latency ms @{lr_hw[1]}x{lr_hw[0]}"] + (["ms, 8-bit frames"] if frames else [])
            + [f"{d} PSNR/SSIM" for d in datasets])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in df.groupby("model", sort=False):
        r = g.iloc[0]
        steps = int(r["steps"]) if "steps" in r and r["steps"] == r["steps"] else 0
        cells = [name, r["y_only"] or "?", r["backend"], r["precision"], steps or "-", _fmt_count(r["params"], 1e3, 1),
                 _fmt_count(r["macs"], 1e9, 2), f"{r['latency_ms']:.1f}"]
        if frames:
            cells.append("-" if pd.isna(r["frame_ms"]) else f"{r['frame_ms']:.1f}")
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
    runtimes = ", ".join(dict.fromkeys(sub["backend"])) if "backend" in sub else "this device"
    ax.set_xlabel(f"latency (ms, {lr_hw[1]}x{lr_hw[0]} input, {runtimes} on this device)")
    ax.set_ylabel(f"PSNR Y (dB), {ds} x{int(sub['scale'].iloc[0])}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def summary_json(df: pd.DataFrame) -> str:
    """The final machine-readable line: per model, PSNR per dataset and latency."""
    out: dict = {}
    for _, r in df.iterrows():
        d = out.setdefault(r["model"], {"latency_ms": r["latency_ms"], "steps": int(r.get("steps", 0) or 0)})
        if pd.notna(r.get("frame_ms")):   # the runtime has a pixel route
            d["frame_ms"] = r["frame_ms"]
        d[f"psnr_{r['dataset']}"] = r["psnr"]
    return json.dumps(out)

"""Executor benchmark: each model's median ms in every executor available here, interleaved in one run.

Models: the zoo's abpn, espcn, fsrcnn, wdsr_b (shipped weights) and the quick config's dense
all-WDSR-B path net (x4 cells); 640x360 input, 2 threads by default. Every (model, executor) runner
is timed in the same interleaved rounds, so load from other processes hits all alike; the IQR of
each cell is its spread. INT8 is static post-training quantization calibrated on random inputs (enough
to time it, not to score it): ONNX Runtime's QDQ file, which both runtimes run; where NNCF is
installed, OpenVINO is also timed on NNCF's own INT8 file (``openvino/int8-nncf``), the other route.
Prints a markdown table; the LAST line is JSON.

    .venv/bin/python experiments/bench_executors.py                      # ~2-4 min on 2 cores
    .venv/bin/python experiments/bench_executors.py --lr-size 90x160     # smoke run
    .venv/bin/python experiments/bench_executors.py --auto               # what latency.backend auto picks here
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from srnas.experiments import zoo
from srnas.latency.executors import (available_executors, choose_executor, deploy_file, executor_name, executor_summary,
                                     executor_table_markdown, export_onnx, file_infer, make_runner, openvino_compile,
                                     openvino_conv_precisions, quantize_onnx, random_calibration)
from srnas.latency.timing import time_interleaved
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import load_config
from srnas.supernet.model import build_path_net

ROOT = Path(__file__).resolve().parents[1]
OV_NNCF = ("openvino", "int8-nncf")   # OpenVINO running NNCF's INT8 file instead of ONNX Runtime's QDQ file


def bench_models(scale: int = 2) -> dict[str, nn.Module]:
    """The zoo's abpn, espcn, fsrcnn, wdsr_b and the quick config's dense WDSR-B x4 path net."""
    models = {name: zoo.load(name, scale).eval() for name in ("abpn", "espcn", "fsrcnn", "wdsr_b")}
    cfg = load_config(ROOT / "experiments" / "configs" / "quick.yaml")
    n = cfg.model.n_cells
    models[f"wdsr_b path x{n}"] = fuse_weight_norm(build_path_net(cfg.model, scale, ["wdsr_b"] * n)).eval()
    return models


def ov_nncf_runner(module: nn.Module, x: torch.Tensor, threads: int):
    """OpenVINO on NNCF's INT8 file (random calibration), checked to run its convs in int8."""
    with tempfile.TemporaryDirectory() as d:
        fp32 = export_onnx(module, [x], Path(d) / "model.onnx")
        path = quantize_onnx(fp32, Path(d) / "model_int8.xml", random_calibration([x]), "openvino", route="nncf")
        infer = file_infer(path, "openvino", "int8", threads, [tuple(x.shape)])
    feed = [x.numpy()]
    return lambda: infer(feed)


def ov_runs(module: nn.Module, x: torch.Tensor, precision: str, threads: int) -> str:
    """What OpenVINO's CPU plugin really runs the convolutions of ``module`` in (e.g. 'bf16:7')."""
    with tempfile.TemporaryDirectory() as d:
        path = deploy_file(module, [x], "openvino", precision, d)
        compiled = openvino_compile(path, precision, threads, [tuple(x.shape)])
        return " ".join(f"{k}:{v}" for k, v in sorted(openvino_conv_precisions(compiled).items()))


def run(lr_hw: tuple[int, int], threads: int, repeats: int, with_nncf: bool = True) -> dict:
    """Build every (model, executor) runner, time them interleaved; dict with rows and notes."""
    models = bench_models()
    x = torch.rand(1, 3, *lr_hw, generator=torch.Generator().manual_seed(0))
    executors = available_executors()
    if with_nncf and ("openvino", "int8") in executors and importlib.util.find_spec("nncf"):
        executors.append(OV_NNCF)
    runners, slots, errors, build_s = [], [], {}, {}
    for name, m in models.items():
        for b, p in executors:
            t0 = time.perf_counter()
            try:
                r = ov_nncf_runner(m, x, threads) if (b, p) == OV_NNCF else make_runner(m, [x], b, threads, p)
            except Exception as e:  # a runtime that cannot build this net is a result, not a crash
                errors[(name, executor_name(b, p))] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
                continue
            build_s[(name, executor_name(b, p))] = time.perf_counter() - t0
            runners.append(r)
            slots.append((name, executor_name(b, p)))
    timings = time_interleaved(runners, warmup=2, repeats=repeats, threads=threads)
    cells = {slot: t for slot, t in zip(slots, timings)}
    names = [executor_name(b, p) for b, p in executors]
    ov_precision = {}
    for p in ("fp32", "bf16", "int8"):
        if ("openvino", p) in executors:
            ov_precision[p] = {name: ov_runs(m, x, p, threads) for name, m in models.items()}
    rows = []
    for name in models:
        row = {"model": name}
        for e in names:
            if (name, e) in cells:
                t = cells[(name, e)]
                row[e] = {"median_ms": round(t.median_ms, 2), "iqr_ms": round(t.iqr_ms, 2), "n": t.n}
            else:
                row[e] = {"error": errors.get((name, e), "not built")}
        rows.append(row)
    return {"lr_hw": list(lr_hw), "threads": threads, "executors": names, "rows": rows,
            "openvino_conv_precision": ov_precision, "build_s": {f"{k[0]} | {k[1]}": round(v, 2)
                                                                  for k, v in build_s.items()}}


def geomeans(result: dict) -> dict[str, float]:
    """Per executor: geometric mean of the model medians (inf where any model failed)."""
    out = {}
    for e in result["executors"]:
        ms = [r[e].get("median_ms") for r in result["rows"]]
        out[e] = math.exp(sum(math.log(v) for v in ms) / len(ms)) if all(ms) else math.inf
    return out


def markdown(result: dict) -> str:
    """Models down, executors across: median ms (IQR); a geomean row; the fastest cell of a row in bold."""
    ex = result["executors"]
    lines = ["| model | " + " | ".join(ex) + " |", "|---|" + "---|" * len(ex)]
    for r in result["rows"]:
        best = min((r[e]["median_ms"] for e in ex if "median_ms" in r[e]), default=None)
        cells = []
        for e in ex:
            c = r[e]
            if "median_ms" not in c:
                cells.append("fails")
                continue
            s = f"{c['median_ms']:.1f} ({c['iqr_ms']:.1f})"
            cells.append(f"**{s}**" if c["median_ms"] == best else s)
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    g = geomeans(result)
    lines.append("| geomean | " + " | ".join(f"{g[e]:.1f}" if math.isfinite(g[e]) else "-" for e in ex) + " |")
    return "\n".join(lines) + "\n"


def auto_choice(lr_hw: tuple[int, int], threads: int, repeats: int) -> tuple[str, list[dict], list[str]]:
    """What ``auto`` picks here on its reference set (quick WDSR-B path, zoo ABPN): summary, table, names."""
    models = bench_models()
    refs = {k: models[k] for k in models if k.startswith("wdsr_b path") or k == "abpn"}
    _, _, table = choose_executor(refs, lr_hw, threads, repeats=repeats)
    return executor_summary(table), table, list(refs)


def main() -> None:
    """Parse arguments, run, print the table, the notes and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr-size", default="360x640", help="input HxW (default 360x640: 720p output at x2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9, help="interleaved timed rounds")
    ap.add_argument("--no-nncf", action="store_true", help="skip timing OpenVINO on NNCF's INT8 file")
    ap.add_argument("--out", default=None, help="also write executors.json and executors.md here")
    ap.add_argument("--auto", action="store_true", help="only run choose_executor (what latency.backend auto "
                                                        "picks) on its reference set and print its table")
    a = ap.parse_args()
    h, w = (int(v) for v in a.lr_size.lower().split("x"))
    torch.set_num_threads(a.threads)
    if a.auto:
        summary, table, names = auto_choice((h, w), a.threads, a.repeats)
        print(executor_table_markdown(table, names))
        print(summary)
        return
    result = run((h, w), a.threads, a.repeats, not a.no_nncf)
    md = markdown(result)
    print(f"median ms (IQR) at {w}x{h} input, {a.threads} threads, every cell timed in the same interleaved rounds\n")
    print(md)
    for p, per in result["openvino_conv_precision"].items():
        print(f"openvino {p} runs its convs as: " + "; ".join(f"{k} {v}" for k, v in per.items()))
    for (key, err) in [(k, r[k]["error"]) for r in result["rows"] for k in result["executors"] if "error" in r[k]]:
        print(f"failed: {key}: {err}")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "executors.json").write_text(json.dumps(result, indent=1))
        (out / "executors.md").write_text(md)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

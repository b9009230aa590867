"""Executors (runtime x precision): each one here runs a tiny SR net and matches torch; auto picks one of them."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from srnas.latency.executors import (SUPPORTED, available_executors, check_executor, check_openvino_precision,
                                     choose_executor, deploy_file, executor_summary, file_infer, float_output_nodes,
                                     is_quantized,
                                     make_infer, make_runner, openvino_compile, quantize_onnx)
from srnas.latency.timing import measure_module
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import ModelConfig
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

HW = (32, 48)
ALL = [(b, p) for b, ps in SUPPORTED.items() for p in ps]


def tiny_net() -> torch.nn.Module:
    """A fused two-cell WDSR-B / WDSR-A path net (res-scale multiply, replicate pad, pixel shuffle)."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_cells=2, blocks=["wdsr_b", "wdsr_a"], n_feats=8, expansion_a=2, expansion_b=2)
    return fuse_weight_norm(build_path_net(cfg, 2, ["wdsr_b", "wdsr_a"])).eval()


def smooth(hw=HW, seed: int = 0) -> torch.Tensor:
    """A smooth 1x3xHxW image in [0, 1] (low-frequency waves with a random phase per channel)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, hw[0]), torch.linspace(0, 1, hw[1]), indexing="ij")
    phase = torch.rand(3, 1, 1, generator=g) * 6.28
    return (0.5 + 0.35 * torch.sin(3 * xx + 2 * yy + phase) * torch.cos(2 * yy - xx)).unsqueeze(0)


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR of ``out`` against ``ref`` with the reference's range as the peak."""
    mse = float(((out - ref) ** 2).mean())
    peak = float(ref.max() - ref.min())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def skip_unless_runs(backend: str, precision: str) -> None:
    """Skip with check_executor's own reason where this machine cannot run the executor."""
    try:
        check_executor(backend, precision)
    except UserError as e:
        pytest.skip(f"{backend}/{precision} not available here: {e}")


def calib(n: int = 4) -> list[list[torch.Tensor]]:
    return [[smooth(seed=i)] for i in range(n)]


@pytest.mark.parametrize("backend,precision", ALL, ids=[f"{b}-{p}" for b, p in ALL])
def test_every_executor_matches_torch(backend, precision, tmp_path):
    skip_unless_runs(backend, precision)
    net, x = tiny_net(), smooth(seed=7)
    with torch.inference_mode():
        ref = net(x)
    infer = make_infer(net, [x], backend, 1, precision, calib_inputs=calib(), workdir=tmp_path)
    out = infer(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    if precision == "fp32":
        assert torch.allclose(out, ref, atol=1e-4, rtol=0), float((out - ref).abs().max())
    else:  # bf16 / int8: close to fp32, though not bit-equal
        assert psnr(out, ref) > 30, psnr(out, ref)
    make_runner(net, [x], backend, 1, precision)()  # the timing runner builds and runs too


def test_broken_int8_calibration_fails_the_quality_bound(tmp_path):
    """The 30 dB bound catches a bad quantization: activation ranges calibrated 1000x too wide."""
    skip_unless_runs("onnxruntime", "int8")
    net, x = tiny_net(), smooth(seed=7)
    with torch.inference_mode():
        ref = net(x)
    bad = make_infer(net, [x], "onnxruntime", 1, "int8", calib_inputs=[[smooth() * 1000]], workdir=tmp_path)
    assert psnr(bad(x), ref) < 30


def test_dynamic_export_runs_any_size(tmp_path):
    """A dynamic-shape export (what srnas bench scores quality with) takes inputs of any size."""
    backend = "openvino" if ("openvino", "fp32") in available_executors() else "onnxruntime"
    skip_unless_runs(backend, "fp32")
    net = tiny_net()
    infer = make_infer(net, [smooth()], backend, 1, dynamic=True, workdir=tmp_path)
    for hw in [(20, 30), (37, 41)]:
        x = smooth(hw)
        with torch.inference_mode():
            assert torch.allclose(infer(x), net(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend,precision", [("onnxruntime", "bf16"), ("torch-cpu", "int8"), ("torch-cuda", "int8"),
                                               ("tensorrt", "fp32"), ("onnxruntime", "fp16")])
def test_unsupported_executor_is_user_error(backend, precision):
    with pytest.raises(UserError) as e:
        check_executor(backend, precision)
    msg = str(e.value)
    assert backend in msg or precision in msg
    with pytest.raises(UserError):
        make_runner(tiny_net(), [smooth()], backend, 1, precision)


def test_unsupported_names_what_to_use():
    with pytest.raises(UserError, match="openvino"):
        check_executor("onnxruntime", "bf16")
    with pytest.raises(UserError, match="onnxruntime, openvino"):
        check_executor("torch-cpu", "int8")


def test_openvino_f32_run_is_not_labelled_bf16(tmp_path):
    """A model compiled in f32 fails the bf16 check: a fallback is never reported as bf16."""
    skip_unless_runs("openvino", "fp32")
    path = deploy_file(tiny_net(), [smooth()], "openvino", "fp32", tmp_path)
    compiled = openvino_compile(path, "fp32", 1, [(1, 3, *HW)])
    check_openvino_precision(compiled, "fp32")
    with pytest.raises(UserError, match="not bf16"):
        check_openvino_precision(compiled, "bf16")


def test_choose_executor_returns_a_timed_executor_and_its_table():
    nets = {"tiny": tiny_net()}
    cands = [("torch-cpu", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "bf16")]
    backend, precision, table = choose_executor(nets, HW, 1, candidates=cands, repeats=3)
    timed = [(r["backend"], r["precision"]) for r in table]
    assert (backend, precision) == timed[0] and (backend, precision) in cands
    assert ("onnxruntime", "bf16") not in timed                # not runnable: not timed
    assert set(timed) == set(available_executors(cands))
    geo = [r["geomean_ms"] for r in table]
    assert geo == sorted(geo) and all(g > 0 for g in geo)
    assert f"{backend}/{precision}" in executor_summary(table)


def test_measure_module_takes_a_precision():
    skip_unless_runs("onnxruntime", "int8")
    r = measure_module(tiny_net(), HW, backend="onnxruntime", threads=1, warmup=1, repeats=2, precision="int8")
    assert r["median_ms"] > 0 and r["n"] >= 2


CLEAN_ORT = """
import sys, numpy as np, onnxruntime as ort
assert not any(m.split('.')[0] in ('latency', 'supernet', 'search', 'pruning') for m in sys.modules)
s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])
print(s.run(None, {s.get_inputs()[0].name: np.random.rand(1, 3, 32, 48).astype(np.float32)})[0].shape)
"""
CLEAN_OV = """
import sys, numpy as np, openvino as ov
c = ov.Core().compile_model(sys.argv[1], 'CPU')
print(tuple(c(np.random.rand(1, 3, 32, 48).astype(np.float32))[0].shape))
"""


@pytest.mark.parametrize("backend,script", [("onnxruntime", CLEAN_ORT), ("openvino", CLEAN_OV)])
def test_quantized_file_runs_in_its_runtime_in_a_clean_process(backend, script, tmp_path):
    skip_unless_runs(backend, "int8")
    fp32 = deploy_file(tiny_net(), [smooth()], backend, "fp32", tmp_path)
    q = quantize_onnx(fp32, tmp_path / "q.onnx", calib(), backend)
    assert q.is_file() and is_quantized(q) and not is_quantized(fp32)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(q)], capture_output=True, text=True,
                       cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("(1, 3, 64, 96)")


def test_nncf_route_writes_openvino_ir_that_runs_in_a_clean_process(tmp_path):
    skip_unless_runs("openvino", "int8")
    pytest.importorskip("nncf", reason="the nncf INT8 route needs nncf (pip install nncf)")
    fp32 = deploy_file(tiny_net(), [smooth()], "openvino", "fp32", tmp_path)
    q = quantize_onnx(fp32, tmp_path / "q.onnx", calib(), "openvino", route="nncf")
    assert q.suffix == ".xml" and q.with_suffix(".bin").is_file() and is_quantized(q)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(CLEAN_OV), str(q)], capture_output=True, text=True,
                       cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_global_skip_stays_float(tmp_path):
    """The bicubic skip conv and the output add are left out of quantization; the body's convs are not."""
    import onnx
    path = deploy_file(tiny_net(), [smooth()], "onnxruntime", "fp32", tmp_path)
    names = float_output_nodes(onnx.load(str(path)))
    assert "/skip/conv/Conv" in names and "/Add" in names
    assert not any(n.startswith("/body") or n.startswith("/tail") or n.startswith("/head") for n in names)
    # a lone conv (a LUT probe) is the network itself: it is quantized
    conv = deploy_file(torch.nn.Conv2d(3, 8, 3, padding=1), [smooth()], "onnxruntime", "fp32", tmp_path / "c")
    assert float_output_nodes(onnx.load(str(conv))) == []


def test_file_infer_runs_the_int8_file_it_was_given(tmp_path):
    """What the executor runs is the quantized file itself: same file, same output, in a fresh session."""
    skip_unless_runs("onnxruntime", "int8")
    x = smooth(seed=3)
    q = deploy_file(tiny_net(), [x], "onnxruntime", "int8", tmp_path, calib())
    a = file_infer(q, "onnxruntime", "int8", 1)([x.numpy()])
    b = file_infer(q, "onnxruntime", "int8", 1)([x.numpy()])
    np.testing.assert_array_equal(a, b)


def test_bench_in_a_runtime_scores_and_labels_what_it_runs(tmp_path):
    """srnas bench --backend onnxruntime: abpn_int8 runs as the INT8 QDQ file, scored in ORT near torch's INT8."""
    skip_unless_runs("onnxruntime", "int8")
    from srnas.experiments.bench import run_bench
    specs, kw = ["bicubic", "abpn_int8"], dict(lr_hw=(24, 32), threads=1, repeats=1)
    ort = run_bench(specs, ["skimage"], 2, tmp_path / "ort", backend="onnxruntime", **kw).set_index("model")
    base = run_bench(specs, ["skimage"], 2, tmp_path / "torch", **kw).set_index("model")
    assert set(ort["backend"]) == {"onnxruntime"} and set(base["backend"]) == {"torch-cpu"}
    assert ort.loc["abpn_int8", "precision"] == "int8" and ort.loc["bicubic", "precision"] == "fp32"
    assert abs(ort.loc["bicubic", "psnr"] - base.loc["bicubic", "psnr"]) < 0.01
    assert abs(ort.loc["abpn_int8", "psnr"] - base.loc["abpn_int8", "psnr"]) < 0.3
    assert ort.loc["abpn_int8", "psnr"] > ort.loc["bicubic", "psnr"] + 1
    assert "| onnxruntime | int8 |" in (tmp_path / "ort" / "bench.md").read_text()


def test_bench_refuses_a_precision_its_runtime_cannot_run(tmp_path, capsys):
    from srnas.search.cli import main
    rc = main(["bench", "--models", "abpn", "--datasets", "skimage", "--out", str(tmp_path), "--backend", "torch-cpu",
               "--precision", "int8"])
    assert rc == 2 and "onnxruntime, openvino" in capsys.readouterr().err
    rc = main(["bench", "--models", "abpn", "--datasets", "skimage", "--out", str(tmp_path), "--precision", "int8"])
    assert rc == 2 and "--backend" in capsys.readouterr().err


def test_auto_candidates_follow_what_the_config_fixes():
    from srnas.latency.executors import auto_candidates
    assert ("openvino", "int8") in auto_candidates() and ("onnxruntime", "bf16") not in auto_candidates()
    assert auto_candidates("openvino", "auto") == [("openvino", p) for p in ("fp32", "bf16", "int8")]
    assert auto_candidates("auto", "int8") == [("onnxruntime", "int8"), ("openvino", "int8")]

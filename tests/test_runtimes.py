"""One module per runtime behind latency/runtimes/base.py: a runtime registered by name (here a fake one, torch
eager under its own name) is checked, timed, chosen by auto and used by `srnas bench` like the built-in ones."""
from __future__ import annotations

import time

import pytest
import torch

from srnas.experiments.bench import run_bench
from srnas.latency.auto import auto_candidates, choose_executor
from srnas.latency.deploy import make_infer
from srnas.latency.runtimes.base import Compiled, Runtime
from srnas.latency.runtimes.onnxruntime_runtime import OnnxRuntime
from srnas.latency.runtimes.registry import available_executors, check_executor, names, register, unregister
from srnas.latency.timing import measure_module
from srnas.supernet.errors import UserError

torch.set_num_threads(1)


class EagerAs(Runtime):
    """torch eager fp32 under its own name; ``delay_s`` per call makes it slow on purpose."""
    precisions = ("fp32",)

    def __init__(self, name: str, delay_s: float = 0.0):
        self.name, self.delay_s = name, delay_s
        self.compiled = self.calls = 0

    def compile(self, module, example, precision, threads, calib_inputs=None, dynamic=False, workdir=None):
        self.compiled += 1
        module = module.eval()

        def run(*xs):
            self.calls += 1
            time.sleep(self.delay_s)
            with torch.inference_mode():
                return module(*xs).float()
        return Compiled(run, precision)


@pytest.fixture
def fakes():
    """Two fake runtimes registered for one test, and the registry as it was afterwards."""
    before = names()
    rts = {"fast": register(EagerAs("fake-fast")), "slow": register(EagerAs("fake-slow", delay_s=0.03))}
    try:
        yield rts
    finally:
        for rt in rts.values():
            unregister(rt.name)
    assert names() == before


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))


def test_a_registered_runtime_is_checked_and_timed(fakes):
    assert check_executor("fake-fast", "fp32") is fakes["fast"]
    with pytest.raises(UserError, match="fake-fast does not run int8"):
        check_executor("fake-fast", "int8")
    assert ("fake-fast", "fp32") in available_executors() and ("fake-fast", "fp32") in auto_candidates()
    net, x = _net(), torch.rand(1, 3, 12, 16)
    infer = make_infer(net, [x], "fake-fast", 1)
    assert infer.precision == "fp32" and torch.equal(infer(x), net(x).detach())
    t = measure_module(net, (12, 16), backend="fake-fast", threads=1, warmup=1, repeats=3)
    assert t["n"] >= 3 and t["median_ms"] > 0
    assert fakes["fast"].calls >= 1 + 3 * 2 + 1   # make_infer's call, then warm-up and 3 timed turns (2 calls each)


def test_auto_chooses_a_registered_runtime_when_it_is_fastest(fakes):
    # the slow one sleeps 30 ms a call, some hundred times the tiny net's run: the order cannot flip under load
    backend, precision, table = choose_executor({"net": _net()}, (12, 16), 1,
                                                [("fake-slow", "fp32"), ("fake-fast", "fp32")], repeats=3)
    assert (backend, precision) == ("fake-fast", "fp32")
    assert [r["executor"] for r in table] == ["fake-fast/fp32", "fake-slow/fp32"]
    assert fakes["slow"].compiled == 1 and fakes["fast"].compiled == 1


def test_bench_runs_in_a_registered_runtime(fakes, tmp_path):
    df = run_bench(["bicubic"], ["skimage"], 2, tmp_path / "fake", lr_hw=(24, 32), threads=1, repeats=1,
                   backend="fake-fast")
    assert fakes["fast"].compiled == 1 and fakes["fast"].calls > 0
    assert set(df["backend"]) == {"fake-fast"} and set(df["precision"]) == {"fp32"}
    ref = run_bench(["bicubic"], ["skimage"], 2, tmp_path / "torch", lr_hw=(24, 32), threads=1, repeats=1,
                    backend="torch-cpu")
    assert df["psnr"].tolist() == ref["psnr"].tolist()   # the same eager computation, so the same quality
    assert "| fake-fast |" in (tmp_path / "fake" / "bench.md").read_text()


def test_a_runtime_name_is_registered_once():
    with pytest.raises(ValueError, match="registered already"):
        register(EagerAs("torch-cpu"))
    assert type(check_executor("torch-cpu", "fp32")).__name__ == "TorchRuntime"


def test_the_cli_offers_every_registered_runtime_and_the_config_takes_it(fakes):
    """--backend lists the registry as it is when the parser is built, so a runtime registered before `srnas`
    runs is reachable from the command line and from latency.backend; an unknown name is refused clearly."""
    from srnas.search.cli import build_parser
    from srnas.search.resolve import resolve_executor
    from srnas.supernet.config import load_config
    assert {"torch-cpu", "torch-cpu-cl", "onnxruntime", "openvino", "torch-cuda"} <= set(names())
    assert build_parser().parse_args(["bench", "--models", "bicubic", "--backend", "fake-fast"]).backend == "fake-fast"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--models", "bicubic", "--backend", "no-such-runtime"])
    cfg = load_config("experiments/configs/quick.yaml", ["latency.backend=fake-fast", "latency.precision=fp32"])
    assert resolve_executor(cfg, None).latency.backend == "fake-fast"
    with pytest.raises(UserError, match="latency.backend: 'no-such-runtime' is not one of"):
        resolve_executor(load_config("experiments/configs/quick.yaml", ["latency.backend=no-such-runtime"]), None)


class OrtAs(OnnxRuntime):
    """ONNX Runtime under another name: all a new file runtime writes beyond ``load`` (export, INT8 are inherited)."""
    name = "fake-ort"


def test_a_new_file_runtime_deploys_quantizes_and_reports_its_precision(tmp_path):
    pytest.importorskip("onnxruntime")
    register(OrtAs())
    try:
        net, x = _net(), torch.rand(1, 3, 12, 16)
        fp32 = make_infer(net, [x], "fake-ort", 1, "fp32", workdir=tmp_path / "fp32")
        int8 = make_infer(net, [x], "fake-ort", 1, "int8", workdir=tmp_path / "int8")
        assert (fp32.precision, int8.precision) == ("fp32", "int8")   # what the runtime runs, read off its file
        assert (tmp_path / "int8" / "model_int8.onnx").is_file()
        assert torch.allclose(fp32(x), net(x).detach(), atol=1e-4)
        assert measure_module(net, (12, 16), backend="fake-ort", threads=1, warmup=1, repeats=2)["n"] >= 2
    finally:
        unregister("fake-ort")
    assert "fake-ort" not in names()

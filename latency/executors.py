"""Executors (runtime x precision): turn a torch module into a runner that one executor times.

An executor is what a model is deployed with: torch eager (NCHW or channels_last) in fp32 or bf16,
ONNX Runtime fp32 or INT8 (static QDQ), OpenVINO fp32, bf16 or INT8. The same network can be
several times faster in one than in another, and which one is fastest depends on the CPU, so
latency always names its executor, and ``choose_executor`` picks one for this machine by timing.

INT8 files come from ONNX Runtime's own tooling (``quantize_static``, QDQ), and OpenVINO runs the
same file: ORT's pre-processing folds WDSR's residual-scale multiply into the conv, whose quantized
form OpenVINO's low-precision pass refused. NNCF (OpenVINO's tooling) is the alternative route.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from supernet.errors import UserError
from supernet.layout import as_channels_last, channels_last

from .fingerprint import BACKENDS, PRECISIONS, resolve_threads

Runner = Callable[[], None]
Infer = Callable[[Sequence[np.ndarray]], np.ndarray]   # inputs (NCHW float32) -> first output
Samples = Sequence[Sequence[torch.Tensor | np.ndarray]]  # calibration: one list of model inputs per sample

# what each runtime can run at all; check_executor then asks whether this machine can
SUPPORTED: dict[str, tuple[str, ...]] = {
    "torch-cpu": ("fp32", "bf16"),
    "torch-cpu-cl": ("fp32", "bf16"),
    "torch-cuda": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
_OV_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: what the INT8 file keeps float runs in f32
_OV_RUNS = {"fp32": {"f32"}, "bf16": {"bf16"}, "int8": {"u8", "i8"}}  # conv runtime precisions that count


def executors_for(precision: str) -> list[str]:
    """Backends that can run ``precision`` somewhere."""
    return [b for b, ps in SUPPORTED.items() if precision in ps]


def _has_module(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def check_backend(backend: str) -> None:
    """Raise UserError for an unknown backend or one whose runtime is missing here."""
    if backend not in BACKENDS:
        raise UserError(f"unknown latency backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "torch-cuda" and not torch.cuda.is_available():
        raise UserError("backend torch-cuda asked for, but torch sees no CUDA device here; "
                        "use --backend torch-cpu, onnxruntime or openvino")
    for runtime in ("onnxruntime", "openvino"):
        if backend == runtime and not _has_module(runtime):
            raise UserError(f"backend {runtime} needs the {runtime} package: pip install {runtime}")


def torch_cpu_bf16() -> bool:
    """Whether torch's CPU kernels run bf16 natively here (AVX512-BF16 or AMX); else autocast only emulates it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def openvino_capabilities() -> set[str]:
    """OpenVINO's CPU optimization capabilities here (FP32, BF16, INT8, ...)."""
    import openvino as ov
    return set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def check_executor(backend: str, precision: str) -> None:
    """Raise UserError naming what is unsupported (and what to use or install) unless this machine runs it."""
    check_backend(backend)
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision not in SUPPORTED[backend]:
        raise UserError(f"backend {backend} does not run {precision}; executors for {precision}: "
                        f"{', '.join(executors_for(precision))}")
    if precision == "bf16" and backend in ("torch-cpu", "torch-cpu-cl") and not torch_cpu_bf16():
        raise UserError(f"{backend} bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so torch would only "
                        "emulate it, slower than fp32; use fp32, or openvino bf16 on a CPU that has it")
    if precision == "bf16" and backend == "torch-cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("torch-cuda bf16: this GPU has no bf16 support; use torch-cuda fp32")
    if backend == "openvino" and precision == "bf16" and "BF16" not in openvino_capabilities():
        raise UserError("openvino bf16: OpenVINO reports no BF16 capability on this CPU (needs AVX512-BF16 or "
                        "AMX) and would run f32 instead; use openvino fp32 or int8")


def available_executors(candidates: Sequence[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The (backend, precision) pairs of ``candidates`` (default: every supported pair) that run here."""
    pairs = candidates or [(b, p) for b, ps in SUPPORTED.items() for p in ps]
    ok = []
    for b, p in pairs:
        try:
            check_executor(b, p)
        except UserError:
            continue
        ok.append((b, p))
    return ok


# ---- ONNX export and quantization ------------------------------------------------------------------------

def input_names(n: int) -> list[str]:
    """The ONNX input names of an n-input export."""
    return [f"in{i}" for i in range(n)]


def export_onnx(module: nn.Module, inputs: Sequence[torch.Tensor], path: str | Path, dynamic: bool = False) -> Path:
    """Export ``module`` to ONNX (inputs in0.., output out); ``dynamic`` leaves every input's H and W free."""
    path = Path(path)
    names = input_names(len(inputs))
    axes = {n: {2: f"h{i}", 3: f"w{i}"} for i, n in enumerate(names)} if dynamic else None
    # the TorchScript-based exporter works offline and is quiet for these plain graphs
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), tuple(inputs), str(path), input_names=names, output_names=["out"],
                          opset_version=17, dynamo=False, dynamic_axes=axes)
    return path


def _as_arrays(sample: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray) -> list[np.ndarray]:
    if isinstance(sample, (torch.Tensor, np.ndarray)):
        sample = [sample]
    return [np.ascontiguousarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float32)
            for t in sample]


def int8_weight_bits() -> int:
    """Bits of the weights in the INT8 files made here: 7 without VNNI (u8 x s8 products saturate there)."""
    return 8 if cpu_has_vnni() else 7


def cpu_has_vnni() -> bool:
    """Whether the CPU has VNNI (u8 x s8 dot products without the 16-bit saturation of plain AVX2)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags


def quantize_onnx(onnx_path: str | Path, out_path: str | Path, calib_inputs: Samples, executor: str,
                  route: str = "qdq") -> Path:
    """Static INT8 of an fp32 ONNX file for ``executor`` (onnxruntime or openvino), calibrated on ``calib_inputs``.

    route "qdq" (both runtimes): ONNX Runtime's quantize_static after its pre-processing, QDQ format,
    u8 activations / s8 per-channel weights, the global skip kept float, written to ``out_path``
    (.onnx); OpenVINO compiles the same file. route "nncf" (openvino only, needs nncf): NNCF on
    the OpenVINO model, written as IR (``out_path`` with suffix .xml, weights in the .bin beside it).
    Either way the file written is what the executor runs. Calibrate with random inputs to time a
    probe, with real LR images for quality.

    Why qdq for OpenVINO too (experiments/bench_executors.py, AMD EPYC, 2 threads): one file serves
    both runtimes; on the zoo at Set5+Set14 it lost 0.02 (abpn QAT weights), 0.02 (wdsr_b), 0.07
    (espcn), 0.57 dB (fsrcnn) to NNCF's 0.08 / 0.04 / 1.7 / 2.1 dB, at the same speed except FSRCNN,
    whose deconv only NNCF's file runs in int8 (about 2x faster there).
    """
    samples = [_as_arrays(s) for s in calib_inputs]
    if not samples:
        raise ValueError("quantize_onnx needs at least one calibration sample")
    if executor not in ("onnxruntime", "openvino"):
        raise UserError(f"no INT8 route for executor {executor!r}; INT8 runs in onnxruntime or openvino")
    if route == "qdq":
        return _quantize_ort(Path(onnx_path), Path(out_path), samples)
    if route == "nncf" and executor == "openvino":
        if not _has_module("nncf"):
            raise UserError("the nncf INT8 route needs NNCF: pip install nncf")
        return _quantize_nncf(Path(onnx_path), Path(out_path).with_suffix(".xml"), samples)
    raise UserError(f"unknown INT8 route {route!r} for {executor}; use qdq (or nncf for openvino)")


_NONLINEAR = {"Relu", "LeakyRelu", "PRelu", "Tanh", "Sigmoid", "Clip"}
_WEIGHTED = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
_SUMS = {"Add", "Sub", "Sum"}


def float_output_nodes(model) -> list[str]:
    """Names of the nodes that carry the input to the output without a nonlinearity: the global skip.

    SR nets add a skip (bicubic conv, ABPN's anchor, Y-only nets' colour conversion and chroma
    upscaling) to the body's residual. The skip carries the whole image, so its 8-bit error lands on
    the output unfiltered (WDSR-B lost 1.6 dB on Set5+Set14 with it quantized); these nodes stay float,
    and the body, where the MACs are, is quantized. Found by walking back from the outputs through
    linear ops; a weighted op is a skip op only if linear ops alone connect it to a graph input.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inputs = {i.name for i in g.input}
    memo: dict[str, bool] = {}

    def linear_from_input(tensor: str) -> bool:
        """Whether only linear ops lie between a graph input and ``tensor``."""
        if tensor in inputs:
            return True
        if tensor not in memo:
            memo[tensor] = False  # cycles cannot occur in ONNX; this guards the recursion anyway
            n = producer.get(tensor)
            memo[tensor] = n is not None and n.op_type not in _NONLINEAR | _WEIGHTED and any(
                linear_from_input(t) for t in n.input if t)
        return memo[tensor]

    keep, seen = [], set()
    stack = [(o.name, False) for o in g.output]   # (tensor, whether the walk has passed a sum)
    while stack:
        tensor, merged = stack.pop()
        n = producer.get(tensor)
        if n is None or (n.name, merged) in seen:
            continue
        seen.add((n.name, merged))
        if n.op_type in _WEIGHTED:
            # a skip conv is one branch of a sum; a conv alone on the path (a timing probe, the body's
            # last conv) is the network itself and is quantized. The walk stops at weighted ops.
            if merged and linear_from_input(n.input[0]):
                keep.append(n.name)
            continue
        if n.op_type in _NONLINEAR - {"Clip"}:
            continue
        keep.append(n.name)
        stack.extend((t, merged or n.op_type in _SUMS) for t in n.input if t)
    return list(dict.fromkeys(keep))


def _quantize_ort(src: Path, out: Path, samples: list[list[np.ndarray]]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

    import onnx
    graph = onnx.load(str(src), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]  # a user's file names its inputs its own way

    class Reader(CalibrationDataReader):
        """Feeds the calibration samples once."""

        def __init__(self):
            self.it = iter([dict(zip(names, s)) for s in samples])

        def get_next(self):
            return next(self.it, None)

    pre = out.with_name(out.stem + "_pre.onnx")
    with warnings.catch_warnings(), _quiet_logging("onnxruntime", ""):
        warnings.simplefilter("ignore")
        # ORT's own pre-processing (shape inference, constant folding) first, as its docs advise: it also
        # folds WDSR's multiply by res_scale 1.0, whose quantized form OpenVINO's int8 pass cannot compile
        pre = _pre_process(quant_pre_process, src, pre)
        skip = float_output_nodes(onnx.load(str(pre)))
        # per-channel weights: conv filters of these nets differ in range by 10x and more, and ORT's CPU
        # QLinearConv takes per-channel scales at no cost. Without VNNI, u8 x s8 products can saturate:
        # reduce_range keeps weights to 7 bits there, as ONNX Runtime's docs advise.
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=int8_weight_bits() == 7, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=skip)
    if pre != src:
        pre.unlink(missing_ok=True)
    return out


def _pre_process(quant_pre_process, src: Path, pre: Path) -> Path:
    """ORT's pre-processing with ONNX's own shape inference, else the export as it is.

    Its symbolic shape inference is skipped: it fails on some dynamic-shape graphs (Y-only nets'
    colour conversion) and then leaves a temp model in the working directory; the conv shapes the
    quantizer needs are static anyway.
    """
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        return pre
    except Exception:
        return src


def _quantize_nncf(src: Path, out: Path, samples: list[list[np.ndarray]]) -> Path:
    import nncf
    import openvino as ov

    import onnx

    model = ov.Core().read_model(str(src))
    # the same float skip as the ORT route; OpenVINO keeps ONNX node names (a conv's op is <name>/WithoutBiases)
    ops = {op.get_friendly_name() for op in model.get_ops()}
    skip = [n for name in float_output_nodes(onnx.load(str(src))) for n in (name, f"{name}/WithoutBiases") if n in ops]
    data = nncf.Dataset([s[0] if len(s) == 1 else tuple(s) for s in samples])
    with _quiet_logging("nncf"), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        q = nncf.quantize(model, data, subset_size=len(samples),
                          ignored_scope=nncf.IgnoredScope(names=skip, validate=False))
    ov.save_model(q, str(out))
    return out


@contextlib.contextmanager
def _quiet_logging(*names: str):
    """Silence libraries' INFO/WARNING chatter (NNCF's statistics, ORT's calibration notes; "" = root).

    A NullHandler on each logger also keeps logging.warning() from configuring the root logger.
    """
    saved = []
    for name in names:
        log = logging.getLogger(name or None)
        handler = logging.NullHandler()
        saved.append((log, log.level, handler))
        log.addHandler(handler)
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level, handler in saved:
            log.setLevel(level)
            log.removeHandler(handler)


# ---- sessions over an ONNX (or OpenVINO IR) file ---------------------------------------------------------

def is_quantized(path: str | Path) -> bool:
    """Whether an ONNX or OpenVINO IR file holds INT8 (QDQ / FakeQuantize) nodes."""
    path = Path(path)
    if path.suffix == ".xml":
        text = path.read_text(errors="ignore")
        return 'type="FakeQuantize"' in text or 'element_type="i8"' in text or 'element_type="u8"' in text
    import onnx
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv")
               for n in onnx.load(str(path), load_external_data=False).graph.node)


def ort_session(path: str | Path, threads: int):
    """An ONNX Runtime CPU session of ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = resolve_threads(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def openvino_compile(path: str | Path, precision: str, threads: int,
                     shapes: Sequence[Sequence[int]] | None = None):
    """Compile an ONNX / IR file for OpenVINO's CPU plugin in ``precision`` (shapes: fix the input sizes)."""
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(path))
    if shapes is not None:
        model.reshape({inp.any_name: list(s) for inp, s in zip(model.inputs, shapes)})
    config = {"INFERENCE_PRECISION_HINT": _OV_HINT[precision], "INFERENCE_NUM_THREADS": resolve_threads(threads),
              "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, "CPU", config)
    check_openvino_precision(compiled, precision)
    return compiled


def openvino_conv_precisions(compiled) -> dict[str, int]:
    """How many convolutions of a compiled OpenVINO model run in each precision (u8, bf16, f32, ...)."""
    out: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            p = info["runtimePrecision"].astype(str)
            out[p] = out.get(p, 0) + 1
    return out


def check_openvino_precision(compiled, precision: str) -> None:
    """UserError unless the compiled model really runs its convolutions in ``precision``.

    OpenVINO silently falls back (bf16 -> f32 on a CPU without bf16, an INT8 pattern it cannot fuse ->
    f32), so a run is labelled by what the runtime model says it executes, never by what was asked.
    """
    convs = openvino_conv_precisions(compiled)
    if not convs:
        return
    want = _OV_RUNS[precision]
    if not any(p in want for p in convs):
        raise UserError(f"openvino {precision}: the compiled model runs its convolutions as {convs}, not "
                        f"{'/'.join(sorted(want))}; this CPU or graph does not support it: use another precision")


def file_infer(path: str | Path, backend: str, precision: str, threads: int,
               shapes: Sequence[Sequence[int]] | None = None) -> Infer:
    """A callable running an exported file in ``backend`` (onnxruntime or openvino): inputs -> first output."""
    if backend == "onnxruntime":
        sess = ort_session(path, threads)
        names = [i.name for i in sess.get_inputs()]
        return lambda xs: sess.run(None, dict(zip(names, xs)))[0]
    if backend == "openvino":
        req = openvino_compile(path, precision, threads, shapes).create_infer_request()
        # share_inputs: no copy of the input, as ONNX Runtime reads numpy buffers in place
        return lambda xs: req.infer(list(xs), share_inputs=True)[0]
    raise UserError(f"backend {backend} does not run exported ONNX files; use onnxruntime or openvino")


def deploy_file(module: nn.Module, example: Sequence[torch.Tensor], backend: str, precision: str, out_dir: str | Path,
                calib_inputs: Samples | None = None, dynamic: bool = False) -> Path:
    """Write the file ``backend`` runs ``module`` from in ``precision``: ONNX, or the INT8 file made from it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(module, example, out_dir / "model.onnx", dynamic)
    if precision != "int8":
        return fp32
    calib = calib_inputs if calib_inputs is not None else random_calibration(example)
    return quantize_onnx(fp32, out_dir / "model_int8.onnx", calib, backend)


def random_calibration(example: Sequence[torch.Tensor], n: int = 4) -> list[list[torch.Tensor]]:
    """Calibration for timing probes: the example inputs plus a few random ones of the same shapes."""
    g = torch.Generator().manual_seed(0)
    return [list(example)] + [[torch.rand(t.shape, generator=g) for t in example] for _ in range(n - 1)]


# ---- runners ----------------------------------------------------------------------------------------------

def _autocast(device: str, precision: str):
    return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def torch_infer(module: nn.Module, backend: str, precision: str = "fp32") -> Callable[..., torch.Tensor]:
    """``module`` as it runs in a torch executor (layout, device, autocast): tensors -> float32 CPU output."""
    check_executor(backend, precision)
    module = module.eval()
    device = "cuda" if backend == "torch-cuda" else "cpu"
    if backend == "torch-cpu-cl":  # as the exported TorchScript of such a run executes
        module = channels_last(module)
    module = module.to(device)

    def run(*xs: torch.Tensor) -> torch.Tensor:
        xs = tuple(as_channels_last(x) if backend == "torch-cpu-cl" else x.to(device) for x in xs)
        with torch.inference_mode(), _autocast(device, precision):
            return module(*xs).float().cpu()
    return run


def make_infer(module: nn.Module, example: Sequence[torch.Tensor], backend: str, threads: int, precision: str = "fp32",
               calib_inputs: Samples | None = None, dynamic: bool = False,
               workdir: str | Path | None = None) -> Callable[..., torch.Tensor]:
    """``module`` deployed in executor (backend, precision) as a function: tensors -> float32 CPU output.

    File executors export ``module`` (``dynamic``: any input H and W, else the example's shapes) and,
    for INT8, quantize it on ``calib_inputs`` (default: random inputs like ``example``); the files are
    kept in ``workdir`` when one is given.
    """
    check_executor(backend, precision)
    if backend.startswith("torch"):
        return torch_infer(module, backend, precision)
    with contextlib.ExitStack() as stack:
        d = workdir if workdir is not None else stack.enter_context(tempfile.TemporaryDirectory())
        path = deploy_file(module, example, backend, precision, d, calib_inputs, dynamic)
        infer = file_infer(path, backend, precision, threads, None if dynamic else [tuple(t.shape) for t in example])
    return lambda *xs: torch.from_numpy(np.asarray(infer(_as_arrays(xs)), dtype=np.float32))


def make_runner(module: nn.Module, inputs: Sequence[torch.Tensor], backend: str, threads: int,
                precision: str = "fp32") -> Runner:
    """A zero-argument callable that runs ``module`` once on ``inputs`` in executor (backend, precision).

    onnxruntime / openvino run a static-shape ONNX export of the module (INT8: quantized on random
    inputs of the same shapes, which is enough to time it; quality needs real calibration images).
    """
    check_executor(backend, precision)
    module = module.eval()
    if backend.startswith("torch"):
        return _torch_runner(module, inputs, backend, precision)
    with tempfile.TemporaryDirectory() as tmp:
        path = deploy_file(module, inputs, backend, precision, tmp)
        infer = file_infer(path, backend, precision, threads, [tuple(t.shape) for t in inputs])
    feed = _as_arrays(inputs)

    def run_file():
        infer(feed)
    return run_file


def _torch_runner(module: nn.Module, inputs: Sequence[torch.Tensor], backend: str, precision: str) -> Runner:
    device = "cuda" if backend == "torch-cuda" else "cpu"
    if backend == "torch-cpu-cl":  # as the exported TorchScript of such a run executes
        module = channels_last(module)
        inputs = [as_channels_last(t) for t in inputs]
    module = module.to(device)
    xs = [t.to(device) for t in inputs]

    def run():
        with torch.inference_mode(), _autocast(device, precision):
            module(*xs)
        if device == "cuda":
            torch.cuda.synchronize()
    return run


# ---- auto: the fastest executor here ----------------------------------------------------------------------

def executor_name(backend: str, precision: str) -> str:
    """'backend/precision', as tables and logs name an executor."""
    return f"{backend}/{precision}"


def auto_candidates(backend: str = "auto", precision: str = "auto") -> list[tuple[str, str]]:
    """The executors ``auto`` chooses among when the config fixes one of backend / precision (or neither)."""
    pairs = [(b, p) for b, ps in SUPPORTED.items() for p in ps]
    return [(b, p) for b, p in pairs if backend in ("auto", b) and precision in ("auto", p)]


def choose_executor(reference_modules: dict[str, nn.Module], lr_hw: tuple[int, int], threads: int,
                    candidates: Sequence[tuple[str, str]] | None = None, repeats: int = 5,
                    ) -> tuple[str, str, list[dict]]:
    """Time ``reference_modules`` on every executor available here, interleaved; pick the fastest.

    The figure of merit is the geometric mean of the median ms over the reference nets (each net
    counts alike, whatever its size). Returns (backend, precision, table): one row per executor
    with its per-net medians and IQRs, geomean, and the error of any executor that failed to build.
    """
    from .timing import time_interleaved  # timing re-exports this module's runners: import here, not at the top

    executors = available_executors(candidates)
    if not executors:
        raise UserError("no executor of the candidates runs here; install onnxruntime or openvino")
    shape = (1, 3, *lr_hw)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    runners, slots, rows = [], [], []
    for b, p in executors:
        row: dict = {"backend": b, "precision": p, "executor": executor_name(b, p), "error": ""}
        try:
            built = [make_runner(m, [x], b, threads, p) for m in reference_modules.values()]
        except Exception as e:  # an executor that cannot build a reference net loses, saying why
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            rows.append(row)
            continue
        for name, r in zip(reference_modules, built):
            runners.append(r)
            slots.append((len(rows), name))
        rows.append(row)
    timings = time_interleaved(runners, warmup=2, repeats=repeats, threads=threads)
    for (i, name), t in zip(slots, timings):
        rows[i][f"{name} ms"] = round(t.median_ms, 2)
        rows[i][f"{name} iqr"] = round(t.iqr_ms, 2)
    for row in rows:
        ms = [row[f"{n} ms"] for n in reference_modules if f"{n} ms" in row]
        row["geomean_ms"] = round(math.exp(sum(math.log(v) for v in ms) / len(ms)), 2) if ms else math.inf
    rows.sort(key=lambda r: r["geomean_ms"])
    return rows[0]["backend"], rows[0]["precision"], rows


def executor_summary(table: list[dict]) -> str:
    """One line saying which executor auto chose and by how much over the runner-up."""
    ok = [r for r in table if math.isfinite(r["geomean_ms"])]
    best = ok[0]
    line = f"auto executor: {best['executor']} (geomean {best['geomean_ms']:.1f} ms over the reference nets"
    if len(ok) > 1:
        nxt = ok[1]
        line += f"; next {nxt['executor']} {nxt['geomean_ms']:.1f} ms, {nxt['geomean_ms'] / best['geomean_ms']:.2f}x"
    failed = [r["executor"] for r in table if r["error"]]
    return line + (f"; failed: {', '.join(failed)}" if failed else "") + ")"


def executor_table_markdown(table: list[dict], names: Sequence[str]) -> str:
    """The choose_executor table as markdown: per-net median ms (IQR), geomean."""
    head = ["executor"] + [f"{n} ms (IQR)" for n in names] + ["geomean ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [r["executor"]]
        cells += [f"{r[f'{n} ms']:.1f} ({r[f'{n} iqr']:.1f})" if f"{n} ms" in r else "-" for n in names]
        cells.append(f"{r['geomean_ms']:.1f}" if math.isfinite(r["geomean_ms"]) else f"failed: {r['error']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reference_nets(model_cfg, scale: int) -> dict[str, nn.Module]:
    """Reference nets from the supernet alone: the dense all-WDSR-B and all-WDSR-A paths of ``model_cfg``."""
    from supernet.blocks import fuse_weight_norm
    from supernet.model import build_path_net

    out = {}
    for block in ("wdsr_b", "wdsr_a"):
        if block in model_cfg.blocks:
            out[f"{block} x{model_cfg.n_cells}"] = fuse_weight_norm(
                build_path_net(model_cfg, scale, [block] * model_cfg.n_cells)).eval()
    return out

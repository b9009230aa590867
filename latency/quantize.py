"""INT8 files for the ONNX runtimes: ONNX Runtime's static QDQ route (both runtimes run its file) and NNCF's.

INT8 files come from ONNX Runtime's own tooling (``quantize_static``, QDQ), and OpenVINO runs the
same file: ORT's pre-processing folds WDSR's residual-scale multiply into the conv, whose quantized
form OpenVINO's low-precision pass refused. NNCF (OpenVINO's tooling) is the alternative route.
The global skip of an SR net stays float in both (``float_output_nodes``).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from srnas.supernet.console import muted
from srnas.supernet.errors import UserError

from .onnx_export import as_arrays

Samples = Sequence[Sequence[torch.Tensor | np.ndarray]]  # calibration: one list of model inputs per sample


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
    samples = [as_arrays(s) for s in calib_inputs]
    if not samples:
        raise ValueError("quantize_onnx needs at least one calibration sample")
    if executor not in ("onnxruntime", "openvino"):
        raise UserError(f"no INT8 route for executor {executor!r}; INT8 runs in onnxruntime or openvino")
    if route == "qdq":
        return quantize_qdq(onnx_path, out_path, samples)
    if route == "nncf" and executor == "openvino":
        if importlib.util.find_spec("nncf") is None:
            raise UserError("the nncf INT8 route needs NNCF: pip install nncf")
        return _quantize_nncf(Path(onnx_path), Path(out_path).with_suffix(".xml"), samples)
    raise UserError(f"unknown INT8 route {route!r} for {executor}; use qdq (or nncf for openvino)")


def quantize_qdq(onnx_path: str | Path, out_path: str | Path, calib_inputs: Samples) -> Path:
    """The "qdq" route of ``quantize_onnx`` for any runtime that runs QDQ ONNX files: the file at ``out_path``."""
    samples = [as_arrays(s) for s in calib_inputs]
    if not samples:
        raise ValueError("quantize_qdq needs at least one calibration sample")
    return _quantize_ort(Path(onnx_path), Path(out_path), samples)


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
    import onnx  # why: heavy imports (seconds), paid only when an INT8 file is made
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static
    # the sessions the tooling opens inside log at ONNX Runtime's default level, e.g. "Removing initializer ..."
    # about a graph it folds itself; srnas's own sessions already log errors only (runtimes/onnxruntime_runtime.py)
    onnxruntime.set_default_logger_severity(3)
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
    with muted(), quiet_logging("onnxruntime", ""):
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
    import nncf  # why: optional (not a dependency), and OpenVINO is heavy: this route only
    import onnx
    import openvino as ov

    model = ov.Core().read_model(str(src))
    # the same float skip as the ORT route; OpenVINO keeps ONNX node names (a conv's op is <name>/WithoutBiases)
    ops = {op.get_friendly_name() for op in model.get_ops()}
    skip = [n for name in float_output_nodes(onnx.load(str(src))) for n in (name, f"{name}/WithoutBiases") if n in ops]
    data = nncf.Dataset([s[0] if len(s) == 1 else tuple(s) for s in samples])
    with quiet_logging("nncf"), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        q = nncf.quantize(model, data, subset_size=len(samples),
                          ignored_scope=nncf.IgnoredScope(names=skip, validate=False))
    ov.save_model(q, str(out))
    return out


@contextlib.contextmanager
def quiet_logging(*names: str):
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


def is_quantized(path: str | Path) -> bool:
    """Whether an ONNX or OpenVINO IR file holds INT8 (QDQ / FakeQuantize) nodes."""
    path = Path(path)
    if path.suffix == ".xml":
        text = path.read_text(errors="ignore")
        return 'type="FakeQuantize"' in text or 'element_type="i8"' in text or 'element_type="u8"' in text
    import onnx  # why: heavy import, paid only by callers that read a file
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv")
               for n in onnx.load(str(path), load_external_data=False).graph.node)

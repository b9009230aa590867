"""OpenVINO's CPU plugin as a runtime: fp32, bf16 (where the CPU has it) or INT8, checked on the compiled model."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..fingerprint import resolve_threads
from .base import Compiled, PrecisionFallback
from .files import FileRuntime

_OV_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: what the INT8 file keeps float runs in f32
_OV_RUNS = {"fp32": {"f32"}, "bf16": {"bf16"}, "int8": {"u8", "i8"}}  # conv runtime precisions that count


def openvino_capabilities() -> set[str]:
    """OpenVINO's CPU optimization capabilities here (FP32, BF16, INT8, ...)."""
    import openvino as ov  # why: optional runtime, and its import is heavy
    return set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def openvino_compile(path: str | Path, precision: str, threads: int,
                     shapes: Sequence[Sequence[int]] | None = None, pixels: bool = False, streams: int = 1):
    """Compile an ONNX / IR file for OpenVINO's CPU plugin in ``precision`` (shapes: fix the input sizes;
    pixels: 8-bit NHWC RGB in and out, see ``pixel_io``; streams > 1: that many frames run at once, the
    threads shared among them)."""
    import openvino as ov  # why: optional runtime, and its import is heavy
    core = ov.Core()
    model = core.read_model(str(path))
    if shapes is not None:
        model.reshape({inp.any_name: list(s) for inp, s in zip(model.inputs, shapes)})
    if pixels:
        model = pixel_io(model)
    config = {"INFERENCE_PRECISION_HINT": _OV_HINT[precision], "INFERENCE_NUM_THREADS": resolve_threads(threads),
              "PERFORMANCE_HINT": "LATENCY"}
    if streams > 1:   # an explicit stream count, each stream a share of the threads (the throughput form)
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": int(streams)})
    compiled = core.compile_model(model, "CPU", config)
    check_openvino_precision(compiled, precision)
    return compiled


def pixel_io(model):
    """``model`` (1x3xHxW float in [0, 1] -> 1x3xsHxsW) taking and giving 8-bit NHWC RGB: the scaling, rounding,
    clipping and transposes run in OpenVINO's graph (fused, on its threads) instead of numpy / torch passes
    over every frame; the u8 output also moves a quarter of the float output's bytes."""
    import numpy as np
    import openvino as ov  # why: optional runtime, and its import is heavy
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    ppp.output().model().set_layout(ov.Layout("NCHW"))
    ppp.output().postprocess().custom(   # round half up, then clip: what Upscaler.to_pixels does
        lambda node: ops.clamp(ops.add(ops.multiply(node, np.float32(255.0)), np.float32(0.5)), 0.0, 255.0).output(0))
    ppp.output().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    return ppp.build()


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
    """PrecisionFallback unless the compiled model really runs its convolutions in ``precision``.

    OpenVINO silently falls back (bf16 -> f32 on a CPU without bf16, an INT8 pattern it cannot fuse ->
    f32), so a run is labelled by what the runtime model says it executes, never by what was asked.
    """
    convs = openvino_conv_precisions(compiled)
    if not convs:
        return
    want = _OV_RUNS[precision]
    if not any(p in want for p in convs):
        raise PrecisionFallback(f"openvino {precision}: the compiled model runs its convolutions as {convs}, not "
                        f"{'/'.join(sorted(want))}; this CPU or graph does not support it: use another precision")


class OpenVINORuntime(FileRuntime):
    """OpenVINO's CPU plugin, in the latency hint; a precision that silently fell back is an error."""
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    package = "openvino"

    def unsupported(self, precision: str) -> str | None:
        if precision == "bf16" and "BF16" not in openvino_capabilities():
            return ("openvino bf16: OpenVINO reports no BF16 capability on this CPU (needs AVX512-BF16 or "
                    "AMX) and would run f32 instead; use openvino fp32 or int8")
        return None

    def load(self, path: str | Path, precision: str, threads: int,
             shapes: Sequence[Sequence[int]] | None = None) -> Compiled:
        compiled = openvino_compile(path, precision, threads, shapes)   # raises unless ``precision`` really runs
        req = compiled.create_infer_request()
        # share_inputs: no copy of the input, as ONNX Runtime reads numpy buffers in place
        return Compiled(lambda xs: req.infer(list(xs), share_inputs=True)[0], precision)

    def load_pixels(self, path: str | Path, precision: str, threads: int, hw: tuple[int, int]) -> Compiled:
        compiled = openvino_compile(path, precision, threads, [(1, 3, *hw)], pixels=True)
        req = compiled.create_infer_request()
        return Compiled(lambda frame: req.infer([frame], share_inputs=True)[0], precision)

    def load_pixels_async(self, path: str | Path, precision: str, threads: int, hw: tuple[int, int],
                          streams: int = 1) -> Callable[[int], "PixelQueue"]:
        """``load_pixels`` for frames in flight: compiled once, then a PixelQueue of ``jobs`` requests per call."""
        compiled = openvino_compile(path, precision, threads, [(1, 3, *hw)], pixels=True, streams=streams)
        return lambda jobs: PixelQueue(compiled, jobs)


class PixelQueue:
    """OpenVINO's AsyncInferQueue on 8-bit frames: ``start`` returns at once and ``done`` gets the upscaled frame
    (or the exception its callback met) on an OpenVINO thread; up to ``jobs`` frames run or wait in the runtime."""

    def __init__(self, compiled, jobs: int):
        import openvino as ov  # why: optional runtime, and its import is heavy
        self.jobs = max(1, int(jobs))
        self.queue = ov.AsyncInferQueue(compiled, self.jobs)
        self.queue.set_callback(self._finished)

    def start(self, frame, done: Callable[[object], None]) -> None:
        """Run the HxWx3 uint8 ``frame`` (kept alive and unchanged by the caller until ``done``)."""
        # share_inputs: the request reads the caller's buffer, no copy; it waits for an idle request when all are busy
        self.queue.start_async({0: frame[None]}, userdata=done, share_inputs=True)

    @staticmethod
    def _finished(request, done: Callable[[object], None]) -> None:
        """The queue's callback, on OpenVINO's thread: hand the frame's output (or what failed) to ``done``."""
        try:   # the request is reused for the next frame: its output is copied out now
            out = request.get_output_tensor(0).data[0].copy()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller, not lost in OpenVINO's thread
            out = e
        done(out)

    def idle(self) -> bool:
        """Whether no request is running (a frame not answered by then failed inside the runtime)."""
        return self.queue.is_ready()

    def wait(self) -> None:
        """Wait until every started frame is done."""
        self.queue.wait_all()

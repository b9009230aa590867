"""OpenVINO's CPU plugin as a runtime: fp32, bf16 (where the CPU has it) or INT8, checked on the compiled model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

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
                     shapes: Sequence[Sequence[int]] | None = None, pixels: bool = False, streams: int = 1,
                     yuv: YuvOut | None = None):
    """Compile an ONNX / IR file for OpenVINO's CPU plugin in ``precision`` (shapes: fix the input sizes;
    pixels: 8-bit NHWC RGB in and out, see ``pixel_io``; yuv: with pixels, 8-bit YUV 4:2:0 planes out, see
    ``yuv420_out``; streams > 1: that many frames run at once, the threads shared among them)."""
    import openvino as ov  # why: optional runtime, and its import is heavy
    core = ov.Core()
    model = core.read_model(str(path))
    if shapes is not None:
        model.reshape({inp.any_name: list(s) for inp, s in zip(model.inputs, shapes)})
    if yuv is not None:
        model = yuv420_out(model, yuv)
        if model is None:
            raise ValueError(f"{path}: its graph does not end in a depth-to-space: no YUV 4:2:0 output")
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
    over every frame; the u8 output also moves a quarter of the float output's bytes. Where the graph ends in a
    depth-to-space, the pixels are made before it, so the shuffle moves bytes, not floats (the same output;
    x3 640x360 -> 1080p 13.7 -> 12.4 ms, x2 540p 19.3 -> 17.5 ms on a Xeon with AMX)."""
    import openvino as ov  # why: optional runtime, and its import is heavy
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    already = model.outputs[0].get_element_type() == ov.Type.u8   # pixels already (yuv420_out's planes)
    shuffle = None if already else final_shuffle(model)
    if shuffle is not None:
        attrs = shuffle.get_attributes()
        out = ops.depth_to_space(to_pixels(shuffle.input_value(0)), attrs["mode"], int(attrs["block_size"]))
        model = ov.Model([ops.result(out)], model.get_parameters(), model.get_friendly_name())
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    if already:
        return ppp.build()
    ppp.output().model().set_layout(ov.Layout("NCHW"))
    if shuffle is None:
        ppp.output().postprocess().custom(lambda node: to_pixels(node).output(0))
    ppp.output().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    return ppp.build()


def to_pixels(node, offset: float = 0.0, scale: float = 255.0):
    """8-bit levels of ``node`` (in [0, 1] at ``scale`` 255, plus ``offset``), rounded half up and clipped, as
    Upscaler.to_pixels does: the conversion to u8 truncates, hence the + 0.5."""
    import openvino as ov  # why: optional runtime, and its import is heavy
    import openvino.opset13 as ops

    if scale != 1.0:
        node = ops.multiply(node, np.float32(scale))
    return ops.convert(ops.clamp(ops.add(node, np.float32(offset + 0.5)), 0.0, 255.0), ov.Type.u8)


def final_shuffle(model):
    """The depth-to-space ``model`` (one output) ends in, under at most its clamp; None where it ends otherwise.
    The clamp commutes with the shuffle (both per value / a permutation), so what follows may redo it before."""
    if len(model.outputs) != 1:
        return None
    node = model.get_results()[0].input_value(0).get_node()
    while node.get_type_name() in ("Maximum", "Minimum", "Clamp"):
        node = next(v.get_node() for v in node.input_values() if v.get_node().get_type_name() != "Constant")
    return node if node.get_type_name() == "DepthToSpace" else None


@dataclass(frozen=True)
class YuvOut:
    """The YUV an encoder takes: the matrix's luma weights of red and blue, and full (0-255) or limited range."""

    kr: float
    kb: float
    full_range: bool

    def rgb_to_yuv(self) -> tuple[np.ndarray, np.ndarray]:
        """(3x3 matrix, offsets): [Y, U, V] in 8-bit levels = matrix @ [R, G, B] in [0, 1] + offsets."""
        kr, kb = self.kr, self.kb
        kg = 1.0 - kr - kb
        ys, cs, yo = (255.0, 255.0, 0.0) if self.full_range else (219.0, 224.0, 16.0)
        m = np.array([[kr, kg, kb],
                      [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                      [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
        return m * np.array([ys, cs, cs])[:, None], np.array([yo, 128.0, 128.0])


def yuv420_out(model, yuv: YuvOut):
    """``model`` (ending in a depth-to-space of 3 colours, then at most a clamp) giving 8-bit YUV 4:2:0 planes:
    Y (1x1xHxW) and U, V (1x2x(H/2)x(W/2)); None where the graph ends otherwise.

    The conversion runs before the shuffle, on the low-resolution tensor, as 1x1 convolutions: Y's s^2 phases
    from the colours of each phase, each chroma sample the mean of its 2x2 high-resolution pixels (at an odd scale
    over 2x2 low-resolution pixels, which hold a whole number of chroma samples). The encoder then gets the planes
    it encodes: no RGB -> YUV pass over the large frame is left to swscale (3.9 ms a 720p frame on one core here,
    plus the RGB frame's copy), and OpenVINO's own high-resolution split / pooling forms cost more than both.
    """
    import openvino as ov  # why: optional runtime, and its import is heavy
    import openvino.opset13 as ops

    node = final_shuffle(model)   # the model's clamp is redone below
    if node is None:
        return None
    attrs = node.get_attributes()
    s, depth_first = int(attrs["block_size"]), attrs["mode"] == "depth_first"
    x = node.input_value(0)
    if x.get_partial_shape()[1].is_dynamic or x.get_partial_shape()[1].get_length() != 3 * s * s:
        return None
    g = 1 if s % 2 == 0 else 2   # low-resolution pixels per block side: g * s high-resolution ones, an even count
    c = s * g // 2               # chroma samples per block side
    m, off = yuv.rgb_to_yuv()

    def phase(colour: int, i: int, j: int) -> int:   # the channel of colour at phase (i, j) before the shuffle
        return colour * s * s + i * s + j if depth_first else (i * s + j) * 3 + colour

    wy = np.zeros((s * s, 3 * s * s), np.float32)
    wc = np.zeros((2 * c * c, 3 * s * s * g * g), np.float32)
    for i in range(s):
        for j in range(s):
            for colour in range(3):
                wy[i * s + j, phase(colour, i, j)] = m[0, colour]
                for bi in range(g):
                    for bj in range(g):
                        row, col = bi * s + i, bj * s + j   # the pixel's place in its block
                        for p in range(2):
                            wc[p * c * c + (row // 2) * c + col // 2,
                               phase(colour, i, j) * g * g + bi * g + bj] += m[1 + p, colour] / 4

    def planes(t, w, offset):   # 8-bit levels before the shuffles: they then move bytes, not floats
        return to_pixels(ops.convolution(t, w[:, :, None, None], [1, 1], [0, 0], [0, 0], [1, 1]), offset, 1.0)

    x = ops.clamp(x, 0.0, 1.0)
    y = ops.depth_to_space(planes(x, wy, off[0]), "depth_first", s)
    uv = planes(x if g == 1 else ops.space_to_depth(x, "depth_first", g), wc, 128.0)
    if c > 1:
        uv = ops.depth_to_space(uv, "depth_first", c)
    return ov.Model([ops.result(y), ops.result(uv)], model.get_parameters(), "yuv420")


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
                          streams: int = 1, yuv: YuvOut | None = None) -> Callable[[int], "PixelQueue"] | None:
        """``load_pixels`` for frames in flight: compiled once, then a PixelQueue of ``jobs`` requests per call;
        ``yuv``: YUV 4:2:0 planes out (``yuv420_out``), None where the model cannot give them."""
        try:
            compiled = openvino_compile(path, precision, threads, [(1, 3, *hw)], pixels=True, streams=streams,
                                        yuv=yuv)
        except ValueError:   # no YUV form of this graph
            return None
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
        try:   # the request is reused for the next frame: its output is copied out now (YUV: Y and UV planes)
            outs = [t.data[0].copy() for t in request.output_tensors]
            out = outs[0] if len(outs) == 1 else (outs[0][0], outs[1])   # HxW Y, 2x(H/2)x(W/2) UV
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller, not lost in OpenVINO's thread
            out = e
        done(out)

    def idle(self) -> bool:
        """Whether no request is running (a frame not answered by then failed inside the runtime)."""
        return self.queue.is_ready()

    def wait(self) -> None:
        """Wait until every started frame is done."""
        self.queue.wait_all()

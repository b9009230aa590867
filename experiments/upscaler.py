"""A small API for apps: a searched or zoo model as a function of numpy frames, in the executor it runs best in.

    from srnas import Upscaler
    with Upscaler("srnas_abpn") as up:        # executor: the one recorded in the model file (OpenVINO INT8)
        hr = up(frame)                        # HxWx3 uint8 (or uint16) RGB -> (2H)x(2W)x3, same dtype

    with Upscaler("auto", fps=30, sample=frames) as up:   # the largest member of this CPU's front that keeps 30 fps
        print(up.choice.line())                           # on these frames here (Upscaler.auto)

The model is deployed once (exported, and for INT8 quantized to its QDQ file); OpenVINO compiles it once per
input size (its fast static-shape form), so the frames of one video pay one compile. ``srnas upscale`` runs
every image and video through this class; a video through ``flight``: frames in flight in the runtime's own
asynchronous queue (OpenVINO's AsyncInferQueue), so the model starts its next frame the moment one is done.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from srnas.latency.deploy import pixel_infer_async
from srnas.latency.executors import (auto_candidates, available_executors, check_executor, choose_executor, deploy_file,
                                     executor_name, file_backends, file_infer, make_infer, pixel_infer)
from srnas.latency.runtimes.openvino_runtime import YuvOut
from srnas.supernet.errors import UserError

from .auto_pick import DEFAULT_FPS, AutoChoice, frames_rate, front_members, pick_keeping
from .flight import AsyncFlight, Flight
from .models import LoadedModel, load_model
from .precision import calibration_inputs, own_precision
from .tiling import tiled_upscale

TensorFn = Callable[[torch.Tensor], torch.Tensor]


class Upscaler:
    """``model`` (zoo name, srnas_abpn, abpn_int8, .ts / .onnx / pruned .pt file) in one executor, on numpy frames.

    ``backend`` / ``precision`` None (or "auto"): the executor recorded in a searched model's file; for
    other models the fastest executor here in the model's own precision (timed, as `latency.backend: auto`
    picks). ``tile`` > 0 runs large frames in LR tiles of that side with ``margin`` pixels of context.
    ``model="auto"``: the largest member of this CPU's front that keeps ``fps`` frames/s on ``sample`` (a few
    dozen of your frames), timed here (``Upscaler.auto``; ``choice`` says which and why).
    """

    _closed = False   # set by close(): the compiled models and their files are gone
    choice: "AutoChoice | None" = None   # set where the model was picked by `auto`

    def __init__(self, model: str = "srnas_abpn", backend: str | None = None, precision: str | None = None, *,
                 scale: int | None = None, threads: int = 0, tile: int = 0, margin: int = 16,
                 weights_dir: str | Path | None = None, lr_hw: tuple[int, int] = (360, 640),
                 fps: float | None = None, sample: Sequence[np.ndarray] | None = None):
        if model == "auto":
            chosen = Upscaler.auto(fps or DEFAULT_FPS, sample, backend, precision, scale=scale or 2, threads=threads,
                                   weights_dir=weights_dir)
            # the winner was deployed and compiled while it was timed: this instance takes it over as it is
            self.__dict__.update(chosen.__dict__)
            return
        if fps is not None or sample is not None:
            raise UserError("fps= and sample= are for Upscaler('auto', fps=..., sample=frames); a named model "
                            "takes neither")
        self.model: LoadedModel = load_model(model, scale, weights_dir, threads)
        self.name, self.scale, self.threads = self.model.name, self.model.scale, threads
        self.tile, self.margin = tile, margin
        self._weights_dir = weights_dir
        self._tmp = tempfile.TemporaryDirectory(prefix="srnas-upscaler-")
        self._compiled: dict[tuple[int, int] | None, TensorFn] = {}
        self._pixels: dict[tuple[int, int], Callable[[np.ndarray], np.ndarray] | None] = {}
        self._queues: dict[tuple[tuple[int, int], int], Callable[[int], object] | None] = {}
        self.backend, self.precision, self.chosen_by = resolve_executor(self.model, backend, precision, threads,
                                                                         lr_hw, weights_dir)
        self._source = self._deploy_source()

    @property
    def executor(self) -> str:
        """'backend/precision', as tables name an executor."""
        return executor_name(self.backend, self.precision)

    def __repr__(self) -> str:
        shut = ", closed" if self._closed else ""
        return f"Upscaler({self.name!r}, scale={self.scale}, executor={self.executor!r}{shut})"

    def __enter__(self) -> "Upscaler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Drop the compiled models and the files they were made from."""
        self._closed = True
        self._compiled.clear()
        self._pixels.clear()
        self._queues.clear()
        self._tmp.cleanup()

    @classmethod
    def auto(cls, fps: float, sample: Sequence[np.ndarray] | None, backend: str | None = None,
             precision: str | None = None, *, scale: int = 2, threads: int = 0, weights_dir: str | Path | None = None,
             jobs: int = 2) -> "Upscaler":
        """The largest member of this CPU's front at ``scale`` whose model keeps ``fps`` frames/s on ``sample``
        (your frames, the model alone: your app decodes and shows them), timed here; else the fastest, with
        ``choice.keeps`` False. Its ``choice`` says which member and why in one line."""
        frames = list(sample or [])
        if not frames:
            raise UserError("Upscaler('auto') times the front's members on your frames: pass sample=[a few dozen "
                            "HxWx3 frames] (and fps=, default 30)")
        for f in frames:
            check_frame(f)
        made: dict[str, Upscaler] = {}

        def rate_of(name: str) -> float:
            made[name] = up = cls(name, backend, precision, scale=scale, threads=threads, weights_dir=weights_dir)
            return frames_rate(up, frames, jobs)
        choice = pick_keeping(front_members(scale, weights_dir), rate_of, fps, f"on {len(frames)} of your frames",
                              made)
        made[choice.name].choice = choice
        return made[choice.name]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Upscale one HxWx3 RGB frame (uint8, or uint16 for more than 8 bits) to (sH)x(sW)x3 of the same dtype."""
        self._check_open()
        check_frame(frame)   # before any route: the 8-bit one hands the frame straight to the runtime
        run = self.pixel_route(frame)
        if run is not None:
            return run(frame)
        return self.to_pixels(self.infer(self.to_input(frame)), frame.dtype)

    def _check_open(self) -> None:
        """UserError once ``close`` has run (its compiled models and files are gone)."""
        if self._closed:
            raise UserError(f"this Upscaler ({self.name}) was closed: make a new one, or upscale inside its "
                            "`with` block")

    def pixel_route(self, frame: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
        """The runtime's own 8-bit route for frames like ``frame`` (HxWx3 uint8 -> (sH)x(sW)x3 uint8, the float
        conversions inside its graph), or None: other dtypes, tiling, or a runtime without one (OpenVINO has)."""
        hw = tuple(frame.shape[:2])
        if frame.dtype != np.uint8 or frame.ndim != 3 or self.tile > 0 or self.model.fixed_hw is not None:
            return None
        if hw not in self._pixels:
            source = self._source
            file = None if isinstance(source, nn.Module) and self.backend.startswith("torch") else \
                _file(source, self.backend, self.precision, self._calibration, Path(self._tmp.name))
            compiled = None if file is None or len(self._pixels) >= MAX_STATIC else \
                pixel_infer(file, self.backend, self.precision, self.threads, hw)
            self._pixels[hw] = None if compiled is None else \
                (lambda f, c=compiled: np.asarray(c(np.ascontiguousarray(f)[None]))[0])
        return self._pixels[hw]

    def flight(self, like: np.ndarray, jobs: int = 2, streams: int = 1, yuv: YuvOut | None = None) -> "Flight":
        """Frames of ``like``'s size and dtype through the model with up to ``jobs`` in flight, answered in order:
        the runtime's own queue where it has one (OpenVINO on 8-bit frames: ``streams`` frames at once, the
        threads shared), else one call at a time (torch, ONNX Runtime, 16-bit frames, tiles; ``jobs`` 0: always).
        ``yuv``: answer YUV 4:2:0 planes (Y, UV) in that matrix and range where the model can (``flight.planes``
        says whether it does), for an encoder."""
        self._check_open()
        check_frame(like)
        hw = tuple(like.shape[:2])
        if jobs > 0 and self._takes_pixels(like):
            for out in ([yuv] if yuv is not None else []) + [None]:
                key = (hw, max(1, int(streams)), out)
                if key not in self._queues and len(self._queues) < MAX_STATIC:
                    file = _file(self._source, self.backend, self.precision, self._calibration, Path(self._tmp.name))
                    self._queues[key] = pixel_infer_async(file, self.backend, self.precision, self.threads, hw,
                                                          key[1], out)
                make = self._queues.get(key)
                if make is not None:
                    return AsyncFlight(like, make(jobs), planes=out is not None)
        run = self.pixel_route(like)
        if run is not None:
            return Flight(like, np.ascontiguousarray, run)
        return Flight(like, self.to_input, self.infer)

    def _takes_pixels(self, frame: np.ndarray) -> bool:
        """Whether frames like ``frame`` may go to the runtime as 8-bit pixels (no tiles, a file runtime)."""
        torch_module = isinstance(self._source, nn.Module) and self.backend.startswith("torch")
        return (frame.dtype == np.uint8 and self.tile <= 0 and self.model.fixed_hw is None and not torch_module
                and self.backend in file_backends())

    def warm(self, hw: tuple[int, int]) -> None:
        """Compile for LR frames of size ``hw`` now (the first frame of that size otherwise pays it)."""
        self._for_size(tuple(hw))

    @staticmethod
    def to_input(frame: np.ndarray) -> torch.Tensor:
        """An HxWx3 uint8 / uint16 frame as the model's 1x3xHxW float input in [0, 1]."""
        check_frame(frame)
        top = 255.0 if frame.dtype == np.uint8 else 65535.0
        x = torch.empty(1, 3, frame.shape[0], frame.shape[1])
        x[0].copy_(torch.from_numpy(frame).permute(2, 0, 1))
        return x.mul_(1.0 / top)

    @staticmethod
    def to_pixels(y: torch.Tensor, dtype=np.uint8) -> np.ndarray:
        """The model's 1x3xHxW output as an HxWx3 frame of ``dtype`` (rounded, clipped)."""
        top = 255.0 if np.dtype(dtype) == np.uint8 else 65535.0
        y = y[0].mul(top).add_(0.5).clamp_(0, top)
        out = y.to(torch.uint8 if np.dtype(dtype) == np.uint8 else torch.int32).permute(1, 2, 0).contiguous()
        return out.numpy().astype(dtype, copy=False)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """1x3xHxW in [0, 1] -> 1x3x(sH)x(sW) float, in this executor (tiled when ``tile`` is set)."""
        if self.tile <= 0 and self.model.fixed_hw is None:
            return self._for_size(tuple(x.shape[-2:]))(x)
        return tiled_upscale(lambda t: self._for_size(tuple(t.shape[-2:]))(t), x, self.scale, self.tile,
                             self.margin, self.model.fixed_hw)

    def _for_size(self, hw: tuple[int, int]) -> TensorFn:
        key = _shape_key(self.backend, hw, self._compiled)
        if key not in self._compiled:
            self._compiled[key] = _compile(self._source, self.backend, self.precision, self.threads, key,
                                           self._calibration, Path(self._tmp.name))
        return self._compiled[key]

    def _deploy_source(self) -> nn.Module | Path:
        """What the executor runs: a torch module, or an exported ONNX file for the file runtimes."""
        m = self.model
        path = Path(m.info.get("path", ""))
        if path.suffix == ".onnx":
            return path
        if path.suffix == ".ts" or isinstance(m.module, torch.jit.ScriptModule):
            if self.backend in file_backends():
                onnx = path.with_suffix(".onnx")
                if not onnx.is_file():
                    raise UserError(f"{path}: {self.backend} runs ONNX, and no {onnx.name} lies beside it "
                                    "(srnas export writes both); use --backend torch-cpu")
                return onnx
            return m.module
        if m.name == "abpn_int8" and not (self.backend.startswith("torch") and self.precision == "int8"):
            from .quantize import abpn_float_from_qat   # the ONNX INT8 route quantizes its QAT-trained float weights
            return abpn_float_from_qat(self.scale, self._weights_dir)
        return m.module

    def _calibration(self) -> list[list[torch.Tensor]] | None:
        """INT8 calibration: real LR crops of the embedded training images, as `srnas bench` calibrates."""
        if self.precision != "int8" or self.backend not in file_backends():
            return None
        return calibration_inputs(self.scale)


def check_frame(frame: np.ndarray) -> None:
    """UserError unless ``frame`` is what every route takes: an HxWx3 RGB numpy array of uint8 or uint16, H, W >= 1."""
    if not isinstance(frame, np.ndarray):
        raise UserError(f"Upscaler takes numpy HxWx3 RGB frames of uint8 or uint16, got a {type(frame).__name__}: "
                        "pass np.asarray(frame, np.uint8)")
    ok = frame.ndim == 3 and frame.shape[2] == 3 and min(frame.shape[:2]) >= 1
    if not ok or frame.dtype not in (np.uint8, np.uint16):
        raise UserError(f"Upscaler takes HxWx3 RGB frames of uint8 or uint16 with H, W >= 1, got shape "
                        f"{frame.shape} {frame.dtype}{_frame_hint(frame)}")


def _frame_hint(frame: np.ndarray) -> str:
    """How a near-miss frame becomes an RGB one (grey, RGBA, channels first), or nothing."""
    if frame.ndim == 3 and frame.shape[0] == 3 and frame.shape[2] != 3:
        return "; channels first? pass frame.transpose(1, 2, 0)"
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return "; grey? pass np.dstack([frame] * 3) (srnas upscale keeps grey images grey)"
    if frame.ndim == 3 and frame.shape[2] == 4:
        return "; RGBA? pass frame[..., :3] (srnas upscale keeps the alpha)"
    return ""


def resolve_executor(m: LoadedModel, backend: str | None, precision: str | None, threads: int,
                     lr_hw: tuple[int, int], weights_dir: str | Path | None = None) -> tuple[str, str, str]:
    """(backend, precision, how it was chosen) for ``m``; None / 'auto' fill in the model's own choice."""
    backend = None if backend == "auto" else backend
    precision = None if precision == "auto" else precision
    path = Path(m.info.get("path", ""))
    own = own_precision(m)
    if m.name == "bicubic":   # interpolation, not a network: nothing to deploy
        return "torch-cpu", "fp32", "bicubic runs in torch"
    prec = precision or own
    if own == "int8" and prec != "int8" and m.name != "abpn_int8" and "backend" not in m.info:
        raise UserError(f"{m.name} is quantized (INT8): it cannot run as {prec}; drop --precision")
    if backend is None and "backend" in m.info and precision in (None, m.precision):
        backend, how = m.info["backend"], "recorded in the model file"
    elif backend is None and path.suffix == ".onnx":
        backend, how = "onnxruntime", "an ONNX file"
    elif backend is None and (path.suffix == ".ts" or isinstance(m.module, torch.jit.ScriptModule)):
        backend, how = "torch-cpu", "a TorchScript file"
    elif backend is None:
        found = available_executors(auto_candidates("auto", prec))
        if m.name == "abpn_int8":   # its torch.ao form is torch's INT8; auto weighs the ONNX INT8 routes
            found = [e for e in found if not e[0].startswith("torch")] or [("torch-cpu", "int8")]
        if not found:
            raise UserError(f"no executor here runs {prec}; install onnxruntime or openvino, or pass --precision")
        backend, how = _fastest(m, found, threads, lr_hw, weights_dir), f"auto: fastest {prec} executor here"
    else:
        how = "asked for"
    if not (backend.startswith("torch") and prec == "int8" and m.name == "abpn_int8"):
        try:
            check_executor(backend, prec)
        except UserError as e:
            if how != "recorded in the model file":
                raise
            raise UserError(f"{m.name} was searched for {backend}/{prec}, which cannot run here ({e}); pass "
                            "--backend / --precision to run it in another executor") from None
    if path.suffix == ".onnx" and backend not in file_backends():
        raise UserError(f"{path} is an ONNX file: run it with --backend onnxruntime or openvino")
    if path.suffix == ".ts" and backend not in file_backends() and prec != own:
        raise UserError(f"{path} is a {own} TorchScript file: torch runs it as it is; drop --precision or use "
                        "--backend onnxruntime / openvino with its .onnx")
    return backend, prec, how


def _fastest(m: LoadedModel, executors: list[tuple[str, str]], threads: int, lr_hw: tuple[int, int],
             weights_dir: str | Path | None) -> str:
    """The backend among ``executors`` that runs ``m`` fastest here at ``lr_hw`` (one executor: no timing)."""
    if len(executors) == 1:
        return executors[0][0]
    module = m.module
    if m.name == "abpn_int8":
        from .quantize import abpn_float_from_qat
        module = abpn_float_from_qat(m.scale, weights_dir)
    backend, _, _ = choose_executor({m.name: module}, lr_hw, threads, executors, repeats=3)
    return backend


# runtimes whose compiled model is fastest for one fixed input size (OpenVINO's static shapes); the others
# (torch, ONNX Runtime) run one model at any size. Past MAX_STATIC sizes (a folder of photos, not one video)
# OpenVINO gets one dynamic-shape compile for the rest, rather than a compile per image.
STATIC_SHAPES = ("openvino",)
MAX_STATIC = 4


def _shape_key(backend: str, hw: tuple[int, int], compiled: dict) -> tuple[int, int] | None:
    """The input size a compile is made for (None: any size)."""
    if backend not in STATIC_SHAPES:
        return None
    return hw if hw in compiled or sum(k is not None for k in compiled) < MAX_STATIC else None


def _compile(source: nn.Module | Path, backend: str, precision: str, threads: int, hw: tuple[int, int] | None,
             calib: Callable[[], list[list[torch.Tensor]] | None], workdir: Path) -> TensorFn:
    """ALL runtime-facing code of the Upscaler: ``source`` in executor (backend, precision) for 1x3xHxW at ``hw``
    (None: any size).

    Torch runs the module as it is. The file runtimes run ONNX: a module is exported with dynamic H and W
    (and for INT8 quantized on ``calib``) once into ``workdir``; OpenVINO then compiles it for ``hw``, the
    static-shape form it deploys fastest.
    """
    if isinstance(source, nn.Module) and backend.startswith("torch"):
        if precision == "int8" or isinstance(source, torch.jit.ScriptModule):  # torch.ao INT8 / TorchScript as is
            def run_as_is(x: torch.Tensor) -> torch.Tensor:
                with torch.inference_mode():
                    return source(x).float()
            return run_as_is
        return make_infer(source, [torch.zeros(1, 3, *(hw or (64, 64)))], backend, threads, precision)
    path = _file(source, backend, precision, calib, workdir)
    infer = file_infer(path, backend, precision, threads, None if hw is None else [(1, 3, *hw)])

    def run(x: torch.Tensor) -> torch.Tensor:
        out = infer([np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)])
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
    return run


def _file(source: nn.Module | Path, backend: str, precision: str,
          calib: Callable[[], list[list[torch.Tensor]] | None], workdir: Path) -> Path:
    """The file a file runtime runs: ``source`` itself, or its ONNX export (INT8: quantized on what ``calib``
    gives) made once into ``workdir`` with dynamic H and W."""
    if isinstance(source, Path):
        return source
    done = workdir / ("model_int8.onnx" if precision == "int8" else "model.onnx")
    return done if done.is_file() else deploy_file(source, [torch.rand(1, 3, 64, 64)], backend, precision,
                                                   workdir, calib(), dynamic=True)

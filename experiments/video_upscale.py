"""Upscale one video: decode, model and encode overlap in three threads joined by small bounded queues.

The runtimes (OpenVINO, ONNX Runtime, torch) and FFmpeg release the GIL while they work, so the decoder
reads ahead and the encoder drains behind while the model runs; the queues hold a few frames, so memory
does not grow with the video's length. Audio packets travel through the same queues as the frames, in
file order, and are copied into the output unchanged.

The output is written as <name>.partial<ext> and renamed when complete: a run that is killed leaves the
partial file (playable up to its last fragment), and a rerun replaces it.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from srnas.supernet.progress import progress_bar

from .crops import draw_labels
from .upscaler import Upscaler
from .video import DEFAULT_CODEC, Picture, VideoError, VideoReader, VideoWriter

QUEUE_FRAMES = 4        # frames in flight between two stages; enough to ride out a slow frame
_END = object()


@dataclass
class VideoResult:
    """What one video's run did: frames written, time taken, model time, problems met."""

    src: Path
    dst: Path | None
    frames: int = 0
    seconds: float = 0.0
    model_s: float = 0.0
    decode_s: float = 0.0    # busy time of the decode thread (demux, decode, to RGB, to the model's input)
    encode_s: float = 0.0    # busy time of the encode thread (to YUV, encode, mux)
    source_fps: float = 0.0
    errors: list[str] = field(default_factory=list)   # frames that failed to decode, a write that failed
    notes: list[str] = field(default_factory=list)    # depth lowered, odd size cropped

    @property
    def fps(self) -> float:
        """Frames per second end to end (decode + model + encode)."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def model_fps(self) -> float:
        """Frames per second of the model's own calls inside the pipeline."""
        return self.frames / self.model_s if self.model_s else 0.0

    @property
    def real_time(self) -> bool:
        return self.source_fps > 0 and self.fps >= self.source_fps

    def closing_line(self) -> str:
        """One line: frames, frames/s end to end and of the model, and whether that is real time."""
        verdict = ""
        if self.source_fps:
            verdict = (f"; real time (source {self.source_fps:.2f} fps)" if self.real_time else
                       f"; NOT real time: {self.fps / self.source_fps:.2f}x the source's {self.source_fps:.2f} fps")
        line = (f"{self.src.name} -> {self.dst}: {self.frames} frames in {self.seconds:.1f} s, "
                f"{self.fps:.1f} frames/s end to end ({self.model_fps:.1f} model alone){verdict}")
        if self.source_fps and not self.real_time and self.frames:
            busy = self.to_json()["busy_ms_per_frame"]
            line += (f"; busy per frame: decode {busy['decode']:.0f} ms, model {busy['model']:.0f} ms, "
                     f"encode {busy['encode']:.0f} ms")
        return line

    def to_json(self) -> dict:
        return {"input": str(self.src), "output": str(self.dst) if self.dst else None, "frames": self.frames,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 2), "model_fps": round(self.model_fps, 2),
                "source_fps": round(self.source_fps, 3), "real_time": self.real_time,
                "busy_ms_per_frame": {k: round(1000 * v / max(1, self.frames), 2) for k, v in
                                      (("decode", self.decode_s), ("model", self.model_s), ("encode", self.encode_s))},
                "errors": self.errors,
                "notes": self.notes}


@dataclass
class _Job:
    """A frame on its way: where it came from, its pixel type, the model's input and (then) output: uint8 HxWx3
    arrays where the runtime takes frames itself (``run``), else float tensors."""

    pic: Picture
    dtype: np.dtype
    x: torch.Tensor | np.ndarray
    run: Callable[[np.ndarray], np.ndarray] | None = None
    sr: torch.Tensor | np.ndarray | None = None

    def infer(self, up: Upscaler) -> None:
        self.sr = self.run(self.x) if self.run is not None else up.infer(self.x)


def partial_path(dst: Path) -> Path:
    """Where ``dst`` is written until it is complete."""
    return dst.with_name(f"{dst.stem}.partial{dst.suffix}")


class _Pipe:
    """Bounded hand-over between two threads that gives up when any stage has failed."""

    def __init__(self, stop: threading.Event):
        self.q: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self.stop = stop

    def put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self):
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END


def upscale_video(up: Upscaler, src: Path, dst: Path, codec: str | None = None, crf: int | None = None,
                  compare: Path | None = None, progress: bool = True, preset: str | None = None) -> VideoResult:
    """Upscale video ``src`` into ``dst`` (and a bicubic | model split screen into ``compare``).

    ``codec`` None: H.264, or VP9 for WebM (which takes no H.264).
    """
    res = VideoResult(src, dst)
    codec = codec or DEFAULT_CODEC.get(dst.suffix.lower(), "libx264")
    reader = VideoReader(src)   # VideoError: unreadable, no video stream
    info = reader.info
    res.source_fps = info.fps
    stop = threading.Event()
    decoded, inferred = _Pipe(stop), _Pipe(stop)
    failure: list[BaseException] = []
    out = {"writer": None, "compare": None}
    part = partial_path(dst)

    def decode() -> None:
        try:
            items = iter(reader)
            while not stop.is_set():
                t = time.perf_counter()
                if (item := next(items, _END)) is _END:
                    break
                if isinstance(item, Picture):   # made model-ready here, off the model's thread
                    run = up.pixel_route(item.rgb)
                    item = _Job(item, item.rgb.dtype, item.rgb if run is not None else up.to_input(item.rgb), run)
                res.decode_s += time.perf_counter() - t
                decoded.put(item)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(e)
            stop.set()
        finally:
            decoded.put(_END)

    def encode() -> None:
        pending_audio = []
        try:
            while (item := inferred.get()) is not _END:
                if not isinstance(item, _Job):   # an audio packet
                    if out["writer"] is None:
                        pending_audio.append(item)
                    else:
                        out["writer"].mux_audio(item)
                    continue
                pic, sr = item.pic, item.sr
                if out["writer"] is None:
                    out["writer"] = _open_writer(part, info, sr, codec, crf, reader, pic.rotation, res, preset)
                    if compare is not None:
                        out["compare"] = _open_writer(partial_path(compare), info, sr, codec, crf, reader,
                                                      pic.rotation, res, preset)
                    for a in pending_audio:
                        out["writer"].mux_audio(a)
                    pending_audio.clear()
                t = time.perf_counter()
                if isinstance(sr, np.ndarray):
                    out["writer"].write(sr, pic.pts)
                else:
                    out["writer"].write_tensor(sr, pic.pts)
                res.encode_s += time.perf_counter() - t
                if out["compare"] is not None:
                    lr = up.to_input(item.x) if isinstance(item.x, np.ndarray) else item.x
                    hr = sr if isinstance(sr, np.ndarray) else up.to_pixels(sr, item.dtype)
                    out["compare"].write(split_screen(lr, hr, up.name), pic.pts)
        except BaseException as e:  # noqa: BLE001
            failure.append(e)
            stop.set()

    threads = [threading.Thread(target=decode, name="srnas-decode", daemon=True),
               threading.Thread(target=encode, name="srnas-encode", daemon=True)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    expected = info.frames or round(info.duration_s * info.fps) or None   # for the bar; the count is not trusted
    bar = progress_bar(total=expected, desc=f"upscale {src.name}", unit="frame", disable=not progress)
    try:
        while (item := decoded.get()) is not _END:
            if isinstance(item, _Job):
                t1 = time.perf_counter()
                item.infer(up)
                res.model_s += time.perf_counter() - t1
                item.pic.rgb = None   # the encoder needs the model's output only: drop the decoded pixels early
                res.frames += 1
                bar.update(1)
            inferred.put(item)
        inferred.put(_END)
        for t in threads:
            t.join()
    except BaseException as e:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        _abort(out)
        reader.close()
        if not isinstance(e, KeyboardInterrupt):   # interrupted: the partial file stays, as the CLI says
            _remove_partials(dst, compare)
        raise
    finally:
        bar.close()
    res.seconds = time.perf_counter() - t0
    reader.close()
    res.errors += reader.errors
    if failure:
        _abort(out)
        e = failure[0]
        if not isinstance(e, VideoError):
            raise e
        res.errors.append(str(e))
        _remove_partials(dst, compare)   # a failed write (disk full) leaves nothing half-made behind
        res.dst = None
        return res
    if out["writer"] is None:
        res.errors.append("no frame could be decoded")
        res.dst = None
        return res
    for key, final in (("writer", dst), ("compare", compare)):
        if out[key] is not None:
            out[key].close()
            res.notes += [n for n in out[key].notes if n not in res.notes]
            partial_path(final).replace(final)
    return res


def _open_writer(path: Path, info, sr: torch.Tensor | np.ndarray, codec: str, crf: int | None, reader: VideoReader,
                 rotation: int, res: VideoResult, preset: str | None) -> VideoWriter:
    height, width = sr.shape[:2] if isinstance(sr, np.ndarray) else sr.shape[-2:]
    w = VideoWriter(path, info, int(width), int(height), codec, crf, reader.audio, rotation, preset)
    res.notes += [n for n in w.notes if n not in res.notes]
    return w


def _remove_partials(dst: Path, compare: Path | None) -> None:
    for p in (dst, compare):
        if p is not None:
            partial_path(p).unlink(missing_ok=True)


def _abort(out: dict) -> None:
    for w in out.values():
        if w is not None:
            w.abort()


def split_screen(lr: torch.Tensor, sr: np.ndarray, label: str) -> np.ndarray:
    """Left half bicubic, right half the model, a line between and each half labelled."""
    from srnas.supernet.imaging import imresize
    h, w = sr.shape[:2]
    top = 255.0 if sr.dtype == np.uint8 else 65535.0
    bic = imresize(lr, (h, w))[0].mul(top).add_(0.5).clamp_(0, top).permute(1, 2, 0).numpy().astype(sr.dtype)
    out = sr.copy()
    out[:, : w // 2] = bic[:, : w // 2]
    out[:, w // 2 - 1: w // 2 + 1] = top
    return draw_labels(out, [("bicubic", 8), (label, w // 2 + 8)])

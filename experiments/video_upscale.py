"""Upscale one video: decode, model and encode overlap in three threads joined by small bounded queues.

Decode (a thread: demux, FFmpeg's decoder, YUV -> RGB, the frame made model-ready) -> the model (this thread:
it only hands frames to the model and answers on; with OpenVINO the model gives YUV 4:2:0 planes) -> encode (a
thread: the planes, or RGB -> YUV, into the encoder, the muxer). The
model runs through the Upscaler's ``flight``: with OpenVINO, ``jobs`` frames (default 3) sit in its
AsyncInferQueue, so the next frame starts inside the runtime the moment one is done, with no Python thread (and no
GIL, which the decoder and encoder threads also want) in between; torch and ONNX Runtime run one call at a time,
as before. The runtimes and FFmpeg release the GIL while they work, so the decoder reads ahead and the encoder
drains behind; the queues hold a few frames, so memory does not grow with the video's length. Audio packets
travel through the same queues as the frames, in file order, and are copied into the output unchanged.

Where each stage's threads go is a ``Pipeline`` (frames in flight, OpenVINO streams, decoder and encoder threads),
each choice an option of experiments/bench_video.py, measured side by side (docs/video.md). The rate reported
leaves start-up out (opening, the model's compile, the first frame through): it is given apart.

The output is written as <name>.partial<ext> and renamed when complete (every byte written and fsynced):
a run that is killed leaves the partial file (playable up to its last fragment), and a rerun
replaces it; a write that fails, the last ones included, removes it, so nothing half-made is left.
"""
from __future__ import annotations

import collections
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from srnas.supernet.progress import progress_bar

from .crops import draw_labels
from .flight import Flight
from .upscaler import Upscaler
from .video import (DEFAULT_CODEC, Picture, VideoError, VideoInfo, VideoReader, VideoWriter, output_size,
                    planes_for)

QUEUE_FRAMES = 4        # frames in flight between two stages; enough to ride out a slow frame
_END = object()


@dataclass(frozen=True)
class Pipeline:
    """Where a video's work runs: each field an option of bench_video.py, measured side by side on natural content.

    The defaults are what ran before the options existed (FFmpeg's and x264's own thread counts), plus frames
    in OpenVINO's queue: with one, the model idles from the end of each frame until the Python thread wakes (it
    competes for the GIL with the decoder and encoder threads) to start the next; two streams, one thread each:
    on natural content they beat one stream of two threads on both clips at 360p and 540p (srnas_abpn on a 2-core
    Xeon with AMX: 50.0 / 49.3 against 46.3 / 46.1 fps at 360p, docs/video.md); and three frames, so that a
    frame waits for whichever stream finishes first (with the model's YUV out, 360p srnas_abpn 61.7-66.4 fps
    against 58.7-61.8 with two; 540p srnas_xs 30.9-32.4 against 29.7-31.2, three rounds each).
    """

    jobs: int = 3                  # frames in the runtime's async queue (OpenVINO); 0: one synchronous call at a time
    streams: int = 2               # OpenVINO streams: frames run at once, the model's threads shared among them
    decode_threads: int = 0        # the decoder's threads (0: FFmpeg's count, cores + 1)
    decode_thread_type: str = "AUTO"   # FRAME, SLICE or AUTO (both where the codec can)
    encode_threads: int = 0        # the encoder's threads (0: x264's count, 1.5x the cores)
    nice: int = 0                  # lower the decode and encode threads' priority by this much (Linux: per thread)
    planes: bool = True            # the model gives the encoder YUV 4:2:0 planes where it can (else RGB, swscale)

    def describe(self) -> str:
        """E.g. 'jobs 3, streams 2, decoder auto threads (AUTO), encoder auto threads'."""
        def n(t: int) -> str:
            return "auto" if t == 0 else str(t)
        return (f"jobs {self.jobs}, streams {self.streams}, decoder {n(self.decode_threads)} threads "
                f"({self.decode_thread_type}), encoder {n(self.encode_threads)} threads"
                + (f", decode and encode at nice +{self.nice}" if self.nice else "")
                + ("" if self.planes else ", RGB out (swscale to YUV)"))


def lower_priority(nice: int) -> None:
    """Lower the calling thread's priority by ``nice`` (Linux: nice is per thread, and the codec's own threads,
    started from this one when it opens the codec, inherit it); nothing where the OS does not allow it."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:
        pass


@dataclass
class VideoResult:
    """What one video's run did: frames written, time taken, model time, problems met."""

    src: Path
    dst: Path | None
    frames: int = 0
    seconds: float = 0.0     # the whole run: opening, compile, every frame, the encoder's end and the trailer
    startup_s: float = 0.0   # from the start to the first frame out of the model (open, compile, first frames)
    model_s: float = 0.0     # wall time the model had at least one frame (its share of the pipeline)
    decode_s: float = 0.0    # busy time of the decode thread (demux, decode, to RGB, to the model's input)
    encode_s: float = 0.0    # busy time of the encode thread (to YUV, encode, mux)
    source_fps: float = 0.0
    target_fps: float = 0.0  # the rate to keep (--fps); 0: the source's
    stopped_early: bool = False   # a sample (max_frames / give_up_s), not the whole video
    errors: list[str] = field(default_factory=list)   # frames that failed to decode, a write that failed
    notes: list[str] = field(default_factory=list)    # depth lowered, odd size cropped

    @property
    def fps(self) -> float:
        """Frames per second end to end (decode + model + encode), start-up left out: from the first frame out of
        the model to the last one written."""
        steady = self.seconds - self.startup_s
        if self.frames > 1 and steady > 0:
            return (self.frames - 1) / steady
        return self.fps_with_startup

    @property
    def fps_with_startup(self) -> float:
        """Frames per second over the whole run, start-up included."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def model_fps(self) -> float:
        """Frames per second of the model inside the pipeline (frames over the time it was busy)."""
        return self.frames / self.model_s if self.model_s else 0.0

    @property
    def keep_fps(self) -> float:
        """The rate the run must keep to be real time: --fps, else the source's."""
        return self.target_fps or self.source_fps

    @property
    def real_time(self) -> bool:
        return self.keep_fps > 0 and self.fps >= self.keep_fps

    def closing_line(self) -> str:
        """One line: frames, frames/s end to end and of the model, start-up apart, and whether that is real time;
        or, when nothing was written, why."""
        if self.dst is None:
            why = self.errors[-1] if self.errors else "no output was made"
            return f"{self.src.name}: nothing written ({self.frames} frame(s) upscaled, then: {why})"
        verdict = ""
        if self.keep_fps:
            rate = f"source {self.source_fps:.2f} fps" if not self.target_fps else f"--fps {self.target_fps:g}"
            verdict = (f"; real time ({rate})" if self.real_time else
                       f"; NOT real time: {self.fps / self.keep_fps:.2f}x the {rate}")
        line = (f"{self.src.name} -> {self.dst}: {self.frames} frames in {self.seconds:.1f} s, "
                f"{self.fps:.1f} frames/s end to end ({self.model_fps:.1f} model alone; start-up "
                f"{self.startup_s:.2f} s, apart){verdict}")
        if self.keep_fps and not self.real_time and self.frames:
            busy = self.to_json()["busy_ms_per_frame"]
            line += (f"; busy per frame: decode {busy['decode']:.0f} ms, model {busy['model']:.0f} ms, "
                     f"encode {busy['encode']:.0f} ms")
        return line

    def to_json(self) -> dict:
        return {"input": str(self.src), "output": str(self.dst) if self.dst else None, "frames": self.frames,
                "seconds": round(self.seconds, 3), "startup_s": round(self.startup_s, 3), "fps": round(self.fps, 2),
                "fps_with_startup": round(self.fps_with_startup, 2), "model_fps": round(self.model_fps, 2),
                "source_fps": round(self.source_fps, 3), "target_fps": round(self.keep_fps, 3),
                "real_time": self.real_time, "stopped_early": self.stopped_early,
                "busy_ms_per_frame": {k: round(1000 * v / max(1, self.frames), 2) for k, v in
                                      (("decode", self.decode_s), ("model", self.model_s), ("encode", self.encode_s))},
                "errors": self.errors,
                "notes": self.notes}


@dataclass
class _Job:
    """A frame on its way: where it came from, its pixel type, the model's input (a uint8 HxWx3 array for the
    runtime's 8-bit route, else a float tensor) and then its output; ``own``: it goes through the flight (else it
    is one the flight was not made for, run on its own: a stream that changed size)."""

    pic: Picture
    dtype: np.dtype
    x: torch.Tensor | np.ndarray
    own: bool = True
    sr: torch.Tensor | np.ndarray | None = None


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


def open_flight(up: Upscaler, info: VideoInfo, pipe: Pipeline, codec: str, rgb: bool = False) -> Flight | None:
    """The model's flight for this video's frames (compiled now: start-up); None for a size no frame can have.
    Where it can (``flight.planes``), the model answers the YUV planes ``codec`` encodes, unless ``rgb`` or
    ``pipe.planes`` is off."""
    if min(info.width, info.height) < 1:
        return None
    like = np.zeros((info.height, info.width, 3), np.uint16 if info.bits > 8 else np.uint8)
    yuv = planes_for(info, codec, up.scale) if pipe.planes and not rgb else None
    return up.flight(like, pipe.jobs, pipe.streams, yuv)


def upscale_video(up: Upscaler, src: Path, dst: Path, codec: str | None = None, crf: int | None = None,
                  compare: Path | None = None, progress: bool = True, preset: str | None = None,
                  pipeline: Pipeline | None = None, target_fps: float | None = None, max_frames: int | None = None,
                  give_up_s: float | None = None) -> VideoResult:
    """Upscale video ``src`` into ``dst`` (and a bicubic | model split screen into ``compare``).

    ``codec`` None: H.264, or VP9 for WebM (which takes no H.264). ``target_fps``: the rate the verdict asks for
    (None: the source's). A sample run (`auto` timing a member): ``max_frames`` stops after that many frames,
    ``give_up_s`` once that long has passed since the first frame out of the model (the rate is known to fall
    short by then).
    """
    t0 = time.perf_counter()
    pipe = pipeline or Pipeline()
    res = VideoResult(src, dst, target_fps=target_fps or 0.0)
    codec = codec or DEFAULT_CODEC.get(dst.suffix.lower(), "libx264")
    reader = VideoReader(src, pipe.decode_threads, pipe.decode_thread_type)   # VideoError: unreadable, no video
    info = reader.info
    res.source_fps = info.fps
    try:
        flight = open_flight(up, info, pipe, codec, rgb=compare is not None)   # the split screen is made in RGB
    except BaseException:
        reader.close()
        raise
    stop, halt = threading.Event(), threading.Event()   # stop: a stage failed; halt: the sample is long enough
    decoded, inferred = _Pipe(stop), _Pipe(stop)
    failure: list[BaseException] = []
    out = {"writer": None, "compare": None}

    def decode() -> None:
        try:
            lower_priority(pipe.nice)   # before the decoder opens (first packet): its threads inherit it
            items, n = iter(reader), 0
            while not stop.is_set() and not halt.is_set():
                t = time.perf_counter()
                if (item := next(items, _END)) is _END:
                    break
                if isinstance(item, Picture):   # made model-ready here, off the model's thread
                    if max_frames is not None and n >= max_frames:
                        break
                    n += 1
                    own = flight is not None and flight.accepts(item.rgb)
                    item = _Job(item, item.rgb.dtype, flight.prepare(item.rgb) if own else up.to_input(item.rgb),
                                own)
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
            lower_priority(pipe.nice)   # before the encoder opens (first frame): x264's threads inherit it
            while (item := inferred.get()) is not _END:
                if not isinstance(item, _Job):   # an audio packet
                    if out["writer"] is None:
                        pending_audio.append(item)
                    else:
                        out["writer"].mux_audio(item)
                    continue
                pic, sr = item.pic, item.sr
                if out["writer"] is None:
                    out["writer"] = _open_writer(dst, info, sr, codec, crf, reader, pic.rotation, res, preset,
                                                 pipe.encode_threads)
                    if compare is not None:
                        out["compare"] = _open_writer(compare, info, sr, codec, crf, reader, pic.rotation, res,
                                                      preset, pipe.encode_threads)
                    for a in pending_audio:
                        out["writer"].mux_audio(a)
                    pending_audio.clear()
                t = time.perf_counter()
                out["writer"].write_output(sr, pic.pts)
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
    for t in threads:
        t.start()
    expected = info.frames or round(info.duration_s * info.fps) or None   # for the bar; the count is not trusted
    if max_frames is not None:
        expected = min(expected or max_frames, max_frames)
    bar = progress_bar(total=expected, desc=f"upscale {src.name}", unit="frame", disable=not progress)
    order: collections.deque = collections.deque()   # frames in the model and audio behind them, in file order
    alone_s = [0.0]   # model time of frames run outside the flight

    def done_one() -> None:
        """Count a frame out of the model: start-up ends with the first; a sample stops once its answer is known."""
        res.frames += 1
        bar.update(1)
        now = time.perf_counter() - t0
        if res.frames == 1:
            res.startup_s = now
        elif give_up_s is not None and now - res.startup_s > give_up_s and not halt.is_set():
            halt.set()
            res.stopped_early = True

    def hand_over(keep: int) -> None:
        """Pass on, in file order, the audio at the head and every frame that is done, waiting for the oldest
        frames while more than ``keep`` are in the model."""
        while order:
            head = order[0]
            if isinstance(head, _Job) and not (flight.pending > keep or flight.ready):
                return
            order.popleft()
            if isinstance(head, _Job):
                head.sr = flight.take()
                head.pic.rgb = None   # the encoder needs the model's output only: drop the decoded pixels early
                done_one()
            inferred.put(head)

    try:
        while (item := decoded.get()) is not _END:
            if isinstance(item, _Job) and item.own:
                hand_over(flight.jobs - 1)   # room for this frame
                flight.submit(item.x)
            elif isinstance(item, _Job):     # not the flight's size: after every frame before it, on its own
                hand_over(0)
                t1 = time.perf_counter()
                item.sr = up.infer(item.x)
                alone_s[0] += time.perf_counter() - t1
                done_one()
                inferred.put(item)
                continue
            order.append(item)
            hand_over(flight.jobs if flight is not None else 0)
        if flight is not None:
            hand_over(0)
        inferred.put(_END)
        for t in threads:
            t.join()
    except BaseException as e:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        _close_flight(flight)
        _abort(out)
        reader.close()
        if not isinstance(e, KeyboardInterrupt):   # interrupted: the partial file stays, as the CLI says
            _remove_partials(dst, compare)
        raise
    finally:
        bar.close()
    _close_flight(flight)
    res.model_s = (flight.busy_s if flight is not None else 0.0) + alone_s[0]
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
        res.seconds = time.perf_counter() - t0
        return res
    if out["writer"] is None:
        res.errors.append("no frame could be decoded")
        res.dst = None
        res.seconds = time.perf_counter() - t0
        return res
    _finish(out, dst, compare, res)
    res.seconds = time.perf_counter() - t0   # the encoder's last frames and the trailer count: they are the run's
    return res


def _close_flight(flight: Flight | None) -> None:
    """Wait for frames still in the model (the runtime reads their buffers until done)."""
    if flight is not None:
        try:
            flight.close()
        except Exception:  # noqa: BLE001 - closing after a failure: the first error is the one reported
            pass


def _finish(out: dict, dst: Path, compare: Path | None, res: VideoResult) -> None:
    """Close each output and name it only once it is whole: one whose end fails to write (the encoder's last
    packets, the trailer, the fsync) is removed and recorded in ``res``, so nothing half-made is left."""
    for key, final in (("writer", dst), ("compare", compare)):
        writer = out[key]
        if writer is None:
            continue
        try:
            writer.close()
            res.notes += [n for n in writer.notes if n not in res.notes]
            partial_path(final).replace(final)
        except (VideoError, OSError) as e:
            writer.abort()
            partial_path(final).unlink(missing_ok=True)
            res.errors.append(str(e) if isinstance(e, VideoError) else f"cannot name {final}: {e.strerror or e}")
            if final == dst:
                res.dst = None


def _open_writer(final: Path, info, sr: torch.Tensor | np.ndarray, codec: str, crf: int | None, reader: VideoReader,
                 rotation: int, res: VideoResult, preset: str | None, threads: int = 0) -> VideoWriter:
    """A VideoWriter into ``final``'s partial file, at the model output's size."""
    height, width = output_size(sr)
    w = VideoWriter(partial_path(final), info, width, height, codec, crf, reader.audio, rotation, preset,
                    final=final, threads=threads)
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

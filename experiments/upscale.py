"""`srnas upscale`: apply a zoo, searched or exported model to images, videos, or folders of them.

The model runs through the Upscaler API (experiments/upscaler.py) in its executor; videos go through
experiments/video_upscale.py. Every readable image is written, keeping what the model does not see: an
alpha channel (upscaled bicubic and re-attached), 16-bit depth, and greyness (grey in, grey out). Inputs
that cannot be read or written are listed at the end; a bad --out is refused before any frame is touched.
"""
from __future__ import annotations

import functools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from srnas.supernet.errors import UserError
from srnas.supernet.progress import progress_bar
from srnas.supernet.imaging import IMAGE_EXTS, ImageError, imresize, read_pixels, write_png
from srnas.supernet import writes
from srnas.supernet.writes import disk_full, is_full, make_folder

from .crops import crop_sheet
from .tiling import tiled_upscale  # noqa: F401  (bench and tests import it from here)
from .auto_pick import AutoChoice, front_members, pick_keeping
from .upscaler import Upscaler
from .video import DEFAULT_CODEC, VIDEO_SUFFIXES, VideoError, check_codec, check_container, check_quality, probe
from .video_upscale import partial_path, upscale_video

AUTO = "auto"        # the model name that picks a front member per video
AUTO_FRAMES = 48     # frames of a video's start each candidate is timed on: past start-up, a second or two of video


# BT.601 luma weights (full range). On grey images replicated to RGB and run x2 through the RGB zoo
# models (Set5 + Set14 made grey), these weights and the plain channel mean scored the same PSNR within
# 0.001 dB (abpn 32.03, wdsr_b 32.18 dB; one channel alone 0.01 dB lower): the model's channels differ
# only by small colour noise, which any near-even average removes. Luma is taken because it is the Y
# that quality is scored on, so a grey result is exactly the Y a user would measure on the RGB one.
LUMA = (0.299, 0.587, 0.114)
Failure = tuple[Path, str]   # input file, one-line reason naming it


@dataclass
class Frame:
    """An image as the model takes it (1x3xHxW RGB in [0,1]) plus what is put back afterwards."""

    rgb: torch.Tensor
    alpha: torch.Tensor | None   # 1x1xHxW in [0,1], upscaled bicubic beside the model
    grey: bool                   # write one channel (plus alpha)
    bits: int                    # 8 or 16: the depth the output is written at


def is_video(path: Path) -> bool:
    """Whether ``path`` is named as a video (.mp4, .mkv, .webm, .mov, ...)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image and video files given directly, plus every image and video of each folder (in name order)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and (f.suffix.lower() in IMAGE_EXTS or is_video(f)))
            if not found:
                raise UserError(f"folder {p} holds no images (png, jpg, bmp, ...) or videos (mp4, mkv, webm, mov)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"input {p} is neither an image or video file nor a folder")
    return list({f.resolve(): f for f in files}.values())  # a file named twice (or in a named folder) once


def check_out_dir(out: str | Path) -> Path:
    """Refuse an --out that names a file or lies below one, creating nothing: the folder is made once the model
    loads (supernet.writes.make_folder), so a refused model leaves no empty folder behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder (it is created if missing)")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--out {out} cannot be created: {blocker} is a file, not a folder")
    nearest = next(p for p in (out, *out.parents) if p.exists())
    try:
        writes.write_probe(nearest)   # the folder itself, or where it would be made
    except OSError as e:
        raise UserError(f"--out {out} is not writable: {e.strerror or e}") from None
    return out


def plan_outputs(files: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: <out>/<stem>.png, a video <out>/<stem><its suffix>; refuses outputs that would
    clash or overwrite an input."""
    jobs, taken = [], {}
    sources = {f.resolve() for f in files}
    for f in files:
        dst = out_dir / (f.name if is_video(f) else f"{f.stem}.png")
        if dst in taken:
            raise UserError(f"{taken[dst]} and {f} would both be written to {dst}; "
                            "upscale them into separate --out folders")
        if dst.resolve() in sources:
            raise UserError(f"the result of {f} would overwrite that input ({dst}); choose another --out folder")
        taken[dst] = f
        jobs.append((f, dst))
    return jobs


def to_frame(img: np.ndarray, path: Path) -> Frame:
    """Split pixels as read (grey, grey+alpha, RGB or RGBA; 8 or 16 bits) into what the model runs on."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4) or min(img.shape[:2]) < 1:
        raise ImageError(f"{path} is not a usable image: expected grey, grey+alpha, RGB or RGBA pixels, "
                         f"got shape {img.shape}")
    bits = 8 if img.dtype in (np.uint8, np.bool_) else 16  # floats and wide ints keep more than 8 bits
    x = unit_float(img)
    colour, alpha = (x[..., :-1], x[..., -1:]) if img.shape[2] in (2, 4) else (x, None)
    raw = img[..., : colour.shape[2]]
    grey = colour.shape[2] == 1 or bool((raw[..., 0] == raw[..., 1]).all() and (raw[..., 1] == raw[..., 2]).all())
    rgb = np.repeat(colour[..., :1], 3, axis=2) if colour.shape[2] == 1 else colour
    return Frame(_chw(rgb), None if alpha is None else _chw(alpha), grey, bits)


def unit_float(img: np.ndarray) -> np.ndarray:
    """Pixels of any reader's dtype as float32 in [0, 1]."""
    if img.dtype == np.bool_:
        return img.astype(np.float32)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if np.issubdtype(img.dtype, np.floating):  # same rule as the training reader: <= 1 is [0, 1]
        x = img.astype(np.float32)
        return np.clip(x if x.max() <= 1.0 else x / 255.0, 0.0, 1.0)
    return np.clip(img.astype(np.float32) / 65535.0, 0.0, 1.0)  # uint16, and 16-bit grey read as int32


def _chw(x: np.ndarray) -> torch.Tensor:
    """HxWxC float -> 1xCxHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).unsqueeze(0)


def from_frame(sr: torch.Tensor, frame: Frame) -> np.ndarray:
    """The model's 1x3xHxW output back to pixels: grey or RGB, alpha re-attached, at the input's depth."""
    y = sr.detach().float().clamp(0, 1)
    if frame.grey:
        y = sum(w * y[:, c:c + 1] for c, w in enumerate(LUMA))
    if frame.alpha is not None:
        y = torch.cat([y, imresize(frame.alpha, tuple(y.shape[-2:])).clamp(0, 1)], dim=1)
    top = 255.0 if frame.bits == 8 else 65535.0
    out = y[0].permute(1, 2, 0).mul(top).round().cpu().numpy()
    out = out.astype(np.uint8 if frame.bits == 8 else np.uint16)
    return out[:, :, 0] if out.shape[2] == 1 else out


def compare_path(dst: Path) -> Path:
    """Where --compare writes the side-by-side of output ``dst``."""
    return dst.with_name(f"{dst.stem}.compare{dst.suffix}")


def upscale_files(up: Upscaler, jobs: list[tuple[Path, Path]], compare: bool = False) -> dict:
    """Upscale each (input image, output) pair; frames that fail are listed and the rest still written."""
    model_s, t0, written = 0.0, time.perf_counter(), []
    failed: list[Failure] = []
    for f, dst in progress_bar(jobs, desc=f"upscale {up.name}", disable=not jobs):
        try:
            frame = to_frame(read_pixels(f), f)
        except ImageError as e:
            failed.append((f, str(e)))
            continue
        t1 = time.perf_counter()
        try:
            sr = up.infer(frame.rgb)
        except (RuntimeError, ValueError) as e:  # e.g. out of memory on a huge frame: --tile helps
            failed.append((f, f"{f}: the model failed on it ({_first_line(e)})"))
            continue
        model_s += time.perf_counter() - t1
        try:
            write_png(dst, from_frame(sr, frame))
            if compare:
                write_png(compare_path(dst), crop_sheet(frame.rgb, {up.name: sr}))
        except OSError as e:  # folder removed meanwhile: later frames may still fit; a full disk stops here
            if is_full(e):
                raise disk_full(dst, f"{len(written)} of {len(jobs)} frame(s) were written whole") from None
            failed.append((f, f"{f}: cannot write {dst} ({e.strerror or e})"))
            continue
        written.append(str(dst))
    total_s = time.perf_counter() - t0
    n = len(written)
    return {"model": up.name, "frames": n, "model_s": model_s, "total_s": total_s,
            "fps": n / model_s if model_s else float("inf"), "fps_with_io": n / total_s if total_s else float("inf"),
            "outputs": written, "failed": [{"path": str(f), "reason": r} for f, r in failed]}


def _first_line(e: Exception) -> str:
    """The first line of an exception's message."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def upscale_command(spec: str, inputs: list[str], out_dir: str, scale: int | None = 2, tile: int = 0,
                    margin: int = 16, weights_dir: str | None = None, threads: int = 0, backend: str | None = None,
                    precision: str | None = None, codec: str | None = None, crf: int | None = None,
                    compare: bool = False, preset: str | None = None, fps: float | None = None) -> dict:
    """What `srnas upscale` runs: check inputs and --out, load the model in its executor (``auto``: per video, the
    front member that keeps its rate), upscale images and videos, print speed and failures."""
    if threads < 0:
        raise UserError(f"--threads {threads}: give a number of threads, or 0 for all cores")
    if threads > 0:
        torch.set_num_threads(threads)
    if tile < 0 or margin < 0:
        raise UserError("--tile and --margin must be >= 0")
    if fps is not None and not fps > 0:
        raise UserError(f"--fps {fps:g}: give the frame rate to keep, > 0 (e.g. 30, or 60 for live use)")
    files = collect_inputs(inputs)
    videos = [f for f in files if is_video(f)]
    if spec == AUTO and len(videos) < len(files):
        raise UserError("auto picks the member that keeps a video's frame rate: give videos only (for images, "
                        "name a model, e.g. srnas_abpn)")
    check_video_options(videos, codec, crf, preset)
    jobs = plan_outputs(files, check_out_dir(out_dir))
    make = functools.partial(_make_upscaler, backend=backend, precision=precision, scale=scale, threads=threads,
                             tile=tile, margin=margin, weights_dir=weights_dir)
    if spec == AUTO:
        res = {"model": AUTO, "frames": 0, "outputs": [], "failed": [], "videos": [], "auto": []}
        make_folder(out_dir)
        for f, dst in jobs:
            _auto_video(f, dst, make, scale or 2, weights_dir, (codec, crf, preset), compare, fps, res)
        return _report_failures(res, len(jobs))
    with make(spec) as up:
        make_folder(out_dir)   # once the model loads (a refused one leaves no folder), before any frame
        print(f"{up.name} x{up.scale} in {up.executor} ({up.chosen_by})")
        images = [(f, d) for f, d in jobs if not is_video(f)]
        res = upscale_files(up, images, compare)
        if images:
            speed = (f": {res['fps']:.3f} fps (model), {res['fps_with_io']:.3f} fps (with image I/O)"
                     if res["frames"] else "")
            print(f"{res['frames']} frame(s) -> {out_dir}{speed}, tile={tile or 'none'} margin={margin}")
        res["videos"] = []
        for f, dst in ((f, d) for f, d in jobs if is_video(f)):
            res["videos"].append(_one_video(up, f, dst, codec, crf, compare, res["failed"], preset, fps))
    return _report_failures(res, len(jobs))


def _make_upscaler(name: str, **kw) -> Upscaler:
    """An Upscaler of ``name`` with the command's executor, scale, threads and tiles."""
    return Upscaler(name, kw["backend"], kw["precision"], scale=kw["scale"], threads=kw["threads"], tile=kw["tile"],
                    margin=kw["margin"], weights_dir=kw["weights_dir"])


def _report_failures(res: dict, n_inputs: int) -> dict:
    """List the inputs not upscaled on stderr; ``res`` as it is."""
    if res["failed"]:
        print(f"{len(res['failed'])} of {n_inputs} input(s) not upscaled:", file=sys.stderr)
        for fail in res["failed"]:
            print(f"  {fail['reason']}", file=sys.stderr)
    return res


def _auto_video(src: Path, dst: Path, make: Callable[[str], Upscaler], scale: int, weights_dir: str | None,
                video: tuple, compare: bool, fps: float | None, res: dict) -> None:
    """`auto` on one video: pick the member that keeps its rate (one line on why), then upscale it with that one."""
    codec, crf, preset = video
    try:
        rate = fps or probe(src).fps
    except VideoError as e:
        res["failed"].append({"path": str(src), "reason": str(e)})
        return
    if not rate:
        res["failed"].append({"path": str(src), "reason": f"{src}: the file gives no frame rate for auto to keep; "
                                                          "pass --fps"})
        return
    try:
        up, choice = choose_for_video(src, rate, make, scale, weights_dir, video)
    except (VideoError, RuntimeError, ValueError) as e:
        reason = str(e) if isinstance(e, VideoError) else f"{src}: the model failed on it ({_first_line(e)})"
        res["failed"].append({"path": str(src), "reason": reason})
        return
    with up:
        print(f"{up.name} x{up.scale} in {up.executor} ({up.chosen_by})")
        print(f"{src.name}: {choice.line()}")
        res["auto"].append({"input": str(src), **choice.to_json()})
        res["videos"].append(_one_video(up, src, dst, codec, crf, compare, res["failed"], preset, fps))
    res["frames"] += res["videos"][-1].get("frames", 0)


def choose_for_video(src: Path, target: float, make: Callable[[str], Upscaler], scale: int,
                     weights_dir: str | None, video: tuple = (None, None, None)) -> tuple[Upscaler, AutoChoice]:
    """The largest member of this CPU's front at ``scale`` that keeps ``target`` frames/s end to end on ``src``'s
    first frames here, as an Upscaler ready to run (the one timed, where it was), and the choice."""
    made: dict[str, Upscaler] = {}

    def rate_of(name: str) -> float:
        rate, up = time_member(name, src, target, make, video)
        if up is not None:
            made[name] = up
        return rate
    choice = pick_keeping(front_members(scale, weights_dir), rate_of, target,
                          f"end to end on the first {AUTO_FRAMES} frames", made)
    up = made.get(choice.name) or make(choice.name)
    up.choice = choice
    return up, choice


def time_member(name: str, src: Path, target: float, make: Callable[[str], Upscaler],
                video: tuple = (None, None, None)) -> tuple[float, Upscaler | None]:
    """Frames/s end to end of member ``name`` on ``src``'s first AUTO_FRAMES frames through the real pipeline
    (decode, model, encode into a scratch file), start-up left out; a run that falls short of ``target`` stops
    as soon as that is certain. Returns the rate and the Upscaler, compiled for this video (tests replace this)."""
    codec, crf, preset = video
    up = make(name)
    try:
        with tempfile.TemporaryDirectory(prefix="srnas-auto-") as d:
            r = upscale_video(up, src, Path(d) / f"sample{src.suffix}", codec, crf, progress=False, preset=preset,
                              max_frames=AUTO_FRAMES, give_up_s=(AUTO_FRAMES - 1) / target)
    except BaseException:
        up.close()
        raise
    if r.dst is None:   # not one frame through: the video's own problem, said by the real run
        up.close()
        raise VideoError(f"{src}: auto could not time {name} on it ({'; '.join(r.errors) or 'no frame decoded'})")
    return r.fps, up


def check_video_options(videos: list[Path], codec: str | None, crf: int | None, preset: str | None) -> None:
    """UserError (one line) unless --codec exists and the codec of each video takes --crf and --preset; before
    any folder is made or frame read."""
    try:
        if codec is not None:
            check_codec(codec)
            check_quality(codec, crf, preset)
            for v in videos:
                check_container(codec, v)
            return
        # without --codec each video gets its container's default; no video: --crf / --preset are still checked
        chosen = {DEFAULT_CODEC.get(v.suffix.lower(), "libx264"): v for v in videos} or {"libx264": None}
        for name, video in chosen.items():
            why = f" (the default for {video.name}; --codec picks another)" if video is not None else ""
            check_quality(name, crf, preset, why)
    except VideoError as e:
        raise UserError(str(e)) from None


def _one_video(up: Upscaler, src: Path, dst: Path, codec: str | None, crf: int | None, compare: bool,
               failed: list[dict], preset: str | None = None, fps: float | None = None) -> dict:
    """Upscale one video, print its closing line and notes, and add what went wrong to ``failed``."""
    try:
        r = upscale_video(up, src, dst, codec, crf, compare_path(dst) if compare else None, preset=preset,
                          target_fps=fps)
    except (VideoError, RuntimeError, ValueError) as e:   # RuntimeError: e.g. out of memory in the model
        reason = str(e) if isinstance(e, VideoError) else f"{src}: the model failed on it ({_first_line(e)})"
        failed.append({"path": str(src), "reason": reason})
        return {"input": str(src), "output": None, "frames": 0, "errors": [reason]}
    except KeyboardInterrupt:
        print(f"interrupted: {partial_path(dst)} holds the frames so far (it plays up to its last fragment); "
              "a rerun replaces it", file=sys.stderr)
        raise
    print(r.closing_line())
    for note in r.notes:
        print(f"  note: {note}")
    if r.errors:
        done = f"{r.frames} decodable frame(s) written to {r.dst}" if r.dst else "nothing written"
        failed.append({"path": str(src), "reason": f"{src}: {'; '.join(r.errors)} ({done})"})
    return r.to_json()

"""Test videos made on the spot, with a sine audio track: natural content (photographs panned and zoomed, as a
camera would film them) and, for tiny unit tests, a cheap pan over the embedded images.

The photographs are those shipped inside scikit-image (``skimage.data``: chelsea, coffee, the motorcycles,
rocket, astronaut) and, where present, the B100 photos of the benchmark folder (``SRNAS_DATA``, else
../shared/data/benchmarks), at their own scale: no detail is invented by upsampling them. The tests and
experiments/bench_video.py make their videos here, so no video file is shipped or downloaded.
"""
from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
import numpy as np
import torch
from PIL import Image

from srnas.supernet.data import EMBEDDED, default_data_root, load_images, skimage_images
from srnas.supernet.imaging import ImageError, imresize, list_images, read_image

from .video import DEFAULT_CODEC, Colour, VideoInfo, VideoWriter

AUDIO_CODEC = {".webm": "libopus", ".mkv": "libopus"}   # WebM takes Opus / Vorbis; MP4 and MOV take AAC
# the photographs among scikit-image's embedded images (the others are microscopy and a star field)
PHOTOS = ["chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg", "astronaut.png"]
TILE = 300              # side of each photo's centre crop in the mosaic (the smallest embedded photo is 300 high)
MOTIONS = ("pan", "zoom")
# how sources are encoded: as a camera or a download would be (CABAC, B-frames), not the fast-decoding ultrafast
SOURCE_PRESET, SOURCE_CRF = "medium", 20


def canvas(height: int, width: int) -> np.ndarray:
    """The embedded validation images side by side, resized to ``height`` rows, tiled to at least ``width``."""
    parts = []
    for im in load_images(EMBEDDED, "val"):
        x = torch.from_numpy(im.rgb).permute(2, 0, 1)[None].float() / 255
        w = round(im.rgb.shape[1] * height / im.rgb.shape[0])
        parts.append((imresize(x, (height, w)).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    strip = np.concatenate(parts, axis=1)
    reps = -(-width // strip.shape[1]) + 1
    return np.concatenate([strip] * reps, axis=1)


def moving_frames(width: int, height: int, n: int, step: float = 3.0) -> Iterator[np.ndarray]:
    """``n`` HxWx3 uint8 frames panning right over the embedded images, ``step`` pixels a frame (with wrap)."""
    c = canvas(height, width + int(step * n) + 1)
    for i in range(n):
        x0 = int(round(i * step)) % max(1, c.shape[1] - width)
        yield np.ascontiguousarray(c[:, x0:x0 + width])


def photographs(benchmarks: bool = True) -> list[np.ndarray]:
    """Real photographs as HxWx3 uint8, at least TILE on each side: the embedded ones, then B100's where found."""
    return list(_photographs(benchmarks))


@functools.lru_cache(maxsize=2)
def _photographs(benchmarks: bool) -> tuple[np.ndarray, ...]:
    photos = [im.rgb for im in skimage_images(PHOTOS)]
    folder = default_data_root() / "B100"
    if benchmarks and folder.is_dir():
        for f in list_images(folder):
            try:
                photos.append(read_image(f).rgb)
            except ImageError:   # a damaged file in a shared folder: the others make the mosaic
                continue
    return tuple(p for p in photos if min(p.shape[:2]) >= TILE)


def photo_mosaic(width: int, height: int, seed: int = 0, benchmarks: bool = True) -> np.ndarray:
    """Photographs at their own scale, centre-cropped to TILE squares and laid in a grid of at least ``width`` x
    ``height`` (in a seeded order; a photo used again is mirrored, so no two tiles are the same)."""
    photos = photographs(benchmarks)
    order = np.random.default_rng(seed).permutation(len(photos))
    rows, cols = -(-height // TILE), -(-width // TILE)
    grid = np.empty((rows * TILE, cols * TILE, 3), np.uint8)
    for k in range(rows * cols):
        p = photos[order[k % len(photos)]]
        top, left = (p.shape[0] - TILE) // 2, (p.shape[1] - TILE) // 2
        tile = p[top:top + TILE, left:left + TILE]
        r, c = divmod(k, cols)
        grid[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = tile[:, ::-1] if (k // len(photos)) % 2 else tile
    return grid


def pan_frames(width: int, height: int, n: int, fps: float = 30.0, seed: int = 0,
               benchmarks: bool = True) -> Iterator[np.ndarray]:
    """``n`` frames of a slow diagonal pan over photographs: a frame width every 8 s, at sub-pixel steps (each frame
    resampled, as a camera's motion is), down a third as fast."""
    step = width / (8.0 * fps)
    mosaic = Image.fromarray(photo_mosaic(width + int(step * n) + 4, height + int(step * n / 3) + 4, seed,
                                          benchmarks))
    for i in range(n):
        x0, y0 = 1 + i * step, 1 + i * step / 3
        yield np.asarray(mosaic.resize((width, height), Image.BICUBIC, box=(x0, y0, x0 + width, y0 + height)))


def zoom_frames(width: int, height: int, n: int, zoom: float = 1.5, seed: int = 0,
                benchmarks: bool = True) -> Iterator[np.ndarray]:
    """``n`` frames of a slow zoom into photographs: from a view ``zoom`` times wider down to their own scale,
    every frame resampled (with antialiasing) about the centre."""
    mosaic = Image.fromarray(photo_mosaic(int(width * zoom) + 4, int(height * zoom) + 4, seed, benchmarks))
    cx, cy = mosaic.width / 2, mosaic.height / 2
    for i in range(n):
        z = zoom + (1.0 - zoom) * i / max(1, n - 1)
        w, h = width * z, height * z
        yield np.asarray(mosaic.resize((width, height), Image.BICUBIC, box=(cx - w / 2, cy - h / 2, cx + w / 2,
                                                                             cy + h / 2)))


def natural_frames(motion: str, width: int, height: int, n: int, fps: float = 30.0, seed: int = 0,
                   benchmarks: bool = True) -> Iterator[np.ndarray]:
    """``n`` frames of photographs panned or zoomed (``motion``: pan, zoom)."""
    if motion == "pan":
        return pan_frames(width, height, n, fps, seed, benchmarks)
    if motion == "zoom":
        return zoom_frames(width, height, n, seed=seed, benchmarks=benchmarks)
    raise ValueError(f"motion {motion!r}: one of {MOTIONS}")


def natural_video(path: str | Path, motion: str, width: int, height: int, seconds: float, fps: float = 30.0, *,
                  seed: int = 0, benchmarks: bool = True, preset: str = SOURCE_PRESET,
                  crf: int = SOURCE_CRF) -> Path:
    """A clip of photographs panned or zoomed, with a tone, encoded as a camera or a download would be."""
    n = max(1, int(round(seconds * fps)))
    return make_video(path, natural_frames(motion, width, height, n, fps, seed, benchmarks), fps, crf=crf,
                      preset=preset)


def make_video(path: str | Path, frames: Iterable[np.ndarray], fps: float | Fraction = 25, *, audio: bool = True,
               codec: str | None = None, pix_fmt: str = "yuv420p", crf: int | None = 18, matrix: str = "ITU601",
               full_range: bool = False, pts: Sequence[int] | None = None, time_base: Fraction | None = None,
               rotation: int = 0, preset: str | None = None) -> Path:
    """Write ``frames`` (HxWx3 uint8 RGB) as a video with a 440 Hz tone, colour tagged ``matrix`` / range.

    ``pts`` (in ``time_base``) gives variable frame rates; default: one frame every 1/fps. ``preset``: x264's
    (default ultrafast, the fastest to write and to decode).
    """
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    rate = Fraction(fps).limit_denominator(1001)
    tb = time_base or 1 / rate
    space = {"ITU709": 1, "ITU601": 6, "BT2020": 9}[matrix]
    info = VideoInfo(path, first.shape[1], first.shape[0], rate, tb, 0, 0.0, pix_fmt,
                     16 if first.dtype == np.uint16 else 8, Colour(matrix, full_range, space, space, space), "", None)
    w = VideoWriter(path, info, first.shape[1], first.shape[0], codec or DEFAULT_CODEC.get(path.suffix, "libx264"), crf,
                    rotation=rotation, preset=preset)
    tone = w.container.add_stream(AUDIO_CODEC.get(path.suffix.lower(), "aac"), rate=48000, layout="stereo") \
        if audio else None
    sent = 0   # audio samples written so far: kept up with the video, so the muxer interleaves as it goes
    for i, f in enumerate(_chain(first, frames)):
        t = pts[i] if pts is not None else i
        w.write(f, t)
        if tone is not None:
            sent = _tone_until(w.container, tone, float((t + 1) * tb) if pts is not None else (i + 1) / rate, sent)
    if tone is not None:
        w.container.mux(tone.encode(None))
    w.close()
    return path


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _tone_until(container, stream, seconds: float, sent: int, rate: int = 48000) -> int:
    """Encode the 440 Hz tone from sample ``sent`` up to ``seconds``; returns the samples now sent."""
    size = stream.codec_context.frame_size or 1024
    while sent + size <= seconds * rate + size - 1:
        t = (np.arange(sent, sent + size) / rate)
        s = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([s, s]), format="fltp", layout="stereo")
        af.sample_rate, af.pts = rate, sent
        container.mux(stream.encode(af))
        sent += size
    return sent

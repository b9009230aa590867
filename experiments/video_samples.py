"""Test videos made on the spot: moving content cut from the embedded images, with a sine audio track.

The tests and experiments/bench_video.py make their videos here, so no video file is shipped or downloaded.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
import numpy as np
import torch

from srnas.supernet.data import EMBEDDED, load_images
from srnas.supernet.imaging import imresize

from .video import DEFAULT_CODEC, Colour, VideoInfo, VideoWriter

AUDIO_CODEC = {".webm": "libopus", ".mkv": "libopus"}   # WebM takes Opus / Vorbis; MP4 and MOV take AAC


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


def make_video(path: str | Path, frames: Iterable[np.ndarray], fps: float | Fraction = 25, *, audio: bool = True,
               codec: str | None = None, pix_fmt: str = "yuv420p", crf: int | None = 18, matrix: str = "ITU601",
               full_range: bool = False, pts: Sequence[int] | None = None, time_base: Fraction | None = None,
               rotation: int = 0) -> Path:
    """Write ``frames`` (HxWx3 uint8 RGB) as a video with a 440 Hz tone, colour tagged ``matrix`` / range.

    ``pts`` (in ``time_base``) gives variable frame rates; default: one frame every 1/fps.
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
                    rotation=rotation)
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

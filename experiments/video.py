"""Video in and out with PyAV (FFmpeg in a pip wheel): frames as RGB arrays, everything else kept.

Frames are decoded to RGB with the stream's own matrix (BT.601 / BT.709 / ...) and range (limited /
full), and encoded back from RGB with the same ones, tagged so players read them the same way. Time
stamps are copied frame by frame (variable frame rate stays variable), the audio packets are copied
as they are (not re-encoded), the display rotation is re-tagged, and input above 8 bits is decoded to
16-bit RGB and written 10-bit where the codec takes it.
"""
from __future__ import annotations

import errno
import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import av.error
import numpy as np
import torch
from av.video.reformatter import Interpolation

from srnas.latency.runtimes.openvino_runtime import YuvOut
from srnas.supernet.writes import is_full

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi")
# accurate rounding and full chroma interpolation: without them swscale's RGB <-> YUV is off by a few levels
SWS_FLAGS = (Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
             | Interpolation.FULL_CHR_H_INP)
# AVColorSpace values -> the matrix swscale converts with; 6 (SMPTE 170M) is BT.601's matrix
MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
LIMITED, FULL = 1, 2            # AVColorRange MPEG / JPEG
# swscale's matrices -> the luma weights of red and blue (Kr, Kb) that define them
LUMA_WEIGHTS = {"ITU709": (0.2126, 0.0722), "ITU601": (0.299, 0.114), "BT2020": (0.2627, 0.0593),
                "SMPTE240M": (0.212, 0.087), "FCC": (0.30, 0.11)}
PLANAR_420 = ("yuv420p", "yuvj420p")   # the 8-bit 4:2:0 formats the model's own YUV output fills
# muxer options: flush every packet to the file (else FFmpeg holds it all until the end), and MP4 / MOV
# fragmented, so a killed encode leaves a file that plays up to its last fragment (Matroska does by itself);
# delay_moov: the header waits for the first fragment, so it can hold the edit list of a stream whose first
# time stamp is not 0 (without it, an encode with no B-frames stretched the first frame over that gap)
FLUSH = {"flush_packets": "1"}
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
STREAMABLE = {".mp4": FRAGMENTED, ".m4v": FRAGMENTED, ".mov": FRAGMENTED}
DEFAULT_CODEC = {".webm": "libvpx-vp9"}   # WebM takes VP8/VP9/AV1 only; everything else defaults to H.264
# the codecs --crf is passed to, and the range each takes (x264 / x265: 0-51 at 8 and 10 bits; libvpx: 0-63)
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63)}
PRESET_CODECS = ("libx264", "libx265")   # the codecs --preset is passed to


class VideoError(Exception):
    """A video that cannot be read or written; the message is one line naming the file."""


@dataclass
class Colour:
    """How a stream's YUV maps to RGB: the matrix and range used to convert, and the tags written back."""

    matrix: str          # swscale's name: ITU709, ITU601, ...
    full_range: bool
    space_tag: int = 2   # AVColorSpace / primaries / transfer as found (2: unspecified), copied to the output
    primaries_tag: int = 2
    trc_tag: int = 2

    @property
    def range_tag(self) -> int:
        return FULL if self.full_range else LIMITED

    def describe(self) -> str:
        """E.g. 'BT.709 limited'."""
        name = {"ITU709": "BT.709", "ITU601": "BT.601", "BT2020": "BT.2020"}.get(self.matrix, self.matrix)
        return f"{name} {'full' if self.full_range else 'limited'}"


def colour_of(codec_context, height: int) -> Colour:
    """The colour of a decoder's stream; untagged: BT.709 from 720 lines up, else BT.601 (as players assume)."""
    space = int(codec_context.colorspace or 2)
    matrix = MATRIX.get(space, "ITU709" if height >= 720 else "ITU601")
    rng = int(codec_context.color_range or 0)
    full = rng == FULL or (rng == 0 and str(codec_context.pix_fmt or "").startswith("yuvj"))
    return Colour(matrix, full, space, int(codec_context.color_primaries or 2), int(codec_context.color_trc or 2))


def pixel_bits(pix_fmt: str | None) -> int:
    """Bits per sample of a pixel format (8 when unknown)."""
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (TypeError, ValueError):
        return 8


@dataclass
class VideoInfo:
    """What a video file holds, as far as upscaling needs to know."""

    path: Path
    width: int
    height: int
    rate: Fraction | None            # average frame rate
    time_base: Fraction
    frames: int                      # from the container (0: it does not say)
    duration_s: float
    pix_fmt: str
    bits: int
    colour: Colour
    codec: str
    audio: str | None                # audio codec name, None without audio

    @property
    def fps(self) -> float:
        return float(self.rate) if self.rate else 0.0


def open_input(path: str | Path):
    """Open ``path`` for reading, or VideoError saying why it is no readable video."""
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: not a readable video ({_reason(e)})") from None


def probe(path: str | Path) -> VideoInfo:
    """A video file's size, rate, colour, codec and audio, or VideoError (unreadable, no video stream)."""
    with open_input(path) as c:
        return _info(Path(path), c)


def _info(path: Path, c) -> VideoInfo:
    if not c.streams.video:
        kinds = ", ".join(sorted({s.type for s in c.streams})) or "nothing"
        raise VideoError(f"{path}: holds no video stream (only {kinds})")
    v = c.streams.video[0]
    cc = v.codec_context
    audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
    dur = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
    return VideoInfo(path, cc.width, cc.height, v.average_rate or v.guessed_rate, v.time_base, int(v.frames or 0),
                     dur, cc.pix_fmt or "yuv420p", pixel_bits(cc.pix_fmt), colour_of(cc, cc.height), cc.name, audio)


@dataclass
class Picture:
    """One decoded frame: RGB pixels (uint8, or uint16 above 8 bits), its time stamp and display rotation."""

    rgb: np.ndarray
    pts: int | None
    index: int
    rotation: int = 0


class VideoReader:
    """Demux a video in file order: Pictures for the first video stream, Packets of the first audio stream.

    ``threads`` / ``thread_type`` (AUTO, FRAME, SLICE): the decoder's own threads (PyAV's codec context).

    A packet that fails to decode is recorded in ``errors`` and skipped, so a damaged file still gives
    every frame that can be decoded; ``closed_early`` says the file ended in the middle of a packet.
    """

    def __init__(self, path: str | Path, threads: int = 0, thread_type: str = "AUTO"):
        self.path = Path(path)
        self.container = open_input(path)
        try:
            self.info = _info(self.path, self.container)
        except VideoError:
            self.container.close()
            raise
        self.video = self.container.streams.video[0]
        # frame threads: decode keeps up while the model uses the cores; ``threads`` 0: FFmpeg's count (cores + 1)
        self.video.thread_type = thread_type
        self.video.codec_context.thread_count = int(threads)
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.errors: list[str] = []
        self._first: int | None = None
        self._last: int | None = None
        self._fmt = "rgb48le" if self.info.bits > 8 else "rgb24"
        self._colour = self.info.colour

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def __iter__(self) -> Iterator[Picture | av.Packet]:
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        n = 0
        demux = self.container.demux(streams)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.FFmpegError as e:   # the container itself is damaged from here on
                self.errors.append(f"demuxing stopped at frame {n}: {_reason(e)}")
                break
            if packet.stream is self.audio:
                if packet.dts is not None and packet.size:
                    yield packet
                continue
            try:
                frames = packet.decode()   # the flush packet at the end (size 0) drains the decoder
            except av.error.FFmpegError as e:
                self.errors.append(f"a packet after frame {n} failed to decode ({_reason(e)})")
                continue
            for frame in frames:
                if frame.is_corrupt:   # concealed by the decoder: written, but said
                    self.errors.append(f"frame {n} decoded with errors (concealed)")
                self._seen(frame)
                yield self.picture(frame, n)
                n += 1
        self._check_end(n)

    def _seen(self, frame) -> None:
        if frame.pts is not None:
            self._first = frame.pts if self._first is None else min(self._first, frame.pts)
            self._last = frame.pts if self._last is None else max(self._last, frame.pts)

    def _check_end(self, n: int) -> None:
        """Say so when the frames stop well before the duration the file declares (a truncated file)."""
        declared, fps = self.info.duration_s, self.info.fps
        if not declared or not fps:
            return
        if self._last is None:
            ends = 0.0
        else:
            ends = float((self._last - (self._first or 0)) * self.info.time_base) + 1 / fps
        if declared - ends > 2 / fps + 0.1:
            self.errors.append(f"the video stops at {ends:.2f} s ({n} frames) of the {declared:.2f} s the file "
                               "declares: truncated or damaged")

    def picture(self, frame, index: int) -> Picture:
        """A decoded frame as RGB, converted with the stream's matrix and range."""
        rgb = frame.to_ndarray(format=self._fmt, src_colorspace=self._colour.matrix,
                               src_color_range=self._colour.range_tag, interpolation=SWS_FLAGS)
        return Picture(rgb, frame.pts, index, int(getattr(frame, "rotation", 0) or 0))


def output_pix_fmt(codec: str, src_pix_fmt: str, bits: int) -> tuple[str, str]:
    """The pixel format to encode with (the input's when the codec takes it) and a note when depth is lost."""
    formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]
    if src_pix_fmt in formats:
        return src_pix_fmt, ""
    if bits > 8:
        for f in ("yuv420p10le", "yuv422p10le", "yuv444p10le"):
            if f in formats:
                return f, ""
    for f in ("yuv420p", "yuv444p"):
        if f in formats:
            return f, (f"{bits}-bit input written as 8-bit: {codec} takes no 10-bit here (use --codec libx264 "
                       "or libx265 to keep 10 bits)" if bits > 8 else "")
    return formats[0], ""


def check_codec(codec: str) -> None:
    """VideoError unless this FFmpeg build encodes video with ``codec``."""
    try:
        c = av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError) as e:
        raise VideoError(f"--codec {codec}: no such encoder in this FFmpeg build ({_reason(e)}); "
                         "use libx264, libx265, libvpx-vp9 or ffv1") from None
    if c.type != "video":
        raise VideoError(f"--codec {codec} is an {c.type} codec; give a video one (libx264, libvpx-vp9, ...)")


def check_container(codec: str, video: Path) -> None:
    """VideoError unless FFmpeg's muxer for ``video``'s suffix takes ``codec`` (WebM: VP9 or AV1 only), found
    before a frame is upscaled instead of when the file is opened for writing."""
    with av.open(_NamedBuffer(video.name), "w") as c:   # picks the muxer by name, as the writer does; writes nothing
        if codec in c.supported_codecs:
            return
        fits = sorted(k for k in ("libx264", "libx265", "libvpx-vp9", "ffv1") if k in c.supported_codecs)
    raise VideoError(f"--codec {codec} does not fit {video.name}: its {c.format.name} container takes "
                     f"{', '.join(fits)}, among others; pick one of those, or name the output another suffix")


class _NamedBuffer(io.BytesIO):
    """An in-memory file with a name: enough for PyAV to choose a muxer."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name


def check_quality(codec: str, crf: int | None, preset: str | None, why: str = "") -> None:
    """VideoError unless ``codec`` takes ``crf`` (within its range) and ``preset``; ``why``: how it was chosen."""
    ranges = ", ".join(f"{c} {lo}-{hi}" for c, (lo, hi) in CRF_RANGE.items())
    if crf is not None and codec not in CRF_RANGE:
        raise VideoError(f"--crf {crf}: {codec}{why} takes no crf (only {ranges}); leave --crf out")
    if crf is not None and not CRF_RANGE[codec][0] <= crf <= CRF_RANGE[codec][1]:
        lo, hi = CRF_RANGE[codec]
        usual = "; 18-28 usual, 0 lossless" if codec == "libx264" else ""
        raise VideoError(f"--crf {crf} is out of range for {codec}{why}: it takes {lo}-{hi} (lower is better{usual})")
    if preset is not None and codec not in PRESET_CODECS:
        raise VideoError(f"--preset {preset}: {codec}{why} takes no preset (only {' and '.join(PRESET_CODECS)} do); "
                         "leave --preset out")


class OutputFile:
    """The file a VideoWriter's muxer writes through: every write, the fsync and the close are checked here.

    FFmpeg can lose a failed write: with MP4, av_write_trailer returns a positive value (not its I/O error)
    when its final flush fails, so a full disk at the end of a short MP4 (all of it one fragment, written by
    the trailer) finished "successfully" with a truncated file. So the first failure is kept in ``error``
    and the writer checks it after each mux and at the end; it is not raised into PyAV, which prints a
    traceback whenever a second exception comes from the file before the first was reported.
    """

    def __init__(self, path: Path):
        self.name = str(path)   # PyAV picks the container from this name's suffix
        # unbuffered: FFmpeg flushes each packet (FLUSH), and a kill must find it in the file, not in a buffer here
        self._f = open(path, "wb", buffering=0)
        self.error: OSError | None = None

    @property
    def closed(self) -> bool:
        return self._f.closed

    def write(self, data: bytes) -> int:
        """Write all of ``data``; after a failure nothing more is written."""
        view = memoryview(data)
        while view and self.error is None:
            try:
                n = self._f.write(view)   # short when the disk fills up: the rest goes again, and fails
            except OSError as e:
                self.error = e
                break
            if not n:   # never for a regular file; an endless loop if it were
                self.error = OSError(errno.EIO, "the write stored nothing")
            view = view[n or 0:]
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Seek; after a failure, nothing is done."""
        if self.error is None:
            try:
                return self._f.seek(offset, whence)
            except OSError as e:
                self.error = e
        return max(0, offset)   # FFmpeg keeps its own position and only checks for < 0

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def finish(self) -> None:
        """fsync and close: OSError for the first write that failed, or for these."""
        if self.error is None:
            try:
                _fsync(self._f.fileno())
            except OSError as e:   # delayed allocation, NFS, a quota: the data may fail to land only now
                self.error = e
        self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Close the file, whatever it holds (after a failure: what was written stays as it is)."""
        try:
            self._f.close()
        except OSError as e:   # NFS reports some failed writes only at close
            self.error = self.error or e


def _fsync(fd: int) -> None:
    """fsync, where the file takes one (not a character device such as /dev/full)."""
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


@dataclass
class VideoWriter:
    """Encode RGB frames at ``width`` x ``height`` into ``path``, with ``info``'s time base, colour and audio.

    ``crf`` sets the quality of libx264 / libx265 / libvpx-vp9 (0 with libx264: lossless). The container
    is the one ``path``'s suffix names; MP4 and MOV are written fragmented, so a killed run leaves a
    file that plays up to its last fragment. ``close`` raises VideoError unless every byte reached the file;
    errors name ``final`` (the name the file gets once complete) where given.
    """

    path: Path
    info: VideoInfo
    width: int
    height: int
    codec: str = "libx264"
    crf: int | None = None
    audio_template: object | None = None   # the input's audio stream, copied packet by packet
    rotation: int = 0
    preset: str | None = None              # libx264 / libx265 speed preset (default ultrafast)
    notes: list[str] = field(default_factory=list)
    final: Path | None = None              # the name ``path`` is renamed to when complete: errors name it
    threads: int = 0                       # the encoder's own threads (x264: 0 picks 1.5x the cores)

    def __post_init__(self) -> None:
        check_codec(self.codec)
        self.pix_fmt, note = output_pix_fmt(self.codec, self.info.pix_fmt, self.info.bits)
        if note:
            self.notes.append(note)
        self._rgb_fmt = "rgb48le" if pixel_bits(self.pix_fmt) > 8 else "rgb24"
        w, h = even_size(self.width, self.height, self.pix_fmt)
        if (w, h) != (self.width, self.height):
            self.notes.append(f"{self.width}x{self.height} is odd for {self.pix_fmt}: written as {w}x{h} "
                              "(last column / row dropped)")
            self.width, self.height = w, h
        try:
            self.sink = OutputFile(self.path)
        except OSError as e:
            raise VideoError(f"cannot write {self.shown}: {_reason(e)}") from None
        try:
            self.container = av.open(self.sink, mode="w",
                                     options={**FLUSH, **STREAMABLE.get(self.path.suffix.lower(), {})})
        except (av.error.FFmpegError, OSError, ValueError) as e:
            self._discard()
            raise VideoError(f"cannot write {self.shown}: {_reason(e)}") from None
        try:
            self._add_streams()
        except (av.error.FFmpegError, ValueError) as e:
            self.abort()
            self._discard()
            raise VideoError(f"cannot write {self.shown} with {self.codec}: {_reason(e)}") from None
        self.frames = 0

    @property
    def shown(self) -> Path:
        """The name errors give: the final one, not the partial file that is removed on failure."""
        return self.final or self.path

    def _discard(self) -> None:
        """Close and remove the file (a writer that could not be set up leaves none)."""
        self.sink.close()
        self.path.unlink(missing_ok=True)

    def _add_streams(self) -> None:
        info, colour = self.info, self.info.colour
        v = self.container.add_stream(self.codec, rate=info.rate or Fraction(25))
        v.width, v.height, v.pix_fmt = self.width, self.height, self.pix_fmt
        v.time_base = info.time_base            # frame time stamps are copied as they are: VFR stays VFR
        cc = v.codec_context
        cc.time_base = info.time_base
        cc.colorspace, cc.color_range = colour.space_tag, colour.range_tag
        cc.color_primaries, cc.color_trc = colour.primaries_tag, colour.trc_tag
        # x264's own frame threads: encode() returns at once and the encode thread only converts RGB -> YUV;
        # with one x264 thread that thread became the bottleneck once the model ran at ~30 frames/s
        cc.thread_count = int(self.threads)
        cc.gop_size = max(1, round(2 * float(info.rate or 25)))   # a fragment / cluster every 2 s: a kill loses little
        opts = {}
        if self.crf is not None and self.codec in CRF_RANGE:
            opts = {"crf": str(self.crf)} if not (self.codec == "libx264" and self.crf == 0) else {"qp": "0"}
            if self.codec == "libvpx-vp9":
                opts["b"] = "0"
        if self.codec in PRESET_CODECS:
            # encode shares the cores with the model: ultrafast takes under half veryfast's CPU time (files
            # ~2.5x larger at the same crf); on 2 cores (EPYC Zen 5, 720p out) the pipeline ran at 0.81 of the
            # model alone with ultrafast and 0.73 with veryfast, so real time is the default and size the option
            opts["preset"] = self.preset or "ultrafast"
        cc.options = opts
        if self.rotation:
            v.set_display_rotation(self.rotation)
        self.stream = v
        self.audio = None
        if self.audio_template is not None:
            self.audio = self.container.add_stream_from_template(self.audio_template)

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        """Encode one RGB frame (uint8, or uint16 for 16-bit RGB) with time stamp ``pts`` (input time base)."""
        rgb = rgb[: self.height, : self.width]   # odd sizes: 4:2:0 needs even, the last row / column goes
        if self._rgb_fmt == "rgb48le" and rgb.dtype != np.uint16:
            rgb = rgb.astype(np.uint16) * 257
        elif self._rgb_fmt == "rgb24" and rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8)
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=self._rgb_fmt), pts)

    def _encode(self, frame, pts: int | None) -> None:
        """Convert an RGB frame to the output's YUV with its matrix and range, stamp it and encode it."""
        c = self.info.colour
        yuv = frame.reformat(format=self.pix_fmt, dst_colorspace=c.matrix, dst_color_range=c.range_tag,
                             interpolation=SWS_FLAGS)
        yuv.pts = pts if pts is not None else self.frames
        yuv.time_base = self.info.time_base
        self._mux(self.stream.encode(yuv))
        self.frames += 1

    def write_planes(self, y: np.ndarray, uv: np.ndarray, pts: int | None) -> None:
        """Encode one frame given as 8-bit YUV 4:2:0 planes (HxW Y, 2x(H/2)x(W/2) U and V) in the output's matrix
        and range (``planes_for``): copied into the encoder's frame as they are, no conversion."""
        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        for plane, values in zip(frame.planes, (y, uv[0], uv[1])):
            np.frombuffer(plane, np.uint8).reshape(plane.height, -1)[:, : plane.width] = \
                values[: plane.height, : plane.width]
        frame.pts = pts if pts is not None else self.frames
        frame.time_base = self.info.time_base
        self._mux(self.stream.encode(frame))
        self.frames += 1

    def write_output(self, sr: tuple | np.ndarray | torch.Tensor, pts: int | None) -> None:
        """Encode a model's output in the form it came: YUV planes (Y, UV), an HxWx3 frame, or a 1x3xHxW tensor."""
        if isinstance(sr, tuple):
            self.write_planes(*sr, pts)
        elif isinstance(sr, np.ndarray):
            self.write(sr, pts)
        else:
            self.write_tensor(sr, pts)

    def write_tensor(self, x: torch.Tensor, pts: int | None) -> None:
        """Encode the model's 1x3xHxW float RGB output (rounded, clipped to [0, 1]) with time stamp ``pts``.

        Rounded in torch to planar RGB (8 or 16 bits) and handed to swscale as planes: transposing to
        HxWx3 in Python cost more than the model itself at 720p. (swscale's planar float input is
        faster still, but its Y comes out 0.4 of a level too high on average.)
        """
        deep = self._rgb_fmt == "rgb48le"
        rgb = x[0, :, : self.height, : self.width].clamp(0, 1).mul_(65535.0 if deep else 255.0).add_(0.5)
        frame = av.VideoFrame(rgb.shape[2], rgb.shape[1], "gbrp16le" if deep else "gbrp")
        for plane, channel in zip(frame.planes, (1, 2, 0)):   # planes in G, B, R order
            if deep:   # torch has no uint16 arithmetic: round via int32
                values = rgb[channel].to(torch.int32).numpy().astype(np.uint16)
                np.frombuffer(plane, np.uint16).reshape(plane.height, -1)[:, : plane.width] = values
            else:      # one pass: float -> uint8 (truncating the +0.5: rounding) straight into the plane
                rows = torch.from_numpy(np.frombuffer(plane, np.uint8).reshape(plane.height, -1))
                rows[:, : plane.width].copy_(rgb[channel])
        self._encode(frame, pts)

    def mux_audio(self, packet) -> None:
        """Copy one audio packet of the input into the output."""
        if self.audio is None:
            return
        packet.stream = self.audio
        self._mux([packet])

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except (OSError, av.error.FFmpegError) as e:
            raise self._failed("cannot write", e) from None
        if self.sink.error is not None:   # FFmpeg was told the write went through: the file kept the failure
            raise self._failed("cannot write", self.sink.error)

    def _failed(self, what: str, e: BaseException) -> VideoError:
        """The one-line error for a write that failed: the file's own error where it kept one (the real cause)."""
        e = self.sink.error or e
        hint = "; free some space and run the command again" if is_full(e) else ""
        return VideoError(f"{what} {self.shown}: {_reason(e)}{hint}")

    def close(self) -> None:
        """Drain the encoder and finish the file: VideoError unless every byte of it reached the disk."""
        error = None
        try:
            self._mux(self.stream.encode(None))
        except VideoError as e:
            error = e
        try:
            self.container.close()   # the trailer
        except (OSError, av.error.FFmpegError) as e:
            error = error or self._failed("cannot finish", e)
        try:
            self.sink.finish()       # the file's own record of its writes decides; then fsync
        except OSError as e:
            error = error or self._failed("cannot finish", e)
        if error is not None:
            raise error

    def abort(self) -> None:
        """Close without draining (after an error): what was written stays as it is."""
        try:
            self.container.close()
        except (OSError, av.error.FFmpegError):
            pass
        self.sink.close()


def output_size(sr: tuple | np.ndarray | torch.Tensor) -> tuple[int, int]:
    """(height, width) of a model's output in any form ``VideoWriter.write_output`` takes."""
    h, w = sr[0].shape if isinstance(sr, tuple) else sr.shape[:2] if isinstance(sr, np.ndarray) else sr.shape[-2:]
    return int(h), int(w)


def planes_for(info: VideoInfo, codec: str, scale: int) -> YuvOut | None:
    """The YUV a model should give for ``info``'s video upscaled ``scale`` times into ``codec`` (the writer's own
    matrix, range and 8-bit 4:2:0 format, at an even size), or None where the writer needs RGB."""
    pix_fmt, _ = output_pix_fmt(codec, info.pix_fmt, info.bits)
    weights = LUMA_WEIGHTS.get(info.colour.matrix)
    even = info.width * scale % 2 == 0 and info.height * scale % 2 == 0
    if pix_fmt not in PLANAR_420 or info.bits > 8 or weights is None or not even:
        return None
    return YuvOut(*weights, info.colour.full_range)


def even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The largest size <= width x height that ``pix_fmt``'s chroma subsampling can hold."""
    cw = 2 if pix_fmt.startswith(("yuv420", "yuvj420", "yuv422", "yuvj422", "nv12", "nv21", "nv16")) else 1
    ch = 2 if pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21")) else 1
    return width - width % cw, height - height % ch


def _reason(e: Exception) -> str:
    """An FFmpeg / OS error as a short reason."""
    if isinstance(e, av.error.FFmpegError):
        return e.strerror or type(e).__name__
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e).splitlines()[0] if str(e) else type(e).__name__

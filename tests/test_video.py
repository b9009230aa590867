"""`srnas upscale` on videos: frames, rate, time stamps (VFR), audio and colour survive; bad videos are handled.

Every video is made by the test itself (a second of 64x48 moving content with a 440 Hz tone), so these run
in seconds; tests/test_video_realtime.py holds the one slow 360p check.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from srnas.experiments.upscaler import Upscaler
from srnas.experiments.video import VideoReader, VideoWriter, probe
from srnas.experiments.video_samples import make_video, moving_frames
from srnas.search.cli import main
from srnas.supernet.imaging import downscale, write_png
from srnas.supernet.metrics import psnr_y

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _upscale(*args) -> int:
    return main(["upscale", *map(str, args), "--threads", "1"])


def _decode(path: Path) -> tuple[list[np.ndarray], list[int], int]:
    """Frames (RGB), their time stamps and the number of audio packets of a video."""
    frames, pts, audio = [], [], 0
    with VideoReader(path) as r:
        for item in r:
            if hasattr(item, "rgb"):
                frames.append(item.rgb)
                pts.append(item.pts)
            else:
                audio += 1
        assert r.errors == []
    return frames, pts, audio


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".mov"])
def test_video_keeps_frames_rate_time_stamps_audio(tmp_path, capsys, suffix):
    src = make_video(tmp_path / f"clip{suffix}", moving_frames(64, 48, 25), 25)
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 0
    dst = tmp_path / "out" / f"clip{suffix}"
    a, b = probe(src), probe(dst)
    assert (b.width, b.height) == (128, 96)
    assert b.rate == a.rate and abs(b.duration_s - a.duration_s) < 0.05
    assert b.audio == a.audio is not None
    assert b.colour == a.colour
    fa, pa, na = _decode(src)
    fb, pb, nb = _decode(dst)
    assert len(fb) == len(fa) == 25 and pb == pa and nb == na
    assert not (tmp_path / "out" / f"clip.partial{suffix}").exists()
    out = capsys.readouterr().out
    assert "frames/s end to end" in out and "real time" in out


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])   # without and with B-frames
def test_mp4_time_stamps_kept_whatever_the_encoder_delay(tmp_path, preset):
    src = make_video(tmp_path / "clip.mp4", moving_frames(64, 48, 30), 30)
    assert _upscale("bicubic", src, "--out", tmp_path / "out", "--preset", preset) == 0
    a, b = probe(src), probe(tmp_path / "out" / "clip.mp4")
    assert b.rate == a.rate and b.duration_s == a.duration_s
    assert _decode(tmp_path / "out" / "clip.mp4")[1] == _decode(src)[1]


def test_audio_packets_are_copied_not_reencoded(tmp_path):
    src = make_video(tmp_path / "a.mkv", moving_frames(64, 48, 10), 25)
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 0

    def audio_bytes(p):
        with av.open(str(p)) as c:
            return [bytes(pk) for pk in c.demux(c.streams.audio[0]) if pk.size]
    assert audio_bytes(tmp_path / "out" / "a.mkv") == audio_bytes(src)


def test_variable_frame_rate_time_stamps_kept(tmp_path):
    stamps = [0, 1, 3, 4, 8, 9, 10, 15, 16, 20]   # in 1/25 s: gaps of 1, 2, 4 and 5 frames
    src = make_video(tmp_path / "vfr.mkv", moving_frames(64, 48, len(stamps)), 25, pts=stamps,
                     time_base=Fraction(1, 25))
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 0
    _, pa, _ = _decode(src)
    _, pb, _ = _decode(tmp_path / "out" / "vfr.mkv")
    assert pb == pa and len(set(np.diff(pb))) > 2   # uneven gaps survive


@pytest.mark.parametrize("matrix,full", [("ITU601", False), ("ITU709", False), ("ITU709", True)])
def test_colour_matrix_and_range_written_as_tagged(tmp_path, matrix, full):
    """The Y plane the writer stores is the one the tagged standard defines, computed here independently."""
    rgb = next(moving_frames(64, 48, 1))
    src = make_video(tmp_path / "c.mkv", [rgb], 25, audio=False, pix_fmt="yuv444p", crf=0, matrix=matrix,
                     full_range=full)
    with av.open(str(src)) as c:
        frame = next(c.decode(video=0))
        y = frame.to_ndarray(channel_last=True)[..., 0].astype(float)   # the stored plane, unconverted
        assert frame.color_range == (2 if full else 1)
    kr, kb = {"ITU601": (0.299, 0.114), "ITU709": (0.2126, 0.0722)}[matrix]
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    luma = kr * r + (1 - kr - kb) * g + kb * b
    want = luma * 255 if full else 16 + 219 * luma
    assert np.abs(y - want).max() <= 1.0
    back, _, _ = _decode(src)                       # and the reader undoes exactly that
    assert np.abs(back[0].astype(int) - rgb).max() <= 2


def test_colour_psnr_same_as_png_frames(tmp_path):
    """Issue 21: with a lossless codec, PSNR (Y) of the video's frames within 0.05 dB of the PNG frames'."""
    hr = [f for f in moving_frames(128, 96, 6, step=7)]
    lr = [downscale(f, 2) for f in hr]
    scores = {}
    for matrix, full in [("ITU709", False), ("ITU601", True)]:
        src = make_video(tmp_path / f"lr_{matrix}.mkv", lr, 25, audio=False, pix_fmt="yuv444p", crf=0,
                         matrix=matrix, full_range=full)
        assert _upscale("abpn", src, "--out", tmp_path / "out", "--backend", "torch-cpu", "--crf", "0") == 0
        got, _, _ = _decode(tmp_path / "out" / src.name)
        scores[matrix] = np.mean([psnr_y(s, h, 2) for s, h in zip(got, hr)])
    with Upscaler("abpn", "torch-cpu", threads=1) as up:
        png = []
        for i, f in enumerate(lr):   # through PNG files, as the image path reads them
            write_png(tmp_path / f"{i}.png", f)
        assert _upscale("abpn", *[tmp_path / f"{i}.png" for i in range(len(lr))], "--out", tmp_path / "png",
                        "--backend", "torch-cpu") == 0
        from imageio.v3 import imread
        png = [psnr_y(imread(tmp_path / "png" / f"{i}.png"), h, 2) for i, h in enumerate(hr)]
        direct = [psnr_y(up(f), h, 2) for f, h in zip(lr, hr)]
    assert abs(np.mean(png) - np.mean(direct)) < 1e-3   # one pixel may round the other way
    for matrix, score in scores.items():
        assert abs(score - np.mean(png)) < 0.05, (matrix, score, np.mean(png))


def test_ten_bit_kept_ten_bit(tmp_path, capsys):
    ramp = np.linspace(0, 65535, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint16)
    src = make_video(tmp_path / "deep.mkv", [ramp] * 3, 25, audio=False, pix_fmt="yuv420p10le", crf=0)
    assert probe(src).bits == 10
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 0
    out = probe(tmp_path / "out" / "deep.mkv")
    assert out.pix_fmt == "yuv420p10le" and out.bits == 10
    frames, _, _ = _decode(tmp_path / "out" / "deep.mkv")
    assert frames[0].dtype == np.uint16 and (frames[0] % 257 != 0).mean() > 0.5   # finer than 8 bits
    assert _upscale("bicubic", src, "--out", tmp_path / "vp9", "--codec", "libvpx-vp9") == 0
    assert "written as 8-bit" in capsys.readouterr().out
    assert probe(tmp_path / "vp9" / "deep.mkv").bits == 8


def test_odd_size(tmp_path):
    src = make_video(tmp_path / "odd.mkv", moving_frames(641, 361, 3), 25, audio=False, pix_fmt="yuv444p")
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 0
    out = probe(tmp_path / "out" / "odd.mkv")
    assert (out.width, out.height) == (1282, 722)
    assert len(_decode(tmp_path / "out" / "odd.mkv")[0]) == 3


def test_odd_output_for_subsampled_chroma_is_cropped_and_said(tmp_path):
    info = probe(make_video(tmp_path / "s.mkv", moving_frames(64, 48, 1), 25, audio=False))
    w = VideoWriter(tmp_path / "w.mkv", info, 65, 49)
    w.write(np.zeros((49, 65, 3), np.uint8), 0)
    w.close()
    assert (probe(tmp_path / "w.mkv").width, probe(tmp_path / "w.mkv").height) == (64, 48)
    assert any("65x49 is odd" in n for n in w.notes)


def test_truncated_video_writes_what_decodes_and_exits_1(tmp_path, capsys):
    src = make_video(tmp_path / "full.mkv", moving_frames(64, 48, 50), 25)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert _upscale("bicubic", cut, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "truncated or damaged" in err and "decodable frame(s) written" in err and "Traceback" not in err
    frames, _, _ = _decode(tmp_path / "out" / "cut.mkv")
    assert 0 < len(frames) < 50


def test_corrupt_packets_listed_rest_written(tmp_path, capsys):
    src = make_video(tmp_path / "ok.mkv", moving_frames(64, 48, 50), 25)
    b = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    for k in range(len(b) * 3 // 10, len(b) * 6 // 10, 97):
        b[k] = int(rng.integers(0, 256))
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(b))
    assert _upscale("bicubic", bad, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert (tmp_path / "out" / "bad.mkv").is_file()


def test_no_video_stream(tmp_path, capsys):
    path = tmp_path / "tone.mka"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libopus", rate=48000, layout="stereo")
        for k in range(0, 48000, 960):
            f = av.AudioFrame.from_ndarray(np.zeros((2, 960), np.float32), format="fltp", layout="stereo")
            f.sample_rate, f.pts = 48000, k
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    (tmp_path / "in").mkdir()
    path.rename(tmp_path / "in" / "tone.mkv")   # named as a video
    assert _upscale("bicubic", tmp_path / "in" / "tone.mkv", "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "holds no video stream (only audio)" in err and "Traceback" not in err


def test_not_a_video(tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    assert _upscale("bicubic", junk, "--out", tmp_path / "out") == 1
    assert "not a readable video" in capsys.readouterr().err


def test_full_disk_is_one_line_and_leaves_no_partial(tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 10), 25)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clip.partial.mkv").symlink_to("/dev/full")   # every write: ENOSPC
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 1
    cap = capsys.readouterr()
    assert "No space left on device" in cap.err and "Traceback" not in cap.err
    assert not (tmp_path / "out" / "clip.mkv").exists()
    assert "-> None" not in cap.out and "clip.mkv: nothing written" in cap.out   # the summary says what happened


def test_short_mp4_on_a_full_disk_exits_nonzero_and_leaves_nothing(tmp_path, capsys):
    """Issue 33: a short MP4 is one fragment, written by the muxer's trailer, and FFmpeg reported the trailer's
    failed write as success: exit 0, the success line, and a truncated file under the final name."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    src = make_video(tmp_path / "clip.mp4", moving_frames(64, 48, 10), 25)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.partial.mp4").symlink_to("/dev/full")   # every write: ENOSPC
    assert _upscale("bicubic", src, "--out", out) == 1
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "exception" not in cap.err
    said = [line for line in cap.err.splitlines() if "No space left on device" in line]
    assert len(said) == 1 and f"{out / 'clip.mp4'}: No space left on device" in said[0], cap.err
    assert list(out.iterdir()) == []                     # neither the final name nor the partial
    assert "-> None" not in cap.out and "clip.mp4: nothing written" in cap.out
    assert "real time" not in cap.out                    # no success line


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_write_failing_at_the_very_end_leaves_no_file_under_any_name(tmp_path, capsys, suffix):
    """The disk gives out during the last writes (trailer, index, flush): exit 1, one line naming the final file,
    and neither it nor the partial left. A file size limit just under the output's size makes those writes fail
    part-way (EFBIG), as a full disk would (Python ignores SIGXFSZ, so the write fails instead of the process)."""
    src = make_video(tmp_path / f"clip{suffix}", moving_frames(64, 48, 10), 25)
    assert _upscale("bicubic", src, "--out", tmp_path / "whole") == 0
    size = (tmp_path / "whole" / f"clip{suffix}").stat().st_size
    out = tmp_path / "out"
    out.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size - 64, hard))
    try:
        rc = _upscale("bicubic", src, "--out", out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err
    said = [line for line in cap.err.splitlines() if "File too large" in line]
    assert len(said) == 1 and str(out / f"clip{suffix}") in said[0], cap.err
    assert list(out.iterdir()) == []
    assert "-> None" not in cap.out and f"clip{suffix}: nothing written" in cap.out


def test_unknown_codec_refused_before_work(tmp_path, capsys):
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 2), 25)
    assert _upscale("bicubic", src, "--out", tmp_path / "out", "--codec", "nosuchcodec") == 2
    assert "no such encoder" in capsys.readouterr().err


@pytest.mark.parametrize("args, said", [
    (["--crf", "99"], "--crf 99 is out of range for libx264 (the default for clip.mkv; --codec picks another): "
                      "it takes 0-51"),
    (["--crf", "-1"], "--crf -1 is out of range for libx264"),
    (["--crf", "52", "--codec", "libx265"], "--crf 52 is out of range for libx265: it takes 0-51"),
    (["--crf", "64", "--codec", "libvpx-vp9"], "--crf 64 is out of range for libvpx-vp9: it takes 0-63"),
    (["--crf", "20", "--codec", "ffv1"], "--crf 20: ffv1 takes no crf"),
    (["--preset", "fast", "--codec", "libvpx-vp9"], "--preset fast: libvpx-vp9 takes no preset")])
def test_crf_or_preset_the_codec_does_not_take_refused_before_work(tmp_path, capsys, args, said):
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 2), 25, audio=False)
    assert _upscale("bicubic", src, "--out", tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()                # refused before any folder is made


def test_crf_checked_against_each_containers_default_codec(tmp_path, capsys):
    """Without --codec, WebM gets VP9 (crf 0-63), the others x264 (0-51)."""
    webm = make_video(tmp_path / "clip.webm", moving_frames(64, 48, 2), 25, audio=False)
    mp4 = make_video(tmp_path / "clip.mp4", moving_frames(64, 48, 2), 25, audio=False)
    assert _upscale("bicubic", webm, "--out", tmp_path / "out", "--crf", "60") == 0
    assert _upscale("bicubic", webm, mp4, "--out", tmp_path / "out2", "--crf", "60") == 2
    assert "--crf 60 is out of range for libx264 (the default for clip.mp4" in capsys.readouterr().err


def test_compare_split_screen_video_and_image_crops(tmp_path):
    src = make_video(tmp_path / "clip.mp4", moving_frames(64, 48, 5), 25)
    img = tmp_path / "f.png"
    write_png(img, next(moving_frames(64, 48, 1)))
    assert _upscale("abpn", src, img, "--out", tmp_path / "out", "--backend", "torch-cpu", "--compare") == 0
    frames, _, _ = _decode(tmp_path / "out" / "clip.compare.mp4")
    plain, _, _ = _decode(tmp_path / "out" / "clip.mp4")
    assert len(frames) == 5 and frames[0].shape == plain[0].shape
    left = np.abs(frames[2][40:, 8:60].astype(int) - plain[2][40:, 8:60]).mean()
    right = np.abs(frames[2][40:, 68:120].astype(int) - plain[2][40:, 68:120]).mean()
    assert left > right   # left is bicubic, right the model's own frame
    from imageio.v3 import imread
    crops = imread(tmp_path / "out" / "f.compare.png")
    assert crops.shape[1] == 2 * crops.shape[0] + 4


@pytest.mark.slow
def test_killed_run_leaves_a_playable_partial_and_a_rerun_replaces_it(tmp_path):
    src = make_video(tmp_path / "long.mkv", moving_frames(160, 120, 150), 25)
    cmd = [sys.executable, "-m", "srnas", "upscale", "abpn", str(src), "--out", str(tmp_path / "out"),
           "--backend", "torch-cpu", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    part = tmp_path / "out" / "long.partial.mkv"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if part.exists() and part.stat().st_size > 5_000:   # past the header: a cluster is out
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "out" / "long.mkv").exists()
    with VideoReader(part) as r:
        n = sum(1 for item in r if hasattr(item, "rgb"))
    assert 0 < n < 150
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert not part.exists() and len(_decode(tmp_path / "out" / "long.mkv")[0]) == 150


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_rotation_kept(tmp_path, suffix):
    src = make_video(tmp_path / f"r{suffix}", moving_frames(64, 48, 3), 25, rotation=90)
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 0
    with av.open(str(tmp_path / "out" / f"r{suffix}")) as c:
        f = next(c.decode(video=0))
    assert f.rotation == 90 and (f.width, f.height) == (128, 96)   # tagged, pixels not turned


@pytest.mark.parametrize("matrix,full", [("ITU601", False), ("ITU709", True)])
def test_model_output_written_with_the_tagged_matrix(tmp_path, matrix, full):
    """The float path (the model's output straight to swscale) stores the Y the standard defines."""
    rgb = next(moving_frames(64, 48, 1))
    info = probe(make_video(tmp_path / "c.mkv", [rgb], 25, audio=False, pix_fmt="yuv444p", matrix=matrix,
                            full_range=full))
    w = VideoWriter(tmp_path / "w.mkv", info, 64, 48, "libx264", 0)
    w.write_tensor(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, 0)
    w.close()
    with av.open(str(tmp_path / "w.mkv")) as c:
        y = next(c.decode(video=0)).to_ndarray(channel_last=True)[..., 0].astype(float)
    kr, kb = {"ITU601": (0.299, 0.114), "ITU709": (0.2126, 0.0722)}[matrix]
    luma = sum(k * rgb[..., i] / 255.0 for i, k in enumerate((kr, 1 - kr - kb, kb)))
    err = y - (luma * 255 if full else 16 + 219 * luma)
    assert np.abs(err).max() <= 1.0 and abs(err.mean()) < 0.1   # rounded, and not biased


def test_model_failure_is_one_line_and_leaves_no_partial(tmp_path, capsys, monkeypatch):
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 10), 25)

    def out_of_memory(self, x):
        raise RuntimeError("not enough memory: you tried to allocate 99 GB\nmore detail")
    monkeypatch.setattr(Upscaler, "infer", out_of_memory)
    assert _upscale("bicubic", src, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "the model failed on it (not enough memory: you tried to allocate 99 GB)" in err and "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []


def test_preset_chosen_and_a_wrong_one_refused(tmp_path, capsys):
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 5), 25)
    assert _upscale("bicubic", src, "--out", tmp_path / "out", "--preset", "ultrafast") == 0
    with av.open(str(tmp_path / "out" / "clip.mkv")) as c:
        assert len([f for f in c.decode(video=0)]) == 5
    with pytest.raises(SystemExit):
        _upscale("bicubic", src, "--out", tmp_path / "out2", "--preset", "warp")
    assert "invalid choice: 'warp'" in capsys.readouterr().err


def test_codec_the_container_does_not_take_is_one_line(tmp_path, capsys):
    src = make_video(tmp_path / "clip.webm", moving_frames(64, 48, 3), 25)
    # refused with the options, before the model loads or a folder is made: nothing was upscaled for nothing
    assert _upscale("bicubic", src, "--out", tmp_path / "out", "--codec", "libx264") == 2
    err = capsys.readouterr().err
    assert "--codec libx264 does not fit clip.webm: its webm container takes libvpx-vp9" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_decoder_runs_ahead_by_a_few_frames_only(tmp_path, monkeypatch):
    """Memory stays flat in the video's length: with a slow encoder the decoder waits instead of piling up frames."""
    from srnas.experiments import video_upscale
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 40), 25)
    decoded, ahead = [0], []
    real_picture, real_write = VideoReader.picture, VideoWriter.write_tensor

    def counting_picture(self, frame, index):
        decoded[0] += 1
        return real_picture(self, frame, index)

    def slow_write(self, x, pts):
        ahead.append(decoded[0] - self.frames)
        time.sleep(0.02)
        real_write(self, x, pts)
    monkeypatch.setattr(VideoReader, "picture", counting_picture)
    monkeypatch.setattr(VideoWriter, "write_tensor", slow_write)
    with Upscaler("bicubic", threads=1) as up:
        res = video_upscale.upscale_video(up, src, tmp_path / "out.mkv", progress=False)
    assert res.frames == 40 and not res.errors
    assert max(ahead) <= 2 * video_upscale.QUEUE_FRAMES + 4, max(ahead)   # two queues, one frame in each stage
    assert max(ahead) >= video_upscale.QUEUE_FRAMES   # the decoder did run ahead: the queues were used


@pytest.mark.parametrize("scale", [3, 4])
def test_video_at_x3_and_x4_keeps_frames_rate_audio(tmp_path, scale):
    """A 360p -> 1080p (x3) or 180p -> 720p (x4) upscale: every frame, the rate and the audio kept, s times the size."""
    src = make_video(tmp_path / "clip.mp4", moving_frames(40, 24, 12), 25)
    assert _upscale("bicubic", src, "--scale", scale, "--out", tmp_path / "out") == 0
    a, b = probe(src), probe(tmp_path / "out" / "clip.mp4")
    assert (b.width, b.height) == (40 * scale, 24 * scale) and b.rate == a.rate and b.audio == a.audio is not None
    fa, pa, na = _decode(src)
    fb, pb, nb = _decode(tmp_path / "out" / "clip.mp4")
    assert len(fb) == len(fa) == 12 and pb == pa and nb == na


def test_a_folder_of_videos_only(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    make_video(folder / "a.mp4", moving_frames(32, 24, 5), 25)
    assert _upscale("bicubic", folder, "--out", tmp_path / "out") == 0
    assert probe(tmp_path / "out" / "a.mp4").width == 64


# --- the asynchronous pipeline: frames in flight, where each stage's threads go, start-up apart (issue 34) ---


def _member() -> str:
    from srnas.experiments import zoo
    members = zoo.search_members(None, 2)
    if not members or not zoo.weights_path(members[0], 2).is_file():
        pytest.skip("no searched front shipped here")
    return members[0]


def test_frames_in_flight_give_the_frames_of_one_at_a_time(tmp_path):
    """OpenVINO's AsyncInferQueue with 1, 2 or 3 frames in flight (and two streams) writes the very frames the
    synchronous route writes, in order, with the audio; the flight is the asynchronous one."""
    from srnas.experiments.flight import AsyncFlight
    from srnas.experiments.video_samples import natural_video
    from srnas.experiments.video_upscale import Pipeline, upscale_video
    src = natural_video(tmp_path / "clip.mkv", "pan", 48, 32, 0.7, 30, benchmarks=False, preset="ultrafast")
    with Upscaler(_member(), threads=1) as up:
        assert isinstance(up.flight(np.zeros((32, 48, 3), np.uint8), 2), AsyncFlight)
        outs = {}
        for jobs, streams in ((0, 1), (1, 1), (2, 1), (3, 2)):
            dst = tmp_path / f"out{jobs}.mkv"
            r = upscale_video(up, src, dst, crf=0, progress=False,   # RGB out: the synchronous route's form
                              pipeline=Pipeline(jobs=jobs, streams=streams, planes=False))
            assert r.frames == 21 and not r.errors and r.model_s > 0
            outs[jobs] = _decode(dst)
    frames0, pts0, audio0 = outs[0]
    for frames, pts, audio in outs.values():
        assert pts == pts0 and audio == audio0 == _decode(src)[2]
        assert all(np.array_equal(a, b) for a, b in zip(frames, frames0))


def _planes(path: Path) -> list[np.ndarray]:
    """Each frame's Y, U and V planes as stored (no conversion)."""
    with av.open(str(path)) as c:
        return [[np.frombuffer(p, np.uint8).reshape(p.height, -1)[:, : p.width]
                 for p in f.planes] for f in c.decode(video=0)]


def test_the_models_yuv_planes_write_what_the_rgb_route_writes(tmp_path):
    """A member's own YUV 4:2:0 output (the default with OpenVINO) writes the frames the RGB route (then swscale)
    writes, within rounding: Y within one level, chroma close; every frame, time stamps and audio kept."""
    from srnas.experiments.video import probe
    from srnas.experiments.video_samples import natural_video
    from srnas.experiments.video_upscale import Pipeline, open_flight, upscale_video
    src = natural_video(tmp_path / "clip.mkv", "pan", 48, 32, 0.7, 30, benchmarks=False, preset="ultrafast")
    with Upscaler(_member(), threads=1) as up:
        assert open_flight(up, probe(src), Pipeline(), "libx264").planes
        assert not open_flight(up, probe(src), Pipeline(planes=False), "libx264").planes
        outs = {}
        for planes in (True, False):
            dst = tmp_path / f"out{planes}.mkv"
            r = upscale_video(up, src, dst, crf=0, progress=False, pipeline=Pipeline(planes=planes))
            assert r.frames == 21 and not r.errors
            outs[planes] = dst
    yuv, rgb = _planes(outs[True]), _planes(outs[False])
    assert len(yuv) == len(rgb) == 21 and _decode(outs[True])[1:] == _decode(outs[False])[1:] == _decode(src)[1:]
    for a, b in zip(yuv, rgb):
        assert a[0].shape == (64, 96) and a[1].shape == (32, 48)
        assert np.abs(a[0].astype(int) - b[0]).max() <= 1
        assert all(np.abs(a[i].astype(float) - b[i]).mean() < 1.0 for i in (1, 2))


class _FakeQueue:
    """A runtime queue that answers frames out of order (the last started first), or never (``fail``)."""

    def __init__(self, jobs: int = 3, fail: bool = False):
        self.jobs, self.fail, self.started = jobs, fail, []

    def start(self, frame, done) -> None:
        self.started.append((frame, done))
        if len(self.started) == self.jobs and not self.fail:
            for f, d in reversed(self.started):
                d(f * 2 if f[0, 0, 0] != 99 else ValueError("boom"))
            self.started.clear()

    def idle(self) -> bool:
        return True

    def wait(self) -> None:
        pass


def test_a_flight_answers_in_the_order_frames_were_given():
    from srnas.experiments.flight import AsyncFlight
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(6)]
    fl = AsyncFlight(frames[0], _FakeQueue())
    got = []
    for f in frames:
        if fl.pending >= fl.jobs:
            got.append(fl.take())
        fl.submit(f)
    while fl.pending:
        got.append(fl.take())
    assert [int(g[0, 0, 0]) for g in got] == [2 * i for i in range(6)]
    fl = AsyncFlight(frames[0], _FakeQueue())
    for v in (1, 99, 2):
        fl.submit(np.full((2, 2, 3), v, np.uint8))
    assert fl.take()[0, 0, 0] == 2
    with pytest.raises(ValueError, match="boom"):   # an error met in the runtime's callback reaches the caller
        fl.take()


def test_a_frame_the_runtime_never_answers_is_an_error_not_a_hang():
    from srnas.experiments.flight import AsyncFlight
    fl = AsyncFlight(np.zeros((2, 2, 3), np.uint8), _FakeQueue(fail=True))
    fl.submit(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(RuntimeError, match="stopped without upscaling frame 0"):
        fl.take()


def test_decoder_and_encoder_threads_are_options(tmp_path):
    """The Pipeline's thread counts reach FFmpeg's decoder and x264 (bench_video.py compares them), and a run with
    every option set keeps every frame and the audio."""
    from srnas.experiments.video_upscale import Pipeline, upscale_video
    src = make_video(tmp_path / "clip.mp4", moving_frames(64, 48, 12), 25)
    with VideoReader(src, threads=1, thread_type="SLICE") as r:
        assert r.video.codec_context.thread_count == 1 and str(r.video.thread_type).endswith("SLICE")
    pipe = Pipeline(jobs=3, streams=2, decode_threads=1, decode_thread_type="FRAME", encode_threads=1, nice=2)
    assert pipe.describe() == ("jobs 3, streams 2, decoder 1 threads (FRAME), encoder 1 threads, decode and encode "
                               "at nice +2")
    with Upscaler("bicubic", threads=1) as up:
        r = upscale_video(up, src, tmp_path / "out.mp4", progress=False, pipeline=pipe)
    assert r.frames == 12 and not r.errors
    fa, pa, na = _decode(src)
    fb, pb, nb = _decode(tmp_path / "out.mp4")
    assert len(fb) == 12 and pb == pa and nb == na


def test_start_up_is_reported_apart_from_the_rate():
    from srnas.experiments.video_upscale import VideoResult
    r = VideoResult(Path("a.mp4"), Path("out/a.mp4"), frames=31, seconds=2.0, startup_s=1.0, model_s=0.5,
                    source_fps=30.0)
    assert r.fps == pytest.approx(30.0) and r.fps_with_startup == pytest.approx(15.5) and r.real_time
    assert "31 frames in 2.0 s, 30.0 frames/s end to end (62.0 model alone; start-up 1.00 s, apart); real time" \
        in r.closing_line()
    live = VideoResult(Path("a.mp4"), Path("out/a.mp4"), frames=31, seconds=2.0, startup_s=1.0, source_fps=30.0,
                       target_fps=60.0)
    assert not live.real_time and "NOT real time: 0.50x the --fps 60" in live.closing_line()


def test_natural_clips_are_photographs_panned_and_zoomed(tmp_path):
    """The bench's and the tests' natural content: real photographs at their own scale, every frame different,
    moving slowly (consecutive frames close, far ones not), with audio."""
    from srnas.experiments.video_samples import natural_frames, natural_video, photographs
    assert len(photographs(benchmarks=False)) == 6
    for motion in ("pan", "zoom"):
        f = [x.astype(float) for x in natural_frames(motion, 96, 64, 30, benchmarks=False)]
        assert all(x.shape == (64, 96, 3) for x in f)
        near, far = np.abs(f[1] - f[0]).mean(), np.abs(f[-1] - f[0]).mean()
        assert 0 < near < far and f[0].std() > 30   # photographs: textured, not flat
    src = natural_video(tmp_path / "pan.mp4", "pan", 96, 64, 0.5, 30, benchmarks=False)
    info = probe(src)
    assert (info.width, info.height) == (96, 64) and info.audio == "aac" and len(_decode(src)[0]) == 15


def test_bench_video_variants_parse():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import bench_video
    finally:
        sys.path.pop(0)
    vs = bench_video.parse_variants("jobs=0; jobs=2,decode=1,dtype=slice,encode=2,nice=5,threads=1,preset=veryfast")
    assert [v.label for v in vs] == ["jobs=0", "jobs=2,decode=1,dtype=slice,encode=2,nice=5,threads=1,preset=veryfast"]
    assert vs[0].pipeline.jobs == 0 and vs[1].pipeline.decode_thread_type == "SLICE" and vs[1].threads == 1
    assert vs[1].pipeline.encode_threads == 2 and vs[1].pipeline.nice == 5 and vs[1].preset == "veryfast"
    assert len(bench_video.parse_variants(bench_video.DEFAULT_VARIANTS)) >= 10
    assert [v.pipeline.planes for v in bench_video.parse_variants("jobs=2;planes=0;planes=1")] == [True, False, True]
    with pytest.raises(SystemExit, match="unknown key 'job'"):
        bench_video.parse_variants("job=2")


def test_bench_video_parts_times_each_stage_alone(tmp_path):
    """bench_video --parts: decode, the model with YUV planes out and with RGB out, and the encoder fed each, CPU
    time per frame of every one (what end to end shares two cores among)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import bench_video
    finally:
        sys.path.pop(0)
    b = bench_video.Bench(tmp_path, 0.2, 30.0, 1, False)
    try:
        rows = bench_video.bench_parts(b, _member(), "360p")
    finally:
        b.close()
    assert [r["stage"] for r in rows] == ["decode (to RGB)", "model, YUV planes out", "encode YUV planes",
                                          "model, RGB out", "encode RGB"]
    assert all(r["core_ms"] > 0 and r["fps"] > 0 for r in rows)
    assert "| 360p | model, YUV planes out |" in bench_video.parts_markdown(rows)

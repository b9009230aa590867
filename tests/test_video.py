"""`srnas upscale` on videos: frames, rate, time stamps (VFR), audio and colour survive; bad videos are handled.

Every video is made by the test itself (a second of 64x48 moving content with a 440 Hz tone), so these run
in seconds; tests/test_video_realtime.py holds the one slow 360p check.
"""
from __future__ import annotations

import os
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
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "clip.mkv").exists()


def test_unknown_codec_refused_before_work(tmp_path, capsys):
    src = make_video(tmp_path / "clip.mkv", moving_frames(64, 48, 2), 25)
    assert _upscale("bicubic", src, "--out", tmp_path / "out", "--codec", "nosuchcodec") == 2
    assert "no such encoder" in capsys.readouterr().err


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
    assert _upscale("bicubic", src, "--out", tmp_path / "out", "--codec", "libx264") == 1
    err = capsys.readouterr().err
    assert "'webm' format does not support 'libx264' codec" in err and "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []


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

"""Issues 21 and 34's must-show run: a 10-second 360p video of natural content (photographs panned slowly, with
audio), made here, upscaled to 720p by srnas_abpn in the executor recorded in its file, through the asynchronous
pipeline; the output decodes to every frame with the same rate, duration and audio, and the frame rate (start-up
apart) is printed. (How fast, against the model alone: experiments/bench_video.py, which times both in one run on
a quiet machine; no timing is asserted here.)"""
from __future__ import annotations

import re

import pytest

from srnas.experiments import zoo
from srnas.experiments.video import VideoReader, probe
from srnas.experiments.video_samples import natural_video
from srnas.search.cli import main


def _count(path):
    frames = audio = 0
    with VideoReader(path) as r:
        for item in r:
            frames += hasattr(item, "rgb")
            audio += not hasattr(item, "rgb")
        assert r.errors == []
    return frames, audio


@pytest.mark.slow
def test_ten_seconds_of_360p_to_720p_keeps_everything(tmp_path, capsys):
    if not zoo.weights_path("srnas_abpn", 2).is_file():
        pytest.skip("srnas_abpn weights not shipped here")
    src = natural_video(tmp_path / "clip.mp4", "pan", 640, 360, 10.0, 30)
    assert main(["upscale", "srnas_abpn", str(src), "--out", str(tmp_path / "out")]) == 0
    dst = tmp_path / "out" / "clip.mp4"
    a, b = probe(src), probe(dst)
    assert (b.width, b.height) == (1280, 720)
    assert b.rate == a.rate and abs(b.duration_s - a.duration_s) < 0.05 and b.audio == a.audio == "aac"
    assert _count(dst) == _count(src) and _count(src)[0] == 300
    out = capsys.readouterr().out
    assert re.search(r"300 frames in [\d.]+ s, [\d.]+ frames/s end to end \([\d.]+ model alone; start-up [\d.]+ s, "
                     r"apart\)", out)
    assert "srnas_abpn x2 in openvino/int8 (recorded in the model file)" in out

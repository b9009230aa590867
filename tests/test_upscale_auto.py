"""`srnas upscale auto` and Upscaler('auto'): the largest member of this CPU's front that keeps the rate.

No test times the shipped members: each member's rate is injected (monkeypatch of the one function that measures
it), so the tests check the choice (the largest that keeps the rate, the next larger does not, the fallback line);
the chosen member then runs for real, end to end, on a tiny clip of natural content (photographs panned, with a
tone), and every frame, the rate and the audio are checked.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from srnas.experiments import upscale as upscale_mod
from srnas.experiments import upscaler as upscaler_mod
from srnas.experiments import zoo
from srnas.experiments.auto_pick import AutoChoice, pick_member
from srnas.experiments.upscaler import Upscaler
from srnas.experiments.video import probe
from srnas.experiments.video_samples import natural_frames, natural_video
from srnas.search.cli import main
from srnas.supernet.errors import UserError

from test_video_realtime import _count   # frames and audio packets of a written video

torch.set_num_threads(1)
MEMBERS = ["xs", "s", "m", "l", "xl"]


def _counting(rates: dict[str, float]):
    """A rate function over ``rates`` that records which members it was asked for."""
    asked = []

    def rate_of(name: str) -> float:
        asked.append(name)
        return rates[name]
    return rate_of, asked


@pytest.mark.parametrize("keeping", range(len(MEMBERS) + 1))
def test_picks_the_largest_member_that_keeps_the_rate(keeping):
    """Whatever the cut (how many of the fastest members keep 30 fps), the pick is the last that keeps it, the next
    larger was timed and falls short, and no member is timed twice; bisection times at most 3 of 5."""
    rates = {m: (40.0 - i if i < keeping else 20.0 - i) for i, m in enumerate(MEMBERS)}
    rate_of, asked = _counting(rates)
    c = pick_member(MEMBERS, rate_of, 30.0)
    assert len(asked) == len(set(asked)) <= 3
    if keeping == 0:
        assert c.name == "xs" and not c.keeps and "NOT real time" in c.line()
        return
    assert c.name == MEMBERS[keeping - 1] and c.keeps and c.rates[c.name] >= 30
    if keeping < len(MEMBERS):
        larger = MEMBERS[keeping]
        assert c.rates[larger] < 30
        assert f"the next larger, {larger}, does not" in c.line()
    else:
        assert "the largest member" in c.line()


def test_the_choice_says_which_member_and_why_in_one_line():
    c = AutoChoice("m", 30.0, MEMBERS, {"m": 34.56, "l": 26.0}, "end to end on the first 48 frames")
    assert c.line() == ("auto: m keeps 30 fps here (34.6 frames/s end to end on the first 48 frames); the next larger, "
                        "l, does not (26.0)")
    slow = AutoChoice("xs", 60.0, MEMBERS, {"xs": 45.0})
    assert "\n" not in slow.line() and slow.line().startswith("auto: xs (the fastest member), 45.0 frames/s")
    assert "NOT real time, 0.75x the 60 fps to keep" in slow.line()


def test_no_front_is_one_line():
    with pytest.raises(UserError, match="no searched front"):
        pick_member([], lambda n: 1.0, 30.0)


def _front() -> list[str]:
    members = zoo.search_members(None, 2)
    if len(members) < 3 or not all(zoo.weights_path(m, 2).is_file() for m in members):
        pytest.skip("this checkout ships no front of three members or more")
    return members


def _inject(monkeypatch, rates: dict[str, float]) -> list[str]:
    """Replace the per-member measurement of `srnas upscale auto` with ``rates``; the chosen member is then built
    and run for real. Returns the members asked for."""
    asked = []

    def fake(name, src, target, make, video=(None, None, None)):
        asked.append(name)
        return rates[name], None
    monkeypatch.setattr(upscale_mod, "time_member", fake)
    return asked


def _clip(tmp_path, n_s: float = 1.0):
    return natural_video(tmp_path / "clip.mp4", "pan", 64, 48, n_s, 30, benchmarks=False, preset="ultrafast")


def test_auto_end_to_end_keeps_every_frame_the_rate_and_the_audio(tmp_path, monkeypatch, capsys):
    """The real command on a tiny natural clip: the member the (injected) rates call for runs, and its output has
    every frame, the rate, the duration and the audio of the input."""
    members = _front()
    rates = {m: 100.0 - 20 * i for i, m in enumerate(members)}   # 100, 80, 60, 40, 20: keeps 30 up to the 4th
    want = [m for m in members if rates[m] >= 30][-1]
    asked = _inject(monkeypatch, rates)
    src = _clip(tmp_path)
    assert main(["upscale", "auto", str(src), "--out", str(tmp_path / "out"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"clip.mp4: auto: {want} keeps 30 fps here" in out
    nxt = members[members.index(want) + 1] if want != members[-1] else None
    assert nxt is None or f"the next larger, {nxt}, does not" in out
    assert len(asked) == len(set(asked)) < len(members)
    assert f"{want} x2 in openvino/int8" in out
    assert re.search(r"30 frames in [\d.]+ s, [\d.]+ frames/s end to end \([\d.]+ model alone; start-up [\d.]+ s, "
                     r"apart\); (real time \(source 30.00 fps\)|NOT real time)", out)
    dst = tmp_path / "out" / "clip.mp4"
    a, b = probe(src), probe(dst)
    assert (b.width, b.height) == (128, 96) and b.rate == a.rate and abs(b.duration_s - a.duration_s) < 0.05
    assert b.audio == a.audio == "aac" and _count(dst) == _count(src) and _count(src)[0] == 30


def test_auto_falls_back_to_the_fastest_with_a_not_real_time_line(tmp_path, monkeypatch, capsys):
    members = _front()
    _inject(monkeypatch, {m: 20.0 - i for i, m in enumerate(members)})
    src = _clip(tmp_path, 0.5)
    assert main(["upscale", "auto", str(src), "--out", str(tmp_path / "out"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"clip.mp4: auto: {members[0]} (the fastest member), 20.0 frames/s" in out
    assert "NOT real time, 0.67x the 30 fps to keep; no member of this CPU's front keeps it here" in out
    assert _count(tmp_path / "out" / "clip.mp4")[0] == 15


def test_fps_sets_the_rate_to_keep(tmp_path, monkeypatch, capsys):
    """--fps 60 (live use) asks more of the machine than the source's 30: a smaller member is picked, and the
    closing line judges the run against 60."""
    members = _front()
    rates = {m: 100.0 - 20 * i for i, m in enumerate(members)}
    _inject(monkeypatch, rates)
    src = _clip(tmp_path, 0.5)
    assert main(["upscale", "auto", str(src), "--out", str(tmp_path / "out"), "--fps", "60", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    want = [m for m in members if rates[m] >= 60][-1]
    assert f"auto: {want} keeps 60 fps here" in out and "--fps 60" in out


@pytest.mark.parametrize("args, said", [(["--fps", "0"], "--fps 0: give the frame rate to keep"),
                                        (["IMAGE"], "auto picks the member that keeps a video's frame rate")])
def test_auto_refusals_are_one_line(tmp_path, capsys, args, said):
    from srnas.supernet.imaging import write_png
    src = natural_video(tmp_path / "clip.mp4", "zoom", 32, 24, 0.2, 30, benchmarks=False, preset="ultrafast")
    write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = [str(tmp_path / "a.png") if a == "IMAGE" else a for a in args]
    assert main(["upscale", "auto", str(src), *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_member_is_timed_through_the_real_pipeline_and_stops_once_it_falls_short(tmp_path):
    """time_member (the measurement the other tests inject) on a cheap model: the video's first frames through
    decode, model and encode into a scratch file, at most AUTO_FRAMES of them, and fewer once the rate asked for
    is out of reach."""
    src = natural_video(tmp_path / "clip.mp4", "pan", 32, 24, 2.0, 30, benchmarks=False, preset="ultrafast")

    def make(name):
        return Upscaler(name, threads=1)
    rate, up = upscale_mod.time_member("bicubic", src, 30.0, make)
    with up:
        assert rate > 0 and up.name == "bicubic"
    assert list(tmp_path.iterdir()) == [src]   # the sample's output went to a scratch folder, now gone
    from srnas.experiments.video_upscale import upscale_video
    with Upscaler("bicubic", threads=1) as up:
        full = upscale_video(up, src, tmp_path / "a.mp4", progress=False, max_frames=upscale_mod.AUTO_FRAMES)
        short = upscale_video(up, src, tmp_path / "b.mp4", progress=False, give_up_s=0.0)
    assert full.frames == upscale_mod.AUTO_FRAMES and not full.stopped_early
    assert short.stopped_early and short.frames < 60


def test_upscaler_auto_on_your_frames(monkeypatch):
    """Upscaler('auto', fps=, sample=): the same choice on the app's own frames (model alone: the app decodes and
    shows them); the instance is the chosen member, ready, and says why."""
    members = _front()
    rates = {m: 100.0 - 20 * i for i, m in enumerate(members)}
    asked = []
    monkeypatch.setattr(upscaler_mod, "frames_rate", lambda up, frames, jobs=2: asked.append(up.name) or rates[up.name])
    frames = list(natural_frames("pan", 32, 24, 4, benchmarks=False))
    with Upscaler("auto", fps=50, sample=frames, threads=1) as up:
        want = [m for m in members if rates[m] >= 50][-1]
        assert up.name == want and up.choice.name == want and up.choice.keeps
        assert up.choice.line().startswith(f"auto: {want} keeps 50 fps here")
        assert up(frames[0]).shape == (48, 64, 3)
    assert len(asked) == len(set(asked))
    with pytest.raises(UserError, match="pass sample="):
        Upscaler("auto", fps=30)
    with pytest.raises(UserError, match="fps= and sample= are for Upscaler"):
        Upscaler("bicubic", fps=30)

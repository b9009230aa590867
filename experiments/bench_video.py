"""Video benchmark: end-to-end frames/s of `srnas upscale` on a made-up video against the model alone, one run.

For each size (360p -> 720p, 540p -> 1080p) it makes a test video (moving content cut from the embedded
images, with an AAC tone; nothing downloaded), then in the same process and executor:
  - model alone: the Upscaler's compiled model on LR frames back to back (and, for reference, the median
    latency from the harness `srnas bench` times with);
  - end to end: decode + model + encode with the three overlapped threads `srnas upscale` uses;
  - end to end, one thread: the same steps one after another (what the overlap buys);
in interleaved rounds on a short clip (the ratio is the median of the rounds' ratios), then runs the full
video end to end and checks it decodes to the same frame count, rate, duration and audio as the input.
Prints a markdown table; the LAST line is JSON. Timings on a loaded machine are indicative; the ratios
are side by side in one run.

    .venv/bin/python experiments/bench_video.py                                  # srnas_abpn, its executor
    .venv/bin/python experiments/bench_video.py --seconds 2 --sizes 360p         # smoke run
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from srnas.experiments.timing import measure_latency
from srnas.experiments.upscaler import Upscaler
from srnas.experiments.video import VideoReader, VideoWriter, probe
from srnas.experiments.video_samples import make_video, moving_frames
from srnas.experiments.video_upscale import upscale_video
from srnas.latency.fingerprint import resolve_threads

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720)}


def sequential_video(up: Upscaler, src: Path, dst: Path, preset: str | None = None) -> tuple[int, float]:
    """Decode, model and encode one frame after another in one thread: (frames, seconds)."""
    t0, n = time.perf_counter(), 0
    with VideoReader(src) as r:
        w = None
        for item in r:
            if not hasattr(item, "rgb"):
                if w is not None:
                    w.mux_audio(item)
                continue
            sr = up(item.rgb)   # OpenVINO takes 8-bit frames itself, as the threaded pipeline does
            if w is None:
                w = VideoWriter(dst, r.info, sr.shape[1], sr.shape[0], "libx264", None, r.audio, preset=preset)
            w.write(sr, item.pts)
            n += 1
        w.close()
    return n, time.perf_counter() - t0


def count_frames(path: Path) -> tuple[int, int]:
    """(video frames, audio packets) a file decodes to."""
    frames = audio = 0
    with VideoReader(path) as r:
        for item in r:
            frames += hasattr(item, "rgb")
            audio += not hasattr(item, "rgb")
    return frames, audio


def model_alone_fps(up: Upscaler, hw: tuple[int, int], n: int) -> float:
    """Frames/s of the Upscaler's compiled model alone, ``n`` LR frames back to back (no video around it)."""
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    up.infer(x)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(n):
            up.infer(x)
    return n / (time.perf_counter() - t0)


def bench_size(up: Upscaler, name: str, seconds: float, fps: float, work: Path, threads: int, repeats: int,
               rounds: int, clip_s: float, preset: str | None = None) -> dict:
    """One size: the ratio end to end / model alone from interleaved rounds, and the full video's run and checks.

    Each round times the model alone on as many frames as a short clip holds, then the clip end to end
    (threads), then one thread: load from other processes that comes and goes hits all three alike, and the
    median of the per-round ratios is reported.
    """
    w, h = SIZES[name]
    src = make_video(work / f"{name}.mp4", moving_frames(w, h, int(round(seconds * fps))), fps)
    clip = make_video(work / f"{name}_clip.mp4", moving_frames(w, h, int(round(clip_s * fps))), fps)
    n_clip = int(round(clip_s * fps))
    up.warm((h, w))
    bench_ms = measure_latency({"model": up.infer}, (h, w), repeats=repeats, threads=threads)["model"]
    per_round = []
    for _ in range(rounds):
        alone = model_alone_fps(up, (h, w), n_clip)
        e2e = upscale_video(up, clip, work / f"{name}_clip_sr.mp4", progress=False, preset=preset).fps
        n_seq, s_seq = sequential_video(up, clip, work / f"{name}_clip_seq.mp4", preset)
        per_round.append({"model_fps": round(alone, 2), "e2e_fps": round(e2e, 2), "seq_fps": round(n_seq / s_seq, 2)})
    res = upscale_video(up, src, work / f"{name}_sr.mp4", progress=False, preset=preset)
    a, b = probe(src), probe(work / f"{name}_sr.mp4")
    (fa, aa), (fb, ab) = count_frames(src), count_frames(work / f"{name}_sr.mp4")

    def med(key: str, of: str | None = None) -> float:
        vals = [r[key] / (r[of] if of else 1) for r in per_round]
        return float(np.median(vals))
    return {"size": f"{name} {w}x{h} -> {w * up.scale}x{h * up.scale}", "executor": up.executor,
            "preset": preset or "ultrafast",
            "source_fps": fps, "bench_median_ms": round(bench_ms, 2),
            "model_fps": round(med("model_fps"), 1), "e2e_fps": round(med("e2e_fps"), 1),
            "e2e_ratio": round(med("e2e_fps", "model_fps"), 3), "seq_fps": round(med("seq_fps"), 1),
            "seq_ratio": round(med("seq_fps", "model_fps"), 3), "rounds": per_round,
            "full_video": {"seconds": seconds, "frames": res.frames, "e2e_fps": round(res.fps, 1),
                           "real_time": res.real_time, "busy_ms_per_frame": res.to_json()["busy_ms_per_frame"],
                           "same_frames": fa == fb, "same_audio_packets": aa == ab, "same_rate": a.rate == b.rate,
                           "duration_in_out": [round(a.duration_s, 3), round(b.duration_s, 3)],
                           "errors": res.errors}}


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    head = ["size", "executor", "x264 preset", "model alone fps", "end to end fps", "e2e / model", "one thread fps",
            "1-thread / model", "full video: fps, real time", "output = input (frames, audio, rate)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        v = r["full_video"]
        same = "yes" if v["same_frames"] and v["same_audio_packets"] and v["same_rate"] else "NO"
        lines.append(f"| {r['size']} | {r['executor']} | {r['preset']} | {r['model_fps']} | {r['e2e_fps']} | "
                     f"{r['e2e_ratio']:.2f} | {r['seq_fps']} | {r['seq_ratio']:.2f} | {v['e2e_fps']}, "
                     f"{'yes' if v['real_time'] else 'no'} (source {r['source_fps']:g} fps) | {same} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="srnas_abpn")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--sizes", default="360p,540p")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=0, help="runtime threads (0: all cores)")
    ap.add_argument("--repeats", type=int, default=15, help="timed runs of srnas bench's latency harness")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of model alone / end to end / one thread")
    ap.add_argument("--clip", type=float, default=2.0, help="seconds of video per round")
    ap.add_argument("--presets", default="ultrafast", help="comma-separated x264 presets, each measured")
    args = ap.parse_args()
    threads = resolve_threads(args.threads)
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as work, Upscaler(args.model, args.backend, args.precision,
                                                         threads=args.threads) as up:
        print(f"{up.name} in {up.executor} ({up.chosen_by}), {threads} threads, {platform.processor() or ''}")
        for name in args.sizes.split(","):
            for preset in args.presets.split(","):
                rows.append(bench_size(up, name.strip(), args.seconds, args.fps, Path(work), args.threads,
                                       args.repeats, args.rounds, args.clip, preset.strip()))
    print(markdown(rows))
    print(json.dumps({"model": args.model, "threads": threads, "rows": rows}))


if __name__ == "__main__":
    main()

"""Video benchmark: end-to-end frames/s of `srnas upscale` on a made-up video against the model alone, one run.

For each size (360p -> 720p, 540p -> 1080p) it makes a test video (moving content cut from the embedded
images, with an AAC tone; nothing downloaded), then in the same process and executor:
  - model alone: the Upscaler's compiled model on one LR frame, median of interleaved timed runs (the
    harness `srnas bench` times latency with);
  - end to end: decode + model + encode with the three overlapped threads `srnas upscale` uses;
  - end to end, one thread: the same steps one after another (what the overlap buys);
and checks the output decodes to the same frame count, rate, duration and audio as the input.
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

import torch

from experiments.timing import measure_latency
from experiments.upscaler import Upscaler
from experiments.video import VideoReader, VideoWriter, probe
from experiments.video_samples import make_video, moving_frames
from experiments.video_upscale import upscale_video
from latency.fingerprint import resolve_threads

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720)}


def sequential_video(up: Upscaler, src: Path, dst: Path) -> tuple[int, float]:
    """Decode, model and encode one frame after another in one thread: (frames, seconds)."""
    t0, n = time.perf_counter(), 0
    with VideoReader(src) as r:
        w = None
        for item in r:
            if not hasattr(item, "rgb"):
                if w is not None:
                    w.mux_audio(item)
                continue
            sr = up.infer(up.to_input(item.rgb))
            if w is None:
                w = VideoWriter(dst, r.info, int(sr.shape[-1]), int(sr.shape[-2]), "libx264", None, r.audio)
            w.write_tensor(sr, item.pts)
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


def bench_size(up: Upscaler, name: str, seconds: float, fps: float, work: Path, threads: int,
               repeats: int) -> dict:
    """One size: make the video, time model alone / pipeline / sequential, check the output."""
    w, h = SIZES[name]
    src = make_video(work / f"{name}.mp4", moving_frames(w, h, int(round(seconds * fps))), fps)
    up.warm((h, w))
    # the model alone is timed before and after the two video runs: the mean of both stands beside them, so a
    # change of load from other processes during the run shows as a spread instead of skewing the ratio
    before = measure_latency({"model": up.infer}, (h, w), repeats=repeats, threads=threads)["model"]
    res = upscale_video(up, src, work / f"{name}_sr.mp4", progress=False)
    n_seq, s_seq = sequential_video(up, src, work / f"{name}_seq.mp4")
    after = measure_latency({"model": up.infer}, (h, w), repeats=repeats, threads=threads)["model"]
    model_ms = (before + after) / 2
    a, b = probe(src), probe(work / f"{name}_sr.mp4")
    (fa, aa), (fb, ab) = count_frames(src), count_frames(work / f"{name}_sr.mp4")
    model_fps = 1000.0 / model_ms
    return {"size": f"{name} {w}x{h} -> {w * up.scale}x{h * up.scale}", "executor": up.executor,
            "source_fps": fps, "frames": res.frames, "model_ms": round(model_ms, 2),
            "model_ms_before_after": [round(before, 2), round(after, 2)], "model_fps": round(model_fps, 1),
            "e2e_fps": round(res.fps, 1), "e2e_ratio": round(res.fps / model_fps, 3),
            "seq_fps": round(n_seq / s_seq, 1), "seq_ratio": round(n_seq / s_seq / model_fps, 3),
            "real_time": res.fps >= fps, "busy_ms_per_frame": res.to_json()["busy_ms_per_frame"],
            "same_frames": fa == fb, "same_audio_packets": aa == ab, "same_rate": a.rate == b.rate,
            "duration_in_out": [round(a.duration_s, 3), round(b.duration_s, 3)], "errors": res.errors}


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    head = ["size", "executor", "model alone fps (ms)", "end to end fps", "e2e / model", "one thread fps",
            "1-thread / model", "real time", "output = input (frames, audio, rate)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        same = "yes" if r["same_frames"] and r["same_audio_packets"] and r["same_rate"] else "NO"
        lines.append(f"| {r['size']} | {r['executor']} | {r['model_fps']} ({r['model_ms']}) | {r['e2e_fps']} | "
                     f"{r['e2e_ratio']:.2f} | {r['seq_fps']} | {r['seq_ratio']:.2f} | "
                     f"{'yes' if r['real_time'] else 'no'} (source {r['source_fps']:g} fps) | {same} |")
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
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    threads = resolve_threads(args.threads)
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as work, Upscaler(args.model, args.backend, args.precision,
                                                         threads=args.threads) as up:
        print(f"{up.name} in {up.executor} ({up.chosen_by}), {threads} threads, {platform.processor() or ''}")
        for name in args.sizes.split(","):
            rows.append(bench_size(up, name.strip(), args.seconds, args.fps, Path(work), args.threads, args.repeats))
    print(markdown(rows))
    print(json.dumps({"model": args.model, "threads": threads, "rows": rows}))


if __name__ == "__main__":
    main()

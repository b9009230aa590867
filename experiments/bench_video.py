"""Video benchmark on natural content: end-to-end frames/s of `srnas upscale` beside the model alone, one run.

The clips are photographs panned and zoomed (experiments/video_samples.py: scikit-image's photos and, where
present, B100's, at their own scale), with an AAC tone, encoded as a camera or a download would be (x264
medium, crf 20); nothing is downloaded. Two tables, then checks:

  1. pipeline choices, side by side: one model (--model, default srnas_abpn) at --choice-sizes, each variant
     of --variants (frames in flight, OpenVINO streams, decoder / encoder threads and their priority, the
     model's threads, the x264 preset) end to end on the pan and the zoom clip, in interleaved rounds (load
     that comes and goes hits every variant alike; the median of the rounds is reported);
  2. the front: every member of this CPU's front (zoo.search_members) at each input size (360p, 540p, 720p):
     the model alone (`srnas bench`'s harness: median ms of one 8-bit frame through the runtime's route) beside
     end to end on the pan and the zoom clip with the default pipeline, the real-time verdict at --fps, and
     the member `srnas upscale auto` picks at each size (the largest that keeps the rate);
  3. every output decodes to the input's frame count, rate, duration and audio.

End to end leaves start-up out (opening, compile, first frame; given apart). Prints markdown tables; the LAST
line is JSON. It warns when other processes keep the cores busy: figures taken then are not valid.

    .venv/bin/python experiments/bench_video.py            # docs/video.md's tables (quiet machine, ~20 min on 2 cores)
    .venv/bin/python experiments/bench_video.py --quick    # smoke run: 360p, two members, 1 s clips, one round
    .venv/bin/python experiments/bench_video.py --parts    # table 0: decode, model, encode each alone, CPU per frame
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from srnas.experiments.timing import measure_latency
from srnas.experiments.auto_pick import front_members
from srnas.experiments.upscaler import Upscaler
from srnas.experiments.video import VideoReader, VideoWriter, output_size, probe
from srnas.experiments.video_samples import MOTIONS, natural_video
from srnas.experiments.video_upscale import Pipeline, VideoResult, open_flight, upscale_video
from srnas.latency.fingerprint import cpu_isa, cpu_model, resolve_threads
from srnas.latency.quiet import busy_message, other_cores_busy

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720)}
# each choice against the default (jobs=3): jobs=0 is the pipeline before the async queue
DEFAULT_VARIANTS = ("jobs=0;jobs=2;jobs=3;jobs=4;jobs=3,streams=1;jobs=3,planes=0;jobs=3,decode=1;jobs=3,encode=1;"
                    "jobs=3,nice=5;jobs=3,threads=1")
QUICK_VARIANTS = "jobs=0;jobs=3"
KEYS = {"jobs": ("jobs", int), "streams": ("streams", int), "decode": ("decode_threads", int),
        "dtype": ("decode_thread_type", str), "encode": ("encode_threads", int), "nice": ("nice", int),
        "planes": ("planes", lambda v: v.lower() not in ("0", "false", "no", "off"))}


@dataclass(frozen=True)
class Variant:
    """One way to run the pipeline: its label as given, the Pipeline, the model's threads and the x264 preset."""

    label: str
    pipeline: Pipeline
    threads: int = 0            # the model's threads (0: --threads)
    preset: str | None = None   # x264 preset (None: ultrafast, the default)


def parse_variants(spec: str) -> list[Variant]:
    """'jobs=2,decode=1;jobs=0' -> Variants; keys: jobs, streams, decode, dtype, encode, nice, planes (0: RGB out,
    swscale to YUV), threads, preset."""
    out = []
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        pipe, threads, preset = Pipeline(), 0, None
        for kv in part.split(","):
            key, _, value = kv.strip().partition("=")
            if key == "threads":
                threads = int(value)
            elif key == "preset":
                preset = value
            elif key in KEYS:
                name, kind = KEYS[key]
                pipe = replace(pipe, **{name: kind(value.upper() if key == "dtype" else value)})
            else:
                keys = ", ".join([*KEYS, "threads", "preset"])
                raise SystemExit(f"--variants: unknown key {key!r} in {part!r}; keys: {keys}")
        out.append(Variant(part, pipe, threads, preset))
    return out


class Bench:
    """The clips and the Upscalers of one run, each made once: clips per (size, motion), models per (name, threads)."""

    def __init__(self, work: Path, seconds: float, fps: float, threads: int, benchmarks: bool):
        self.work, self.seconds, self.fps, self.threads, self.benchmarks = work, seconds, fps, threads, benchmarks
        self._clips: dict[tuple[str, str], Path] = {}
        self._models: dict[tuple[str, int], Upscaler] = {}

    def clip(self, size: str, motion: str) -> Path:
        """The natural clip of ``motion`` at input ``size``, made on first use."""
        if (size, motion) not in self._clips:
            w, h = SIZES[size]
            self._clips[size, motion] = natural_video(self.work / f"{motion}_{size}.mp4", motion, w, h, self.seconds,
                                                      self.fps, benchmarks=self.benchmarks)
        return self._clips[size, motion]

    def model(self, name: str, threads: int = 0) -> Upscaler:
        """``name`` in its own executor with ``threads`` model threads (0: the run's)."""
        key = (name, threads or self.threads)
        if key not in self._models:
            self._models[key] = Upscaler(name, threads=key[1])
        return self._models[key]

    def close(self) -> None:
        for up in self._models.values():
            up.close()

    def run(self, up: Upscaler, size: str, motion: str, pipe: Pipeline, preset: str | None = None) -> VideoResult:
        """One end-to-end run of ``up`` on a clip, into a scratch file (kept for the output checks)."""
        dst = self.work / f"out_{up.name}_{motion}_{size}.mp4"
        return upscale_video(up, self.clip(size, motion), dst, progress=False, preset=preset, pipeline=pipe)


def model_alone(up: Upscaler, size: str, repeats: int) -> dict:
    """`srnas bench`'s harness on this model: median ms of one LR frame at ``size``, as 8-bit pixels through the
    runtime's route where it has one (what the pipeline runs), else on floats."""
    w, h = SIZES[size]
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    run = up.pixel_route(frame)
    fn = (lambda x: run(frame)) if run is not None else up.infer
    ms = measure_latency({"model": fn}, (h, w), repeats=repeats, threads=up.threads)["model"]
    return {"ms": round(ms, 2), "fps": round(1000.0 / ms, 1), "input": "8-bit frames" if run is not None else "float"}


def _median(values: list[float]) -> float:
    return round(float(statistics.median(values)), 1) if values else float("nan")


def bench_variants(b: Bench, model: str, sizes: list[str], variants: list[Variant], rounds: int,
                   repeats: int) -> list[dict]:
    """Table 1: each variant end to end on the pan and zoom clips, in interleaved rounds (the order turns each
    round), beside the model alone in the variant's thread count."""
    rows = []
    for size in sizes:
        runs: dict[str, list[VideoResult]] = {v.label: [] for v in variants}
        for r in range(rounds):
            for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                for motion in MOTIONS:
                    runs[v.label].append(b.run(b.model(model, v.threads), size, motion, v.pipeline, v.preset))
        for v in variants:
            up = b.model(model, v.threads)
            alone = model_alone(up, size, repeats)
            res = runs[v.label]
            e2e = {m: _median([x.fps for x in res if x.src.stem.startswith(m)]) for m in MOTIONS}
            busy = {k: _median([x.to_json()["busy_ms_per_frame"][k] for x in res]) for k in ("decode", "model",
                                                                                            "encode")}
            rows.append({"size": size, "variant": v.label, "pipeline": v.pipeline.describe(), "model": up.name,
                         "executor": up.executor, "model_threads": resolve_threads(up.threads),
                         "preset": v.preset or "ultrafast", "model_alone": alone, "e2e_fps": e2e,
                         "e2e_ratio": round(min(e2e.values()) / alone["fps"], 3),
                         "model_fps_in_pipeline": _median([x.model_fps for x in res]),
                         "startup_s": round(float(np.median([x.startup_s for x in res])), 2),
                         "busy_ms_per_frame": busy})
    return rows


def bench_front(b: Bench, members: list[str], sizes: list[str], rounds: int, repeats: int,
                pipe: Pipeline) -> list[dict]:
    """Table 2: every member at every size, model alone beside end to end (pan, zoom), real time at the run's fps."""
    rows = []
    for size in sizes:
        for name in members:
            up = b.model(name)
            alone = model_alone(up, size, repeats)
            res = [b.run(up, size, motion, pipe) for _ in range(rounds) for motion in MOTIONS]
            e2e = {m: _median([x.fps for x in res if x.src.stem.startswith(m)]) for m in MOTIONS}
            rows.append({"size": size, "member": name, "executor": up.executor, "model_alone": alone,
                         "e2e_fps": e2e, "e2e_ratio": round(min(e2e.values()) / alone["fps"], 3),
                         "real_time": min(e2e.values()) >= b.fps, "startup_s": round(res[0].startup_s, 2),
                         "checks": [check_output(x) for x in res[:len(MOTIONS)]]})
        keeping = [r for r in rows if r["size"] == size and r["real_time"]]
        for r in rows:   # members run fastest first: auto's pick is the last that keeps the rate
            if r["size"] == size:
                r["auto_pick"] = bool(keeping) and r is keeping[-1]
    return rows


def _cpu_s() -> float:
    """CPU seconds this process has used (every thread: the runtime's, the codecs')."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_parts(b: Bench, model: str, size: str) -> list[dict]:
    """Table 0: each stage of the pipeline alone over the pan clip's frames, CPU time (all threads) and wall time
    per frame: the decoder (to RGB), the model's flight (default pipeline) with YUV planes out and with RGB out,
    and the encoder (x264 ultrafast) fed each. End to end, the stages share the cores: their sum is its floor."""
    up, src = b.model(model), b.clip(size, "pan")
    info, frames, rows = probe(src), [], []

    def timed(stage: str, work) -> None:
        c, t = _cpu_s(), time.perf_counter()
        work()
        c, t = _cpu_s() - c, time.perf_counter() - t
        rows.append({"size": size, "stage": stage, "core_ms": round(1000 * c / len(frames), 2),
                     "fps": round(len(frames) / t, 1)})

    def decode() -> None:
        with VideoReader(src) as r:
            frames.extend(x.rgb for x in r if hasattr(x, "rgb"))
    timed("decode (to RGB)", decode)   # per frame: counted once the frames are in
    for planes in (True, False):
        flight, outs = open_flight(up, info, Pipeline(planes=planes), "libx264"), []
        form = "YUV planes" if flight.planes else "RGB"

        def model() -> None:
            outs.extend(flight.outputs(frames))
            flight.close()

        def encode() -> None:
            h, w = output_size(outs[0])
            writer = VideoWriter(b.work / f"parts_{size}_{planes}.mp4", info, w, h)
            for i, o in enumerate(outs):
                writer.write_output(o, i)
            writer.close()
        timed(f"model, {form} out", model)
        timed(f"encode {form}", encode)
    return rows


def parts_markdown(rows: list[dict]) -> str:
    """Table 0 as markdown."""
    lines = ["| input | stage alone | core-ms / frame | fps alone |", "|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['stage']} | {r['core_ms']} | {r['fps']} |" for r in rows]
    return "\n".join(lines)


def count_frames(path: Path) -> tuple[int, int]:
    """(video frames, audio packets) a file decodes to."""
    frames = audio = 0
    with VideoReader(path) as r:
        for item in r:
            frames += hasattr(item, "rgb")
            audio += not hasattr(item, "rgb")
    return frames, audio


def check_output(res: VideoResult) -> dict:
    """Whether a run's output holds the input's frames, audio packets, rate and duration."""
    a, b = probe(res.src), probe(res.dst)
    (fa, aa), (fb, ab) = count_frames(res.src), count_frames(res.dst)
    return {"output": res.dst.name, "same_frames": fa == fb, "same_audio_packets": aa == ab,
            "same_rate": a.rate == b.rate, "duration_in_out": [round(a.duration_s, 3), round(b.duration_s, 3)],
            "ok": fa == fb and aa == ab and a.rate == b.rate and abs(a.duration_s - b.duration_s) < 0.05,
            "errors": res.errors}


def variants_markdown(rows: list[dict]) -> str:
    """Table 1 as markdown."""
    head = ["input", "variant", "model threads", "x264", "model alone fps (ms)", "e2e fps pan", "e2e fps zoom",
            "e2e / model", "model in pipeline fps", "busy ms decode / model / encode", "start-up s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        a, e, busy = r["model_alone"], r["e2e_fps"], r["busy_ms_per_frame"]
        lines.append(f"| {r['size']} | `{r['variant']}` | {r['model_threads']} | {r['preset']} | {a['fps']} "
                     f"({a['ms']}) | {e['pan']} | {e['zoom']} | {r['e2e_ratio']:.2f} | {r['model_fps_in_pipeline']} "
                     f"| {busy['decode']} / {busy['model']} / {busy['encode']} | {r['startup_s']} |")
    return "\n".join(lines)


def front_markdown(rows: list[dict], fps: float) -> str:
    """Table 2 as markdown: the table a user reads to pick a model."""
    head = ["input -> output", "member", "model alone fps (ms)", "end to end fps: pan", "zoom", "e2e / model",
            f"real time at {fps:g} fps", "output = input"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        w, h = SIZES[r["size"]]
        a, e = r["model_alone"], r["e2e_fps"]
        verdict = ("**yes (auto's pick)**" if r.get("auto_pick") else "yes") if r["real_time"] else "no"
        same = "yes" if all(c["ok"] for c in r["checks"]) else "NO"
        lines.append(f"| {r['size']} {w}x{h} -> {2 * w}x{2 * h} | {r['member']} | {a['fps']} ({a['ms']}) | "
                     f"{e['pan']} | {e['zoom']} | {r['e2e_ratio']:.2f} | {verdict} | {same} |")
    return "\n".join(lines)


def quick(args: argparse.Namespace) -> argparse.Namespace:
    """--quick: a smoke run of every step in a minute or two."""
    args.sizes, args.choice_sizes = "360p", "360p"
    args.variants, args.seconds, args.rounds, args.repeats = QUICK_VARIANTS, 1.0, 1, 3
    args.members = args.members or "first2"
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="srnas_abpn", help="the model table 1 compares the pipeline choices on")
    ap.add_argument("--members", default="", help="comma-separated members for table 2 (default: this CPU's front)")
    ap.add_argument("--sizes", default="360p,540p,720p", help="input sizes of table 2")
    ap.add_argument("--choice-sizes", default="360p,540p", help="input sizes of table 1")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help="table 1's pipelines, ';'-separated, each ','-separated key=value: jobs (frames in flight; "
                         "0: one synchronous call at a time), streams (OpenVINO), decode / encode (threads; 0: the "
                         "codec's count), dtype (decoder FRAME / SLICE / AUTO), nice (decode and encode threads' "
                         "priority lowered), threads (the model's), preset (x264); '' skips table 1")
    ap.add_argument("--presets", default="", help="comma-separated x264 presets: table 1 compares the default "
                                                  "pipeline with each (instead of --variants)")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    ap.add_argument("--fps", type=float, default=30.0, help="the clips' frame rate, and the rate real time means")
    ap.add_argument("--threads", type=int, default=0, help="the model's threads (0: all cores)")
    ap.add_argument("--repeats", type=int, default=15, help="timed runs of srnas bench's harness")
    ap.add_argument("--rounds", type=int, default=2, help="end-to-end runs of each clip per variant / member")
    ap.add_argument("--no-benchmarks", action="store_true", help="the embedded photos only (not B100's)")
    ap.add_argument("--parts", action="store_true", help="only table 0: each stage alone (decode, model, encode), "
                                                         "CPU time per frame, for --model at --choice-sizes")
    ap.add_argument("--quick", action="store_true", help="smoke run: 360p, two members, 1 s clips, one round")
    args = ap.parse_args()
    if args.quick:
        args = quick(args)
    threads = resolve_threads(args.threads)
    busy_before = other_cores_busy()
    warn = busy_message()
    if warn:
        print(f"WARNING: {warn}: the figures of this run are not valid")
    members = front_members(2)
    chosen = [m.strip() for m in args.members.split(",") if m.strip()]
    members = members[:2] if chosen == ["first2"] else (chosen or members)
    print(f"{cpu_model()} ({cpu_isa()}), {threads} model threads; front: {', '.join(members)}")
    with tempfile.TemporaryDirectory(prefix="srnas-bench-video-") as work:
        b = Bench(Path(work), args.seconds, args.fps, args.threads, not args.no_benchmarks)
        try:
            if args.parts:
                rows = [r for size in args.choice_sizes.split(",") for r in bench_parts(b, args.model, size)]
                print(f"\n## Each stage alone ({args.model}, natural pan clip, {args.seconds:g} s)\n")
                print(parts_markdown(rows))
                print(json.dumps({"cpu": cpu_model(), "isa": cpu_isa(), "threads": threads, "parts": rows}))
                return
            presets = [p.strip() for p in args.presets.split(",") if p.strip()]
            variants = parse_variants(";".join(f"jobs={Pipeline().jobs},preset={p}" for p in presets)
                                      if presets else args.variants)
            table1 = bench_variants(b, args.model, args.choice_sizes.split(","), variants, args.rounds,
                                    args.repeats) if variants else []
            table2 = bench_front(b, members, args.sizes.split(","), args.rounds, args.repeats, Pipeline())
        finally:
            b.close()
    busy_after = other_cores_busy()
    if table1:
        print(f"\n## Pipeline choices ({args.model}, natural content, {args.seconds:g} s clips at {args.fps:g} fps, "
              f"median of {args.rounds} round(s))\n")
        print(variants_markdown(table1))
    print(f"\n## This CPU's front on natural content (default pipeline: {Pipeline().describe()})\n")
    print(front_markdown(table2, args.fps))
    ok = all(c["ok"] for r in table2 for c in r["checks"])
    print(f"\noutputs keep every frame, the rate, the duration and the audio: {'yes' if ok else 'NO'}")
    if warn or (busy_after or 0) > 0.3:
        print("WARNING: other processes used the cores during this run: rerun on a quiet machine")
    print(json.dumps({"cpu": cpu_model(), "isa": cpu_isa(), "threads": threads, "fps": args.fps,
                      "seconds": args.seconds, "rounds": args.rounds, "other_cores_busy": [busy_before, busy_after],
                      "default_pipeline": Pipeline().describe(), "variants": table1, "front": table2,
                      "outputs_ok": ok}))


if __name__ == "__main__":
    main()

"""`srnas zoo train|list|export`, `srnas bench`, `srnas upscale`."""
from __future__ import annotations

import argparse
from pathlib import Path

from srnas.latency.fingerprint import PRECISIONS
from srnas.latency.runtimes.registry import names as backends

# the x264 / x265 speed presets (experiments.video.X264_PRESETS; repeated so --help needs no PyAV import)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
from srnas.supernet.cli import add_training_args
from srnas.supernet.errors import UserError

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "zoo.yaml")


UPSCALE_DESCRIPTION = """Upscale images, videos, or folders of them, with a zoo, searched or exported model.

Each image is written as <out>/<name>.png. An alpha channel is upscaled bicubic and kept (RGBA out),
16-bit input gives 16-bit output, and a grey image (one channel, or three equal ones) gives a grey one.
Each video (.mp4, .mkv, .webm, .mov) is written as <out>/<name> in the same container: H.264 (VP9 for
WebM), with its time stamps, audio (copied), rotation and colour (matrix, range) kept, 10-bit kept 10-bit
where the codec can. It is written as <name>.partial<ext> until complete; a killed run leaves that file
(playable up to its last fragment) and a rerun replaces it. The model runs in the executor recorded in
its file (searched models), else the fastest one here in its own precision (timed at start).

`srnas upscale auto in.mp4 --out up/` picks, for each video, the largest member of this CPU's searched front
(at --scale, default x2) that keeps the video's frame rate (or --fps) end to end here: members are timed on the
video's own first frames through the whole pipeline (decode, model, encode), by bisection over the front, and
one line says which member and why; where none keeps the rate, the fastest runs and the line says NOT real
time. The reported frames/s leave start-up (opening, compile, first frame) out; it is given apart."""
UPSCALE_EPILOG = """exit status:
  0  every input was upscaled
  1  some inputs could not be read (corrupt, empty, not an image, a video with no video stream or
     frames that fail to decode) or written; they are listed at the end, every other input and every
     decodable frame was still written
  2  nothing was done: a missing input, an unknown model, or an --out that is a file, cannot be
     created or is not writable (checked before any image is processed)"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the zoo, bench and upscale commands."""
    z = sub.add_parser("zoo", help="the baseline zoo (FSRCNN, ESPCN, edge-SR, ABPN, WDSR, bicubic)")
    g = z.add_subparsers(dest="action", required=True)
    t = g.add_parser("train", help="train one zoo model with the shared recipe (resumable)")
    t.add_argument("name", help="zoo model name, or abpn_int8 (QAT of the trained ABPN)")
    add_training_args(t, DEFAULT_CONFIG)
    t.set_defaults(func=_zoo_train)
    ls = g.add_parser("list", help="list the registered models and whether weights are shipped")
    ls.add_argument("--scale", type=int, default=2)
    ls.set_defaults(func=_zoo_list)
    ex = g.add_parser("export", help="write a zoo model as TorchScript (model.ts) and, for FP32, ONNX (model.onnx)")
    ex.add_argument("name")
    ex.add_argument("--out", required=True)
    ex.add_argument("--scale", type=int, default=2)
    ex.add_argument("--weights-dir", help="folder of <name>_x<scale>.pt (default: shipped weights)")
    ex.set_defaults(func=_zoo_export)
    fr = g.add_parser("front", help="this machine's searched front: every shipped member timed here (once, cached), "
                                    "the Pareto set named srnas_xs, srnas_s, ... and the aliases")
    fr.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    fr.add_argument("--retime", action="store_true", help="time every member again (e.g. on a quieter machine)")
    fr.add_argument("--weights-dir", default=None, help="a weights folder with fronts/<class>/ (default: shipped)")
    fr.set_defaults(func=_zoo_front)

    b = sub.add_parser("bench", help="PSNR/SSIM, latency, params, MACs of zoo and exported models; table + plot")
    b.add_argument("-c", "--config", help="take datasets, scale, data root and latency size from this config")
    b.add_argument("--run", help="a `srnas run` folder: its winner against the zoo in the run's executor, on its "
                                 "benchmarks, appended to its report.md (default --out: RUN/bench)")
    b.add_argument("--models", default="", help="comma-separated zoo names and/or .ts/.onnx files "
                                                "(default: the zoo's must-show list)")
    b.add_argument("--datasets", default="", help="comma-separated names or folders (default Set5,Set14,B100)")
    b.add_argument("--scale", type=int, default=None)
    b.add_argument("--out", help="output folder for bench.csv, bench.md, bench.png (required without --run)")
    b.add_argument("--data-root", default=None, help="where dataset names resolve (default $SRNAS_DATA, "
                                                     "else ../shared/data/benchmarks)")
    b.add_argument("--weights-dir", default=None, help="folder of <name>_x<scale>.pt (default: shipped weights)")
    b.add_argument("--lr-size", default=None, help="latency input HxW (default 360x640: 720p output at x2)")
    b.add_argument("--threads", type=int, default=None, help="torch threads (default: config, else all)")
    b.add_argument("--repeats", type=int, default=7, help="timed runs per model (median reported)")
    b.add_argument("--backend", default=None, choices=[*backends(), "best"],
                   help="time and score every model in this runtime; best: each in the executor it runs best in "
                        "here (with --run, the default); default: torch, .onnx files in onnxruntime")
    b.add_argument("--precision", default=None, choices=list(PRECISIONS),
                   help="force one precision (default: each model its own: abpn_int8 and INT8 files int8, "
                        "the rest fp32)")
    b.add_argument("--crops", action="store_true",
                   help="also write crops/<dataset>.png: zoomed crops of bicubic, every model and HR side by side, "
                        "on each dataset's first image")
    b.set_defaults(func=_bench)

    u = sub.add_parser("upscale", help="apply a zoo or exported model to images / folders of frames",
                       description=UPSCALE_DESCRIPTION, epilog=UPSCALE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    u.add_argument("model", help="zoo or searched name (srnas_abpn, fsrcnn, abpn, abpn_int8, ...), a .ts/.onnx "
                                 "export or a pruned-model .pt; auto (videos): the largest member of this CPU's "
                                 "front that keeps the video's frame rate here, timed on its first frames")
    u.add_argument("inputs", nargs="+", help="image and video files and/or folders of them")
    u.add_argument("--out", required=True, help="output folder (created if missing); <name>.png per image, "
                                                "<name>.<ext> per video")
    u.add_argument("--backend", default=None, choices=["auto", *backends()],
                   help="runtime (default: the one recorded in the model file; else auto: the fastest here)")
    u.add_argument("--precision", default=None, choices=["auto", *PRECISIONS],
                   help="default: the model's own (int8 for searched INT8 models and abpn_int8, else fp32)")
    u.add_argument("--codec", default=None, help="video encoder (default libx264; libvpx-vp9 for .webm; "
                                                 "libx265, ffv1, ...)")
    u.add_argument("--crf", type=int, default=None, help="video quality (libx264/libx265: 0-51, libvpx-vp9: 0-63; "
                                                         "lower is better, 0 with libx264 is lossless; default: the "
                                                         "codec's); refused for other codecs")
    u.add_argument("--preset", default=None, choices=X264_PRESETS,
                   help="libx264/libx265 speed (default ultrafast: the model keeps the CPU; veryfast: smaller files, "
                        "slower)")
    u.add_argument("--compare", action="store_true", help="also write <name>.compare.<ext>: a bicubic | model "
                                                          "split-screen video, or for images zoomed crops side by side")
    u.add_argument("--tile", type=int, default=0, help="LR tile side in pixels (0: whole image at once)")
    u.add_argument("--margin", type=int, default=16, help="LR context pixels around each tile")
    u.add_argument("--fps", type=float, default=None,
                   help="the frame rate to keep (e.g. 60 for live use; default: each video's own): auto picks the "
                        "largest member that keeps it, and the closing line says whether the run did")
    u.add_argument("--scale", type=int, default=None, choices=(2, 3, 4),
                   help="the scale of a model name or of auto (default: x2, or the one it ships at); a model file "
                        "says its own")
    u.add_argument("--weights-dir", default=None)
    u.add_argument("--threads", type=int, default=0)
    u.set_defaults(func=_upscale)


def _zoo_train(args) -> int:
    from srnas.supernet.config import config_of

    cfg = config_of(args)
    out = Path(args.out) if args.out else None
    from . import zoo

    if args.name == "abpn_int8":
        from .quantize import train_abpn_int8
        path = train_abpn_int8(cfg, out, resume=args.resume, redo=args.redo)
    elif args.name in zoo.INT8:
        from .zoo.int8 import train_zoo_int8
        path = train_zoo_int8(cfg, args.name, out, resume=args.resume, redo=args.redo)
    else:
        from .zoo.training import train_zoo_model
        path = train_zoo_model(cfg, args.name, out, resume=args.resume, redo=args.redo)
    print(f"weights: {path} (use with --weights-dir {path.parent})")
    return 0


def _zoo_list(args) -> int:
    from . import zoo

    for name in zoo.names() + ["abpn_int8"] + list(zoo.INT8):
        e = zoo.ZOO.get(name)
        trainable = e.trainable if e else True
        shipped = zoo.weights_path(name, args.scale).exists() if trainable else True
        y = ("Y-only" if e.y_only else "RGB") if e else "RGB"
        print(f"{name:10s} {y:7s} {(e.config if e else 'QAT int8'):24s} "
              f"{'weights shipped' if shipped else 'NO weights: srnas zoo train ' + name}")
    return 0


def _zoo_front(args) -> int:
    from .zoo.front import front_table, machine_front

    print(front_table(machine_front(args.scale, args.weights_dir, retime=args.retime)))
    return 0


def _zoo_export(args) -> int:
    import torch

    from .models import load_model
    from .quantize import export_torchscript

    m = load_model(args.name, args.scale, args.weights_dir)
    if m.module is None:
        raise UserError(f"{args.name} is already an exported file")
    from srnas.supernet.writes import make_folder
    out = make_folder(args.out)
    ts = export_torchscript(m.module, out / "model.ts")
    print(f"TorchScript: {ts}")
    if m.precision == "fp32":
        onnx_path = out / "model.onnx"
        torch.onnx.export(m.module, (torch.rand(1, 3, 64, 64),), str(onnx_path), input_names=["lr"],
                          output_names=["sr"], dynamic_axes={"lr": {2: "h", 3: "w"}, "sr": {2: "H", 3: "W"}},
                          dynamo=False)
        print(f"ONNX: {onnx_path}")
    return 0


def _bench(args) -> int:
    if not args.run:
        return _bench_unlocked(args)
    from srnas.supernet.runlock import run_lock   # --run appends to the run's report: one process at a time
    with run_lock(Path(args.run)):
        return _bench_unlocked(args)


def _bench_unlocked(args) -> int:
    from .bench import default_models, run_bench, summary_json

    from srnas.supernet.data import EMBEDDED, default_benchmarks, resolve_dataset
    from srnas.supernet.imaging import list_images

    datasets, scale, data_root, lr_hw, threads = None, 2, None, (360, 640), 0
    winners = _run_winners(args) if args.run else []
    if not args.out:
        raise UserError("--out is required (or --run, which writes into RUN/bench)")
    if args.config:
        from srnas.supernet.config import config_of
        cfg = config_of(args)
        datasets, scale, data_root = list(cfg.data.benchmarks), cfg.data.scale, cfg.data.data_root or None
        lr_hw, threads = (cfg.latency.lr_height, cfg.latency.lr_width), cfg.latency.threads
    if args.datasets:
        datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    scale = args.scale or scale
    data_root = args.data_root or data_root
    if datasets is None:  # Set5/Set14/B100 where they are, else the embedded images: bench runs on a bare clone
        datasets = default_benchmarks(data_root)
        print(f"datasets: {', '.join(datasets)} (pass --datasets to choose)")
    for d in datasets:  # a missing set fails now, not after the models before it were evaluated
        if d != EMBEDDED:
            list_images(resolve_dataset(d, data_root))
    threads = threads if args.threads is None else args.threads
    if args.lr_size:
        try:
            h, w = (int(v) for v in args.lr_size.lower().split("x"))
        except ValueError:
            raise UserError(f"--lr-size {args.lr_size!r}: write HxW, e.g. 360x640") from None
        lr_hw = (h, w)
    models = ([m.strip() for m in args.models.split(",") if m.strip()]
              or default_models(scale, args.backend, args.precision, args.weights_dir))
    models = winners + models
    if args.precision and not args.backend:
        raise UserError("--precision needs --backend (the runtime that runs that precision)")
    df = run_bench(models, datasets, scale, args.out, data_root, lr_hw, threads, args.weights_dir, args.repeats,
                   args.backend, args.precision, args.crops)
    print((Path(args.out) / "bench.md").read_text())
    print(f"wrote {args.out}/bench.csv, bench.md, bench.png")
    if args.run:
        _append_to_report(Path(args.run), Path(args.out), args.backend, winners)
    print(summary_json(df))
    return 0


def _run_winners(args) -> list[str]:
    """Point ``args`` at a finished run: its saved config and executor; returns its winner's file (a front run,
    latency.targets: each target's, tightest first)."""
    run = Path(args.run)
    finals = [run / "stage3" / "final.json"]
    if not finals[0].is_file():
        finals = list((run / "targets").glob("*/stage3/final.json"))
    if not finals:
        raise UserError(f"{run} holds no finished run ({run / 'stage3' / 'final.json'} is missing, and no front "
                        f"targets/*/stage3/final.json): run `srnas run -c CONFIG` to the end first")
    from srnas.search.results import read_winner
    # final.json names its files relative to its run folder (an older one: absolute, RunDir.resolve reads both):
    # a copied or moved run benches its own winner; a damaged one is said in one line
    winners = sorted(read_winner(f) for f in finals)
    args.config = args.config or str(run / "config.yaml")
    args.out = args.out or str(run / "bench")
    # each model in the executor it runs best in here: the winners in the one they were searched for, the shipped
    # front in its own, the zoo in the fastest here for its precision; the first table a user reads compares those
    args.backend = args.backend or "best"
    return [str(model) for _, model in winners]


def _append_to_report(run: Path, out: Path, backend: str | None, winners: list[str]) -> None:
    """Add (or replace) the comparison section of the run's report.md: the run's winners beside the zoo and the
    front shipped for this CPU, each labelled with the budget it was trained with."""
    import pandas as pd

    from .models import file_label
    report = run / "report.md"
    if not report.is_file() and (run / "front.md").is_file():   # a front run (latency.targets)
        report = run / "front.md"
    head = "## Against the zoo"
    text = report.read_text() if report.is_file() else ""
    text = text.split(f"\n{head}")[0].rstrip() + "\n"
    rel = Path("bench") / "bench.png" if out == run / "bench" else out / "bench.png"
    how = "each model in the executor it runs best in here" if backend in (None, "best") else \
        f"{backend}, each model in its own precision"
    steps = pd.read_csv(out / "bench.csv").drop_duplicates("model").set_index("model")["steps"]
    mine = [f"`{n}` ({int(steps.get(n, 0))} steps)" for n in map(file_label, map(Path, winners))]
    note = (f"{', '.join(mine)}: this run's winner, trained with this config's budget; the `srnas_*` rows are the "
            f"front shipped for this CPU and the rest the zoo, each trained with the budget its `train steps` "
            f"column gives on T91 + BSD200.\n\n" if mine else "")
    text += (f"\n{head} and the shipped front ({how}; one `srnas bench` run)\n\n{note}"
             f"{(out / 'bench.md').read_text()}\n![PSNR vs latency]({rel})\n")
    from srnas.supernet.writes import atomic_write_text
    atomic_write_text(report, text)
    print(f"appended the comparison with the zoo and the shipped front to {report}")


def _upscale(args) -> int:
    from .upscale import upscale_command

    res = upscale_command(args.model, args.inputs, args.out, args.scale, args.tile, args.margin,
                          args.weights_dir, args.threads, args.backend, args.precision, args.codec, args.crf,
                          args.compare, args.preset, args.fps)
    return 1 if res["failed"] else 0  # the others were written; 1 tells scripts that some were not

"""`srnas latency build|check|import`: composition (calibration and checks time whole pruned candidates)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from pathlib import Path

from srnas.latency.build import build_lut, calibrate_lut, default_lut_path, load_lut
from srnas.latency.fingerprint import FIELDS
from srnas.latency.runtimes.registry import names as backends
from srnas.latency.importer import import_csv
from srnas.latency.lut import LUTFingerprintWarning
from srnas.supernet.config import config_of, depths, widths
from srnas.supernet.record import Recorder, check_run
from srnas.supernet.runlock import lock_folder, run_lock

from .pipeline import candidate_builder, resolve_executor


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `latency` command group."""
    p = sub.add_parser("latency", help="per-device latency lookup table: build, check accuracy, import, probes")
    g = p.add_subparsers(dest="action", required=True)
    b = g.add_parser("build", help="measure every op of the search space into a LUT (resumable)")
    b.add_argument("-c", "--config", required=True)
    b.add_argument("--backend", choices=backends(), help="default: latency.backend")
    b.add_argument("--out", help="LUT file (default: latency.lut or <run>/latency/lut-<backend>.csv)")
    b.add_argument("--calib-samples", type=int, help="whole candidates timed to calibrate (default: "
                                                      "latency.calib_samples; 0 = no calibration)")
    b.add_argument("--recalibrate", action="store_true", help="re-fit the calibration of a complete LUT")
    b.set_defaults(func=_build)
    c = g.add_parser("check", help="random candidates: predicted vs measured end to end")
    c.add_argument("-c", "--config", required=True)
    c.add_argument("--samples", type=int, default=100)
    c.add_argument("--backend", choices=backends())
    c.add_argument("--lut", help="LUT file (default as for build)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--warmup", type=int, default=1)
    c.add_argument("--repeats", type=int, default=5)
    c.add_argument("--no-calibration", action="store_true", help="predict with the raw op sum")
    c.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    c.set_defaults(func=_check)
    i = g.add_parser("import", help="turn a CSV of external measurements (e.g. a phone) into a LUT")
    i.add_argument("-c", "--config", required=True)
    i.add_argument("csv", help="CSV with columns op,cin,cout,k,h,w,scheme,rate,latency_ms[,spread_ms]")
    i.add_argument("--out", help="LUT file to write (default: as for build, with the CSV's backend)")
    i.add_argument("--backend", choices=backends(), default=None, help="backend the CSV was measured with")
    for f in FIELDS:
        if f != "backend":
            i.add_argument(f"--{f.replace('_', '-')}", dest=f"fp_{f}", help=f"fingerprint field {f} of that device")
    i.set_defaults(func=_import)
    pr = g.add_parser("probes", help="write every LUT row as a model file + run_probes.py, to time on another device")
    pr.add_argument("-c", "--config", required=True)
    pr.add_argument("--out", required=True, help="folder for the probe kit (copy it to the device)")
    pr.add_argument("--backend", choices=backends(), help="runtime on the device: onnxruntime or openvino "
                                                         "(default: latency.backend)")
    pr.set_defaults(func=_probes)


def _config(args, cfg=None):
    """The config (``cfg``, else the command line's) with --backend applied and an `auto` executor resolved (as
    `srnas run` does)."""
    cfg = cfg or config_of(args)
    if args.backend:
        cfg = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, backend=args.backend))
    return resolve_executor(cfg)


def _build(args) -> int:
    plain = config_of(args)
    with run_lock(lock_folder(plain.run().root, Path(args.out).parent if args.out else None)):
        return _build_locked(args, plain)


def _build_locked(args, plain) -> int:
    own = not args.out and not args.backend   # the run's own LUT: the one its stages are made from
    if own:
        check_run(plain, plain.run(), ("lut",))
    cfg = _config(args, plain)
    backend = cfg.latency.backend
    if own:
        Recorder(plain, plain.run())("lut", lut=default_lut_path(cfg, backend))
    lut = build_lut(cfg, backend=backend, out=args.out)
    n = cfg.latency.calib_samples if args.calib_samples is None else args.calib_samples
    if lut.calibration is None or args.recalibrate:
        calibrate_lut(lut, cfg, candidate_builder(cfg), n, backend)
    print(f"LUT: {lut.path} ({len(lut)} rows, {backend}/{cfg.latency.precision}); "
          f"calibration: {json.dumps(lut.calibration)}")
    return 0


def _check(args) -> int:
    from srnas.latency.check import run_check
    from srnas.latency.model import LatencyModel
    cfg = _config(args)
    backend = cfg.latency.backend
    path = Path(args.lut) if args.lut else default_lut_path(cfg, backend)
    lat = cfg.latency
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LUTFingerprintWarning)
        lut = load_lut(cfg, path, backend)
    for w in caught:
        print(f"warning: {w.message}")
    model = LatencyModel.for_config(lut, cfg, calibrate=not args.no_calibration)
    m = cfg.model
    # the bar goes to stderr and --json's object to stdout, so a check of minutes shows progress either way
    res = run_check(model, candidate_builder(cfg), depths(m) if m.elastic else m.n_cells, cfg.pruning.schemes,
                    lat.rates, args.samples, backend, lat.threads, path.parent, seed=args.seed, warmup=args.warmup,
                    repeats=args.repeats, precision=lat.precision,
                    widths=widths(m) if m.elastic else ())
    res["calibration"] = lut.calibration if not args.no_calibration else None
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"latency check: {res['n']} random candidates, {backend}/{lat.precision}, {lat.lr_width}x{lat.lr_height}, "
          f"LUT {path}")
    cal = lut.calibration if not args.no_calibration else None
    print(f"  {'':<16} {'model':>8} {'op sum':>8}   (model = op sum x {cal['scale'] if cal else 1.0:.3f} "
          f"{cal['offset'] if cal else 0.0:+.2f} ms)")
    unc = res["uncalibrated"]
    for k, label, fmt in [("within_5", "within +-5 %", ".2f"), ("within_10", "within +-10 %", ".2f"),
                          ("within_15", "within +-15 %", ".2f"), ("mape", "MAPE (%)", ".2f"),
                          ("rmse", "RMSE (ms)", ".1f"), ("spearman", "Spearman", ".3f")]:
        print(f"  {label:<16} {res[k]:>8{fmt}} {unc[k]:>8{fmt}}")
    print(f"  scatter: {res['plot']}\n  rows: {res['csv']}")
    return 0


def _import(args) -> int:
    cfg = config_of(args)
    with run_lock(lock_folder(cfg.run().root, Path(args.out).parent if args.out else None)):
        return _import_locked(args, cfg)


def _import_locked(args, cfg) -> int:
    fields = {f: getattr(args, f"fp_{f}") for f in FIELDS if f != "backend" and getattr(args, f"fp_{f}")}
    lut = import_csv(Path(args.csv), args.out, cfg, backend=args.backend, fields=fields)
    if lut.calibration is None:   # a probe kit's CSV carries whole networks' times instead of a fitted calibration
        from srnas.latency.probes import kit_calibration
        cal = kit_calibration(lut, cfg, args.csv)
        if cal is not None:
            lut.set_calibration(cal)
            print(f"calibration from the CSV's {cal['n']} whole networks: scale {cal['scale']:.3f}")
    print(f"imported {len(lut)} rows into {lut.path}; fingerprint: {json.dumps(lut.fingerprint)}")
    print(_where_used(cfg, lut, args.config))
    return 0


def _where_used(cfg, lut, config: str) -> str:
    """Whether `srnas run` / `latency check` with this config read the imported LUT, and what to set if not."""
    lat, precision = cfg.latency, lut.fingerprint.get("precision", "fp32")
    same_executor = (lat.backend, lat.precision) == (lut.backend, precision)
    if same_executor and default_lut_path(cfg).resolve() == lut.path.resolve():
        return (f"`srnas run -c {config} --allow-foreign-lut` searches with it (it prices "
                f"{lut.fingerprint.get('cpu_model') or 'that device'}, not this machine)")
    used = "" if same_executor else f"latency.backend: {lut.backend} and latency.precision: {precision}, "
    return (f"note: `srnas run -c {config}` does not read this file as the config stands ({lat.backend}/{lat.precision}"
            f"{', latency.lut: ' + lat.lut if lat.lut else ''}); set {used}latency.lut: {lut.path} to search with it")


def _probes(args) -> int:
    from srnas.latency.probes import RUNNER_NAME, check_probe_executor, write_probes
    # as _config, but no `auto` resolution and no check of this machine's runtimes: the kit runs elsewhere
    cfg = config_of(args)
    if args.backend:
        cfg = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, backend=args.backend))
    check_probe_executor(cfg.latency.backend, cfg.latency.precision)
    manifest = write_probes(cfg, args.out, candidate_builder(cfg))
    n = len(json.loads(manifest.read_text())["probes"])
    print(f"probe kit: {manifest.parent} ({n} probes, {cfg.latency.backend}/{cfg.latency.precision}). Copy it to the "
          f"device, run `python {RUNNER_NAME} --threads N --out lut.csv` there (needs numpy and "
          f"{cfg.latency.backend}), then `srnas latency import -c {args.config} lut.csv`")
    return 0

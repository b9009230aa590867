"""Search and ship the zoo's searched models: srnas_abpn (at ABPN-INT8's measured latency) and srnas_50ms.

    .venv/bin/python experiments/ship_winners.py [-c experiments/configs/cpu_x2.yaml] [--only srnas_abpn]
                                                 [--set KEY=VALUE ...] [--no-copy]

Each is a `srnas run` of the config (runs/<name>_abpn, runs/<name>_50ms) in the executor `auto`
picks here. srnas_abpn's target is abpn_int8 timed in that executor, as `srnas bench --backend B`
times it (its INT8 file by the route INT8 winners take). The 50 ms run reuses the first run's
executor choice, LUT and supernet (the same space, data and recipe; only the target differs).
Each winner's pruned-model file is copied to experiments/weights/<name>_x<scale>.pt, which
`srnas bench --models srnas_abpn,abpn_int8` loads and runs in the executor it was searched for.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments import zoo  # noqa: E402
from search.pipeline import resolve_executor  # noqa: E402
from supernet.config import load_config  # noqa: E402

TARGET_PASSES = 3   # abpn_int8 ran 27.2-31.1 ms in single timings minutes apart on the quiet 2-core EPYC


def abpn_int8_ms(cfg, backend: str, precision: str) -> float:
    """abpn_int8's median latency in (backend, precision) at the config's input size, as bench times it."""
    from experiments.bench import deploy
    from experiments.models import load_model
    from experiments.timing import measure_latency

    lat = cfg.latency
    hw = (lat.lr_height, lat.lr_width)
    with tempfile.TemporaryDirectory() as work:
        d = deploy(load_model("abpn_int8", cfg.data.scale), backend, precision, cfg.data.scale, lat.threads, hw,
                   Path(work))
        # the fastest of a few timings: load only slows a run down, and the target should not carry it
        return min(measure_latency({"abpn_int8": d.timed}, hw, repeats=max(lat.repeats, 10), threads=lat.threads)
                   ["abpn_int8"] for _ in range(TARGET_PASSES))


def srnas_run(config: str, sets: list[str]) -> int:
    """`srnas run -c config --set ...` in a child process (its own progress and exit code)."""
    cmd = [sys.executable, "-m", "search.cli", "run", "-c", config] + [a for s in sets for a in ("--set", s)]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    """Run both searches and copy the winners into experiments/weights/."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default=str(ROOT / "experiments/configs/cpu_x2.yaml"))
    p.add_argument("--only", choices=sorted(zoo.SEARCHED), help="ship just this one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--no-copy", action="store_true", help="leave experiments/weights/ alone")
    p.add_argument("--weights-dir", default=None, help="copy the winners here (default: experiments/weights/)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    first = cfg.run().root.parent / f"{cfg.name}_abpn"
    runs = {"srnas_abpn": first, "srnas_50ms": first.parent / f"{cfg.name}_50ms"}
    ex = resolve_executor(dataclasses.replace(cfg, name=first.name), None)
    backend, precision = ex.latency.backend, ex.latency.precision
    status = 0
    for name, run in runs.items():
        if args.only and name != args.only:
            continue
        if name == "srnas_abpn":
            ms = abpn_int8_ms(ex, backend, precision)
            print(f"abpn_int8 runs in {ms:.2f} ms in {backend}/{precision}: srnas_abpn's target", flush=True)
            target = f"{ms:.2f}ms"
        else:
            target = "50ms"
            lut = Path("latency") / ex.run(Path(".")).lut(backend, precision).name
            for part in ("supernet", lut):   # the same space, data, recipe and executor: only the target differs
                src, dst = first / part, run / part
                if src.exists() and not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        rc = srnas_run(args.config, args.set + [f"name={run.name}", f"latency.target={target}",
                                                  f"latency.backend={backend}", f"latency.precision={precision}"])
        final_json = run / "stage3" / "final.json"
        if not final_json.exists():
            print(f"{name}: the run stopped (exit {rc}) before stage 3 finished; nothing shipped", file=sys.stderr)
            status = rc or 1
            continue
        status = status or rc
        final = json.loads(final_json.read_text())
        pruned = Path(final["files"]["model"])
        if not args.no_copy:
            dst = zoo.weights_path(name, cfg.data.scale, args.weights_dir)
            shutil.copy2(pruned, dst)
            print(f"{name}: {pruned} -> {dst} (target {target}, measured {final.get('measured_ms')} ms)")
    return status


if __name__ == "__main__":
    sys.exit(main())

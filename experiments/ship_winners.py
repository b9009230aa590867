"""Search and ship the zoo's searched models: the cpu_x2 front, one member per budget, from ONE search.

    .venv/bin/python experiments/ship_winners.py [-c experiments/configs/cpu_x2.yaml] [--abpn-ms MS]
                                                 [--set KEY=VALUE ...] [--no-copy] [--weights-dir DIR]

One `srnas run` of the config (runs/<name>) with latency.targets at FLOOR (just above the space's fastest member),
FACTORS x abpn_int8's latency in the executor `auto` picks here (timed as `srnas bench --backend B` times it), and
50 ms; targets within 10 % of another are searched once (the fixed 50 ms keeping its value). Each target's winner
(stage 3, QAT where INT8, export) is copied to experiments/weights/<name>_x<scale>.pt, named by size (SIZES,
tightest first), and weights/searched.json records what each was searched for, on which CPU, with aliases naming the
members nearest 1x ABPN-INT8 (srnas_abpn) and 50 ms (srnas_50ms). `srnas bench` then runs them all in the executor
they were searched for, on any machine.
A rerun resumes the run where it stopped, with the targets it started with (runs/<name>/ship.json).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments import zoo  # noqa: E402
from latency.fingerprint import cpu_isa, cpu_model  # noqa: E402
from search.pipeline import resolve_executor  # noqa: E402
from supernet.config import load_config  # noqa: E402
from supernet.writes import atomic_write_text  # noqa: E402

# The tightest budget: 1.1x the space's fastest dense member by the LUT (1 plain cell at 8 with the skip, shuffle
# and clamp of a 720p output: 7.8 ms, 0.34-0.39x abpn_int8 in OpenVINO INT8 on the EPYC Zen 5), so the smallest
# member is about as fast as the space goes. As a factor of abpn_int8 it fell under that floor on one day
# (0.37 x 19.8 ms) and let a 4-cell member in at 0.46x on another, as the VM's speed drifted.
FLOOR = "1.1x"
FACTORS = (1.0, 2.0, 3.0)           # x abpn_int8's latency, timed as bench times it
FIXED_MS = (50.0,)                  # srnas_50ms's budget, on whichever CPU ships
MERGE = 1.1                         # budgets closer than this are searched once
SIZES = ("srnas_xs", "srnas_s", "srnas_m", "srnas_l", "srnas_xl", "srnas_xxl")


def abpn_int8_ms(cfg, backend: str, precision: str) -> float:
    """abpn_int8's median latency in (backend, precision) at the config's input size, as bench times it."""
    from experiments.bench import BENCH_PASSES, deploy
    from experiments.models import load_model
    from experiments.timing import measure_latency

    lat = cfg.latency
    hw = (lat.lr_height, lat.lr_width)
    with tempfile.TemporaryDirectory() as work:
        d = deploy(load_model("abpn_int8", cfg.data.scale), backend, precision, cfg.data.scale, lat.threads, hw,
                   Path(work))
        # the fastest of a few timings: load only slows a run down, and the target should not carry it
        return measure_latency({"abpn_int8": d.timed}, hw, repeats=max(lat.repeats, 10), threads=lat.threads,
                               passes=BENCH_PASSES)["abpn_int8"]


def front_targets(abpn_ms: float) -> list[float]:
    """The front's budgets in ms: FACTORS x abpn_ms and FIXED_MS, ascending, one of any two within MERGE."""
    out: list[float] = []
    for ms in sorted([round(f * abpn_ms, 2) for f in FACTORS] + list(FIXED_MS)):
        if out and ms <= MERGE * out[-1]:
            out[-1] = ms if ms in FIXED_MS else out[-1]   # a fixed budget (50 ms) keeps its exact value
            continue
        out.append(ms)
    return out


def srnas_run(config: str, sets: list[str]) -> int:
    """`srnas run -c config --set ...` in a child process (its own progress and exit code)."""
    cmd = [sys.executable, "-m", "search.cli", "run", "-c", config] + [a for s in sets for a in ("--set", s)]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def nearest(members: dict[str, dict], ms: float) -> str:
    """The member whose target is nearest ``ms`` (by ratio)."""
    return min(members, key=lambda n: abs(members[n]["target_ms"] / ms - 1.0))


def main(argv: list[str] | None = None) -> int:
    """Run the front and copy its members into the weights folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default=str(ROOT / "experiments/configs/cpu_x2.yaml"))
    p.add_argument("--abpn-ms", type=float, default=0.0, help="abpn_int8's latency here (default: timed now, "
                                                                "or what the run started with)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--no-copy", action="store_true", help="leave the weights folder alone")
    p.add_argument("--weights-dir", default=None, help="copy the members here (default: experiments/weights/)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    run = cfg.run().root
    ex = resolve_executor(cfg, None)
    backend, precision = ex.latency.backend, ex.latency.precision
    started = run / "ship.json"
    if args.abpn_ms > 0:
        abpn = args.abpn_ms
    elif started.exists():   # a resumed run keeps its targets
        abpn = json.loads(started.read_text())["abpn_int8_ms"]
    else:
        abpn = abpn_int8_ms(ex, backend, precision)
    targets = front_targets(abpn)
    print(f"abpn_int8 runs in {abpn:.2f} ms in {backend}/{precision}: the front's targets {FLOOR} the fastest "
          f"member, {', '.join(f'{t:g} ms' for t in targets)}", flush=True)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, json.dumps({"abpn_int8_ms": abpn, "targets": [FLOOR, *targets], "cpu": cpu_model()}))
    budgets = ",".join([FLOOR] + [f"{t:g}ms" for t in targets])
    rc = srnas_run(args.config, args.set + ["latency.target=", f"latency.targets=[{budgets}]",
                                            f"latency.backend={backend}", f"latency.precision={precision}"])
    front = run / "front.json"
    if not front.exists():
        print(f"the front run stopped (exit {rc}) before every target's stage 3 finished; nothing shipped; "
              f"run this again to resume", file=sys.stderr)
        return rc or 1
    entries = json.loads(front.read_text())["targets"]
    members = {}
    for name, e in zip(SIZES, entries):
        members[name] = {"target_ms": e["target_ms"], "x_abpn_int8": round(e["target_ms"] / abpn, 3),
                         "measured_ms": e["measured_ms"], "candidate": e["candidate"], "rate": e["rate"],
                         "model": e["model"]}
    ship = {"cpu": cpu_model(), "isa": cpu_isa(), "backend": backend, "precision": precision, "abpn_int8_ms": abpn,
            "config": cfg.name, "members": members,
            "aliases": {"srnas_abpn": nearest(members, abpn), "srnas_50ms": nearest(members, FIXED_MS[0])}}
    if not args.no_copy:
        out = Path(args.weights_dir or zoo.WEIGHTS_DIR)
        for name, m in members.items():
            dst = zoo.weights_path(name, cfg.data.scale, out)
            shutil.copy2(m.pop("model"), dst)
            print(f"{name}: {m['candidate']} searched at {m['target_ms']:g} ms ({m['x_abpn_int8']:g}x abpn_int8), "
                  f"measured {m['measured_ms']:.2f} ms -> {dst}")
        atomic_write_text(out / zoo.SEARCHED_FILE, json.dumps(ship, indent=1) + "\n")
        print(f"aliases: {ship['aliases']} ({out / zoo.SEARCHED_FILE})")
    return rc


if __name__ == "__main__":
    sys.exit(main())

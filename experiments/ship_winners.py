"""Search and ship the zoo's searched models: the cpu_x2 front, one member per budget, from ONE search.

    .venv/bin/python experiments/ship_winners.py [-c experiments/configs/cpu_x2.yaml] [--abpn-ms MS]
                                                 [--set KEY=VALUE ...] [--no-copy] [--weights-dir DIR]

Prices the space (`srnas latency build`), then runs one `srnas run` of the config (runs/<name>) with
latency.targets at a floor (QUARTER x abpn_int8's latency in the executor `auto` picks here, timed as
`srnas bench --backend B` times it, or FLOOR x the space's fastest member where that is more), FACTORS x abpn_int8
and 50 ms; targets within 10 % of another are searched once (the fixed 50 ms keeping its value). A target's winner
that scores no higher on the validation images (data.val, not a benchmark set) than a tighter target's is left out:
that budget's best network is the tighter one. Each kept winner (stage 3, QAT where INT8, export) is copied to
experiments/weights/fronts/<this CPU's class>/<name>_x<scale>.pt (experiments.zoo.cpu_class: avx2, vnni or amx),
named by size (srnas_xs, srnas_s, ... srnas_xxl, srnas_xxxl, tightest first), and searched_x<scale>.json beside
them records what each was searched for (with its val_psnr), on which CPU, with aliases naming the members a
budget of 1x ABPN-INT8 (srnas_abpn) and of 50 ms (srnas_50ms) gets there. A machine's names come from the
members of every class at that scale, timed on it and reduced to their Pareto set (experiments/zoo/front.py,
`srnas zoo front`): this class's members join that set. A rerun resumes the run where it stopped, with the
targets it started with (runs/<name>/ship.json).
``--merge DIR`` adds the winner of a one-target `srnas run -c CONFIG --out DIR --set latency.target=...` of the same
config (the same LUT, copied into DIR, and the same supernet or one trained with a wider train.max_gmacs for the
front's top, searched with search.min_ms) to the front before it is named: a budget the front run did not search,
without searching the others again.
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

from srnas.experiments import zoo  # noqa: E402
from srnas.experiments.zoo.front import LEGACY_FILE, size_names  # noqa: E402
from srnas.latency.fingerprint import cpu_isa, cpu_model  # noqa: E402
from srnas.search.candidate import Candidate  # noqa: E402
from srnas.search.pipeline import resolve_executor  # noqa: E402
from srnas.supernet.config import load_config  # noqa: E402
from srnas.supernet.writes import atomic_write_text  # noqa: E402

# The tightest budget: a quarter of abpn_int8's latency, or 1.1x the space's fastest dense member by the LUT (1 plain
# cell at 8 with the skip, shuffle and clamp of a 720p output) where that is more. On the EPYC Zen 5 the fastest member
# took 0.34-0.39x abpn_int8 in OpenVINO INT8, so the floor is about as fast as the space goes; on a Zen 3 without
# VNNI it took 0.17x, and 1.1x of it gave a 2-cell member under FSRCNN's quality.
QUARTER = 0.25
FLOOR = 1.1
FACTORS = (1.0, 1.2, 1.5, 2.0, 3.0)   # x abpn_int8's latency, timed as bench times it (1.5x: fp32 WDSR-B lands
#                                       at 1.8x on a CPU without VNNI, 2.6x on a Zen 5; 1.2x: at x4 on a Xeon with AMX
#                                       the 1x target merged into the floor and the members nearest abpn_int8 landed
#                                       at 0.78x and 1.34x of it, so none beat it within its time)
FIXED_MS = (50.0,)                  # srnas_50ms's budget, on whichever CPU ships
MERGE = 1.1                         # budgets closer than this are searched once
MISSED = 3                          # `srnas run`'s exit when a finished winner misses its target by measurement


def abpn_int8_ms(cfg, backend: str, precision: str) -> float:
    """abpn_int8's median latency in (backend, precision) at the config's input size, as bench times it."""
    from srnas.experiments.bench import BENCH_PASSES, deploy
    from srnas.experiments.models import load_model
    from srnas.experiments.timing import measure_latency

    lat = cfg.latency
    hw = (lat.lr_height, lat.lr_width)
    with tempfile.TemporaryDirectory() as work:
        d = deploy(load_model("abpn_int8", cfg.data.scale), backend, precision, cfg.data.scale, lat.threads, hw,
                   Path(work))
        # the fastest of a few timings: load only slows a run down, and the target should not carry it
        return measure_latency({"abpn_int8": d.timed}, hw, repeats=max(lat.repeats, 10), threads=lat.threads,
                               passes=BENCH_PASSES)["abpn_int8"]


def floor_ms(config: str, sets: list[str], ex, abpn_ms: float) -> float:
    """The tightest budget: QUARTER x abpn_ms, or FLOOR x the fastest dense member by the LUT (built here) if more."""
    from srnas.latency.build import load_lut
    from srnas.latency.model import LatencyModel
    from srnas.search.pipeline import fastest_dense_ms

    rc = srnas(["latency", "build", "-c", config], sets)
    if rc:
        raise SystemExit(f"pricing the space failed (exit {rc}); run this again to resume")
    fastest = fastest_dense_ms(ex, LatencyModel.for_config(load_lut(ex), ex))
    return round(max(FLOOR * fastest, QUARTER * abpn_ms), 2)


def front_targets(abpn_ms: float, floor: float) -> list[float]:
    """The front's budgets in ms: the floor, FACTORS x abpn_ms and FIXED_MS, ascending, one of any two within MERGE."""
    out: list[float] = []
    for ms in sorted([floor] + [round(f * abpn_ms, 2) for f in FACTORS] + list(FIXED_MS)):
        if out and ms <= MERGE * out[-1]:
            out[-1] = ms if ms in FIXED_MS else out[-1]   # a fixed budget (50 ms) keeps its exact value
            continue
        out.append(ms)
    return out


def srnas(command: list[str], sets: list[str]) -> int:
    """`srnas <command> --set ...` in a child process (its own progress and exit code)."""
    cmd = [sys.executable, "-m", "srnas", *command] + [a for s in sets for a in ("--set", s)]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def val_psnr(model: str, cfg) -> float:
    """PSNR-Y of a member's model file on the config's validation images (held out, not a benchmark set)."""
    from srnas.experiments.models import load_model
    from srnas.supernet.data import load_images, make_pairs
    from srnas.supernet.evaluate import evaluate

    pairs = make_pairs(load_images(cfg.data.val, "val", data_root=cfg.data.data_root), cfg.data.scale)
    return evaluate(load_model(model, cfg.data.scale).run, pairs, cfg.data.scale, ssim=False)["psnr"]


def merged_winner(run: Path) -> dict:
    """The winner of a finished one-target `srnas run --out run` as a front.json entry (from its stage3/final.json)."""
    final = run / "stage3" / "final.json"
    if not final.is_file():
        raise SystemExit(f"--merge {run}: no {final}; finish that run first (`srnas run ... --out {run}`)")
    f = json.loads(final.read_text())
    return {"target_ms": f["target_ms"], "candidate": Candidate.from_dict(f["candidate"]).key(),
            "rate": f["candidate"]["rate"], "measured_ms": f["measured_ms"], "model": str(run / f["files"]["model"])}


def undominated(entries: list[dict]) -> tuple[list[dict], list[dict]]:
    """(kept, left out): entries (ascending target) kept when their "val_psnr" beats every tighter kept one."""
    kept: list[dict] = []
    out: list[dict] = []
    for e in entries:
        (kept if not kept or e["val_psnr"] > kept[-1]["val_psnr"] else out).append(e)
    return kept, out


def for_budget(members: dict[str, dict], ms: float) -> str:
    """The member a budget of ``ms`` gets: the loosest whose target meets it, else the tightest."""
    meets = [n for n in members if members[n]["target_ms"] <= ms * 1.001]   # 1x abpn's target is rounded
    target = lambda n: members[n]["target_ms"]  # noqa: E731
    return max(meets, key=target) if meets else min(members, key=target)


def main(argv: list[str] | None = None) -> int:
    """Run the front and copy its members into the weights folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default=str(ROOT / "experiments/configs/cpu_x2.yaml"))
    p.add_argument("--abpn-ms", type=float, default=0.0, help="abpn_int8's latency here (default: timed now, "
                                                                "or what the run started with)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--merge", action="append", default=[], metavar="RUN_DIR",
                   help="a one-target `srnas run --out RUN_DIR` of this config whose winner joins the front")
    p.add_argument("--no-copy", action="store_true", help="leave the weights folder alone")
    p.add_argument("--weights-dir", default=None, help="copy the members here (default: experiments/weights/fronts/"
                                                       "<this CPU's class: avx2, vnni or amx>/)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    run = cfg.run().root
    ex = resolve_executor(cfg, None)
    backend, precision = ex.latency.backend, ex.latency.precision
    started = run / "ship.json"
    before = json.loads(started.read_text()) if started.exists() else {}
    if args.abpn_ms > 0:
        abpn = args.abpn_ms
    elif before:   # a resumed run keeps its targets
        abpn = before["abpn_int8_ms"]
    else:
        abpn = abpn_int8_ms(ex, backend, precision)
    sets = args.set + [f"latency.backend={backend}", f"latency.precision={precision}"]
    resumed = before.get("abpn_int8_ms") == abpn
    floor = (before.get("floor_ms") if resumed else None) or floor_ms(args.config, sets, ex, abpn)
    # a resumed run keeps the targets it searched (FACTORS may have changed since: --merge adds a budget)
    targets = before["targets"] if resumed and before.get("targets") else front_targets(abpn, floor)
    print(f"abpn_int8 runs in {abpn:.2f} ms in {backend}/{precision}: the front's targets "
          f"{', '.join(f'{t:g} ms' for t in targets)}", flush=True)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, json.dumps({"abpn_int8_ms": abpn, "floor_ms": floor, "targets": targets,
                                           "cpu": cpu_model()}))
    budgets = ",".join(f"{t:g}ms" for t in targets)
    rc = srnas(["run", "-c", args.config], sets + ["latency.target=", f"latency.targets=[{budgets}]"])
    front = run / "front.json"
    if rc not in (0, MISSED) or not front.exists():   # a front.json an earlier run left is not this run's
        print(f"the front run stopped (exit {rc}) before every target's stage 3 finished; nothing shipped; "
              f"run this again to resume", file=sys.stderr)
        return rc or 1
    entries = json.loads(front.read_text())["targets"]
    for e in entries:
        e["model"] = str(run / e["model"])   # front.json names it relative to the run (older ones: absolute)
    entries = sorted(entries + [merged_winner(Path(d)) for d in args.merge], key=lambda e: e["target_ms"])
    for e in entries:
        e["val_psnr"] = round(val_psnr(e["model"], cfg), 4)
    entries, left_out = undominated(entries)
    for e in left_out:
        print(f"left out: {e['candidate']} searched at {e['target_ms']:g} ms scores {e['val_psnr']:.3f} dB on "
              f"{cfg.data.val}, no more than a tighter target's winner")
    members = {}
    for name, e in zip(size_names(len(entries)), entries):   # every kept winner gets a name
        members[name] = {"target_ms": e["target_ms"], "x_abpn_int8": round(e["target_ms"] / abpn, 3),
                         "measured_ms": e["measured_ms"], "candidate": e["candidate"], "rate": e["rate"],
                         "val_psnr": e["val_psnr"], "model": e["model"]}
    ship = {"cpu": cpu_model(), "isa": cpu_isa(), "backend": backend, "precision": precision, "abpn_int8_ms": abpn,
            "config": cfg.name, "members": members,
            "left_out": {f"{e['target_ms']:g}ms": {"candidate": e["candidate"], "val_psnr": e["val_psnr"]}
                         for e in left_out},
            "aliases": {"srnas_abpn": for_budget(members, abpn), "srnas_50ms": for_budget(members, FIXED_MS[0])}}
    if not args.no_copy:
        out = Path(args.weights_dir or zoo.WEIGHTS_DIR / zoo.FRONTS / zoo.cpu_class())
        path = write_front(out, cfg.data.scale, ship)
        print(f"aliases: {ship['aliases']} ({path}); `srnas zoo front` shows the names a machine gets from every "
              f"class's members")
    return rc


def write_front(out: Path, scale: int, ship: dict) -> Path:
    """Copy the members (each record's "model" file) to out/<name>_x<scale>.pt, dropping an earlier front's at that
    scale, and write out/searched_x<scale>.json (an x2 front replaces an old searched.json)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"srnas_*_x{scale}.pt"):   # a member of an earlier front
        stale.unlink()
    for name, m in ship["members"].items():
        dst = out / f"{name}_x{scale}.pt"
        shutil.copy2(m.pop("model"), dst)
        print(f"{name}: {m['candidate']} searched at {m['target_ms']:g} ms ({m['x_abpn_int8']:g}x abpn_int8), "
              f"measured {m['measured_ms']:.2f} ms -> {dst}")
    path = out / zoo.searched_name(scale)
    atomic_write_text(path, json.dumps(ship, indent=1) + "\n")
    if scale == 2 and (out / LEGACY_FILE).is_file():   # an older x2 front's; read only where no searched_x2.json is
        (out / LEGACY_FILE).unlink()
    return path


if __name__ == "__main__":
    sys.exit(main())

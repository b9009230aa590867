"""Time searched members (and abpn_int8) on this machine, each in its own executor, as `srnas bench` times a model.

    python -m srnas.experiments.zoo.measure JOBS.json OUT.json

experiments/zoo/front.py runs this in a child process: JOBS.json is {"scale": S, "jobs": [{key, label, path, backend,
precision, lr_hw, threads}, ...]}; OUT.json gets {"ms": {key: ms}, "errors": {key: why}}. Each model is deployed by
experiments.bench.deploy and the models of one input size are timed together by experiments.timing.measure_latency,
BENCH_PASSES interleaved passes, each keeping its fastest pass's median (bench's estimator).
"""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path

from srnas.latency.quiet import busy_message
from srnas.supernet.progress import progress_bar
from srnas.supernet.writes import atomic_write_text

from ..bench import BENCH_PASSES, Deployed, deploy
from ..models import load_model, load_pruned
from ..timing import measure_latency

REPEATS = 7   # srnas bench's default --repeats


def deployed(job: dict, scale: int, workdir: Path) -> Deployed:
    """A job's model in its executor: a member file as stage 3 wrote it, or abpn_int8 from the weights named."""
    path = Path(job["path"])
    hw = tuple(job["lr_hw"])
    if job["label"] == "abpn_int8":
        m = load_model("abpn_int8", scale, path.parent)
        return deploy(m, job["backend"], job["precision"], scale, job["threads"], hw, workdir, str(path.parent))
    return deploy(load_pruned(path), job["backend"], job["precision"], scale, job["threads"], hw, workdir)


def first_line(e: BaseException) -> str:
    """An exception's message in one line (its type where it has none)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def time_jobs(jobs: list[dict], scale: int) -> tuple[dict[str, float], dict[str, str]]:
    """(key -> ms, key -> why it could not be timed), the jobs of one input size and thread count timed together."""
    busy = busy_message()
    if busy:
        print(f"warning: {busy.split(';')[0]}: the members' times here come out slow and the cache keeps them; "
              f"`srnas zoo front --retime` on a quiet machine times them again", file=sys.stderr)
    groups: dict[tuple, list[dict]] = {}
    for j in jobs:
        groups.setdefault((tuple(j["lr_hw"]), j["threads"]), []).append(j)
    ms: dict[str, float] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as work:
        for (hw, threads), group in groups.items():
            runners = {}
            for i, j in enumerate(progress_bar(group, desc=f"deploy at {hw[1]}x{hw[0]}", unit="model")):
                try:
                    runners[j["key"]] = deployed(j, scale, Path(work) / f"{hw[0]}x{hw[1]}_{threads}_{i}").timed
                except Exception as e:  # noqa: BLE001 why: whatever stops it, this machine cannot time it; say which
                    errors[j["key"]] = f"{j['label']} in {j['backend']}/{j['precision']}: {first_line(e)}"
            if not runners:
                continue
            try:
                ms.update(measure_latency(runners, hw, repeats=REPEATS, threads=threads, passes=BENCH_PASSES))
            except Exception as e:  # noqa: BLE001 why: as above, for the timing itself
                errors.update({k: f"timing at {hw[1]}x{hw[0]}: {first_line(e)}" for k in runners})
    return ms, errors


def main(argv: list[str] | None = None) -> int:
    """Read the jobs, time them, write the times."""
    spec, out = (argv if argv is not None else sys.argv[1:])[:2]
    job = json.loads(Path(spec).read_text())
    # the caller's stdout is its own (tables, JSON): runtimes' chatter goes beside the progress bars
    with contextlib.redirect_stdout(sys.stderr):
        ms, errors = time_jobs(job["jobs"], int(job["scale"]))
    atomic_write_text(out, json.dumps({"ms": ms, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

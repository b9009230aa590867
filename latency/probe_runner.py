#!/usr/bin/env python3
"""Time an srnas probe kit on this device and write the LUT CSV that `srnas latency import` reads.

srnas copies this file into a probe kit as run_probes.py (`srnas latency probes -c CONFIG --out DIR`).
It needs Python 3.8+, numpy and the runtime the probes were written for (onnxruntime, or openvino);
not torch, not srnas. On the device:

    python run_probes.py --threads 4 --out lut.csv

then copy lut.csv back and run `srnas latency import -c CONFIG lut.csv`.

Timing follows `srnas latency build` (latency/build.py, latency/timing.py): probes are timed a chunk
at a time together with an anchor op; within a chunk every probe runs ``warmup`` untimed rounds, then
``repeats`` timed rounds in a fresh random order each round, so load from other processes hits all of
them alike (each turn runs a probe twice and times the second call: the first pays the switch from
the probe before); probes whose inter-quartile range exceeds 15 % of the median get extra rounds. A row
is the median, its spread the IQR; a whole block's row is its share of a chain of such blocks (the
chain's time minus one block's, per added block). An interrupted run resumes: rows already in --out
are kept.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
HEADER = "# srnas-lut fingerprint: "   # latency/lut.py reads the device's fingerprint from this line
WHOLE_NETS = "# srnas-probes whole-nets: "   # whole candidates' times; `srnas latency import` fits the calibration
COLUMNS = ["device", "backend", "op", "cin", "cout", "k", "h", "w", "scheme", "rate",
           "latency_ms", "spread_ms", "n", "anchor_ms"]
KEY_FIELDS = ["op", "cin", "cout", "k", "h", "w", "scheme", "rate"]
NOISY = 0.15        # IQR / median above which a probe gets extra rounds (as latency/timing.py)
DRIFT_WARN = 1.5    # slowest / fastest anchor across chunks that means the load changed (as latency/build.py)
OV_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}    # int8: what the INT8 file keeps float runs in f32
OV_RUNS = {"fp32": {"f32"}, "bf16": {"bf16"}, "int8": {"u8", "i8"}}


class ProbeError(Exception):
    """A problem the user can fix (wrong folder, missing runtime, another device's CSV at --out)."""


# ---- the device -----------------------------------------------------------------------------------------
# (this file runs on the device without srnas; latency/fingerprint.py imports these, so both name a machine alike)

def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere), as srnas names it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_isa() -> str:
    """The CPU's SIMD flags that decide kernel speed (AVX2, AVX-512 parts, VNNI, AMX), as srnas names them."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return " ".join(sorted(f for f in flags if f.startswith(("avx2", "avx512", "avx_vnni", "amx"))))


def core_count() -> int:
    """Cores this process may use (the affinity mask, not the whole host)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_threads(threads: int) -> int:
    """A thread count (0 = all cores this process may use) to a concrete count."""
    return threads if threads > 0 else core_count()


def module_version(name: str) -> str:
    """A package's version, or 'absent' where it is not installed."""
    try:
        return str(__import__(name).__version__)
    except ImportError:
        return "absent"


def fingerprint(manifest: dict, threads: int, cpu: str | None = None) -> dict:
    """This device's fingerprint with the fields srnas compares (latency/fingerprint.py FIELDS)."""
    backend = manifest["backend"]
    fp = {
        "cpu_model": cpu or cpu_model(),
        "isa": cpu_isa(),
        "cores": str(core_count()),
        "threads": str(resolve_threads(threads)),
        # the torch that exported the probe graphs: what the runtime runs was made by it, and this keeps a
        # LUT timed on the machine that wrote the kit identical to one `srnas latency build` makes there
        "torch": manifest["exported_with"]["torch"],
        "onnxruntime": module_version("onnxruntime"),
        "backend": backend,
        "precision": manifest["precision"],
        "layout": manifest["layout"],
        "accelerator": "",
    }
    if backend == "openvino":   # not a field srnas compares, but what a reader of the LUT wants to know
        fp["openvino"] = module_version("openvino")
    if "scale" in manifest:      # the scale of the models the kit prices (kits before it was recorded: x2)
        fp["scale"] = str(manifest["scale"])
    return fp


def device_id(fp: dict) -> str:
    """The device column of a LUT row, as srnas writes it."""
    name = fp.get("accelerator") or fp.get("cpu_model", "unknown")
    return f"{name} x{fp.get('threads', '?')}".replace(",", " ")


def other_cores_busy(window_s: float = 1.0) -> float | None:
    """Cores' worth of CPU other processes used during ``window_s`` seconds (None: cannot tell here)."""
    def jiffies():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) - idle, sum(v[:8])

    def own():
        t = os.times()
        return round((t.user + t.system) * os.sysconf("SC_CLK_TCK"))

    a = jiffies()
    if a is None:   # no /proc/stat (Windows, macOS, Android apps): cannot tell
        return None
    own_a = own()
    time.sleep(window_s)
    b, own_b = jiffies(), own()
    if b is None or b[1] == a[1]:
        return None
    return max(0.0, ((b[0] - a[0]) - (own_b - own_a)) / (b[1] - a[1]) * (os.cpu_count() or 1))


# ---- running one probe ----------------------------------------------------------------------------------

def ort_runner(path: Path, inputs: list[np.ndarray], threads: int):
    """A zero-argument call running an ONNX file once in ONNX Runtime's CPU provider with ``threads`` threads."""
    import onnxruntime as ort  # why: a device has one runtime or the other; import only the one asked for
    so = ort.SessionOptions()
    so.intra_op_num_threads = resolve_threads(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    return lambda: sess.run(None, feed)


def openvino_runner(path: Path, inputs: list[np.ndarray], threads: int, precision: str):
    """A zero-argument call running an ONNX file once in OpenVINO's CPU plugin in ``precision``."""
    import openvino as ov  # why: a device has one runtime or the other; import only the one asked for
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({p.any_name: list(x.shape) for p, x in zip(model.inputs, inputs)})
    config = {"INFERENCE_PRECISION_HINT": OV_HINT[precision], "INFERENCE_NUM_THREADS": resolve_threads(threads),
              "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, "CPU", config)
    check_openvino_precision(compiled, precision, path)
    req = compiled.create_infer_request()
    return lambda: req.infer(list(inputs), share_inputs=True)


def check_openvino_precision(compiled, precision: str, path: Path) -> None:
    """Refuse a probe whose convolutions OpenVINO runs in another precision than asked.

    OpenVINO falls back silently (bf16 -> f32 on a CPU without bf16, INT8 it cannot fuse -> f32); a LUT
    labelled bf16 or int8 that was timed in f32 would price the wrong executor.
    """
    convs: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            p = info["runtimePrecision"].astype(str)
            convs[p] = convs.get(p, 0) + 1
    if convs and not any(p in OV_RUNS[precision] for p in convs):
        raise ProbeError(f"{path.name}: OpenVINO runs its convolutions as {convs} here, not {precision}: this "
                         f"device does not run that precision; write the probes for another precision")


def make_runner(path: Path, inputs: list[np.ndarray], backend: str, precision: str, threads: int):
    """The runner of one probe file in the kit's runtime."""
    if backend == "onnxruntime":
        return ort_runner(path, inputs, threads)
    if backend == "openvino":
        return openvino_runner(path, inputs, threads, precision)
    raise ProbeError(f"probe kits run in onnxruntime or openvino, not {backend!r}")


def probe_inputs(shapes: list[list[int]], cache: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform [0, 1) float32 inputs, one array per distinct shape (two inputs of one shape share it, as
    the build shares one tensor)."""
    return [cache.setdefault(tuple(s), rng.random(tuple(s), dtype=np.float32)) for s in shapes]


# ---- timing ---------------------------------------------------------------------------------------------

def summary(samples: list[float]) -> tuple[float, float, int]:
    """(median, inter-quartile range, count) of timings in ms."""
    q1, med, q3 = np.percentile(np.asarray(samples), [25, 50, 75])
    return float(med), float(q3 - q1), len(samples)


def timed(run) -> float:
    """The second of two calls of ``run`` in ms (the first pays the switch from the op before)."""
    run()
    t0 = time.perf_counter()
    run()
    return (time.perf_counter() - t0) * 1e3


def time_interleaved(runners: list, warmup: int, repeats: int, seed: int) -> list[tuple[float, float, int]]:
    """Every runner in interleaved rounds of random order; those with IQR/median > NOISY get extra rounds."""
    rng = np.random.default_rng(seed)
    samples: list[list[float]] = [[] for _ in runners]
    for _ in range(max(0, warmup)):
        for r in runners:
            r()
    for _ in range(max(1, repeats)):
        for i in rng.permutation(len(runners)):
            samples[i].append(timed(runners[i]))
    noisy = [i for i, s in enumerate(samples) if summary(s)[1] > NOISY * summary(s)[0]]
    for _ in range(repeats // 2 + 1 if noisy else 0):
        for i in rng.permutation(noisy):
            samples[i].append(timed(runners[i]))
    return [summary(s) for s in samples]


# ---- the CSV --------------------------------------------------------------------------------------------

def row_key(d: dict) -> tuple:
    """A row's LUT key in comparable form (ints, float rate)."""
    return (d["op"], int(d["cin"]), int(d["cout"]), int(d["k"]), int(d["h"]), int(d["w"]), d["scheme"],
            float(d["rate"]))


def done_rows(out: Path, fp: dict) -> tuple[set, list[float]]:
    """Keys and anchor times of the rows an earlier run of this device left in ``out`` (resume)."""
    if not out.exists():
        return set(), []
    lines = read_lines(out)
    old = json.loads(lines[0][len(HEADER):]) if lines and lines[0].startswith(HEADER) else None
    if old != fp:
        diff = sorted(k for k in set(fp) | set(old or {}) if (old or {}).get(k) != fp.get(k))
        raise ProbeError(f"{out} holds rows of another device, runtime or thread count (differs in {diff}): "
                         f"remove it or pass --out elsewhere")
    rows = list(csv.DictReader(ln for ln in lines if not ln.startswith("#") and ln.strip()))
    return {row_key(d) for d in rows}, [float(d["anchor_ms"]) for d in rows if d.get("anchor_ms")]


def read_lines(out: Path) -> list[str]:
    """The lines of a CSV (newlines kept)."""
    with open(out, newline="") as f:
        return f.readlines()


def start_csv(out: Path, fp: dict) -> None:
    """A new CSV with the fingerprint header and the column line."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        f.write(HEADER + json.dumps(fp, sort_keys=True) + "\n")
        csv.writer(f).writerow(COLUMNS)


def chain_rows(probes: list[dict], timings: list) -> list[tuple[float, float, int]]:
    """Each probe's row from the chunk's timings (probes first, then one per chain, in order): a probe
    with a chain gets the chain's extra time per added block (as latency/build.py)."""
    rows, j = [], len(probes)
    for p, (med, iqr, n) in zip(probes, timings):
        if p.get("chain"):
            c_med, c_iqr, c_n = timings[j]
            extra = p["chain"]["extra"]
            rows.append((max((c_med - med) / extra, 1e-3), (c_iqr ** 2 + iqr ** 2) ** 0.5 / extra, min(n, c_n)))
            j += 1
        else:
            rows.append((med, iqr, n))
    return rows


def append_rows(out: Path, fp: dict, probes: list[dict], timings: list, anchor_ms: float) -> None:
    """Append one chunk's rows (written as each chunk finishes, so a killed run keeps them)."""
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        for p, (med, iqr, n) in zip(probes, chain_rows(probes, timings)):
            w.writerow([device_id(fp), fp["backend"]] + [p["key"][k] for k in KEY_FIELDS]
                       + [f"{med:.5f}", f"{iqr:.5f}", n, f"{anchor_ms:.5f}"])


def time_whole_nets(kit: Path, out: Path, spec: dict, backend: str, precision: str, threads: int,
                    log=print) -> None:
    """Time the kit's whole candidate networks (as the build's calibration does) and append their line.

    The op rows' sum misses what runs between ops; a few whole networks timed right after the
    rows give `srnas latency import` the ratio to correct it by, as `srnas latency build` fits it.
    """
    if not spec.get("nets") or any(ln.startswith(WHOLE_NETS) for ln in read_lines(out)):
        return
    rng = np.random.default_rng(1)
    nets, chunk = spec["nets"], spec["chunk"]
    results = []
    for start in range(0, len(nets), chunk):
        part = nets[start:start + chunk]
        cache: dict = {}
        runners = [make_runner(kit / n["file"], probe_inputs(n["shapes"], cache, rng), backend, precision, threads)
                   for n in part]
        for n, (med, iqr, k) in zip(part, time_interleaved(runners, spec["warmup"], spec["repeats"], seed=start)):
            results.append({"path": n["path"], "plan": n["plan"], **({"width": n["width"]} if "width" in n else {}),
                            "median_ms": med, "iqr_ms": iqr, "n": k})
        log(f"  whole nets [{start + len(part)}/{len(nets)}]")
    with open(out, "a", newline="") as f:
        f.write(WHOLE_NETS + json.dumps(results) + "\n")


# ---- the run --------------------------------------------------------------------------------------------

def load_manifest(kit: Path) -> dict:
    """The kit's manifest (next to this script unless --kit says otherwise)."""
    path = kit / MANIFEST
    if not path.is_file():
        raise ProbeError(f"no {MANIFEST} in {kit}: run this script inside the folder "
                         f"`srnas latency probes` wrote, or pass --kit DIR")
    manifest = json.loads(path.read_text())
    runtime = manifest["backend"]
    if module_version(runtime) == "absent":
        raise ProbeError(f"these probes run in {runtime}, which is not installed here: pip install {runtime}")
    return manifest


def run_kit(kit: Path, out: Path, threads: int, warmup: int, repeats: int, chunk: int,
            cpu: str | None = None, log=print) -> Path:
    """Time every probe of the kit not yet in ``out`` and append its rows there."""
    manifest = load_manifest(kit)
    backend, precision = manifest["backend"], manifest["precision"]
    fp = fingerprint(manifest, threads, cpu)
    done, earlier = done_rows(out, fp)
    if not out.exists():
        start_csv(out, fp)
    todo = [p for p in manifest["probes"] if row_key(p["key"]) not in done]
    busy = other_cores_busy()
    if busy is not None and busy > 0.3:
        log(f"warning: other processes use {busy:.1f} cores of this device: timings now run slow; "
            f"stop them for a LUT that prices candidates right")
    log(f"{len(todo)} of {len(manifest['probes'])} probes to time: {backend}/{precision}, "
        f"{resolve_threads(threads)} threads, {fp['cpu_model']}")
    rng = np.random.default_rng(0)
    anchor = manifest["anchor"]
    anchor_run = make_runner(kit / anchor["file"], probe_inputs(anchor["shapes"], {}, rng), backend, precision, threads)
    anchors = list(earlier)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        cache: dict = {}
        files = [p["file"] for p in part] + [p["chain"]["file"] for p in part if p.get("chain")]
        shapes = [p["shapes"] for p in part] + [p["shapes"] for p in part if p.get("chain")]
        runners = [make_runner(kit / f, probe_inputs(sh, cache, rng), backend, precision, threads)
                   for f, sh in zip(files, shapes)]
        # every chunk also times the anchor op: its spread across chunks shows load drift
        timings = time_interleaved(runners + [anchor_run], warmup, repeats, seed=start)
        anchors.append(timings[-1][0])
        append_rows(out, fp, part, timings[:-1], timings[-1][0])
        log(f"  [{min(start + chunk, len(todo))}/{len(todo)}] {part[-1]['file']}")
    time_whole_nets(kit, out, manifest.get("calibration") or {}, backend, precision, threads, log)
    judged = [a for a in anchors if a >= 1.0]   # sub-millisecond anchors are timer noise: not judged
    if judged and max(judged) / min(judged) > DRIFT_WARN:
        log(f"warning: the anchor op ran {max(judged) / min(judged):.2f}x slower in the slowest chunk than in "
            f"the fastest: the device's load or clock changed while timing; remove {out} and run again quietly")
    log(f"wrote {out}: copy it back and run `srnas latency import -c CONFIG {out.name}`")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; what it leaves out comes from the manifest (the config's latency section)."""
    p = argparse.ArgumentParser(description="time srnas latency probes on this device into a LUT CSV")
    p.add_argument("--threads", type=int, help="intra-op threads the runtime may use, as the deployment will "
                                               "(0 = every core; default: the config's latency.threads)")
    p.add_argument("--out", default="lut.csv", help="CSV to write (resumed when it holds rows of this device)")
    p.add_argument("--warmup", type=int, help="untimed rounds per chunk (default: the config's)")
    p.add_argument("--repeats", type=int, help="timed rounds per chunk (default: the config's)")
    p.add_argument("--chunk", type=int, help="probes timed together (default: as `srnas latency build`)")
    p.add_argument("--kit", default=str(Path(__file__).resolve().parent),
                   help="the probe folder (default: the folder of this script)")
    p.add_argument("--cpu-model", help="name the device (default: read from /proc/cpuinfo)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: python run_probes.py --threads N --out lut.csv."""
    args = parse_args(argv)
    kit = Path(args.kit)
    try:
        timing = load_manifest(kit)["timing"]
        given = {"threads": args.threads, "warmup": args.warmup, "repeats": args.repeats, "chunk": args.chunk}
        run_kit(kit, Path(args.out), **{k: timing[k] if v is None else v for k, v in given.items()},
                cpu=args.cpu_model)
    except ProbeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

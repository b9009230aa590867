"""A machine's searched front, measured: every shipped member timed on this machine once, reduced to its Pareto set.

Members are models; a front belongs to a device. ``fronts/<class>/`` of a weights folder holds what one search on a
CPU of that class shipped (``searched_x<scale>.json`` and ``<member>_x<scale>.pt``, experiments/ship_winners.py), and
the names a machine gets at a scale (srnas_xs, srnas_s, ... by rising latency; the aliases srnas_abpn, srnas_50ms)
come from the members of every class: each is timed here in its own executor (the one its file records, at its
file's input size), side by side in one run, cached under $SRNAS_CACHE (default ~/.cache/srnas) by this machine's
fingerprint with each member file's content hash, so a search on a new CPU only adds members. A new or changed file
has every member timed again beside it: times taken hours apart do not compare (on a 2-core VM the same model took
28.1 ms in one bench and 37.3 in another that day, and a new x3 member timed alone then fell off the front it sits on).

Timing runs in a child process (``python -m srnas.experiments.zoo.measure``): it deploys and times as `srnas bench`
does, whose module imports the zoo, and it leaves the caller's torch and runtime state alone.
SRNAS_FRONT=simd takes the old pick instead (the front searched on this CPU's SIMD class, else the nearest), as does a
machine where the members cannot be timed. A weights folder without fronts/ (what ship_winners.py --weights-dir
writes) is one front with its own names.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from srnas.supernet.errors import UserError
from srnas.supernet.writes import atomic_write_text

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
FRONTS = "fronts"
SEARCHED_FILE = "searched_x2.json"    # x2's; searched_name(scale) names every scale's
LEGACY_FILE = "searched.json"         # written before fronts came at x3 and x4: read as x2
# the nearest class first where this one's front is not shipped (the SIMD pick)
CPU_CLASSES = {"amx": ("amx", "vnni", "avx2"), "vnni": ("vnni", "amx", "avx2"), "avx2": ("avx2", "vnni", "amx")}
SIZES = ("srnas_xs", "srnas_s", "srnas_m", "srnas_l", "srnas_xl")   # then srnas_xxl, srnas_xxxl, ...
BUDGET_MS = 50.0                      # srnas_50ms's budget
MODE_ENV, CACHE_ENV = "SRNAS_FRONT", "SRNAS_CACHE"
MODES = ("measured", "simd")
TIMING = 1                            # how members are timed, in the fingerprint: a change to it times them again

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    """A note beside the command's output (stdout stays the command's: tables, JSON)."""
    print(line, file=sys.stderr, flush=True)


def cpu_class(isa: str | None = None) -> str:
    """The CPU's class for INT8 convs, from its SIMD flags (default: this machine's): amx, vnni or avx2."""
    if isa is None:
        from srnas.latency.fingerprint import cpu_isa
        isa = cpu_isa()
    flags = set(isa.split())
    if any(f.startswith("amx") for f in flags):
        return "amx"
    return "vnni" if flags & {"avx512_vnni", "avx_vnni"} else "avx2"


def searched_name(scale: int) -> str:
    """The file naming a folder's members at ``scale``: searched_x<scale>.json."""
    return f"searched_x{scale}.json"


def searched_path(folder: Path, scale: int) -> Path | None:
    """A folder's searched json at ``scale`` (an old searched.json counts as x2); None where it has none."""
    for name in (searched_name(scale),) + ((LEGACY_FILE,) if scale == 2 else ()):
        if (folder / name).is_file():
            return folder / name
    return None


def front_dir(weights_dir: str | Path | None = None, isa: str | None = None, scale: int = 2) -> Path:
    """The SIMD pick: <weights>/fronts/<this CPU's class, else the nearest>/ holding a front at ``scale``, or the
    weights folder itself where none does (a folder ship_winners.py --weights-dir wrote)."""
    root = Path(weights_dir or WEIGHTS_DIR)
    for c in CPU_CLASSES[cpu_class(isa)]:
        if searched_path(root / FRONTS / c, scale):
            return root / FRONTS / c
    return root


def read_searched(path: Path) -> dict:
    """A searched json with its members and aliases as dicts; one line naming the fix where it is damaged."""
    try:
        ship = json.loads(path.read_text())
        return {**ship, "members": dict(ship["members"]), "aliases": dict(ship.get("aliases", {}))}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: the front's searched.json is damaged ({e}): restore it from git or rerun "
                        f"experiments/ship_winners.py") from e


def size_names(n: int) -> list[str]:
    """Names of an n-member front by rising latency: srnas_xs ... srnas_xl, then srnas_xxl, srnas_xxxl, ..."""
    return [SIZES[i] if i < len(SIZES) else f"srnas_{'x' * (i - len(SIZES) + 2)}l" for i in range(n)]


@dataclass(frozen=True)
class Executor:
    """Where a model is timed: runtime, precision, LR input size, threads (0: all)."""

    backend: str
    precision: str
    lr_hw: tuple[int, int]
    threads: int = 0

    @property
    def label(self) -> str:
        """backend/precision WxH (and threads where fixed): abpn_int8's key in the cache."""
        h, w = self.lr_hw
        return f"{self.backend}/{self.precision} {w}x{h}" + (f" {self.threads} threads" if self.threads else "")


def executor_of(path: Path) -> Executor:
    """The executor a member file was searched for (its backend, precision, input size, threads)."""
    from srnas.pruning.model_file import PrunedModel
    try:
        pm = PrunedModel.load(path)
    except UserError as e:   # an old or broken file: no time here for it, so no measured front
        raise TimingFailed(str(e)) from e
    return Executor(pm.backend, pm.precision, (int(pm.lr_hw[0]), int(pm.lr_hw[1])), int(pm.threads))


@dataclass
class Member:
    """One shipped searched model: its id (<class folder>/<its name there>), file and searched-json record."""

    id: str
    path: Path
    entry: dict                       # target_ms, val_psnr, candidate, ...
    ship: dict                        # the json's top level: cpu, isa, config, backend, precision
    ms: float | None = None           # here, in its own executor (None: not timed)
    executor: Executor | None = None

    @property
    def cls(self) -> str:
        """The class folder it was shipped in: the CPU class it was searched on."""
        return self.id.split("/")[0]

    @property
    def val_psnr(self) -> float | None:
        """PSNR-Y on the search config's held-out validation images (None: not recorded)."""
        v = self.entry.get("val_psnr")
        return None if v is None else float(v)

    def searched_for(self) -> str:
        """What it was searched for, on which CPU."""
        ship, e = self.ship, self.entry
        cpu = f"{ship.get('cpu', '?')} ({cpu_class(ship['isa'])})" if "isa" in ship else ship.get("cpu", "?")
        return (f"{ship.get('config', 'cpu_x2')} at {e.get('target_ms', 0):g} ms ({e.get('x_abpn_int8', 0):g}x "
                f"abpn_int8) on {cpu}")


@dataclass
class Front:
    """The searched models a machine gets at one scale, by name."""

    scale: int
    how: str                          # measured (timed here), simd (the SIMD class's front) or folder (its own)
    members: dict[str, Member]        # id -> every member looked at, off the front too
    names: dict[str, str]             # srnas_xs, ... -> member id: the front, fastest first
    aliases: dict[str, str]           # srnas_abpn / srnas_50ms -> a name
    home: Path                        # where a name that is not on the front would lie
    abpn_ms: dict[str, float] = field(default_factory=dict)   # executor label -> abpn_int8's ms here
    cache: Path | None = None
    note: str = ""                    # why it is not measured, where it is not

    def path(self, name: str) -> Path:
        """The file of a name or alias (where the name is not on the front: where it would lie)."""
        name = self.aliases.get(name, name)
        mid = self.names.get(name)
        return self.members[mid].path if mid else self.home / f"{name}_x{self.scale}.pt"

    def name_of(self, member_id: str) -> str | None:
        """The name a member gets here (None: off the front)."""
        return next((n for n, i in self.names.items() if i == member_id), None)

    def describe(self) -> dict[str, str]:
        """Name (aliases included) -> what it was searched for, and its time here where measured."""
        out = {}
        for n, mid in self.names.items():
            m = self.members[mid]
            here = f", {m.ms:.1f} ms here" if m.ms is not None else ""
            out[n] = m.searched_for() + here
        return {**out, **{a: f"{out[n]}, as {n}" for a, n in self.aliases.items() if n in out}}


class TimingFailed(Exception):
    """The members could not all be timed here (an executor this machine lacks, a crash)."""


def folder_front(folder: Path, scale: int, how: str, note: str = "") -> Front:
    """One folder's own front: its searched json's names and aliases, tightest budget first."""
    path = searched_path(folder, scale)
    ship = read_searched(path) if path else {"members": {}, "aliases": {}}
    top = {k: v for k, v in ship.items() if k not in ("members", "aliases", "left_out")}
    order = sorted(ship["members"], key=lambda n: ship["members"][n].get("target_ms", 0))
    members = {f"{folder.name}/{n}": Member(f"{folder.name}/{n}", folder / f"{n}_x{scale}.pt",
                                            dict(ship["members"][n]), top) for n in order}
    return Front(scale, how, members, {n: f"{folder.name}/{n}" for n in order}, ship["aliases"], folder, note=note)


def collect(root: Path, scale: int) -> dict[str, Member]:
    """Every member at ``scale`` of every class folder under root/fronts/ whose file is there, by id."""
    out = {}
    for folder in sorted(p for p in (root / FRONTS).iterdir() if p.is_dir()):
        f = folder_front(folder, scale, "simd")
        out.update({i: m for i, m in f.members.items() if m.path.is_file()})
    return out


def machine_fingerprint() -> dict[str, str]:
    """What a timing here depends on: CPU model, SIMD flags, cores and runtime versions (srnas.latency.fingerprint)."""
    from importlib import metadata

    from srnas.latency.fingerprint import fingerprint
    fp = fingerprint()
    try:
        openvino = metadata.version("openvino")
    except metadata.PackageNotFoundError:
        openvino = "absent"
    keep = ("cpu_model", "isa", "cores", "torch", "onnxruntime")
    return {**{k: fp[k] for k in keep}, "openvino": openvino, "timing": str(TIMING)}


def cache_path(scale: int, fp: dict[str, str]) -> Path:
    """$SRNAS_CACHE/fronts/<fingerprint hash>_x<scale>.json (default cache: ~/.cache/srnas)."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "srnas")
    key = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]
    return root / "fronts" / f"{key}_x{scale}.json"


_HASHES: dict[tuple, str] = {}


def file_hash(path: Path) -> str:
    """The sha256 of a file's content (remembered per path, size and mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[key]


def load_cache(path: Path, fp: dict[str, str], scale: int) -> dict:
    """The cached timings of this machine at ``scale`` (empty where none, another machine's, or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"members": {}, "abpn_int8": {}}
    if not isinstance(data, dict) or data.get("fingerprint") != fp or data.get("scale") != scale:
        return {"members": {}, "abpn_int8": {}}
    return {"members": dict(data.get("members", {})), "abpn_int8": dict(data.get("abpn_int8", {}))}


def save_cache(path: Path, fp: dict[str, str], scale: int, data: dict, say: Say) -> None:
    """Write the timings (a cache that cannot be written costs a timing next time, nothing more)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"fingerprint": fp, "scale": scale, **data}, indent=1) + "\n")
    except OSError as e:
        say(f"could not write the timing cache {path} ({e}): the members are timed again next time")


@dataclass(frozen=True)
class Job:
    """One model to time: a member file (key: its hash) or abpn_int8 (key: the executor's label)."""

    key: str
    label: str
    path: str
    backend: str
    precision: str
    lr_hw: tuple[int, int]
    threads: int


def time_models(jobs: list[Job], scale: int) -> tuple[dict[str, float], dict[str, str]]:
    """Each job's ms here (key -> ms) and what failed (key -> why), timed as `srnas bench` times a model, in a child
    process (srnas.experiments.zoo.measure)."""
    with tempfile.TemporaryDirectory() as work:
        spec, out = Path(work) / "jobs.json", Path(work) / "times.json"
        spec.write_text(json.dumps({"scale": scale, "jobs": [asdict(j) for j in jobs]}))
        rc = subprocess.call([sys.executable, "-m", "srnas.experiments.zoo.measure", str(spec), str(out)])
        if not out.is_file():
            return {}, {j.key: f"{j.label}: the timing process exited {rc}" for j in jobs}
        res = json.loads(out.read_text())
    return {k: float(v) for k, v in res["ms"].items()}, dict(res["errors"])


def abpn_weights(root: Path, scale: int) -> Path | None:
    """abpn_int8's weights at ``scale``: the folder's, else the shipped ones; None where neither exists."""
    for folder in (root, WEIGHTS_DIR):
        if (folder / f"abpn_int8_x{scale}.pt").is_file():
            return folder / f"abpn_int8_x{scale}.pt"
    return None


def pending_jobs(members: dict[str, Member], data: dict, abpn: Path | None, abpn_sha: str | None) -> list[Job]:
    """What the cache lacks: each member file (by hash) it has not timed, abpn_int8 in each members' executor;
    sets every member's executor."""
    jobs: list[Job] = []
    for mid, m in members.items():
        sha = file_hash(m.path)
        hit = data["members"].get(sha)
        if hit:
            m.executor = Executor(hit["backend"], hit["precision"], tuple(hit["lr_hw"]), int(hit.get("threads", 0)))
            continue
        m.executor = executor_of(m.path)
        if all(j.key != sha for j in jobs):   # the same file shipped twice is timed once
            jobs.append(Job(sha, mid, str(m.path), **asdict(m.executor)))
    for ex in sorted({m.executor for m in members.values()}, key=lambda e: e.label):
        if abpn_sha and data["abpn_int8"].get(ex.label, {}).get("sha256") != abpn_sha:
            jobs.append(Job(ex.label, "abpn_int8", str(abpn), **asdict(ex)))
    return jobs


def record(jobs: list[Job], got: dict[str, float], data: dict, abpn_sha: str | None) -> None:
    """Put the times that came back into the cache's data."""
    for j in jobs:
        if j.key not in got:
            continue
        if j.label == "abpn_int8":
            data["abpn_int8"][j.key] = {"sha256": abpn_sha, "ms": got[j.key]}
        else:
            data["members"][j.key] = {"id": j.label, "backend": j.backend, "precision": j.precision,
                                      "lr_hw": list(j.lr_hw), "threads": j.threads, "ms": got[j.key]}


def measure(members: dict[str, Member], scale: int, abpn: Path | None, cache: Path, fp: dict[str, str],
            retime: bool, say: Say) -> dict[str, float]:
    """Set each member's ms here, timing every member and abpn_int8 side by side where the cache lacks one of
    them (or ``retime``); returns abpn_int8's ms per executor label."""
    data = {"members": {}, "abpn_int8": {}} if retime else load_cache(cache, fp, scale)
    abpn_sha = file_hash(abpn) if abpn else None
    if pending_jobs(members, data, abpn, abpn_sha):
        jobs = pending_jobs(members, {"members": {}, "abpn_int8": {}}, abpn, abpn_sha)
        say(f"timing the shipped x{scale} searched models once on this CPU, each in its own executor "
            f"({len(jobs)} to time; cached in {cache})")
        got, errors = time_models(jobs, scale)
        record(jobs, got, data, abpn_sha)
        save_cache(cache, fp, scale, data, say)   # what was timed stays timed, even where another failed
        why = list(errors.values()) or (["no time came back"] if any(j.key not in got for j in jobs) else [])
        if why:
            raise TimingFailed(why[0] + (f"; {len(why) - 1} more" if len(why) > 1 else ""))
    for m in members.values():
        m.ms = float(data["members"][file_hash(m.path)]["ms"])
    labels = {m.executor.label for m in members.values()}
    return {ex: float(data["abpn_int8"][ex]["ms"]) for ex in labels if abpn_sha and ex in data["abpn_int8"]}


# A slower member is named only where its val PSNR leads every faster named one's by this much: at 1.3x the time a
# lead of 0.003 dB (the vnni srnas_m over the avx2 srnas_s on a Xeon with AMX) is a tie that flips on another image
# set, and the demo's table then showed a named member off its own front.
MIN_GAIN_DB = 0.03
# Timings of one file here move by a few percent from run to run: a member at most this much slower than another
# is no slower (issue 32's "at most as slow, within 5 %"). On a Xeon with AMX, amx's srnas_s and avx2's srnas_s
# timed 18.0 / 18.5 ms in the front's cache and 17.7 / 16.8 ms in the bench after it: both named, they swapped order.
TIME_SLACK = 0.05


def pareto(members: list[Member], min_gain: float = MIN_GAIN_DB, slack: float = TIME_SLACK) -> list[Member]:
    """The members no other beats on both, fastest first: each slower one kept only where its val PSNR leads the
    faster kept ones' by ``min_gain`` dB, and a kept one dropped where a better one is at most ``slack`` slower
    (with 0 and 0, the rule of experiments.bench.pareto_front, whose module loads matplotlib and pandas)."""
    out, best = [], -math.inf
    timed = [m for m in members if m.ms is not None and m.val_psnr is not None]
    for m in sorted(timed, key=lambda m: (m.ms, -m.val_psnr)):
        if m.val_psnr >= best + min_gain:
            while out and m.ms <= out[-1].ms * (1 + slack):   # as fast within the timings' noise, and better
                out.pop()
            out.append(m)
            best = m.val_psnr
    return out


def for_budget(front: list[tuple[str, Member]], limit: Callable[[Member], float | None]) -> str | None:
    """The slowest named member whose time here is at most its limit, within TIME_SLACK (the fastest where none
    is; None: no limit)."""
    limits = [(n, m, limit(m)) for n, m in front]
    if not front or all(lim is None for _, _, lim in limits):
        return None
    meets = [n for n, m, lim in limits if lim is not None and m.ms <= lim * (1 + TIME_SLACK)]
    return meets[-1] if meets else front[0][0]


def measured_front(root: Path, scale: int, retime: bool, say: Say) -> Front:
    """Every class's members at ``scale`` timed here (cached), their Pareto set named by rising latency."""
    members = collect(root, scale)
    home = front_dir(root, scale=scale)
    if not members:
        return Front(scale, "measured", {}, {}, {}, home)
    fp = machine_fingerprint()
    cache = cache_path(scale, fp)
    abpn_ms = measure(members, scale, abpn_weights(root, scale), cache, fp, retime, say)
    front = pareto(list(members.values()))
    named = list(zip(size_names(len(front)), front))
    aliases = {"srnas_abpn": for_budget(named, lambda m: abpn_ms.get(m.executor.label)),
               "srnas_50ms": for_budget(named, lambda m: BUDGET_MS)}
    return Front(scale, "measured", members, {n: m.id for n, m in named},
                 {a: n for a, n in aliases.items() if n}, home, abpn_ms, cache)


def front_mode() -> str:
    """measured (the default) or simd, from $SRNAS_FRONT."""
    mode = os.environ.get(MODE_ENV, "").strip().lower() or "measured"
    if mode not in MODES:
        raise UserError(f"{MODE_ENV}={mode}: use measured (every shipped member timed on this machine, the default) "
                        f"or simd (the front searched on this CPU's SIMD class)")
    return mode


_MEMO: dict[tuple, Front] = {}


def _signature(root: Path, scale: int) -> tuple:
    """What a measured front depends on besides this machine: the class folders' files, abpn_int8's weights."""
    files = sorted(root.glob(f"{FRONTS}/*/*")) + [p for p in [abpn_weights(root, scale)] if p]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file())


def machine_front(scale: int = 2, weights_dir: str | Path | None = None, retime: bool = False,
                  say: Say | None = None) -> Front:
    """The front this machine gets at ``scale`` from a weights folder (default: the shipped one): measured here;
    the SIMD class's (SRNAS_FRONT=simd, or where the members cannot be timed here); or a folder's own names."""
    say = say or _stderr
    root = Path(weights_dir or WEIGHTS_DIR)
    if not (root / FRONTS).is_dir():
        return folder_front(root, scale, "folder")
    if front_mode() == "simd":
        return folder_front(front_dir(root, scale=scale), scale, "simd", f"{MODE_ENV}=simd")
    key = (str(root.resolve()), scale, os.environ.get(CACHE_ENV, ""), _signature(root, scale))
    if key in _MEMO and not retime:
        return _MEMO[key]
    try:
        front = measured_front(root, scale, retime, say)
    except TimingFailed as e:
        pick = front_dir(root, scale=scale)
        say(f"the shipped searched models could not be timed here ({e}): using the front searched on this CPU's "
            f"SIMD class instead ({pick.name}, {cpu_class()} here)")
        front = folder_front(pick, scale, "simd", f"timing failed: {e}")
    _MEMO[key] = front
    return front


def forget() -> None:
    """Drop the fronts this process resolved (the next look reads the cache again)."""
    _MEMO.clear()


def alias_reason(front: Front, alias: str, name: str) -> str:
    """Why a measured front's alias names that member: within its budget here, or the fastest where none is."""
    m = front.members.get(front.names.get(name, ""))
    if front.how != "measured" or m is None or m.ms is None:
        return ""
    limit = front.abpn_ms.get(m.executor.label) if alias == "srnas_abpn" else BUDGET_MS
    if limit is None:
        return ""
    what = f"abpn_int8's {limit:.1f} ms in {m.executor.label}" if alias == "srnas_abpn" else f"{limit:g} ms"
    if m.ms > limit * (1 + TIME_SLACK):
        return f": the fastest, none is within {what} here"
    return f": the slowest at most {what} here" + (f" (within {TIME_SLACK:.0%})" if m.ms > limit else "")


def front_table(front: Front) -> str:
    """`srnas zoo front`: each member's class, ms here, val PSNR and the name it gets here; then the aliases."""
    if not front.members:
        return f"no searched models ship at x{front.scale} (experiments/ship_winners.py with a config of that scale)"
    if front.how == "measured":
        from srnas.latency.fingerprint import cpu_model
        head = (f"x{front.scale} front of {cpu_model()} ({cpu_class()}): every shipped member timed here in its own "
                f"executor (cache: {front.cache})")
    elif front.how == "simd":
        head = f"x{front.scale} front searched on this CPU's SIMD class: {front.home} ({front.note})"
    else:
        head = f"x{front.scale} front of {front.home} (its own names)"
    rows = [("id", "searched on", "ms here", "val PSNR", "name here")]
    for m in sorted(front.members.values(), key=lambda m: (m.ms is None, m.ms or 0.0)):   # untimed: budget order
        name = front.name_of(m.id) or ("no val PSNR" if m.val_psnr is None else "off the front")
        rows.append((m.id, f"{m.cls} ({m.ship.get('cpu', '?')})", "-" if m.ms is None else f"{m.ms:.1f}",
                     "-" if m.val_psnr is None else f"{m.val_psnr:.3f}", name))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    cell = lambda i, c: c.rjust(widths[i]) if i == 2 else c.ljust(widths[i])   # noqa: E731 (ms right-aligned)
    lines = [head] + ["  ".join(cell(i, c) for i, c in enumerate(r)).rstrip() for r in rows]
    lines += [f"{a} -> {n} ({front.names.get(n, '?')})" + alias_reason(front, a, n) for a, n in front.aliases.items()]
    return "\n".join(lines)

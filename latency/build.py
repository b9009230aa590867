"""Build (or resume) a LUT: measure every catalogue op not yet in the file, a chunk at a time."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from srnas.supernet.config import Config, depths, widths
from srnas.supernet.progress import progress_bar
from srnas.supernet.rundir import RunDir
from srnas.supernet.widths import WidthRule

from .catalogue import OpKey, block_templates, catalogue, chain_probe, chained, op_inputs, op_module
from .check import candidate_templates, fit_calibration, measure_candidates, random_candidate
from .deploy import make_runner
from .fingerprint import fingerprint, fingerprint_diff
from .lut import LUT, FingerprintMismatch, Row
from .model import LatencyModel
from .quiet import busy_message
from .runtimes.registry import check_executor
from .timing import time_steady


def default_lut_path(cfg: Config, backend: str | None = None, run: RunDir | None = None) -> Path:
    """Where a config's LUT lives: latency.lut, else <run>/latency/lut-<backend>[-<precision>].csv."""
    if cfg.latency.lut:
        return Path(cfg.latency.lut)
    return (run or cfg.run()).lut(backend or cfg.latency.backend, cfg.latency.precision)


def executor_fingerprint(cfg: Config, backend: str | None = None) -> dict:
    """This machine's fingerprint for the config's executor (what its LUT must match), and the scale its
    models upscale by (the tail and upsampler rows are the scale's)."""
    fp = fingerprint(backend or cfg.latency.backend, cfg.latency.threads, cfg.latency.precision)
    return {**fp, "scale": str(cfg.data.scale)}


def load_lut(cfg: Config, path: str | Path | None = None, backend: str | None = None) -> LUT:
    """The config's LUT, checked against this machine and the config's executor (latency.allow_foreign_lut)."""
    return LUT.load(path or default_lut_path(cfg, backend), expected=executor_fingerprint(cfg, backend),
                    allow_foreign=cfg.latency.allow_foreign_lut)


def is_foreign(lut: LUT, cfg: Config, backend: str | None = None) -> bool:
    """Whether ``lut`` was measured on another device or executor than this machine runs the config's on."""
    return bool(fingerprint_diff(lut.fingerprint, executor_fingerprint(cfg, backend)))


def lut_keys(cfg: Config, schemes: list[str] | None = None, anchor: bool = True) -> list[OpKey]:
    """Every row the config's search space needs (``schemes``: pruning.schemes), the anchor op first: the
    rows a build measures, in its order."""
    lat = cfg.latency
    keys = catalogue(cfg.model, cfg.data.scale, (lat.lr_height, lat.lr_width),
                     list(cfg.pruning.schemes) if schemes is None else schemes, lat.rates,
                     WidthRule.of(cfg.pruning), lat.lut_granularity)
    if not anchor:
        return keys
    first = anchor_key(cfg)
    return [first] + [k for k in keys if k != first]


def build_lut(cfg: Config, backend: str | None = None, out: str | Path | None = None, chunk: int = 8,
              schemes: list[str] | None = None, progress: bool = True) -> LUT:
    """Measure every op of the config's search space into a LUT file (resumes an existing one).

    Each op runs as compaction leaves it: plain convs at the widths of supernet.widths.
    """
    backend = backend or cfg.latency.backend
    check_executor(backend, cfg.latency.precision)
    lat = cfg.latency
    path = Path(out) if out else default_lut_path(cfg, backend)
    fp = executor_fingerprint(cfg, backend)
    if path.exists():   # another device's LUT is refused here unless latency.allow_foreign_lut
        lut = LUT.load(path, expected=fp, allow_foreign=lat.allow_foreign_lut)
    else:
        lut = LUT.create(path, fp)
    if is_foreign(lut, cfg, backend):   # imported from the device: used as it is, never measured into
        return _complete_foreign(lut, cfg)
    if lut.damaged:   # rows cut short (warned on load): the file is written without them, they are measured again
        lut.rewrite()
    warn_if_busy("LUT build (before the build)")
    scale = cfg.data.scale
    anchor = anchor_key(cfg, lut)
    keys = lut_keys(cfg, schemes)
    todo = [k for k in keys if k not in lut]
    bar = progress_bar(total=len(keys), initial=len(keys) - len(todo), desc=f"LUT {backend}", unit="op",
                       disable=not progress)
    inputs: dict[tuple, torch.Tensor] = {}
    anchor_runner = None
    earlier = sorted(r.anchor_ms for r in lut.rows.values() if r.anchor_ms >= 1.0)  # a resumed build's rounds
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        runners, chain_runners, chains = [], [], []
        for key in part:
            module, shapes = op_module(key, cfg.model, scale)
            xs = [inputs.setdefault(s, torch.rand(s)) for s in shapes]
            runners.append(make_runner(module, xs, backend, lat.threads, lat.precision))
            chain = None   # a chained row is its share of a chain's time (catalogue.chain_probe)
            if chained(key, lat.lut_granularity):
                module, extra = chain_probe(key, cfg.model, scale)
                chain = (len(part) + len(chain_runners), extra)
                chain_runners.append(make_runner(module, xs, backend, lat.threads, lat.precision))
            chains.append(chain)
        runners += chain_runners
        if anchor_runner is None:
            anchor_runner = make_anchor_runner(cfg, backend, anchor)
        reference = min([t.anchor_ms for t in lut.rows.values() if t.anchor_ms > 0], default=None)
        timings = time_steady(runners, anchor_runner, reference, warmup=lat.warmup, repeats=lat.repeats,
                              threads=lat.threads, seed=start)
        # every chunk also times the anchor op: its spread across chunks shows load drift (see load_drift)
        if earlier and start == 0 and not 1 / DRIFT_RESUME <= timings[-1].median_ms / earlier[len(earlier) // 2] \
                <= DRIFT_RESUME:
            warnings.warn(f"LUT build: the anchor op runs in {timings[-1].median_ms:.2f} ms now against "
                          f"{earlier[len(earlier) // 2]:.2f} ms when the rows already in {path} were measured: the "
                          f"machine's speed or load changed, so old and new rows disagree; remove {path} and build "
                          f"again on a quiet machine", BusyMachineWarning, stacklevel=2)
        anchor_ms = timings[-1].median_ms
        for key, t, chain in zip(part, timings, chains):
            if chain is None:
                lut.add(Row(key, t.median_ms, t.iqr_ms, t.n, anchor_ms))
            else:
                long, extra = timings[chain[0]], chain[1]
                ms = max((long.median_ms - t.median_ms) / extra, MIN_ROW_MS)
                lut.add(Row(key, ms, (long.iqr_ms ** 2 + t.iqr_ms ** 2) ** 0.5 / extra, min(t.n, long.n), anchor_ms))
        bar.update(len(part))
        inputs = {s: x for s, x in inputs.items() if any(s in op_shapes(k, cfg) for k in todo[start + chunk:])}
    bar.close()
    if todo:
        warn_if_busy("LUT build (after the build)")
    lut = LUT.load(path, expected=fp)
    drift = load_drift(lut)
    if drift > DRIFT_WARN:  # (sub-millisecond anchors, tiny test inputs, are timer noise: not judged)
        warnings.warn(f"the anchor op ({anchor.cin}->{anchor.cout} 3x3 conv) ran {drift:.2f}x slower in the "
                      f"slowest build round than in the fastest: the machine's load changed during the build, "
                      f"so rows from different rounds disagree; rebuild {path} on a quiet machine", stacklevel=2)
    return lut


DRIFT_WARN = 1.5
DRIFT_RESUME = 1.3   # a resumed build whose anchor moved more than this against the file's earlier rounds
MIN_ROW_MS = 1e-3   # a chain row at or under timer noise still costs something
CALIB_SEED = 12345  # calibration's candidates, drawn apart from those `latency check` draws (seed 0)


def _complete_foreign(lut: LUT, cfg: Config) -> LUT:
    """An imported LUT of another device, if it holds every row this config needs; else what to measure there."""
    missing = [k for k in lut_keys(cfg, anchor=False) if k not in lut]
    if missing:
        raise FingerprintMismatch(
            f"{lut.path} was measured on {lut.fingerprint.get('cpu_model')} and lacks {len(missing)} row(s) this "
            f"config needs (first: {missing[0]}); it cannot be completed here: write the probes for this config "
            f"(`srnas latency probes -c CONFIG --out DIR`), time them on that device and import the CSV again")
    return lut


class BusyMachineWarning(UserWarning):
    """Other processes kept the cores busy while something was timed (the LUT, stage 3's plans)."""


def warn_if_busy(what: str) -> None:
    """A BusyMachineWarning naming ``what`` where other processes keep the cores busy now."""
    msg = busy_message()
    if msg:
        warnings.warn(f"{what}: {msg}", BusyMachineWarning, stacklevel=3)


def load_drift(lut: LUT) -> float:
    """Slowest / fastest anchor time over the build's measuring rounds (1.0 = steady machine).

    Rows are kept as measured: rescaling a round by its anchor (one small op) was tried and
    added more error than it removed on the 2-core machine (`latency check` within_10 0.25
    vs 0.94 plain in one build, 0.28 vs 0.64 in another).
    """
    anchors = [r.anchor_ms for r in lut.rows.values() if r.anchor_ms > 0]
    return max(anchors) / min(anchors) if anchors and min(anchors) >= 1.0 else 1.0


def anchor_key(cfg: Config, lut: LUT | None = None) -> OpKey:
    """The op timed in every chunk to track load drift: a dense n -> n 3x3 conv at the input size, n the model's
    width (the largest of an elastic space). A LUT being extended keeps the anchor it was started with (its first
    row): a space widened from 48 to 64 features would otherwise compare a 64-wide anchor with the file's 48-wide
    ones, call the machine 2.3x slower, warn and time every chunk again."""
    first = next(iter(lut.rows), None) if lut is not None else None
    lr = (cfg.latency.lr_height, cfg.latency.lr_width)
    if first is not None and (first.op, first.k, first.scheme, (first.h, first.w)) == ("conv", 3, "none", lr) \
            and first.cin == first.cout:
        return first
    n = max(widths(cfg.model))
    return OpKey("conv", n, n, 3, *lr)


def anchor_module(key: OpKey) -> torch.nn.Module:
    """The anchor op (anchor_key): its n -> n 3x3 conv, fixed seed."""
    torch.manual_seed(0)
    return torch.nn.Conv2d(key.cin, key.cout, 3, padding=1).eval()


def make_anchor_runner(cfg: Config, backend: str, key: OpKey):
    """A runner of the anchor op ``key`` (its own input)."""
    return make_runner(anchor_module(key), [torch.rand(1, key.cin, key.h, key.w)], backend, cfg.latency.threads,
                       cfg.latency.precision)


def op_shapes(key: OpKey, cfg: Config) -> list[tuple[int, ...]]:
    """Input shapes of an op (to keep only the input tensors later chunks still need)."""
    return op_inputs(key, cfg.model)


def calibration_candidates(cfg: Config, samples: int | None = None, seed: int = CALIB_SEED) -> list:
    """The random (path, plan) candidates calibration times (latency.calib_samples of them by default)."""
    rng = np.random.default_rng(seed)
    m = cfg.model
    templates = candidate_templates(m, cfg.data.scale)
    n = cfg.latency.calib_samples if samples is None else samples
    cands = [random_candidate(rng, templates, depths(m) if m.elastic else m.n_cells, cfg.pruning.schemes,
                              cfg.latency.rates, widths(m) if m.elastic else ()) for _ in range(n)]
    if m.elastic:   # the fit spans the space: its smallest and largest dense members are timed too
        cands[:2] = extreme_members(m, templates)[:len(cands[:2])]
    return cands


def extreme_members(model_cfg, templates: dict) -> list[tuple]:
    """(path, plan, width) of an elastic space's smallest and largest dense members: the fewest cells of the
    cheapest block at the narrowest width, the most cells of the costliest at the widest."""
    def weights(block: str) -> int:
        return sum(st.cin * st.cout * st.k * st.k // (st.cout if st.depthwise else 1)
                   for st in templates[block] if st.op == "conv")

    cheap, costly = min(templates, key=weights), max(templates, key=weights)
    d, w = depths(model_cfg), widths(model_cfg)
    return [((cheap,) * min(d), {}, min(w)), ((costly,) * max(d), {}, max(w))]


def calibrate_lut(lut: LUT, cfg: Config, candidate_fn, samples: int, backend: str | None = None,
                  seed: int = CALIB_SEED, progress: bool = True) -> dict | None:
    """Time ``samples`` random whole candidates and store the fitted end-to-end calibration in the LUT."""
    if samples <= 0:
        lut.set_calibration(None)
        return None
    backend = backend or lut.backend
    lat = cfg.latency
    model = LatencyModel.for_config(lut, cfg, calibrate=False)
    cands = calibration_candidates(cfg, samples, seed)
    raw = [model.raw(*c) for c in cands]
    times = measure_candidates(cands, candidate_fn, (lat.lr_height, lat.lr_width), backend, lat.threads,
                               warmup=1, repeats=lat.repeats, progress=progress, precision=lat.precision)
    cal = fit_calibration(raw, [t["median_ms"] for t in times])
    lut.set_calibration(cal)
    return cal

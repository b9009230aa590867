"""`srnas search` and `srnas run`: supernet -> LUT -> search -> stage 3 -> export -> report, skipping finished stages.

This module is composition: it resolves the executor, hands the latency model to the search's
constraints and to stage 3, and writes the report.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import srnas.latency as latency
import srnas.pruning as pruning
from srnas.supernet.config import Config, at_size, save_config
from srnas.supernet.data import PatchSampler, load_images, make_pairs
from srnas.supernet.distributed import DistInfo, barrier, init_distributed
from srnas.supernet.errors import UserError
from srnas.supernet.evaluate import evaluate
from srnas.supernet.record import (STAGES, Recorder, check_run, discard, downstream, redo_hint, removals,
                                   run_records, stage_outputs)
from srnas.supernet.rundir import RunDir
from srnas.supernet.train import load_supernet, load_train_images, train_supernet

from .candidate import Candidate, Space, save_candidate
from .constraints import Constraints
from .evaluator import Evaluator, center_crop_pairs
from .history import History, atomic_write_json
from .loop import heldout_predictions, kendall_tau_heldout, run_search, tau_text
from .results import SearchResult, Stage3Result
from .resolve import fastest_dense_ms, lr_hw, make_space, resolve_executor, resolve_target  # noqa: F401 (front.py)
from .sizing import resolve_size
from .stage3 import stage3, timer_for


# ---- stage: LUT ---------------------------------------------------------------------------------
def candidate_builder(cfg: Config):
    """(path, plan) -> the compact pruned network (random weights) as the export runs it: what calibration times
    ((path, plan, width) of an elastic space: the member of that depth and width)."""
    def build(path, plan, width: int = 0):
        model = at_size(cfg.model, len(path), width) if width else cfg.model
        return pruning.pruned_path_net(model, cfg.data.scale, path, plan, cfg.pruning)

    return build


def lut_stage(cfg: Config, run: RunDir, dist_info: DistInfo, build: bool = True):
    """Build (or resume / reuse) and calibrate the LUT on rank 0; a LatencyModel on every rank."""
    path = latency.default_lut_path(cfg, run=run)
    if dist_info.main and build:
        t0 = time.time()
        lut = latency.build_lut(cfg, out=path)
        # timings here fit no other device
        if lut.calibration is None and cfg.latency.calib_samples > 0 and not latency.is_foreign(lut, cfg):
            latency.calibrate_lut(lut, cfg, candidate_builder(cfg), cfg.latency.calib_samples)
        print(f"lut: {path} ready, {len(lut)} rows, calibration {lut.calibration} ({time.time() - t0:.0f} s)")
    barrier()
    if not path.exists():
        raise UserError(f"no LUT at {path}: run `srnas latency build -c CONFIG` (or `srnas run`) first")
    lut = latency.load_lut(cfg, path)
    return latency.LatencyModel.for_config(lut, cfg)


def make_constraints(cfg: Config, space: Space, lat_model) -> Constraints:
    """The validity rules of the config: latency target and floor (LUT), MAC and parameter budgets."""
    fn = (lambda path, plan, width=0: lat_model.predict(path, plan, width)) if lat_model is not None else None
    return Constraints(space, cfg.latency.rates, fn, cfg.latency.target_ms, cfg.search.max_macs,
                       cfg.search.max_params, lr_hw(cfg), cfg.search.min_ms)


def train_sampler(cfg: Config, seed: int, batch: int = 0) -> PatchSampler:
    """Training batches for fine-tunes (same on every rank, so a candidate's result does not depend on its rank)."""
    d = cfg.data
    return PatchSampler(load_train_images(cfg), d.scale, d.patch_size, batch or d.batch_size, d.augment, seed, 0)


# ---- stage: search ------------------------------------------------------------------------------
def search_stage(cfg: Config, run: RunDir, dist_info: DistInfo, lat_model=None) -> SearchResult | None:
    """Stages 1+2: the guided search (+ random ablation), resumable; writes winner.yaml; None on ranks > 0."""
    weights = run.supernet
    if not weights.exists():
        raise UserError(f"no supernet weights at {weights}: run `srnas supernet train -c CONFIG` first")
    space = make_space(cfg)
    cons = make_constraints(cfg, space, lat_model)
    if cfg.latency.target_ms > 0 and lat_model is None:
        raise UserError("latency.target is set but no LUT was given: build one with `srnas latency build`")
    evaluator = make_evaluator(cfg, space, weights, dist_info)
    sdir = run.search_dir
    hist = run_search(space, cons, evaluator, cfg.search, sdir, dist_info, ablation=cfg.search.ablation)
    if not dist_info.main:
        return {}
    guided = hist["guided"]
    best = guided.best()
    winner = Candidate.from_json(best["candidate"])
    save_candidate(winner, space, run.winner,
                   {"val_psnr": float(best["psnr"]), "lat_pred_ms": float(best["lat_pred_ms"]),
                    "macs": float(best["macs"]), "params": float(best["params"])})
    ablation = ablation_summary(space, cfg, guided, hist.get("random"))
    atomic_write_json(ablation, sdir / "ablation.json")
    return SearchResult(winner, best, ablation, guided, hist.get("random"))


def make_evaluator(cfg: Config, space: Space, weights: Path, dist_info: DistInfo):
    """Candidate -> {"psnr"} (+ measured ms with search.measure_latency): a short fine-tune from the supernet's
    weights, scored on the held-out images."""
    supernet = load_supernet(weights).to(dist_info.device)
    pairs = center_crop_pairs(make_pairs(load_images(cfg.data.val, "val", data_root=cfg.data.data_root),
                                         cfg.data.scale), cfg.search.val_crop, cfg.data.scale)
    evaluator = Evaluator(supernet, space, cfg, train_sampler(cfg, cfg.search.seed, cfg.search.eval_batch), pairs,
                          dist_info.device)
    return _MeasuringEvaluator(evaluator, _measure_fn(cfg)) if cfg.search.measure_latency else evaluator


def _measure_fn(cfg: Config):
    """(masked net, masks) -> measured ms of its compact form in the config's executor (stage 3's timer)."""
    timer = timer_for(cfg)
    return lambda net, masks: timer(pruning.compact(net, masks), cfg.latency.repeats)["median_ms"]


class _MeasuringEvaluator:
    """Adds a measured latency of the pruned candidate to each evaluation."""

    def __init__(self, ev: Evaluator, measure):
        self.ev, self.measure = ev, measure

    def __call__(self, cand: Candidate) -> dict:
        net, masks = self.ev.build(cand)
        with torch.no_grad():
            r = evaluate(lambda x: net(x), self.ev.pairs, self.ev.space.scale, ssim=False)
        return {"psnr": float(r["psnr"]), "lat_meas_ms": float(self.measure(net, masks))}


def ablation_summary(space: Space, cfg: Config, guided: History, random: History | None) -> dict:
    """Best PSNR of both searches, their evaluation counts and the predictor's held-out Kendall tau."""
    out = {"guided_evals": len(guided.rows), "guided_best": float(guided.best()["psnr"]) if guided.rows else None,
           "shared_init": sum(int(r["iteration"]) == 0 for r in guided.rows)}
    if random is not None and random.rows:
        out.update(random_evals=len(random.rows), random_best=float(random.best()["psnr"]))
        held = [r for r in random.rows if r["key"] not in guided.keys]
        out["heldout_n"] = len(held)
        out["kendall_tau"] = kendall_tau_heldout(space, guided.rows, held, cfg.search)
    return out


# ---- report -------------------------------------------------------------------------------------
def report_stage(cfg: Config, run: RunDir, found: SearchResult, final: Stage3Result | None) -> Path:
    """Write report.md (tables + plots) into the run directory."""
    from .report import write_report  # why: matplotlib and pandas (seconds) load only when a report is written

    space = make_space(cfg)
    guided, random, row, winner = found.guided, found.random, found.row, found.winner
    heldout = heldout_predictions(space, guided.rows, random.rows, cfg.search) if random is not None else None
    summary = {"name": cfg.name, "target_ms": cfg.latency.target_ms,
               "winner": {"candidate": winner.key(), "rate": winner.rate, "val PSNR (search, dB)": f"{found.val_psnr:.3f}",
                          "LUT latency (ms)": f"{found.lut_ms:.2f}",
                          "GMACs": f"{float(row['macs']) / 1e9:.3f}", "params": int(float(row["params"]))},
               "search": {k: getattr(cfg.search, k) for k in ("iterations", "init_candidates", "top_h", "pool_c",
                                                               "pick_b", "ensemble", "acquisition", "eval_steps")}}
    if final:
        summary["final"] = {
            **{f"{name} x{cfg.data.scale} PSNR / SSIM (Y), bicubic PSNR":
               f"{q['psnr']:.2f} / {q['ssim']:.4f}, {q['bicubic_psnr']:.2f} ({q['psnr'] - q['bicubic_psnr']:+.2f} dB)"
               for name, q in final.benchmarks.items()},
            f"measured latency at {cfg.latency.lr_width}x{cfg.latency.lr_height} ({final.backend} {final.precision})":
                f"{final.measured_ms:.2f} ms", "LUT-predicted latency": f"{final.lut_ms:.2f} ms",
            "target": f"{final.target_ms:.2f} ms",
            "measured / target": "n/a" if final.ratio_to_target is None else
                f"{final.ratio_to_target:.3f} ({'meets' if final.meets_target else 'MISSES'} the "
                f"{Stage3Result.BOUND} x bound)",
            **{f"file: {k}": run.store(v) for k, v in final.files.items()}}   # beside report.md: it moves with it
    return write_report(run.root, summary, guided.frame(), random.frame() if random is not None else None,
                        found.ablation, heldout)


# ---- commands -----------------------------------------------------------------------------------
def search_command(cfg: Config, run: RunDir) -> SearchResult | None:
    """`srnas search`: the LUT must exist (no build); supernet weights must exist."""
    if cfg.latency.targets:
        raise UserError("latency.targets (a front) is searched by `srnas run`, which runs stage 3 for each target")
    check_run(cfg, run, ("supernet", "lut", "search"))
    rec = Recorder(cfg, run)
    cfg = resolve_executor(cfg, run)
    preflight(cfg, run)
    dist_info = init_distributed(cfg.search.threads)
    cfg = resolve_size(cfg, run, dist_info.main)
    wants = bool(cfg.latency.target)
    lat_model = lut_stage(cfg, run, dist_info, build=False) if wants else None
    cfg = resolve_target(cfg, lat_model)
    if run.supernet.exists():
        rec("search", [run.supernet, lat_model.lut.path if lat_model is not None else None])
    found = search_stage(cfg, run, dist_info, lat_model)
    if dist_info.main:
        _print_winner(found)
    return found


def preflight(cfg: Config, run: RunDir) -> None:
    """Checks that need no work, before any stage runs: a LUT already in place must fit this machine and executor."""
    path = latency.default_lut_path(cfg, run=run)
    if (cfg.latency.target or cfg.latency.targets) and path.exists():
        latency.load_lut(cfg, path)


def one_process_supernet(cfg: Config, run: RunDir, command: str,
                         rec: Recorder | None = None) -> tuple[Config, DistInfo]:
    """The executor, size and trained supernet (made when missing) of a command that runs in one process on
    a run's supernet (`srnas run` with latency.targets, `srnas ablate`); its search threads."""
    cfg = resolve_executor(cfg, run)
    preflight(cfg, run)
    if init_distributed(cfg.train.threads).world > 1:
        raise UserError(f"{command} runs in one process: start it without torchrun")
    cfg = resolve_size(cfg, run)
    if rec is not None:
        rec("supernet")
    train_supernet(cfg, run, resume=True)
    return cfg, init_distributed(cfg.search.threads)


@dataclass
class RunResult:
    """What `srnas run` produced."""
    found: SearchResult
    final: Stage3Result
    report: Path
    times: dict[str, float]
    warnings: list[str]


def run_all(cfg: Config, run: RunDir) -> RunResult | None:
    """`srnas run`: every stage in order, skipping finished ones; a begun stage made from another config or
    other inputs stops it before anything is written (StageChanged)."""
    t0 = time.time()
    check_run(cfg, run)
    rec = Recorder(cfg, run)   # the config as given: what each stage records it was made from
    cfg = resolve_executor(cfg, run)   # before anything is timed: every stage prices in this executor
    preflight(cfg, run)
    dist_info = init_distributed(cfg.train.threads)
    cfg = resolve_size(cfg, run, dist_info.main)    # the paper's N (and width) from the LUT, before training
    if dist_info.main:
        run.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run.config)
    times = {}
    rec("supernet")
    train_supernet(cfg, run, resume=True)
    dist_info = init_distributed(cfg.search.threads)   # each stage runs with its own threads setting
    times["supernet"] = time.time() - t0
    wants = bool(cfg.latency.target)
    lut = latency.default_lut_path(cfg, run=run) if wants else None
    if wants:
        rec("lut", lut=lut)
    lat_model = lut_stage(cfg, run, dist_info) if wants else None
    cfg = resolve_target(cfg, lat_model, run if dist_info.main else None)
    if dist_info.main:  # the saved config states the absolute target the run aims at
        save_config(cfg, run.config)
    if lat_model is not None:  # an impossible target fails here, before any evaluation
        make_constraints(cfg, make_space(cfg), lat_model).check_feasible()
    times["lut"] = time.time() - t0 - sum(times.values())
    rec("search", [run.supernet, lut])
    found = search_stage(cfg, run, dist_info, lat_model)
    times["search"] = time.time() - t0 - sum(times.values())
    if not dist_info.main:
        return None
    final = stage3(cfg, run, found.winner, lat_model, rec=rec)
    times["stage3+export"] = time.time() - t0 - sum(times.values())
    report = report_stage(cfg, run, found, final)
    times["total"] = time.time() - t0
    warnings = latency_warnings(final)
    for w in warnings:  # to stderr: stdout's last line stays the JSON summary
        print(f"warning: {w}", file=sys.stderr)
    _print_winner(found, final, report, times)
    return RunResult(found, final, report, times, warnings)


def redo_stages(cfg: Config, run: RunDir, stages: list[str]) -> None:
    """`srnas run --redo STAGE`: remove what ``stages`` and the stages made from them wrote (a front's targets'
    too), once every other begun stage is found to fit the config (else StageChanged, nothing removed)."""
    todo = downstream(stages)
    check_run(cfg, run, [s for s in STAGES if s not in todo], hint=lambda more: redo_hint([*stages, *more]))
    lut = lut_file(cfg, run)
    plan = []
    for rec in reversed(run_records(run)):   # the targets' folders first: the search's removal takes them along
        mine = todo if rec.root == run.root else [s for s in todo if s in ("stage3", "export")]
        plan.append((rec, mine, {s: stage_outputs(RunDir(rec.root), s, lut) for s in mine}))
    for step in plan:   # every removal is checked before the first is made
        removals(*step)
    for step in plan:
        discard(*step)


def lut_file(cfg: Config, run: RunDir) -> Path | None:
    """The LUT file of the config's executor (an `auto` one as the run chose it), or None before it is chosen."""
    lat = cfg.latency
    if "auto" in (lat.backend, lat.precision):
        if not run.executor.exists():
            return Path(lat.lut) if lat.lut else None
        chosen = json.loads(run.executor.read_text())
        lat = dataclasses.replace(lat, backend=chosen["backend"], precision=chosen["precision"])
    return latency.default_lut_path(dataclasses.replace(cfg, latency=lat), run=run)


def latency_warnings(final: Stage3Result) -> list[str]:
    """What a user should know about the measured winner: a missed target, a LUT that priced it wrongly."""
    out = []
    fix = ("refit the LUT on a quiet machine: `srnas latency build -c CONFIG --recalibrate` (or delete the LUT "
           "file and build it again), then search with it: `srnas run -c CONFIG --redo search`")
    # NaN (no LUT) compares False; a foreign LUT prices another device, so this machine's ms is no check of it
    ratio = final.measured_ms / final.lut_ms if final.lut_ms > 0 and final.judged_by == "measured" else None
    if ratio is not None and not 0.8 <= ratio <= 1.25:
        out.append(f"the winner measured {final.measured_ms:.2f} ms where the LUT predicted {final.lut_ms:.2f} ms "
                   f"({ratio:.2f} x, outside [0.8, 1.25]): the LUT does not describe this machine as it runs now "
                   f"(built while the machine was busy?); {fix}")
    if final.meets_target is False:
        out.append(f"the winner MISSES the target: measured {final.measured_ms:.2f} ms vs {final.target_ms:.2f} ms "
                   f"({final.ratio_to_target:.3f} x, bound {Stage3Result.BOUND} x); {fix}, or raise latency.target; "
                   f"latency.soft_target: true accepts such a winner")
    return out


def _print_winner(found: SearchResult, final: Stage3Result | None = None, report: Path | None = None,
                  times: dict | None = None) -> None:
    w = found.winner
    print(f"\nwinner: {w.key()} (rate {w.rate:g}); search val PSNR {found.val_psnr:.3f} dB; LUT {found.lut_ms:.2f} ms")
    ab = found.ablation
    if "random_best" in ab:
        print(f"ablation ({ab['guided_evals']} guided / {ab['random_evals']} random evaluations): guided best "
              f"{ab['guided_best']:.3f} dB, "
              f"random best {ab['random_best']:.3f} dB, predictor Kendall tau (held-out) "
              f"{tau_text(ab['kendall_tau'], ab.get('heldout_n', 0))}")
    if final:
        for name, q in final.benchmarks.items():
            print(f"final: {name} PSNR {q['psnr']:.2f} dB (bicubic {q['bicubic_psnr']:.2f}, "
                  f"{q['psnr'] - q['bicubic_psnr']:+.2f} dB)")
        print(f"final: measured {final.measured_ms:.2f} ms ({final.backend} {final.precision}) vs target "
              f"{final.target_ms:.2f} ms" + (f" ({final.ratio_to_target:.3f} x: "
                                              f"{'meets' if final.meets_target else 'MISSES'} the target within 5 %)"
                                              if final.ratio_to_target else ""))
        for k, v in final.files.items():
            print(f"  {k}: {v}")
    if report:
        print(f"report: {report}")
    if times:
        print("stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in
                      {**({"psnr": final.psnr, "gain_db": final.gain_db, "measured_ms": final.measured_ms,
                           "target_ms": final.target_ms} if final else {}),
                       "winner": w.key(), "val_psnr": found.val_psnr}.items()}))

"""A Pareto front from one search: `srnas run` with `latency.targets: [25ms, 50ms, 0.9x]`.

One supernet, one LUT and one search history serve every target. Each iteration evolves the
best candidates found under each target (a candidate takes, per target, the smallest pruning
rate that meets it), one predictor that also sees the rate scores them all, and the picks are
those that promise the most over the best PSNR found so far under their own target. Then each
target's best candidate gets stage 3 + export in <run>/targets/<ms>ms/ (a run folder of its
own, which `srnas bench --run` reads), and front.json / front.md / front.png in the run folder
show the front.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import srnas.latency as latency
from srnas.supernet.config import Config, parse_target, save_config
from srnas.supernet.errors import UserError
from srnas.supernet.record import Recorder, check_run
from srnas.supernet.rundir import RunDir
from srnas.supernet.writes import atomic_write_text, save_figure

from .candidate import Candidate, Space, save_candidate
from .constraints import Constraints
from .generator import Proposal, evolve, initial_pool, random_valid
from .history import History, atomic_write_json
from .loop import SearchLoop, _iter_rng, fit_predictor
from .predictor import acquisition, select_top
from .results import Stage3Result


def resolve_targets(cfg: Config, lat_model) -> list[float]:
    """latency.targets in ms, ascending and distinct: a relative one (0.9x) times the fastest dense path (LUT)."""
    from .pipeline import fastest_dense_ms

    parsed = [parse_target(text) for text in cfg.latency.targets]
    dense = fastest_dense_ms(cfg, lat_model) if any(unit == "x" for _, unit in parsed) else 1.0
    # a relative target rounds up: 1.0x rounded down (0.2504 -> 0.25 ms) priced the dense path that defines it
    # over its own target, and a tiny front run stopped as infeasible
    return sorted({math.ceil(value * dense * 1000 - 1e-9) / 1000 if unit == "x" else round(value, 3)
                   for value, unit in parsed})


def target_config(cfg: Config, ms: float) -> Config:
    """The config of one target of the front (a single absolute latency.target)."""
    return dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, target=f"{ms:g}ms", targets=[]))


def target_run(run: RunDir, ms: float) -> RunDir:
    """The run folder of one target: <run>/targets/<ms>ms."""
    return RunDir(run.root / "targets" / f"{ms:g}ms")


def best_under(rows: list[dict], target_ms: float) -> dict | None:
    """The highest-PSNR row whose LUT latency meets ``target_ms``."""
    ok = [r for r in rows if float(r["lat_pred_ms"]) <= target_ms]
    return max(ok, key=lambda r: float(r["psnr"])) if ok else None


def front_winners(rows: list[dict], targets: list[float]) -> list[dict | None]:
    """Each target's winner (targets ascending): the highest-PSNR row in its own band, above the next tighter
    target and within its own, else (nothing evaluated in the band) the highest under it.

    A looser budget should buy a larger network: by the search's short evaluations the best under 60 ms was
    once the 49 ms member also best under 50 ms (29.191 against 29.184 dB for a 57 ms one, a difference the
    winner's own fine-tune reorders), which would have shipped one network twice.
    """
    out, below = [], 0.0
    for t in targets:
        out.append(best_under([r for r in rows if float(r["lat_pred_ms"]) > below], t) or best_under(rows, t))
        below = t
    return out


class FrontLoop(SearchLoop):
    """The guided search for several targets at once, over one history (keys are architecture@rate)."""

    def __init__(self, space: Space, fronts: list[Constraints], evaluate_fn, cfg, out_dir, dist_info=None,
                 log=print):
        super().__init__(space, fronts[-1], evaluate_fn, cfg, out_dir, "guided", dist_info, log=log)
        self.fronts = fronts

    @staticmethod
    def row_key(cand: Candidate) -> str:
        """History key: the architecture and the rate it was evaluated at."""
        return f"{cand.key()}@{cand.rate:g}"

    def _seen(self, cons: Constraints, pending: list[Candidate] = ()) -> set[str]:
        """Architectures already evaluated, or ``pending`` (proposed this iteration for another target), at the
        rate ``cons`` would give them: a target does not spend its draws on what the next pick drops as a repeat."""
        out = set()
        for cand in [Candidate.from_json(r["candidate"]) for r in self.history.rows] + list(pending):
            got = cons.assign(cand)
            if got is not None and got[0].rate == cand.rate:
                out.add(cand.key())
        return out

    def _picks(self, it: int) -> list[dict]:
        rng, cfg, rows = _iter_rng(self.cfg.seed, self.mode, it), self.cfg, self.history.rows
        n = len(self.fronts)
        props: list[tuple[int, Proposal]] = []
        keys = set(self.history.keys)
        for ti, cons in enumerate(self.fronts):
            seen = self._seen(cons, [p.cand for _, p in props])
            best = sorted((r for r in rows if float(r["lat_pred_ms"]) <= cons.target_ms),
                          key=lambda r: -float(r["psnr"]))
            parents = [Candidate.from_json(r["candidate"]) for r in best[:cfg.top_h]]
            if it == 0:
                count = math.ceil(cfg.init_candidates / n)
                new = self._new_candidates(it, lambda: initial_pool(self.space, cons, count, rng, seen))
            elif not parents:
                new = self._new_candidates(it, lambda: random_valid(self.space, cons, cfg.pick_b, rng, seen))
            else:
                count = max(cfg.pick_b, math.ceil(cfg.pool_c / n))
                new = self._new_candidates(it, lambda: evolve(self.space, cons, parents, count, rng, seen))
            for p in new:
                if self.row_key(p.cand) not in keys:
                    keys.add(self.row_key(p.cand))
                    props.append((ti, p))
        if it == 0 or not props:
            return [self._front_pick(ti, p) for ti, p in props]
        model = fit_predictor(self.space, rows, cfg, cfg.seed * 100 + it)
        self.pred_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.pred_dir / f"iter_{it:03d}.pt")
        X = np.stack([self.space.features(p.cand) for _, p in props])
        mu, sd = model.predict(X)
        gain = np.full(len(props), -np.inf)
        floor = min(float(r["psnr"]) for r in rows)
        for ti, cons in enumerate(self.fronts):
            idx = [i for i, (t, _) in enumerate(props) if t == ti]
            if not idx:
                continue
            best = best_under(rows, cons.target_ms)
            best_f = float(best["psnr"]) if best else floor
            acq = acquisition(model, X[idx], cfg.acquisition, best_f, cfg.ucb_beta, seed=cfg.seed * 100 + it)
            # log EI is already an improvement; UCB and a Thompson draw are PSNRs: subtract the target's best
            gain[idx] = acq if cfg.acquisition == "ei" else acq - best_f
        return [self._front_pick(props[i][0], props[i][1], float(mu[i]), float(sd[i]), float(gain[i]))
                for i in select_top(gain, cfg.pick_b)]

    def _front_pick(self, ti: int, p: Proposal, *pred: float) -> dict:
        return {**self._pick(p, *pred), "key": self.row_key(p.cand), "for_target_ms": self.fronts[ti].target_ms}


@dataclass
class FrontResult:
    """What a front run produced: per target (ascending) its search row and stage-3 result."""
    targets: list[float]
    rows: list[dict]
    finals: list[Stage3Result]
    report: Path

    @property
    def missed(self) -> list[float]:
        """Targets whose exported model misses them by measurement."""
        return [t for t, f in zip(self.targets, self.finals) if f.meets_target is False]


def run_front(cfg: Config, run: RunDir) -> FrontResult:
    """`srnas run` with latency.targets: supernet -> LUT -> one search for all targets -> stage 3 + export each."""
    from .pipeline import lut_stage, make_constraints, make_evaluator, make_space, one_process_supernet
    from .stage3 import stage3

    t0 = time.time()
    check_run(cfg, run)
    rec = Recorder(cfg, run)   # the config as given: what each stage records it was made from
    cfg, dist_info = one_process_supernet(cfg, run, "a front search (latency.targets)", rec)
    save_config(cfg, run.config)   # what `srnas bench --run` reads, whether or not the supernet was trained now
    rec("lut", lut=latency.default_lut_path(cfg, run=run))
    lat_model = lut_stage(cfg, run, dist_info)
    targets = resolve_targets(cfg, lat_model)
    atomic_write_json({"targets_ms": targets, "asked": list(cfg.latency.targets)}, run.target)
    print(f"front: targets {', '.join(f'{t:g} ms' for t in targets)} (from {cfg.latency.targets})")
    if len(targets) < len(cfg.latency.targets):   # e.g. 0.9x and 45ms on a LUT whose fastest path takes 50 ms
        print(f"note: {len(cfg.latency.targets)} targets resolve to {len(targets)} distinct budgets on this LUT; "
              f"each is searched once", file=sys.stderr)
    space = make_space(cfg)
    fronts = [make_constraints(target_config(cfg, t), space, lat_model) for t in targets]
    fronts[0].check_feasible()    # the tightest: the others are then feasible too
    evaluator = make_evaluator(cfg, space, run.supernet, dist_info)
    rec("search", [run.supernet, lat_model.lut.path])
    hist = FrontLoop(space, fronts, evaluator, cfg.search, run.search_dir, dist_info).run()
    rows, finals = [], []
    for t, row in zip(targets, front_winners(hist.rows, targets)):
        if row is None:
            raise UserError(f"the search evaluated no candidate under {t:g} ms; raise search.init_candidates")
        winner = Candidate.from_json(row["candidate"])
        tcfg, trun = target_config(cfg, t), target_run(run, t)
        trun.root.mkdir(parents=True, exist_ok=True)
        save_config(tcfg, trun.config)
        save_candidate(winner, space, trun.winner, {"val_psnr": float(row["psnr"]),
                                                           "lat_pred_ms": float(row["lat_pred_ms"])})
        print(f"front: {t:g} ms -> {winner.key()} (rate {winner.rate:g}), search PSNR {float(row['psnr']):.3f} dB")
        finals.append(stage3(tcfg, trun, winner, lat_model, supernet=run.supernet, rec=rec.at(trun)))
        rows.append(row)
    report = write_front(run, targets, rows, finals, hist)
    print(f"front report: {report} ({time.time() - t0:.0f} s)")
    return FrontResult(targets, rows, finals, report)


def write_front(run: RunDir, targets: list[float], rows: list[dict], finals: list[Stage3Result],
                hist: History) -> Path:
    """front.json, front.md (one row per target) and front.png (PSNR vs measured latency) in the run folder."""
    entries = []
    for t, row, f in zip(targets, rows, finals):
        entries.append({"target_ms": t, "candidate": Candidate.from_json(row["candidate"]).key(),
                        "rate": float(row["rate"]), "search_psnr": float(row["psnr"]), "lut_ms": f.lut_ms,
                        "measured_ms": f.measured_ms, "meets_target": f.meets_target,
                        "psnr": {k: q["psnr"] for k, q in f.benchmarks.items()},
                        "model": run.store(f.files["model"]) if "model" in f.files else None})
    atomic_write_json({"targets": entries, "evaluations": len(hist.rows)}, run.root / "front.json")
    sets = list(entries[0]["psnr"]) if entries else []
    lines = [f"# Front: {len(targets)} targets from one supernet, one LUT and one search ({len(hist.rows)} "
             f"evaluations)", "",
             "| target ms | winner | rate | LUT ms | measured ms | meets | " + " | ".join(sets) + " |",
             "|---" * (6 + len(sets)) + "|"]
    for e in entries:
        lines.append(f"| {e['target_ms']:g} | {e['candidate']} | {e['rate']:g} | {e['lut_ms']:.2f} | "
                     f"{e['measured_ms']:.2f} | {'yes' if e['meets_target'] is not False else 'NO'} | "
                     + " | ".join(f"{e['psnr'][s]:.2f}" for s in sets) + " |")
    lines += ["", "![front](front.png)", ""]
    _plot(entries, sets[0] if sets else "", run.root / "front.png")
    atomic_write_text(run.root / "front.md", "\n".join(lines))
    return run.root / "front.md"


def _plot(entries: list[dict], bench: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs, ys = [e["measured_ms"] for e in entries], [e["psnr"].get(bench, float("nan")) for e in entries]
    ax.plot(xs, ys, "o-", label="searched front (measured)")
    for e, x, y in zip(entries, xs, ys):
        ax.axvline(e["target_ms"], color="grey", lw=0.6, ls=":")
        ax.annotate(f"{e['target_ms']:g} ms", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(f"{bench} PSNR (dB)")
    ax.set_title("one search, one front (dotted: targets)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)

"""The search loop: init pool, evolve, rank with the predictor + acquisition, evaluate B, append history; resumable.

A run killed at any point resumes without losing or repeating an evaluation: the picks
of an iteration are written (atomically) to a state file before any of them is
evaluated, and every evaluation is appended (fsynced) to history.csv as soon as it ends;
on restart the picks of the saved iteration that are not in the history are evaluated,
then the loop goes on.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch.distributed as tdist

from srnas.supernet.config import SearchConfig
from srnas.supernet.distributed import DistInfo, broadcast_object
from srnas.supernet.errors import UserError
from srnas.supernet.progress import progress_bar

from .candidate import Candidate, Space
from .constraints import Constraints
from .generator import Proposal, evolve, initial_pool, random_valid
from .history import History, atomic_write_json
from .predictor import MLPEnsemble, acquisition, select_top

EvaluateFn = Callable[[Candidate], dict]   # -> {"psnr": dB, optional "lat_meas_ms"}

MODES = {"guided": 1, "random": 2}


def _iter_rng(seed: int, mode: str, it: int) -> np.random.Generator:
    return np.random.default_rng([seed, MODES[mode], it])


def fit_predictor(space: Space, rows: list[dict], cfg: SearchConfig, seed: int) -> MLPEnsemble:
    """An ensemble fit on every evaluated row (Space.features -> PSNR)."""
    X = np.stack([space.features(Candidate.from_json(r["candidate"])) for r in rows])
    y = np.asarray([float(r["psnr"]) for r in rows])
    return MLPEnsemble(X.shape[1], cfg.ensemble, seed=seed).fit(X, y)


class SearchLoop:
    """One search (``mode`` 'guided' = evolution + predictor + acquisition, 'random' = random valid picks)."""

    def __init__(self, space: Space, cons: Constraints, evaluate_fn: EvaluateFn, cfg: SearchConfig,
                 out_dir: str | Path, mode: str = "guided", dist_info: DistInfo | None = None,
                 init_rows: list[dict] | None = None, log: Callable[[str], None] = print):
        self.space, self.cons, self.evaluate_fn, self.cfg = space, cons, evaluate_fn, cfg
        self.out_dir, self.mode = Path(out_dir), mode
        self.dist = dist_info or DistInfo()
        self.init_rows = init_rows  # a random search may share the guided search's initial evaluations
        self.log = log if self.dist.main else (lambda s: None)
        stem = "history" if mode == "guided" else f"history_{mode}"
        self.history = History(self.out_dir / f"{stem}.csv")
        self.state_path = self.out_dir / f"{stem}_state.json"
        self.pred_dir = self.out_dir / "predictor"

    def _new_candidates(self, it: int, propose: Callable[[], list[Proposal]]) -> list[Proposal]:
        """``propose()``, or none once the space holds no valid unseen candidate: the search ends short."""
        try:
            return propose()
        except UserError as e:
            self.log(f"{self.mode} search, iteration {it}: {e}; no new candidates after "
                     f"{len(self.history.rows)} evaluations")
            return []

    # ---- picks of one iteration (rank 0) ----
    def _picks(self, it: int) -> list[dict]:
        rng = _iter_rng(self.cfg.seed, self.mode, it)
        seen = set(self.history.keys)
        if it == 0:
            if self.init_rows is not None:
                return [{"shared": True, **r} for r in self.init_rows]
            props = initial_pool(self.space, self.cons, self.cfg.init_candidates, rng, seen)
            return [self._pick(p) for p in props]
        if self.mode == "random":
            return [self._pick(p) for p in self._new_candidates(
                it, lambda: random_valid(self.space, self.cons, self.cfg.pick_b, rng, seen))]
        rows = [r for r in self.history.rows]
        parents = [Candidate.from_json(r["candidate"]) for r in sorted(rows, key=lambda r: -float(r["psnr"]))]
        pool = self._new_candidates(
            it, lambda: evolve(self.space, self.cons, parents[:self.cfg.top_h], self.cfg.pool_c, rng, seen))
        if not pool:
            return []
        model = fit_predictor(self.space, rows, self.cfg, seed=self.cfg.seed * 100 + it)
        self.pred_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.pred_dir / f"iter_{it:03d}.pt")
        X = np.stack([self.space.features(p.cand) for p in pool])
        mu, sd = model.predict(X)
        best_f = max(float(r["psnr"]) for r in rows)
        acq = acquisition(model, X, self.cfg.acquisition, best_f, self.cfg.ucb_beta, seed=self.cfg.seed * 100 + it)
        top = select_top(acq, self.cfg.pick_b)
        return [self._pick(pool[i], float(mu[i]), float(sd[i]), float(acq[i])) for i in top]

    @staticmethod
    def _pick(p: Proposal, mean: float = float("nan"), std: float = float("nan"), acq: float = float("nan")) -> dict:
        return {"candidate": p.cand.to_json(), "key": p.cand.key(), "pred_mean": mean, "pred_std": std, "acq": acq,
                **p.measures}

    # ---- evaluation of picks, spread over ranks ----
    def _evaluate(self, it: int, todo: list[dict], bar) -> None:
        world, rank = self.dist.world, self.dist.rank
        for start in range(0, len(todo), world):
            chunk = todo[start:start + world]
            mine = None
            if rank < len(chunk):
                t0 = time.time()
                res = self.evaluate_fn(Candidate.from_json(chunk[rank]["candidate"]))
                mine = {**res, "eval_s": round(time.time() - t0, 3), "rank": rank}
            results = [mine]
            if world > 1 and tdist.is_initialized():
                results = [None] * world
                tdist.all_gather_object(results, mine)
            if self.dist.main:
                for pick, res in zip(chunk, results):
                    self._record(it, pick, res)
            bar.update(len(chunk))

    def _record(self, it: int, pick: dict, res: dict) -> None:
        cand = Candidate.from_json(pick["candidate"])
        row = {"search": self.mode, "iteration": it, "order": len(self.history.rows), "key": pick["key"],
               "candidate": pick["candidate"], "encoding": "".join(str(int(v)) for v in self.space.encode(cand)),
               "rate": cand.rate, "lat_meas_ms": float("nan"), "time": round(time.time(), 3),
               **{k: pick.get(k) for k in ("pred_mean", "pred_std", "acq", "lat_pred_ms", "macs", "params")}, **res}
        self.history.append(row)
        self.log(f"[{self.mode} it {it}] {cand.key()} rate {cand.rate:g}: {float(res['psnr']):.3f} dB "
                 f"(LUT {float(pick.get('lat_pred_ms', float('nan'))):.2f} ms)")

    def run(self) -> History:
        """Run (or resume) every iteration; returns the history (complete on rank 0)."""
        total = self.cfg.init_candidates + self.cfg.iterations * self.cfg.pick_b
        bar = progress_bar(total=total, initial=min(total, len(self.history.rows)), desc=f"search ({self.mode})",
                           disable=not self.dist.main)
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else None
        for it in range(0, self.cfg.iterations + 1):
            todo = None
            if self.dist.main:
                if state is not None and state["iteration"] > it:
                    todo = []  # finished before the restart
                else:
                    if state is None or state["iteration"] < it:
                        state = {"iteration": it, "picks": self._picks(it)}
                        atomic_write_json(state, self.state_path)
                    done = self.history.keys
                    todo = [p for p in state["picks"] if p["key"] not in done]
                    # shared initial rows were evaluated by the other search: copy, do not re-run
                    for p in [p for p in todo if p.get("shared")]:
                        self._record(it, p, {"psnr": p["psnr"], "eval_s": p.get("eval_s", 0.0), "rank": p.get("rank", 0),
                                             "lat_meas_ms": p.get("lat_meas_ms", float("nan"))})
                    todo = [p for p in todo if not p.get("shared")]
            todo = broadcast_object(todo)
            self._evaluate(it, todo, bar)
        bar.close()
        return self.history


def run_search(space: Space, cons: Constraints, evaluate_fn: EvaluateFn, cfg: SearchConfig, out_dir: str | Path,
               dist_info: DistInfo | None = None, ablation: bool = True, log: Callable[[str], None] = print) -> dict:
    """Check feasibility, run the guided search and (optionally) the random-search ablation; returns both histories."""
    cons.check_feasible()
    guided = SearchLoop(space, cons, evaluate_fn, cfg, out_dir, "guided", dist_info, log=log).run()
    out = {"guided": guided}
    if ablation:
        init = [r for r in guided.rows if int(r["iteration"]) == 0] if (dist_info or DistInfo()).main else []
        out["random"] = SearchLoop(space, cons, evaluate_fn, cfg, out_dir, "random", dist_info,
                                   init_rows=init, log=log).run()
    return out


def heldout_predictions(space: Space, train_rows: list[dict], test_rows: list[dict],
                        cfg: SearchConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted, true) PSNR of the test rows the predictor fit on ``train_rows`` never saw; None if none."""
    train_keys = {r["key"] for r in train_rows}
    test = [r for r in test_rows if r["key"] not in train_keys]
    if not test or len(train_rows) < 2:
        return None
    model = fit_predictor(space, train_rows, cfg, seed=cfg.seed + 7)
    mu, _ = model.predict(np.stack([space.features(Candidate.from_json(r["candidate"])) for r in test]))
    return mu, np.asarray([float(r["psnr"]) for r in test])


MIN_TAU_POINTS = 6   # below this a rank correlation says nothing: not reported


def tau_text(tau: float, n: int) -> str:
    """A Kendall tau from ``n`` points with its 95 % band under no correlation (tau's null standard error,
    sqrt(2(2n+5) / 9n(n-1))), and whether it tells anything; too few points: said so, no number."""
    if tau != tau and n >= MIN_TAU_POINTS:
        return f"not measured ({n} held-out points)"
    if n < MIN_TAU_POINTS:
        return f"not reported: {n} held-out point(s), a rank correlation needs {MIN_TAU_POINTS} or more"
    band = 1.96 * math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    verdict = "ranks better than chance" if tau > band else \
        "ranks worse than chance" if tau < -band else "no evidence either way"
    return f"{tau:.3f} ± {band:.2f} (95 % band of chance, {n} held-out points: {verdict})"


def kendall_tau_heldout(space: Space, train_rows: list[dict], test_rows: list[dict], cfg: SearchConfig) -> float:
    """Kendall tau between predicted and true PSNR on rows the predictor never saw."""
    from scipy.stats import kendalltau

    held = heldout_predictions(space, train_rows, test_rows, cfg)
    if held is None or len(held[1]) < 3:
        return float("nan")
    return float(kendalltau(*held).statistic)

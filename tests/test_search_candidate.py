"""Candidate encoding, YAML round trip, mutation, constraints (rate choice, budgets, impossible target)."""
from __future__ import annotations

import numpy as np
import pytest

from srnas.search.candidate import Candidate, Space, load_candidate, save_candidate
from srnas.search.constraints import Constraints, InfeasibleTarget
from srnas.search.generator import evolve, random_valid
from srnas.supernet.config import ModelConfig
from srnas.supernet.errors import UserError

SCHEMES = ["none", "unstructured", "filter", "block", "pattern"]


def space() -> Space:
    return Space(ModelConfig(n_cells=3, n_feats=8, expansion_a=2, expansion_b=2), SCHEMES, 2)


def fake_latency(path, plan) -> float:
    """1 ms fixed + per layer 1 ms (wdsr_a layers 2 ms) times the kept fraction."""
    ms = 1.0
    for name, (scheme, rate) in plan.items():
        cell = int(name.split(".")[1])
        ms += (2.0 if path[cell] == "wdsr_a" else 1.0) * (1.0 - rate)
    return ms


def test_encoding_is_fixed_length_one_hot():
    sp = space()
    rng = np.random.default_rng(0)
    n_slots = sum(len(v) for v in sp.slots.values())
    assert sp.dim == 3 * (2 + n_slots * len(sp.schemes))
    for _ in range(20):
        c = sp.random(rng)
        e = sp.encode(c)
        assert e.shape == (sp.dim,) and set(np.unique(e)) <= {0.0, 1.0}
        # one block bit per cell plus one scheme bit per layer of the chosen blocks
        assert e.sum() == 3 + sum(len(s) for s in c.schemes)
    a = Candidate(("wdsr_a",) * 3, (("none", "none"),) * 3)
    b = Candidate(("wdsr_a",) * 3, (("none", "filter"),) + (("none", "none"),) * 2)
    assert not np.array_equal(sp.encode(a), sp.encode(b))


def test_candidate_yaml_json_round_trip(tmp_path):
    sp = space()
    c = sp.random(np.random.default_rng(1)).with_rate(0.5)
    save_candidate(c, sp, tmp_path / "w.yaml", {"val_psnr": 30.0})
    assert load_candidate(tmp_path / "w.yaml") == c
    assert Candidate.from_json(c.to_json()) == c
    plan = c.plan(sp)
    assert list(plan) == sp.layer_names(c.path)
    assert all(r == (0.5 if s != "none" else 0.0) for s, r in plan.values())
    assert "pattern" not in sp.allowed(sp.slots["wdsr_b"][0])  # 1x1 convs have no kernel pattern
    with pytest.raises(UserError):
        sp.check(Candidate(("wdsr_a",) * 2, (("none", "none"),) * 2))


def test_mutation_changes_exactly_one_thing():
    sp = space()
    rng = np.random.default_rng(2)
    for _ in range(50):
        c = sp.random(rng)
        m = sp.mutate(c, rng)
        sp.check(m)
        block_diff = sum(a != b for a, b in zip(c.path, m.path))
        if block_diff:
            assert block_diff == 1
        else:
            flat_c = [s for x in c.schemes for s in x]
            flat_m = [s for x in m.schemes for s in x]
            assert sum(a != b for a, b in zip(flat_c, flat_m)) == 1   # a mutation always changes something


def test_rate_is_smallest_meeting_target_and_budgets():
    sp = space()
    cons = Constraints(sp, [0.0, 0.25, 0.5, 0.75], fake_latency, target_ms=7.0)
    c = Candidate(("wdsr_b",) * 3, (("unstructured",) * 3,) * 3)
    got, m = cons.assign(c)
    # 9 layers * (1 - r) + 1 <= 7  ->  r >= 1/3: the grid's smallest is 0.5
    assert got.rate == 0.5 and m["lat_pred_ms"] == pytest.approx(5.5)
    dense = Candidate(("wdsr_a",) * 3, (("none", "none"),) * 3)
    assert cons.assign(dense) is None  # 13 ms and nothing to prune
    # a MAC budget alone also forces a rate
    macs_dense, _ = sp.cost(c.with_rate(0.0), (16, 16))
    cons2 = Constraints(sp, [0.0, 0.25, 0.5], None, max_macs=macs_dense * 0.9, lr_hw=(16, 16))
    assert cons2.assign(c)[0].rate == 0.25
    cons3 = Constraints(sp, [0.0, 0.25, 0.5], None, max_params=1.0)
    assert cons3.assign(c) is None


def test_generators_give_valid_unseen_candidates():
    sp = space()
    cons = Constraints(sp, [0.0, 0.25, 0.5, 0.75], fake_latency, target_ms=6.0)
    rng = np.random.default_rng(3)
    seen: set[str] = set()
    init = random_valid(sp, cons, 6, rng, seen)
    assert len({p.cand.key() for p in init}) == 6
    assert all(p.measures["lat_pred_ms"] <= 6.0 for p in init)
    pool = evolve(sp, cons, [p.cand for p in init[:2]], 10, rng, set(seen))
    keys = [p.cand.key() for p in pool]
    assert len(pool) == 10 and len(set(keys)) == 10 and not set(keys) & seen
    assert all(p.measures["lat_pred_ms"] <= 6.0 for p in pool)


def test_a_candidate_that_prunes_nothing_is_its_dense_path():
    """Schemes at rate 0 change nothing: such candidates share one key and are proposed once."""
    sp = space()
    cons = Constraints(sp, [0.0, 0.25, 0.5, 0.75], fake_latency, target_ms=100.0)   # every dense path fits
    got, _ = cons.assign(Candidate(("wdsr_b",) * 3, (("filter", "none", "pattern"),) * 3))
    assert got.rate == 0.0 and got.schemes == (("none",) * 3,) * 3
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    init = random_valid(sp, cons, 8, rng, seen)          # 2 blocks x 3 cells: 8 dense paths in all
    assert sorted(p.cand.key() for p in init) == sorted({p.cand.key() for p in init}) and len(init) == 8
    assert all(s == "none" for p in init for c in p.cand.schemes for s in c)
    # nothing new is left (the search ends short), and the message says so rather than blaming the budgets
    with pytest.raises(UserError, match="no unseen network") as e:
        evolve(sp, cons, [p.cand for p in init], 4, rng, seen, max_tries=200)
    assert "relax" not in str(e.value)
    tight = Constraints(sp, [0.0], fake_latency, target_ms=1.0)                 # nothing fits at all
    with pytest.raises(UserError, match="no random candidate met the constraints.*relax"):
        random_valid(sp, tight, 2, rng, set())


def test_impossible_target_fails_early_with_fastest_latency():
    sp = space()
    cons = Constraints(sp, [0.0, 0.5], fake_latency, target_ms=2.0)
    with pytest.raises(InfeasibleTarget) as e:
        cons.check_feasible()
    # fastest: 3 wdsr_b cells, 9 layers at rate 0.5 -> 1 + 9 * 0.5 = 5.5 ms
    msg = str(e.value)
    assert "2.00 ms" in msg and "5.50 ms" in msg and "target" in msg
    assert isinstance(e.value, UserError)
    Constraints(sp, [0.0, 0.5], fake_latency, target_ms=5.5).check_feasible()  # exactly reachable: fine


@pytest.mark.parametrize("schemes", [("filter", "none", "filter"), ("none", "filter", "filter"),
                                     ("unstructured", "filter", "none"), ("block", "block", "block"),
                                     ("filter", "block", "unstructured"), ("filter", "unstructured", "none")])
@pytest.mark.parametrize("rate", [0.5, 0.75])
def test_cost_counts_the_macs_of_the_compacted_network(schemes, rate):
    """Space.cost (cheap, per candidate) agrees with counting the non-zero weights of the real pruned net."""
    import torch
    from srnas.pruning import count_macs, pruned_path_net
    from srnas.supernet.config import load_config
    from srnas.supernet.widths import WidthRule
    cfg = load_config("experiments/configs/quick.yaml")
    sp = Space(cfg.model, SCHEMES, 2, WidthRule.of(cfg.pruning))
    cand = Candidate(("wdsr_b", "wdsr_b"), (schemes, schemes), rate)
    dense = cand.with_rate(0.0)

    def real(c):   # non-zero-weight MACs of the compacted net
        torch.manual_seed(0)
        return count_macs(pruned_path_net(cfg.model, 2, c.path, c.plan(sp), cfg.pruning), (16, 16))
    # differences to the dense candidate: the fixed convs (head, tail, bicubic skip) drop out
    saved, real_saved = sp.cost(dense, (16, 16))[0] - sp.cost(cand, (16, 16))[0], real(dense) - real(cand)
    tol = 0.06 if "block" in schemes else 0.01   # block: the union of row-blocks' columns is random
    assert saved > 0 and abs(saved - real_saved) <= tol * real_saved, (saved, real_saved)


def test_search_ends_short_when_the_space_runs_out(tmp_path):
    """A space with fewer valid candidates than the budget: both searches stop short instead of failing."""
    from srnas.search.loop import run_search
    from srnas.supernet.config import SearchConfig
    sp = Space(ModelConfig(n_cells=1, n_feats=8, expansion_a=2, expansion_b=2), ["none"], 2)
    cons = Constraints(sp, [0.0], None)
    cfg = SearchConfig(iterations=2, init_candidates=2, top_h=1, pool_c=2, pick_b=1, ensemble=2)
    logs = []
    out = run_search(sp, cons, lambda c: {"psnr": 30.0 + (c.path[0] == "wdsr_b")}, cfg, tmp_path,
                     ablation=True, log=logs.append)
    assert len(out["guided"].rows) == 2 and len(out["random"].rows) == 2   # the whole space: wdsr_a, wdsr_b
    assert float(out["guided"].best()["psnr"]) == 31.0
    assert any("no new candidates" in s for s in logs)


def test_fast_space_encodes_one_hot_blocks_and_per_block_scheme_slots():
    """plain, dws, wdsr_b cells: one-hot block per cell, a scheme slot per layer of every block type;
    a depthwise conv never takes block pruning (one column per row: it would remove nothing)."""
    mc = ModelConfig(n_cells=3, blocks=["plain", "dws", "wdsr_b"], n_feats=8, expansion_b=2, head_act="relu",
                     tail="abpn", skip="anchor", clamp=True)
    sp = Space(mc, SCHEMES, 2)
    assert [len(sp.slots[b]) for b in sp.blocks] == [1, 3, 3]
    assert sp.dim == 3 * (3 + 7 * len(SCHEMES))
    dw = sp.slots["dws"][1]
    assert dw.depthwise and "block" not in sp.allowed(dw) and "filter" in sp.allowed(dw)
    rng = np.random.default_rng(5)
    for _ in range(30):
        c = sp.random(rng)
        assert sp.encode(c).sum() == 3 + sum(len(s) for s in c.schemes)
        sp.check(sp.mutate(c, rng))


@pytest.mark.parametrize("path", [("plain", "plain", "plain", "plain"), ("dws", "plain", "wdsr_b", "plain"),
                                  ("plain", "dws", "dws", "plain")])
@pytest.mark.parametrize("scheme", ["filter", "unstructured", "block", "mixed"])
def test_cost_of_the_fast_space_counts_the_compacted_network(path, scheme):
    """Space.cost follows the chain: a filtered plain cell narrows its neighbours, the ABPN head and tail
    included; a depthwise conv costs its channels x k^2."""
    import torch
    from srnas.pruning import count_macs, pruned_path_net
    from srnas.supernet.config import load_config
    from srnas.supernet.widths import WidthRule
    cfg = load_config("experiments/configs/fast_x2.yaml")
    sp = Space(cfg.model, SCHEMES, 2, WidthRule.of(cfg.pruning))
    mix = ["filter", "unstructured", "filter", "none", "block"]
    k = 0
    schemes = []
    for b in path:
        cell = []
        for sl in sp.slots[b]:
            s = mix[k % len(mix)] if scheme == "mixed" else scheme
            cell.append(s if s in sp.allowed(sl) else "none")
            k += 1
        schemes.append(tuple(cell))
    cand = Candidate(path, tuple(schemes), 0.5)

    def real(c):
        torch.manual_seed(0)
        return count_macs(pruned_path_net(cfg.model, 2, c.path, c.plan(sp), cfg.pruning), (16, 16))
    macs, _ = sp.cost(cand, (16, 16))
    dense, _ = sp.cost(cand.with_rate(0.0), (16, 16))
    assert dense == pytest.approx(real(cand.with_rate(0.0)))
    tol = 0.06 if scheme in ("block", "mixed") else 1e-6   # block: the union of row-blocks' columns is random
    assert macs == pytest.approx(real(cand), rel=tol) and macs < dense


def test_features_are_costs_that_rank_unseen_placements():
    """The predictor's input: block shares, pruned-layer shares, rate and relative kept costs; a PSNR that
    follows the kept MACs is ranked on candidates never seen (the one-hot encoding cannot generalise that)."""
    from scipy.stats import kendalltau

    from srnas.search.predictor import MLPEnsemble

    sp = space()
    rng = np.random.default_rng(0)
    dense = Candidate(("wdsr_a",) * 3, (("none", "none"),) * 3)
    f = sp.features(dense)
    assert f.shape == (len(sp.blocks) + len(sp.schemes) + 3,) and f[0] == 1.0
    assert np.all(f[len(sp.blocks):-3] == 0.0) and f[-3] == 0.0   # nothing pruned at rate 0
    pruned = Candidate(("wdsr_a",) * 3, (("filter", "filter"),) * 3, 0.5)
    g = sp.features(pruned)
    assert g[len(sp.blocks) + sp.schemes.index("filter")] == 0.5 and g[-2] < f[-2] and g[-1] < f[-1]
    assert all(0.0 <= v <= 1.0 for c in [dense, pruned] for v in sp.features(c))

    cands = [sp.random(rng).with_rate(float(rng.choice([0.0, 0.25, 0.5, 0.75]))) for _ in range(60)]
    y = np.asarray([30.0 + 2.0 * sp.cost(c, (1, 1))[0] / sp._dense_ref[0] for c in cands])
    taus = {}
    for name, feats in (("features", sp.features), ("encode", lambda c: np.append(sp.encode(c), c.rate))):
        X = np.stack([feats(c) for c in cands])
        m = MLPEnsemble(X.shape[1], members=3, hidden=32, seed=0).fit(X[:30], y[:30])
        taus[name] = kendalltau(m.predict(X[30:])[0], y[30:]).statistic
    assert taus["features"] > 0.8 and taus["features"] > taus["encode"], taus


def test_a_latency_floor_keeps_only_candidates_between_floor_and_target():
    sp = space()
    cons = Constraints(sp, [0.0, 0.25, 0.5, 0.75], fake_latency, target_ms=12.0, min_ms=8.0)
    got = random_valid(sp, cons, 8, np.random.default_rng(0), set())
    assert len(got) == 8 and all(8.0 <= p.measures["lat_pred_ms"] <= 12.0 for p in got)
    # a dense path under the floor is no candidate, and pruning (which only makes it faster) cannot save it
    small = Candidate(("wdsr_b",) * 3, (("none",) * 2,) * 3)
    assert fake_latency(small.path, small.plan(sp)) < 8.0 and cons.assign(small) is None


def test_a_floor_at_or_over_the_target_is_refused_at_load():
    from srnas.supernet.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="search.min_ms"):
        config_from_dict({"latency": {"target": "50ms"}, "search": {"min_ms": 50}})
    assert config_from_dict({"latency": {"target": "50ms"}, "search": {"min_ms": 40}}).search.min_ms == 40

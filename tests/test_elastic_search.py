"""Search over an elastic space: candidates with depth and width, mutations, costs, constraints, member nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srnas.search.candidate import Candidate, Space
from srnas.search.constraints import Constraints
from srnas.search.evaluator import member_net
from srnas.search.generator import anchors, evolve, initial_pool, random_valid
from srnas.supernet.config import ModelConfig
from srnas.supernet.errors import UserError
from srnas.supernet.elastic import build_supernet

CFG = ModelConfig(n_cells=[1, 2, 4], n_feats=[8, 16, 24], blocks=["plain", "wdsr_b"], expansion_b=2, elastic=True)
SPACE = Space(CFG, ["none", "filter", "unstructured"], 2)


def fake_latency(path, plan, width=0):
    """Grows with depth and width, falls with pruning (the rate of every pruned layer)."""
    assert width in (8, 16, 24)
    pruned = sum(r for _, r in plan.values()) / max(len(plan), 1)
    return 1.0 + len(path) * width / 8.0 * (1.0 - 0.5 * pruned)


def test_candidates_round_trip_with_depth_and_width():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        c = SPACE.random(rng).with_rate(0.25)
        SPACE.check(c)
        assert len(c.path) in (1, 2, 4) and c.width in (8, 16, 24)
        assert Candidate.from_json(c.to_json()) == c and Candidate.from_dict(c.to_dict()) == c
        assert c.key().startswith(f"w{c.width}/")
        e = SPACE.encode(c)
        assert e.shape == (SPACE.dim,) and e[:3].sum() == 1 and e[[8, 16, 24].index(c.width)] == 1
        seen.add((len(c.path), c.width))
    assert len(seen) == 9
    # the same blocks at another width are another network
    a = Candidate(("plain",), (("none",),), 0.0, 8)
    assert a.key() != Candidate(("plain",), (("none",),), 0.0, 16).key()
    assert not np.array_equal(SPACE.encode(a), SPACE.encode(Candidate(("plain",), (("none",),), 0.0, 16)))
    # a fixed-size candidate keeps its old form: no width in its key or dict
    fixed = Candidate(("plain",), (("none",),))
    assert "width" not in fixed.to_dict() and fixed.key() == "plain:none"


def test_candidates_outside_the_space_are_refused():
    with pytest.raises(UserError, match="cells"):
        SPACE.check(Candidate(("plain",) * 3, (("none",),) * 3, 0.0, 8))
    with pytest.raises(UserError, match="width"):
        SPACE.check(Candidate(("plain",), (("none",),), 0.0, 12))
    fixed = Space(ModelConfig(n_cells=1, n_feats=8, blocks=["plain"]), ["none"], 2)
    with pytest.raises(UserError, match="one width"):
        fixed.check(Candidate(("plain",), (("none",),), 0.0, 8))


def test_mutations_change_one_thing_and_stay_in_the_space():
    rng = np.random.default_rng(1)
    kinds = set()
    for _ in range(400):
        c = SPACE.random(rng)
        m = SPACE.mutate(c, rng)
        SPACE.check(m)
        assert m.key() != c.key() or m == c   # an edit with no alternative may leave it as it was
        if m.width != c.width:
            kinds.add("width")
            assert abs(SPACE.widths.index(m.width) - SPACE.widths.index(c.width)) == 1 and m.path == c.path
        elif len(m.path) != len(c.path):
            kinds.add("depth")
            assert abs(SPACE.depths.index(len(m.path)) - SPACE.depths.index(len(c.path))) == 1
            common = min(len(m.path), len(c.path))   # the first cells are kept: add or drop the last ones
            assert m.path[:common] == c.path[:common] and m.schemes[:common] == c.schemes[:common]
        elif m.path != c.path:
            kinds.add("block")
            assert sum(a != b for a, b in zip(m.path, c.path)) == 1
        elif m.schemes != c.schemes:
            kinds.add("scheme")
    assert kinds == {"width", "depth", "block", "scheme"}


def test_costs_and_features_grow_with_depth_and_width():
    def dense(d, w):
        return Candidate(("wdsr_b",) * d, (("none",) * 3,) * d, 0.0, w)

    macs = np.array([[SPACE.cost(dense(d, w), (10, 10))[0] for w in (8, 16, 24)] for d in (1, 2, 4)])
    assert (np.diff(macs, axis=0) > 0).all() and (np.diff(macs, axis=1) > 0).all()
    big, small = SPACE.features(dense(4, 24)), SPACE.features(dense(1, 8))
    assert big[-2:].tolist() == [1.0, 1.0] and small[-2:].tolist() == pytest.approx([0.25, 8 / 24])
    assert big[-3] == pytest.approx(1.0)          # the largest dense network is the params reference
    assert len(big) == len(SPACE.blocks) + len(SPACE.schemes) + 3 + 2


def test_constraints_find_the_fastest_member_and_assign_rates():
    cons = Constraints(SPACE, [0.0, 0.25, 0.5], fake_latency, target_ms=4.0)
    ms, fastest = cons.fastest()
    assert len(fastest.path) == 1 and fastest.width == 8 and ms == pytest.approx(1.75)
    cons.check_feasible()
    with pytest.raises(Exception, match="width 8"):
        Constraints(SPACE, [0.0, 0.5], fake_latency, target_ms=1.5).check_feasible()
    rng = np.random.default_rng(0)
    got = random_valid(SPACE, cons, 12, rng, set())
    assert got and all(p.measures["lat_pred_ms"] <= 4.0 for p in got)
    assert all(p.measures["lat_pred_ms"] == fake_latency(p.cand.path, p.cand.plan(SPACE), p.cand.width) for p in got)
    pool = evolve(SPACE, cons, [p.cand for p in got], 8, rng, {p.cand.key() for p in got})
    assert len(pool) == 8 and all(SPACE.check(p.cand) for p in pool)
    # a generous budget admits the deepest and widest members as they are
    roomy = Constraints(SPACE, [0.0, 0.25], fake_latency, target_ms=100.0)
    big = roomy.assign(Candidate(("wdsr_b",) * 4, (("filter",) * 3,) * 4, 0.0, 24))
    assert big is not None and big[0].rate == 0.0 and big[0].width == 24


def test_the_initial_pool_starts_with_the_deepest_dense_chains_that_fit():
    cons = Constraints(SPACE, [0.0, 0.5], fake_latency, target_ms=4.0)
    seen: set[str] = set()
    pool = initial_pool(SPACE, cons, 12, np.random.default_rng(0), seen)
    first = pool[:6]
    # 1 + depth * width / 8 <= 4: two cells at width 8, one at 16 and at 24; both blocks; dense, slowest first
    assert {(p.cand.path, p.cand.width) for p in first} == {((b,) * d, w) for b in ("plain", "wdsr_b")
                                                             for d, w in ((2, 8), (1, 16), (1, 24))}
    assert all(p.cand.rate == 0.0 and {s for c in p.cand.schemes for s in c} == {"none"} for p in first)
    ms = [p.measures["lat_pred_ms"] for p in first]
    assert ms == sorted(ms, reverse=True) and ms[0] == 4.0
    assert len(pool) == 12 and len({p.cand.key() for p in pool}) == 12 and all(SPACE.check(p.cand) for p in pool)
    assert anchors(SPACE, cons, 6, seen) == []              # seen ones are not proposed again
    assert len(initial_pool(SPACE, cons, 4, np.random.default_rng(0), set())) == 4   # at most half are anchors
    assert len(anchors(SPACE, cons, 2, set())) == 2
    # a budget only pruned members meet: no anchor, every draw random
    tight = Constraints(SPACE, [0.0, 0.5], fake_latency, target_ms=1.8)
    assert anchors(SPACE, tight, 6, set()) == [] and initial_pool(SPACE, tight, 3, np.random.default_rng(0), set())


def test_member_nets_are_the_candidates_size():
    net = build_supernet(CFG, 2)
    for cand in (Candidate(("plain",), (("none",),), 0.0, 8),
                 Candidate(("wdsr_b", "plain", "plain", "wdsr_b"), (("none",) * 3, ("none",), ("none",),
                                                                    ("none",) * 3), 0.0, 24)):
        sub = member_net(net, cand)
        assert len(sub.body) == len(cand.path) and sub.head.out_channels == cand.width
        assert [n for n, _ in sub.prunable()] == SPACE.layer_names(cand.path)
        assert sub(torch.rand(1, 3, 6, 6)).shape == (1, 3, 12, 12)
        assert SPACE.model_of(cand).n_feats == cand.width and not SPACE.model_of(cand).elastic

"""experiments/ship_winners.py's rules: the front's budgets, which winners ship, and which member a budget gets."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("ship_winners", ROOT / "experiments" / "ship_winners.py")
ship = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ship)


def test_targets_start_at_the_floor_and_merge_close_budgets():
    # abpn_int8 at 58.71 ms (a Zen 3): 1x and the fixed 50 ms are 1.17x apart, both searched, and 1.2x beside 1x
    assert ship.front_targets(58.7103, 14.68) == [14.68, 50.0, 58.71, 70.45, 88.07, 117.42, 176.13]
    # at 47 ms, 1x lies within 10 % of 50 ms: the fixed budget keeps its exact value; 1.2x (56.4) is 1.13x above it
    assert ship.front_targets(47.0, 11.75) == [11.75, 50.0, 56.4, 70.5, 94.0, 141.0]


def test_a_winner_no_better_than_a_tighter_one_is_left_out():
    rows = [{"target_ms": t, "val_psnr": v} for t, v in [(15, 32.2), (50, 34.14), (59, 34.0), (88, 34.13),
                                                          (117, 34.22), (176, 34.31)]]
    kept, out = ship.undominated(rows)
    assert [r["target_ms"] for r in kept] == [15, 50, 117, 176]
    assert [r["target_ms"] for r in out] == [59, 88]
    # a tie is no gain: the looser member would cost more for nothing
    kept, out = ship.undominated([{"target_ms": 1, "val_psnr": 30.0}, {"target_ms": 2, "val_psnr": 30.0}])
    assert len(kept) == 1 and len(out) == 1


def test_a_budget_gets_the_loosest_member_that_meets_it():
    members = {"srnas_xs": {"target_ms": 14.68}, "srnas_s": {"target_ms": 50.0}, "srnas_m": {"target_ms": 117.42}}
    assert ship.for_budget(members, 58.71) == "srnas_s"      # 117 ms would miss it, though nearer by ratio
    assert ship.for_budget(members, 50.0) == "srnas_s"
    assert ship.for_budget(members, 117.415) == "srnas_m"    # a 1x target rounded up by 0.005 ms still meets it
    assert ship.for_budget(members, 5.0) == "srnas_xs"       # nothing meets it: the tightest


def test_a_machine_gets_the_front_of_its_cpu_class(tmp_path, monkeypatch):
    import json

    from srnas.experiments import zoo

    fp = importlib.import_module("srnas.latency.fingerprint")   # the package's `fingerprint` function hides the module

    assert zoo.cpu_class("avx2 avx512f avx512_vnni") == zoo.cpu_class("avx2 avx_vnni") == "vnni"
    assert zoo.cpu_class("avx2 amx_int8 amx_tile avx512_vnni") == "amx" and zoo.cpu_class("avx2") == "avx2"
    for cls, target, isa in (("avx2", 50.0, "avx2"), ("vnni", 18.79, "avx2 avx512_vnni")):
        (tmp_path / "fronts" / cls).mkdir(parents=True)
        (tmp_path / "fronts" / cls / zoo.SEARCHED_FILE).write_text(json.dumps(
            {"cpu": "AMD EPYC", "isa": isa, "members": {"srnas_s": {"target_ms": target}},
             "aliases": {"srnas_abpn": "srnas_s"}}))
    monkeypatch.setattr(fp, "cpu_isa", lambda: "avx2 avx512f avx512_vnni")
    assert zoo.weights_path("srnas_abpn", 2, tmp_path) == tmp_path / "fronts" / "vnni" / "srnas_s_x2.pt"
    assert "at 18.79 ms" in zoo.searched(tmp_path)["srnas_s"] and "(vnni)" in zoo.searched(tmp_path)["srnas_s"]
    assert zoo.weights_path("abpn", 2, tmp_path) == tmp_path / "abpn_x2.pt"    # the zoo's own weights stay put
    monkeypatch.setattr(fp, "cpu_isa", lambda: "avx2")
    assert zoo.weights_path("srnas_abpn", 2, tmp_path) == tmp_path / "fronts" / "avx2" / "srnas_s_x2.pt"
    # an AMX machine with no AMX front gets the VNNI one: its INT8 convs are nearest
    assert zoo.front_dir(tmp_path, "amx_int8 avx512_vnni") == tmp_path / "fronts" / "vnni"
    # a folder without fronts/ (ship_winners.py --weights-dir) is its own front
    assert zoo.front_dir(tmp_path / "fronts" / "avx2", "avx512_vnni") == tmp_path / "fronts" / "avx2"
    # the shipped folder holds a front for each class srnas was searched on, each with its files
    for cls in ("avx2", "vnni"):
        shipped = zoo.WEIGHTS_DIR / "fronts" / cls
        ship = json.loads((shipped / zoo.SEARCHED_FILE).read_text())
        assert zoo.cpu_class(ship["isa"]) == cls
        assert all((shipped / f"{n}_x2.pt").is_file() for n in ship["members"])

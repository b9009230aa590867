"""experiments/front_check.py reads a bench.csv and finds what issue 32's must-show asks, or names what fails."""
from __future__ import annotations

import pandas as pd

from srnas.experiments import front_check

SETS = ("Set5", "Set14", "B100")


def bench_csv(path, models: dict[str, tuple[float, tuple[float, float, float]]]):
    """A bench.csv as `srnas bench` writes it: one row per model and set (only the columns read)."""
    rows = [{"model": m, "dataset": s, "psnr": p, "latency_ms": ms}
            for m, (ms, psnrs) in models.items() for s, p in zip(SETS, psnrs)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


GOOD = {"srnas_xs": (5.0, (36.0, 32.0, 31.0)), "srnas_s": (10.0, (36.5, 32.4, 31.3)),
        "srnas_m": (20.0, (37.0, 32.8, 31.6)), "srnas_l": (40.0, (37.3, 33.0, 31.8)),
        "espcn": (6.0, (35.5, 31.5, 30.6)), "esr_max": (5.5, (34.0, 30.5, 30.0)),
        "abpn_int8": (20.5, (36.9, 32.7, 31.55)), "wdsr_b": (41.0, (37.25, 32.9, 31.7)),
        "bicubic": (1.0, (33.7, 30.2, 29.6))}


def test_a_front_that_holds_passes_and_reports_each_models_smallest_lead(tmp_path, capsys):
    res = front_check.check(*front_check.load(bench_csv(tmp_path / "bench.csv", GOOD)))
    assert res["fails"] == [] and res["span"] == 8.0
    by = {r["model"]: r for r in res["margins"]}
    assert "bicubic" not in by
    # wdsr_b: srnas_l (40 ms, within 5 % of its 41 ms) leads by 0.05 / 0.1 / 0.1: smallest 0.05, thin under 0.1
    assert by["wdsr_b"]["member"] == "srnas_l" and by["wdsr_b"]["worst"] == 0.05 and "wdsr_b" in res["thin"]
    assert res["at_abpn_int8"]["member"] == "srnas_m" and res["at_abpn_int8"]["lead"]["B100"] == 0.05
    assert front_check.main([str(tmp_path)]) == 0
    assert "all checks hold" in capsys.readouterr().out


def test_a_model_off_the_front_a_narrow_span_and_a_dip_each_fail(tmp_path, capsys):
    bad = {**GOOD, "srnas_l": (12.0, (36.4, 32.3, 31.2)),        # slower than srnas_s, lower mean PSNR
           "wdsr_b": (41.0, (37.5, 33.2, 32.0))}                  # better than every member within 5 % of it
    res = front_check.check(*front_check.load(bench_csv(tmp_path / "bench.csv", bad)))
    assert "members span 4.0x, not at least 6x" in res["fails"]
    assert "mean PSNR does not rise strictly with latency" in res["fails"]
    assert any(f.startswith("wdsr_b is off the front") for f in res["fails"])
    assert front_check.main([str(tmp_path / "bench.csv")]) == 1
    assert "FAILS:" in capsys.readouterr().out


def test_the_smallest_member_must_beat_every_small_baseline(tmp_path):
    res = front_check.check(*front_check.load(bench_csv(tmp_path / "b.csv", {**GOOD,
                                                                             "esr_max": (4.0, (34.0, 30.5, 30.0))})))
    assert "the smallest member srnas_xs is not faster than and better than esr_max" in res["fails"]
    assert "esr_max is off the front (no member within 5% of its time)" in res["fails"]


def test_a_missing_csv_is_one_line_exit_2(tmp_path, capsys):
    assert front_check.main([str(tmp_path / "nope.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err

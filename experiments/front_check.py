"""Does a bench run show the front the way issue 32 asks? Margins, span, order and the ABPN-INT8 case, from bench.csv.

    .venv/bin/python experiments/front_check.py runs/bench_x3/bench.csv [--slack 0.05] [--aim 0.1]

Reads one `srnas bench` table (every model timed in the same run, on the same sets) and prints:
  - the members (`srnas_*` rows) by latency, their mean PSNR, and whether it rises strictly; their span;
  - a table of margins: for each zoo model (bicubic and run files aside), the member at most ``slack`` slower that
    leads it by the most on its worst set, and that smallest lead per set (negative: off the front);
  - the member at ABPN-INT8's latency (the slowest within ``slack`` of it) against abpn_int8, per set;
  - whether the smallest member is faster than and beats ESPCN, FSRCNN and every edge-SR model.
The last line is JSON. Exit 1 where a check fails (each named), 0 where all hold; ``aim``: leads under it are
flagged "thin" (a 0.03 dB win on three sets can be a loss on a fourth) but do not fail.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

MEMBER = "srnas_"
SMALL_BASELINES = ("espcn", "fsrcnn", "esr_")       # what the smallest member must be faster than and beat


def load(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """(one row per model: latency_ms and a PSNR column per dataset, the datasets) from bench.csv."""
    df = pd.read_csv(path)
    sets = list(dict.fromkeys(df["dataset"]))
    wide = df.pivot_table(index="model", columns="dataset", values="psnr")[sets]
    wide["latency_ms"] = df.groupby("model")["latency_ms"].first()
    return wide, sets


def lead(a: pd.Series, b: pd.Series, sets: list[str]) -> dict[str, float]:
    """a's PSNR minus b's on each set, in dB."""
    return {s: round(float(a[s] - b[s]), 3) for s in sets}


def margins(wide: pd.DataFrame, sets: list[str], slack: float) -> list[dict]:
    """For each zoo model: the member within ``slack`` of its latency with the largest worst-set lead over it."""
    members = wide[wide.index.str.startswith(MEMBER)]
    zoo = wide[~wide.index.str.startswith(MEMBER) & (wide.index != "bicubic") & ~wide.index.str.contains("/")]
    out = []
    for name, row in zoo.sort_values("latency_ms").iterrows():
        within = members[members["latency_ms"] <= row["latency_ms"] * (1 + slack)]
        best = max(((m, lead(r, row, sets)) for m, r in within.iterrows()), key=lambda t: min(t[1].values()),
                   default=(None, {}))
        out.append({"model": name, "ms": round(float(row["latency_ms"]), 2), "member": best[0],
                    "member_ms": None if best[0] is None else round(float(members.loc[best[0], "latency_ms"]), 2),
                    "lead": best[1], "worst": min(best[1].values()) if best[1] else None})
    return out


def check(wide: pd.DataFrame, sets: list[str], slack: float = 0.05, aim: float = 0.1) -> dict:
    """Every figure and verdict of the report (see the module's docstring)."""
    members = wide[wide.index.str.startswith(MEMBER)].sort_values("latency_ms")
    mean = members[sets].mean(axis=1)
    rows = margins(wide, sets, slack)
    fails = []
    span = float(members["latency_ms"].max() / members["latency_ms"].min()) if len(members) else 0.0
    if len(members) < 4:
        fails.append(f"{len(members)} members, not at least 4")
    if span < 6:
        fails.append(f"members span {span:.1f}x, not at least 6x")
    if not (mean.diff().dropna() > 0).all():
        fails.append("mean PSNR does not rise strictly with latency")
    fails += [f"{r['model']} is off the front (no member within {slack:.0%} of its time)" for r in rows
              if r["worst"] is None]
    fails += [f"{r['model']} is off the front (best lead {r['worst']:+.2f} dB)" for r in rows
              if r["worst"] is not None and r["worst"] < 0]
    out = {"sets": sets, "span": round(span, 2), "margins": rows,
           "members": {m: {"ms": round(float(r["latency_ms"]), 2), "mean_psnr": round(float(mean[m]), 3)}
                       for m, r in members.iterrows()},
           "thin": [r["model"] for r in rows if r["worst"] is not None and 0 <= r["worst"] < aim]}
    if "abpn_int8" in wide.index and len(members):
        a = wide.loc["abpn_int8"]
        within = members[members["latency_ms"] <= a["latency_ms"] * (1 + slack)]
        at = within.index[-1] if len(within) else members.index[0]
        out["at_abpn_int8"] = {"member": at, "ms": round(float(members.loc[at, "latency_ms"]), 2),
                               "abpn_int8_ms": round(float(a["latency_ms"]), 2), "lead": lead(members.loc[at], a, sets)}
        if min(out["at_abpn_int8"]["lead"].values()) <= 0:
            fails.append(f"{at} does not beat abpn_int8 on every set")
    if len(members):
        small = members.iloc[0]
        for name, row in wide.iterrows():
            if name.startswith(SMALL_BASELINES) and not (small["latency_ms"] < row["latency_ms"]
                                                         and all(small[s] > row[s] for s in sets)):
                fails.append(f"the smallest member {members.index[0]} is not faster than and better than {name}")
    out["fails"] = fails
    return out


def report(res: dict) -> str:
    """The markdown tables of a check."""
    sets = res["sets"]
    lines = ["| member | ms | mean PSNR |", "|---|---|---|"]
    lines += [f"| {m} | {v['ms']:.1f} | {v['mean_psnr']:.3f} |" for m, v in res["members"].items()]
    lines += ["", f"span {res['span']:.1f}x", "", "| zoo model | ms | dominated by | its ms | " +
              " | ".join(f"lead {s}" for s in sets) + " | smallest lead |", "|---" * (5 + len(sets)) + "|"]
    for r in res["margins"]:
        leads = [f"{r['lead'][s]:+.2f}" if r["lead"] else "-" for s in sets]
        worst = "-" if r["worst"] is None else f"{r['worst']:+.2f}" + (" thin" if r["model"] in res["thin"] else "")
        lines.append(f"| {r['model']} | {r['ms']:.1f} | {r['member'] or 'none within'} | "
                     f"{'-' if r['member_ms'] is None else format(r['member_ms'], '.1f')} | {' | '.join(leads)} | "
                     f"{worst} |")
    if "at_abpn_int8" in res:
        a = res["at_abpn_int8"]
        lines += ["", f"at abpn_int8's {a['abpn_int8_ms']:.1f} ms: {a['member']} ({a['ms']:.1f} ms) leads it by "
                  + ", ".join(f"{v:+.2f} dB on {s}" for s, v in a["lead"].items())]
    lines += ["", "all checks hold" if not res["fails"] else "FAILS:\n- " + "\n- ".join(res["fails"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report of one bench.csv; exit 1 where a check fails."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, help="a bench.csv (or the folder holding it)")
    ap.add_argument("--slack", type=float, default=0.05, help="how much slower a dominating member may be (0.05: 5 %%)")
    ap.add_argument("--aim", type=float, default=0.1, help="leads under this many dB are flagged thin")
    args = ap.parse_args(argv)
    path = args.csv / "bench.csv" if args.csv.is_dir() else args.csv
    if not path.is_file():
        print(f"front_check: {path} does not exist; give the bench.csv a `srnas bench` run wrote", file=sys.stderr)
        return 2
    res = check(*load(path), slack=args.slack, aim=args.aim)
    print(report(res))
    print(json.dumps(res))
    return 1 if res["fails"] else 0


if __name__ == "__main__":
    sys.exit(main())

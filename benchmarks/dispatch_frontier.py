"""Mean wait against the Gini of jobs over the fairness knobs, many seeds: the frontier.

Runs ``benchmarks/dispatch_load.py``'s model (the matcher's own ``decide_batch`` /
``decide_greedy``, no server) at one booking rate for each seed: greedy once (it decides
by ETA alone, whatever the scoring knobs), then batch under every setting, on the same
bookings. Per setting: the means over seeds of batch's mean wait, the paired cut
(greedy's mean wait less batch's, over greedy's; positive: batch waits less) with its
standard error, the Gini of jobs, the workers left without a job, fulfilment, and the
decomposition of the wait (delay to the assigning tick, the nearest free worker's ETA,
the detour of the choice); whether it is on the Pareto frontier of (mean wait, Gini),
and whether it meets issue 20 §2 at this level on the means (cut ≥ 0, Gini ≤ 0.2,
fulfilment ≥ 98 %) and on how many seeds.

Usage::

    python -m benchmarks.dispatch_frontier --minutes 35 --warmup-min 10 --service-min 7.5 \\
        --rate 1.9 --grid rotation_slack_s=0,60,120,240 --grid fairness_floor=0,0.15
    python -m benchmarks.dispatch_frontier --rate 2.0 --minutes 90 --warmup-min 15 \\
        --setting rotation_slack_s=60,rotation_cap=1 --setting fairness_floor=0.05

``--grid key=v1,v2`` (repeatable) runs the product of the lists; ``--setting k=v,k=v``
(repeatable) adds one setting. With neither, today's defaults only. JSON on stdout,
progress on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dispatch_load import _value, run_level
from matching.params import MatchParams

GINI_TARGET = 0.2
FULFILMENT_TARGET = 0.98


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """Which of the (wait, Gini) points no other point beats on both (lower is better)
    while strictly beating it on one: the frontier."""
    out = []
    for i, (w, g) in enumerate(points):
        dominated = any(
            w2 <= w and g2 <= g and (w2 < w or g2 < g)
            for j, (w2, g2) in enumerate(points)
            if j != i
        )
        out.append(not dominated)
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (0 for fewer than two values)."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def _settings(grid: list[str], extra: list[str]) -> list[dict[str, Any]]:
    keys, lists = [], []
    for item in grid:
        key, _, raw = item.partition("=")
        keys.append(key)
        lists.append([_value(v) for v in raw.split(",")])
    out = (
        [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)] if keys else []
    )
    for item in extra:
        out.append(
            {k: _value(v) for k, _, v in (kv.partition("=") for kv in item.split(",") if kv)}
        )
    return out or [{}]


# The per-run figures averaged over the seeds, for each setting and for greedy.
MEANS = (
    "wait_mean_s",
    "gini_jobs",
    "workers_without_job",
    "utilization",
    "delay_mean_s",
    "nearest_mean_s",
    "detour_mean_s",
)


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The simulated day's options, shared with ``dispatch_light``: bookings a minute,
    workers, length, warm-up, minutes of service, seeds."""
    ap.add_argument("--rate", type=float, default=1.9)
    ap.add_argument("--workers", type=int, default=60)
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--warmup-min", type=float, default=10.0)
    ap.add_argument("--service-min", type=float, default=7.5)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 21)))


def main() -> None:
    """Run greedy and batch under every setting at every seed; print the frontier."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap)
    ap.add_argument("--chain-s", type=float, default=0.0)
    ap.add_argument("--set", action="append", default=[], help="a MatchParams field=value for all")
    ap.add_argument("--grid", action="append", default=[], help="field=v1,v2,... (product)")
    ap.add_argument("--setting", action="append", default=[], help="field=v,field=v (one more)")
    args = ap.parse_args()
    base = MatchParams()
    for item in args.set:
        key, _, raw = item.partition("=")
        base = dataclasses.replace(base, **{key: _value(raw)})
    settings = _settings(args.grid, args.setting)
    kw = {
        "workers": args.workers,
        "minutes": args.minutes,
        "warmup_min": args.warmup_min,
        "service_min": args.service_min,
    }
    started = time.perf_counter()
    greedy = {s: run_level(args.rate, "greedy", base, seed=s, **kw) for s in args.seeds}
    print(f"greedy: {len(args.seeds)} seeds", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for setting in settings:
        params = dataclasses.replace(base, **setting)
        runs = {
            s: run_level(args.rate, "batch", params, seed=s, chain_s=args.chain_s, **kw)
            for s in args.seeds
        }
        cuts = [1 - runs[s]["wait_mean_s"] / greedy[s]["wait_mean_s"] for s in args.seeds]
        cut, cut_se = mean_se(cuts)
        row: dict[str, Any] = {"setting": setting}
        for key in MEANS:
            row[key] = round(mean_se([float(runs[s][key]) for s in args.seeds])[0], 4)
        row["cut"] = round(cut, 4)
        row["cut_se"] = round(cut_se, 4)
        row["fulfilment_min"] = min(runs[s]["fulfilment"] for s in args.seeds)
        row["seeds_meeting"] = sum(
            1
            for s, c in zip(args.seeds, cuts, strict=True)
            if c >= 0 and runs[s]["gini_jobs"] <= GINI_TARGET
        )
        row["meets_on_means"] = (
            cut >= 0
            and row["gini_jobs"] <= GINI_TARGET
            and row["fulfilment_min"] >= FULFILMENT_TARGET
        )
        rows.append(row)
        print(orjson.dumps(row).decode(), file=sys.stderr)
    front = pareto([(r["wait_mean_s"], r["gini_jobs"]) for r in rows])
    for r, on in zip(rows, front, strict=True):
        r["pareto"] = on
    g = {key: round(mean_se([float(greedy[s][key]) for s in args.seeds])[0], 4) for key in MEANS}
    out = {
        "benchmark": "dispatch_frontier",
        "rate": args.rate,
        "workers": args.workers,
        "minutes": args.minutes,
        "warmup_min": args.warmup_min,
        "service_min": args.service_min,
        "chain_s": args.chain_s,
        "set": args.set,
        "seeds": args.seeds,
        "jobs_per_worker": round(
            sum(greedy[s]["jobs_per_worker"] for s in args.seeds) / len(args.seeds), 2
        ),
        "greedy": g,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

"""Who is left without a job at light load, and a clairvoyant bound on the wait (the model).

Two analyses of ``benchmarks/dispatch_load.py``'s model at one booking rate, per seed:

- **left without a job**: for greedy and batch (today's defaults, then each ``--setting``),
  the workers with no job in the run, split into those starting more than ``--far-s`` of
  ETA from every hot spot's centre and the rest;
- **clairvoyant bound**: the least mean wait (of the measured orders) any dispatcher could
  give if it knew every booking in advance and no worker were ever busy, with at least
  ``N`` distinct workers given a job (at most one per booking). A worker's first job is driven from where they
  started (idle workers do not move in the model); any other job from the nearest of the
  workers' starts and the earlier bookings. Solved as an assignment (bookings × workers,
  plus ``bookings − N`` "repeat" columns). It bounds every policy from below; being far
  below greedy it cannot show that no online policy beats the knobs' frontier.

Usage::

    python -m benchmarks.dispatch_light --rate 1.9 --seeds $(seq 1 20) \\
        --setting rotation_slack_s=240 --used 0 50 56

JSON on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from scipy.optimize import linear_sum_assignment

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dispatch_frontier import add_run_args
from benchmarks.dispatch_load import BOX_KM, HOT, LAT0, LNG0, _value, eta_s, run_level
from matching.params import MatchParams

Point = tuple[float, float]
HOT_CENTRES: list[Point] = [
    (LAT0 + fy * BOX_KM[0] / 111.2, LNG0 + fx * BOX_KM[1] / (111.2 * math.cos(0.393)))
    for fy, fx in HOT
]


def clairvoyant_wait(
    starts: list[Point], bookings: list[tuple[float, Point]], measured_from_s: float, used: int
) -> float | None:
    """The least total wait of the bookings at or after ``measured_from_s`` over their
    number, with at least ``used`` workers each driving one first job from their start and
    every other booking served from the nearest start or earlier booking; no one busy.
    ``used`` is capped at the bookings and the workers (fewer bookings than ``used``: each
    by a different worker). None if no booking is measured."""
    n, w = len(bookings), len(starts)
    used = min(used, n, w)
    weight = [1.0 if t >= measured_from_s else 0.0 for t, _ in bookings]
    repeats = n - used
    cost = np.full((n, w + repeats), 1e12)
    for i, (_, at) in enumerate(bookings):
        for j, s in enumerate(starts):
            cost[i, j] = weight[i] * eta_s(s, at)
        if repeats:
            nearest = min(eta_s(p, at) for p in [*starts, *(b for _, b in bookings[:i])])
            cost[i, w:] = weight[i] * nearest
    rows, cols = linear_sum_assignment(cost)
    measured = sum(weight)
    return float(cost[rows, cols].sum()) / measured if measured else None


def main() -> None:
    """Both analyses over the seeds; means printed as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap)
    ap.add_argument("--far-s", type=float, default=180.0)
    ap.add_argument("--setting", action="append", default=[], help="field=v,field=v")
    ap.add_argument("--used", type=int, nargs="+", default=[0, 50, 56])
    args = ap.parse_args()
    kw: dict[str, Any] = {
        "workers": args.workers,
        "minutes": args.minutes,
        "warmup_min": args.warmup_min,
        "service_min": args.service_min,
    }
    runs: list[tuple[str, str, MatchParams]] = [
        ("greedy", "greedy", MatchParams()),
        ("batch", "batch", MatchParams()),
    ]
    for item in args.setting:
        changes = {k: _value(v) for k, _, v in (kv.partition("=") for kv in item.split(",") if kv)}
        runs.append((f"batch {item}", "batch", dataclasses.replace(MatchParams(), **changes)))
    n = len(args.seeds)
    left: dict[str, dict[str, float]] = {}
    bounds: dict[int, list[float]] = {u: [] for u in args.used}
    greedy_wait = 0.0
    for label, policy, params in runs:
        without = far = 0
        for seed in args.seeds:
            detail: dict[str, Any] = {}
            r = run_level(args.rate, policy, params, seed=seed, detail=detail, **kw)
            for start, jobs in detail["workers"]:
                if jobs == 0:
                    without += 1
                    far += min(eta_s(start, h) for h in HOT_CENTRES) > args.far_s
            if label == "greedy":
                greedy_wait += r["wait_mean_s"] / n
                starts = [s for s, _ in detail["workers"]]
                for u in args.used:
                    b = clairvoyant_wait(starts, detail["bookings"], args.warmup_min * 60, u)
                    if b is not None:
                        bounds[u].append(b)
        left[label] = {
            "without_job": round(without / n, 2),
            "far_from_hot_spots": round(far / n, 2),
            "near_a_hot_spot": round((without - far) / n, 2),
        }
    out = {
        "benchmark": "dispatch_light",
        "rate": args.rate,
        "minutes": args.minutes,
        "seeds": args.seeds,
        "far_s": args.far_s,
        "left_without_job": left,
        "greedy_wait_mean_s": round(greedy_wait, 1),
        "clairvoyant_wait_mean_s": {
            str(u): round(sum(v) / len(v), 1) if v else None for u, v in bounds.items()
        },
    }
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

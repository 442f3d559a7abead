"""Real pickup orders: one LaDe-P city-day planned by the planner, against what the
couriers really did.

Data: ``benchmarks/data/lade/jilin_0607.csv`` — 767 pickup orders of 87 couriers in
Jilin on 7 June (LaDe-P, Cainiao; SOURCES.md there). Coordinates are taken as GCJ-02 and
converted to WGS-84. There is no road graph of Jilin in the repository, so travel is the
straight line × ``detour_factor`` at ``speed_mps`` (the defaults are the road ETA's
straight-line fallback, ``[eta]`` in params/doorstep.toml), the same for both sides.

The real side: each courier's orders in the order of their real ``pickup_time``; a
window is kept when the pickup time lies inside ``[time_window_start,
time_window_end]``; distance is the sum of the legs between consecutive pickups, so it
starts at the courier's first pickup — where the planned routes start too.

The planned side: the same 87 couriers, each starting where and when their real day
started (the place and time of their first real pickup) and working until their last
real pickup (+ one service time); routes end at the last job. Every order is a
mandatory job with a service time (``--service-s``, 3 minutes) and the window
``[max(window start, accept time), window end]`` — stricter than reality, where
couriers often picked up before the window opened; ``--allow-early`` opens each window
at the accept time instead, as the couriers did (windows kept are then counted against
the customers' windows, as for the real side). ``plan()`` runs once with a
wall-clock limit. The plan knows the whole day in advance (offline), the couriers did
not: the comparison bounds what planning could save, it is not an online replay.

The sample is thinned (not every order of a courier's day is in it), so real distances
cover only the legs between the orders present — on both sides alike.

Usage::

    python -m benchmarks.lade --quick          # 15 s solve
    python -m benchmarks.lade                  # 60 s solve

JSON on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from benchmarks import _harness as h
from geo.coords import gcj02_to_wgs84
from matching.planner import (
    PlanJob,
    PlannerParams,
    PlanProblem,
    PlanWorker,
    plan,
    straight_matrix,
)
from tracking.eta import EtaParams

DATA = Path(__file__).resolve().parent / "data" / "lade" / "jilin_0607.csv"
DAY = datetime(2001, 6, 7)  # LaDe has no year; any non-leap year gives the same seconds


@dataclass(frozen=True)
class Order:
    """One pickup order; times in seconds since local midnight of the day."""

    id: str
    courier: str
    lat: float  # WGS-84
    lng: float
    accept_s: int
    window: tuple[int, int]
    pickup_s: int


def seconds(text: str) -> int:
    """``MM-DD HH:MM:SS`` as seconds since midnight of ``DAY`` (local time)."""
    moment = datetime.strptime(f"{DAY.year}-{text}", "%Y-%m-%d %H:%M:%S")
    return int((moment - DAY).total_seconds())


def read_orders(path: Path) -> list[Order]:
    """The orders of the file, coordinates converted from GCJ-02 to WGS-84."""
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            lat, lng = gcj02_to_wgs84(float(row["lat"]), float(row["lng"]))
            out.append(
                Order(
                    id=row["order_id"],
                    courier=row["courier_id"],
                    lat=lat,
                    lng=lng,
                    accept_s=seconds(row["accept_time"]),
                    window=(seconds(row["time_window_start"]), seconds(row["time_window_end"])),
                    pickup_s=seconds(row["pickup_time"]),
                )
            )
    return out


def real_days(orders: Sequence[Order]) -> dict[str, list[int]]:
    """Per courier, the indices of their orders in real pickup order."""
    days: dict[str, list[int]] = collections.defaultdict(list)
    for i, o in enumerate(orders):
        days[o.courier].append(i)
    for seq in days.values():
        seq.sort(key=lambda i: (orders[i].pickup_s, orders[i].id))
    return dict(sorted(days.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 15 s solve")
    parser.add_argument("--time-limit", type=float, help="seconds for the solve (default 60)")
    parser.add_argument("--service-s", type=int, default=180, help="service time per pickup")
    parser.add_argument("--speed-mps", type=float, default=EtaParams().fallback_speed_mps)
    parser.add_argument("--detour-factor", type=float, default=EtaParams().detour_factor)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-solution", default=None, help="override the [planner] value")
    parser.add_argument(
        "--allow-early",
        action="store_true",
        help="a job may start as soon as it is accepted, before its window (as couriers did)",
    )
    args = parser.parse_args(argv)
    time_limit_s = args.time_limit or (15.0 if args.quick else 60.0)

    orders = read_orders(DATA)
    days = real_days(orders)
    couriers = list(days)
    h.progress(f"{len(orders)} orders, {len(couriers)} couriers")

    # Nodes: one start point per courier (their first real pickup place), then the orders.
    starts = [orders[days[c][0]] for c in couriers]
    points = [(o.lat, o.lng) for o in starts] + [(o.lat, o.lng) for o in orders]
    travel, metres = straight_matrix(
        points, speed_mps=args.speed_mps, detour_factor=args.detour_factor
    )
    n_start = len(couriers)

    # The real side.
    real_m = 0
    real_kept = 0
    for c in couriers:
        seq = days[c]
        nodes = [n_start + i for i in seq]
        real_m += sum(int(metres[a, b]) for a, b in itertools.pairwise(nodes))
        real_kept += sum(
            orders[i].window[0] <= orders[i].pickup_s <= orders[i].window[1] for i in seq
        )
    early = sum(o.pickup_s < o.window[0] for o in orders)
    late = sum(o.pickup_s > o.window[1] for o in orders)

    # The planned side.
    jobs = []
    for i, o in enumerate(orders):
        opens = max(0, o.accept_s if args.allow_early else max(o.window[0], o.accept_s))
        window = (opens, o.window[1]) if opens <= o.window[1] else (o.window[1], o.window[1])
        jobs.append(PlanJob(id=o.id, node=n_start + i, service_s=args.service_s, window=window))
    workers = tuple(
        PlanWorker(
            id=c,
            start_node=k,
            end_node=None,
            shift=(
                orders[days[c][0]].pickup_s,
                orders[days[c][-1]].pickup_s + args.service_s,
            ),
        )
        for k, c in enumerate(couriers)
    )
    params = PlannerParams(time_limit_s=time_limit_s, solution_limit=0, branch_limit=0)
    if args.first_solution:
        params = PlannerParams(
            time_limit_s=time_limit_s,
            solution_limit=0,
            branch_limit=0,
            first_solution=args.first_solution,
        )
    problem = PlanProblem(travel, tuple(jobs), workers, distance_m=metres)
    h.progress(f"planning ({time_limit_s:g} s)")
    began = time.perf_counter()
    result = plan(problem, params, seed=args.seed)
    solve_s = time.perf_counter() - began

    served = [s for r in result.routes for s in r.stops]
    customer = {o.id: o.window for o in orders}  # kept = inside the customer's own window
    kept = sum(customer[s.job_id][0] <= s.start_s <= customer[s.job_id][1] for s in served)
    planned_m = sum(r.distance_m for r in result.routes)
    reasons = collections.Counter(d.reason for d in result.dropped)
    used = sum(1 for r in result.routes if r.stops)

    report: dict[str, Any] = {
        "benchmark": "lade",
        "data": f"{DATA.relative_to(h.REPO)} (LaDe-P, Jilin, 7 June)",
        "travel": (
            f"straight line x {args.detour_factor} at {args.speed_mps} m/s "
            "(no road graph of Jilin in the repository)"
        ),
        "orders": len(orders),
        "couriers": len(couriers),
        "service_s": args.service_s,
        "allow_early": args.allow_early,
        "time_limit_s": time_limit_s,
        "seed": args.seed,
        "real": {
            "served": len(orders),
            "windows_kept": real_kept,
            "picked_up_early": early,
            "picked_up_late": late,
            "distance_km": round(real_m / 1000, 1),
            "couriers_used": len(couriers),
        },
        "planned": {
            "served": len(served),
            "windows_kept": kept,
            "dropped": dict(reasons),
            "distance_km": round(planned_m / 1000, 1),
            "couriers_used": used,
            "stopped_by": result.stopped_by,
            "solve_s": round(solve_s, 1),
        },
        "planned_vs_real_distance": round(planned_m / real_m, 3) if real_m else None,
        "machine": h.machine(["ortools", "numpy"]),
    }
    h.progress(
        f"real: {len(orders)} served, {real_kept} in window, {real_m / 1000:.1f} km; "
        f"planned: {len(served)} served, {kept} in window, {planned_m / 1000:.1f} km, "
        f"{used} couriers"
    )
    sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

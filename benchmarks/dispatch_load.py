"""The matching policies at several loads, offline: a small event model, no server.

A seeded city (an 8 × 6 km box, four hot spots holding 70 % of the bookings, the rest
anywhere), ``--workers`` workers starting near the hot spots, instant bookings as a
Poisson process, the matcher's own ``decide_batch`` / ``decide_greedy`` on every 2 s
tick with straight-line ETAs (× 1.35 at 6 m/s, the road ETA's fallback), every offer
accepted, travel at that ETA, then ``--service-min`` on site, the worker idle where the
job was. Workers carry seeded ratings (as in the city simulator). Per load level and
policy: utilization (holding a job / on shift), mean and p90 customer wait (booking →
arrival), the Gini of completed jobs, fulfilment (served within the instant SLA), and the
mean wait split into delay (booking → the assigning tick), nearest (the nearest free
worker's ETA then) and detour (the chosen worker's ETA less that).

It is the fast loop for tuning load-aware scoring (``[matching] load_*`` and
``fairness_floor``); the city simulator's ``python -m simulations sweep`` is the
measurement of record (real server, road graph, GPS, offers over sockets).

Usage::

    python -m benchmarks.dispatch_load [--minutes 90] [--workers 60] [--rates 2.4 3.2 4 4.6]
    python -m benchmarks.dispatch_load --set fairness_floor=0.5 --set load_aware=false
    python -m benchmarks.dispatch_load --set rotation_slack_s=60 --before rotation_slack_s=0

``--before`` runs batch a second time at each level with those fields changed (label
``batch_before``), so a change is measured against its baseline on the same bookings.
The Gini counts every job of the run (warm-up and drain too) over all workers, as the
simulator's report does: at ``--minutes 35 --warmup-min 10 --service-min 7.5`` (the
simulator's ``futian-rush`` run) a worker does ~1 job at 30 % utilization, at the
default 120 minutes ~3 (docs/dispatch.md#the-light-load-gini).

Many seeds and a grid of settings: ``benchmarks/dispatch_frontier.py`` (the wait–Gini
frontier); who is left without a job and a clairvoyant bound: ``benchmarks/dispatch_light.py``.

JSON on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.coords import haversine_m
from matching.assign import decide_batch, decide_greedy
from matching.model import Candidate, Job
from matching.params import MatchParams
from simulations.kpi import gini, percentile

LAT0, LNG0 = 22.52, 114.03
BOX_KM = (6.0, 8.0)  # north-south, east-west
HOT = ((0.25, 0.3), (0.7, 0.25), (0.4, 0.75), (0.8, 0.8))  # fractions of the box
TICK_S = 2.0
SPEED_MPS, DETOUR = 6.0, 1.35
SLA_S = 3600


def _point(rng: random.Random, hot_share: float) -> tuple[float, float]:
    if rng.random() < hot_share:
        fy, fx = HOT[rng.randrange(len(HOT))]
        fy = min(1.0, max(0.0, rng.gauss(fy, 0.06)))
        fx = min(1.0, max(0.0, rng.gauss(fx, 0.06)))
    else:
        fy, fx = rng.random(), rng.random()
    return LAT0 + fy * BOX_KM[0] / 111.2, LNG0 + fx * BOX_KM[1] / (111.2 * math.cos(0.393))


def eta_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The straight-line fallback ETA."""
    return haversine_m(a[0], a[1], b[0], b[1]) * DETOUR / SPEED_MPS


@dataclasses.dataclass
class _Worker:
    id: int
    at: tuple[float, float]
    rating_sum: int
    rating_count: int
    free_at: float = 0.0  # idle from then on
    jobs: int = 0
    earned: int = 0
    busy_s: float = 0.0


def run_level(
    rate_per_min: float,
    policy: str,
    params: MatchParams,
    *,
    workers: int,
    minutes: float,
    warmup_min: float,
    service_min: float,
    seed: int,
    chain_s: float = 0.0,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One policy at one booking rate; the same seed gives the same bookings for both.

    ``chain_s`` > 0 (batch only): a worker whose job ends within that many seconds is a
    candidate too, from that job's address, with the time left added to the ETA; if
    chosen, the next job starts after the current one (a chained order, 接力单). The
    engine's is ``[matching] chain_s`` (docs/dispatch.md#chained-orders); this model
    measures what it gains, with every offer accepted and no server."""
    rng = random.Random(seed)
    crew = []
    for i in range(workers):
        count = rng.choice((0, 0, 3, 8, 20, 40))
        mean = min(5.0, max(3.0, rng.gauss(4.6, 0.3)))
        crew.append(_Worker(i + 1, _point(rng, 0.9), round(mean * count), count))
    start = {w.id: w.at for w in crew}
    bookings: list[tuple[float, int, tuple[float, float]]] = []
    t, n = 0.0, 0
    end_s = minutes * 60
    while True:
        t += rng.expovariate(rate_per_min / 60)
        if t >= end_s:
            break
        n += 1
        bookings.append((t, n, _point(rng, 0.7)))
    decide = decide_batch if policy == "batch" else decide_greedy
    params = dataclasses.replace(params, policy=policy)  # type: ignore[arg-type]
    open_jobs: dict[int, tuple[float, tuple[float, float]]] = {}
    arrivals: dict[int, float] = {}
    # Where each order's wait went (the decomposition, docs/dispatch.md#why-batch-waits-longer-at-light-load):
    # booking -> the tick that assigned it, the chosen worker's ETA, the nearest free
    # candidate's ETA at that tick, and how many orders that tick decided.
    parts: dict[int, tuple[float, float, float, int]] = {}
    next_booking = 0
    now = 0.0
    service_s = service_min * 60
    busy_until: list[tuple[float, int]] = []
    while now < end_s + 30 * 60:
        while next_booking < len(bookings) and bookings[next_booking][0] <= now:
            bt, oid, where = bookings[next_booking]
            open_jobs[oid] = (bt, where)
            next_booking += 1
        while busy_until and busy_until[0][0] <= now:
            heapq.heappop(busy_until)
        for oid in [o for o, (bt, _) in open_jobs.items() if now - bt > SLA_S]:
            del open_jobs[oid]  # failed: nobody within the SLA
        horizon = chain_s if policy == "batch" else 0.0
        idle = [w for w in crew if w.free_at <= now + horizon]
        if open_jobs and idle:
            now_s = int(now) + 1_000_000
            jobs = [
                Job(
                    oid,
                    where[0],
                    where[1],
                    now_s,
                    now_s + SLA_S,
                    int(service_s),
                    oid,
                    created_s=int(bt) + 1_000_000,
                    price_minor=15000,
                )
                for oid, (bt, where) in sorted(open_jobs.items())
            ]
            cands = [
                Candidate(
                    w.id,
                    w.at[0],
                    w.at[1],
                    1.0,
                    rating_sum=w.rating_sum,
                    rating_count=w.rating_count,
                    jobs_today=w.jobs,
                    earnings_today_minor=w.earned,
                    available=((0, 10**10),),
                )
                for w in idle
            ]
            left = {w.id: max(0.0, w.free_at - now) for w in idle}  # 0 unless chained
            etas = [
                {c.worker_id: left[c.worker_id] + eta_s(c_at(c), (j.lat, j.lng)) for c in cands}
                for j in jobs
            ]
            decisions = decide(jobs, [cands] * len(jobs), etas, now_s, params)
            by_id = {w.id: w for w in idle}
            for job, d, row in zip(jobs, decisions, etas, strict=True):
                if d.worker_id is None:
                    continue
                w = by_id[d.worker_id]
                travel = row[w.id]
                arrivals[job.order_id] = now + travel - open_jobs[job.order_id][0]
                parts[job.order_id] = (
                    now - open_jobs[job.order_id][0],
                    travel,
                    min(row.values()),
                    len(jobs),
                )
                done = now + travel + service_s
                if now >= warmup_min * 60:  # from when the worker is free: travel + service
                    w.busy_s += done - max(now, w.free_at)
                w.free_at = done
                w.at = (job.lat, job.lng)
                w.jobs += 1
                w.earned += job.price_minor
                heapq.heappush(busy_until, (done, w.id))
                del open_jobs[job.order_id]
        now += TICK_S
    measured = [oid for bt, oid, _ in bookings if bt >= warmup_min * 60]
    if detail is not None:  # for analysis: where each worker started, their jobs; the bookings
        detail["workers"] = [(start[w.id], w.jobs) for w in crew]
        detail["bookings"] = [(bt, where) for bt, _, where in bookings]
    waits = [arrivals[o] for o in measured if o in arrivals]
    span = end_s - warmup_min * 60
    split = [parts[o] for o in measured if o in parts]

    def _mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    return {
        "policy": policy,
        "bookings_per_min": rate_per_min,
        "utilization": round(sum(min(span, w.busy_s) for w in crew) / (span * len(crew)), 4),
        "orders": len(measured),
        "fulfilment": round(len(waits) / len(measured), 4) if measured else None,
        "wait_mean_s": round(sum(waits) / len(waits), 1) if waits else None,
        "wait_p90_s": percentile(waits, 90),
        "gini_jobs": round(gini([float(w.jobs) for w in crew]), 4),
        "jobs_per_worker": round(sum(w.jobs for w in crew) / len(crew), 2),
        "workers_without_job": sum(1 for w in crew if w.jobs == 0),
        # wait = delay (booking -> the assigning tick) + travel (the chosen worker's ETA);
        # travel = nearest (the nearest free candidate's ETA then) + detour (the choice).
        "delay_mean_s": _mean([p[0] for p in split]),
        "travel_mean_s": _mean([p[1] for p in split]),
        "nearest_mean_s": _mean([p[2] for p in split]),
        "detour_mean_s": _mean([p[1] - p[2] for p in split]),
        "detour_alone_mean_s": _mean([p[1] - p[2] for p in split if p[3] == 1]),
        "decided_alone_share": (
            round(sum(1 for p in split if p[3] == 1) / len(split), 4) if split else None
        ),
    }


def c_at(c: Candidate) -> tuple[float, float]:
    """A candidate's position."""
    return (c.lat, c.lng)


def _value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    return float(text)


def main() -> None:
    """Run both policies at each rate and print the comparison as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[2.4, 3.4, 4.2, 4.7])
    ap.add_argument("--workers", type=int, default=60)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--warmup-min", type=float, default=20.0)
    ap.add_argument("--service-min", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--set", action="append", default=[], help="a MatchParams field=value")
    ap.add_argument(
        "--before",
        action="append",
        default=[],
        help="also run batch with this field=value on top of --set (label batch_before)",
    )
    ap.add_argument(
        "--chain-s",
        type=float,
        default=0.0,
        help="batch also offers to workers whose job ends within this many seconds (model only)",
    )
    args = ap.parse_args()
    params = MatchParams()
    for item in args.set:
        key, _, raw = item.partition("=")
        params = dataclasses.replace(params, **{key: _value(raw)})
    before = params
    for item in args.before:
        key, _, raw = item.partition("=")
        before = dataclasses.replace(before, **{key: _value(raw)})
    runs = [("batch", "batch", params), ("greedy", "greedy", params)]
    if args.before:
        runs.append(("batch_before", "batch", before))
    levels = []
    started = time.perf_counter()
    for rate in args.rates:
        pair = {}
        for label, policy, level_params in runs:
            pair[label] = run_level(
                rate,
                policy,
                level_params,
                workers=args.workers,
                minutes=args.minutes,
                warmup_min=args.warmup_min,
                service_min=args.service_min,
                seed=args.seed,
                chain_s=args.chain_s,
            )
            print(orjson.dumps({"label": label, **pair[label]}).decode(), file=sys.stderr)
        g = pair["greedy"]
        cuts = {}
        for label in ("batch", "batch_before"):
            b = pair.get(label)
            if b is None:
                continue
            cut = (
                1 - b["wait_mean_s"] / g["wait_mean_s"]
                if b["wait_mean_s"] and g["wait_mean_s"]
                else None
            )
            key = "wait_cut" if label == "batch" else "wait_cut_before"
            cuts[key] = round(cut, 4) if cut is not None else None
        levels.append({**pair, **cuts})
    out = {
        "benchmark": "dispatch_load",
        "params": {
            k: getattr(params, k)
            for k in (
                "load_aware",
                "load_full_pressure",
                "fairness_floor",
                "weight_fairness",
                "weight_rating",
                "rotation_slack_s",
                "rotation_cap",
            )
        },
        "before": args.before,
        "chain_s": args.chain_s,
        "workers": args.workers,
        "minutes": args.minutes,
        "seconds": round(time.perf_counter() - started, 1),
        "levels": levels,
    }
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

"""ETA ranges that hold: p90 coverage per hour of the day on held-out simulated trips.

Trips are made by the simulator's own motion model (``simulations/motion.py``: fastest
path on the Shenzhen graph the server uses, each edge at road speed x a per-trip
log-normal traffic factor, waits at 15 % of intersections, the walk to the door) and the
simulator's phone (``GpsNoise``, a fix every 1-5 s). The arrival is what the server
would record: the arrival geofence (``tracking/geofence.py``) on those fixes, a tap at
the door for 20 % of workers, or the tap 30 s after reaching the door when the fence did
not fire (``simulations/agents.py``). The prediction is the server's road ETA
(``tracking.eta.eta_s``) from the worker's noisy position at departure; "along the
trip" is the same at a random 20-80 % of the way, against the time left.

Two traffic days:

* ``flat``: the simulator as it is (no hour effect: one log-normal factor per trip);
* ``rush``: an *assumed* hourly congestion curve on top (speeds x0.65 at 07-08 and
  17-18, x0.8 at 09 and 16 and 19, x1.15 at 00-05; not measured data) to check that the
  per-hour buckets follow the hour.

For each day a training stream (``--train-days`` days whose hours follow the LaDe
booking curve with a floor, so night hours are sparse) is learned by both models, then
both are measured on a held-out set with the same number of trips in every hour:

* ``before``: the model of commit 263a954 (copied here): the mean and variance of
  log(observed/predicted) per hour, shrunk to a prior (ratio 1, sd 0.25, weight 5),
  p90 = p50 x exp(1.2816 sd);
* ``previous``: ``tracking.eta_calibration`` as of commit fbc1862 (copied here: each
  hour's shift a point estimate shrunk by 5 trips, pool weight 30, p90 at 0.92);
* ``after``: ``tracking.eta_calibration`` (quantiles per hour and trip band, pooled
  over hours, an upper bound on each hour's shift, prior, split-conformal correction);
* each also with no data (``*_prior``: what a new city gets), and ``after`` learned
  online (predict, then learn each trip: what the server lives through on its first days).

Per hour: trips, the share of arrivals by the p90, the mean p50 and p90 in seconds, the
median p90/base and p90/actual (the width: a p90 of infinity covers everything), and
``oracle``: the p90/base a per-(hour, band) multiplier fitted on the test set itself
would need for exactly 90 % (a lower bound on width for a range of this form).

Usage::

    python -m benchmarks.eta_coverage [--quick] [--seed N] [--test-per-hour N]

JSON on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages

from benchmarks._harness import machine, source_revision
from geo.coords import haversine_m
from geo.roadgraph import RoadGraph, load_futian_graph
from simulations.motion import GpsNoise, MotionParams, Router, plan_trip
from tracking import eta_calibration as cal
from tracking.eta import EtaParams, destination_times, eta_range, eta_s
from tracking.geofence import ArrivalParams, ArrivalState, step

LADE = Path(__file__).resolve().parent.parent / "simulations" / "data" / "lade_hourly.json"
Z_90 = 1.2815515655446004
RUSH = {0: 1.15, 1: 1.15, 2: 1.15, 3: 1.15, 4: 1.15, 5: 1.15, 7: 0.65, 8: 0.65, 9: 0.8}
RUSH |= {16: 0.8, 17: 0.65, 18: 0.65, 19: 0.8}


@dataclass(frozen=True, slots=True)
class TripObs:
    """One simulated trip as the server would see it."""

    hour: int
    base_s: float  # road ETA at departure
    actual_s: float  # departure -> recorded arrival
    mid_base_s: float  # road ETA part of the way
    mid_actual_s: float  # ... and the time left from there


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hour_weights() -> list[float]:
    """The LaDe booking curve with a floor of 3 % of its peak (night hours stay sparse)."""
    counts = json.loads(LADE.read_text())["accept_time_by_hour"]
    floor = 0.03 * max(counts)
    return [max(c, floor) for c in counts]


def make_trips(
    graph: RoadGraph,
    router: Router,
    hours: Sequence[int],
    traffic: dict[int, float],
    rng: np.random.Generator,
    eta_params: EtaParams,
) -> list[TripObs]:
    """One trip per hour in ``hours``: worker near a random node, door 0.3-6 km away."""
    arrival = ArrivalParams()
    base_motion = MotionParams()
    lat, lng = np.asarray(graph.lat), np.asarray(graph.lng)
    kx = math.cos(math.radians(float(lat.mean())))
    out: list[TripObs] = []
    for hour in hours:
        a = int(rng.integers(graph.n_nodes))
        want = math.exp(rng.uniform(math.log(300.0), math.log(6000.0)))
        d = np.hypot((lat - lat[a]) * 111_320.0, (lng - lng[a]) * 111_320.0 * kx)
        near = np.flatnonzero((d > want * 0.8) & (d < want * 1.25))
        if len(near) == 0:
            continue
        b = int(near[rng.integers(len(near))])
        start = _offset(float(lat[a]), float(lng[a]), 80.0, rng)
        door = _offset(float(lat[b]), float(lng[b]), 40.0, rng)
        motion = MotionParams(
            speed_factor=base_motion.speed_factor * traffic.get(hour, 1.0),
            speed_sd=base_motion.speed_sd,
            stop_share=base_motion.stop_share,
            stop_s=base_motion.stop_s,
        )
        try:
            trip = plan_trip(router, start, door, rng, motion)
        except ValueError:  # no road between them
            continue
        phone = GpsNoise(rng)
        times = destination_times(graph, *door)
        lat0, lng0, _ = phone.fix(*start, 0.0)
        base, _ = eta_s(times, graph, lat0, lng0, eta_params)
        interval = float(rng.uniform(1.0, 5.0))
        end = trip.duration_s
        arrived = None
        if rng.random() < 0.2:  # taps "arrived" at the door
            arrived = end + float(rng.uniform(1.0, 5.0))
        else:
            state = ArrivalState()
            t = interval
            while t <= end + 30.0:
                plat, plng, _, _ = trip.at(t)
                flat, flng, acc = phone.fix(plat, plng, interval)
                if haversine_m(flat, flng, plat, plng) < 120.0:  # a jump is rejected upstream
                    state, event = step(state, haversine_m(flat, flng, *door), acc, arrival)
                    if event == "arrived":
                        arrived = t
                        break
                t += interval
            if arrived is None:
                arrived = end + 30.0
        tm = float(rng.uniform(0.2, 0.8)) * end
        if tm >= arrived:
            tm = arrived / 2
        mlat, mlng, _, _ = trip.at(tm)
        mlat, mlng, _ = phone.fix(mlat, mlng, interval)
        mid_base, _ = eta_s(times, graph, mlat, mlng, eta_params)
        out.append(TripObs(hour, base, arrived, mid_base, arrived - tm))
    return out


def _offset(
    lat: float, lng: float, radius_m: float, rng: np.random.Generator
) -> tuple[float, float]:
    r, t = radius_m * math.sqrt(float(rng.random())), float(rng.uniform(0, 2 * math.pi))
    return (
        lat + r * math.cos(t) / 111_320.0,
        lng + r * math.sin(t) / (111_320.0 * math.cos(math.radians(lat))),
    )


# -- before: the normal model of log ratios per hour, as in commit 263a954 ----------------


@dataclass(frozen=True, slots=True)
class OldStats:
    n: int = 0
    mean: float = 0.0
    var: float = 0.0


OLD_MAX_RATIO, OLD_MIN_LEARN_S, OLD_PRIOR_W, OLD_PRIOR_SD, OLD_WINDOW = 4.0, 60.0, 5.0, 0.25, 500


def old_update(s: OldStats, observed: float, predicted: float) -> OldStats:
    if predicted < OLD_MIN_LEARN_S:
        return s
    limit = math.log(OLD_MAX_RATIO)
    ratio = observed / predicted
    x = min(limit, max(-limit, math.log(ratio))) if ratio > 0 else -limit
    alpha = 1.0 / min(s.n + 1, OLD_WINDOW)
    diff = x - s.mean
    return OldStats(s.n + 1, s.mean + alpha * diff, (1 - alpha) * (s.var + alpha * diff * diff))


def old_range(base: float, s: OldStats) -> tuple[float, float]:
    w = float(min(s.n, OLD_WINDOW))
    total = w + OLD_PRIOR_W
    mean = w * s.mean / total
    var = (OLD_PRIOR_W * OLD_PRIOR_SD**2 + w * s.var) / total
    p50 = base * math.exp(mean)
    return p50, p50 * math.exp(Z_90 * math.sqrt(var))


# -- previous: tracking.eta_calibration as of commit fbc1862 (hour shift shrunk by 5 trips) --

PREV_POOL_W, PREV_SHIFT_W, PREV_COVERAGE = 30.0, 5.0, 0.92


def previous_calibrate(
    buckets: dict[cal.Bucket, cal.Counts], params: EtaParams
) -> dict[int, cal.EtaCalibration]:
    """The calibration before the hour shift had an upper bound: one blend per bucket,
    the pool moved by the hour's raw shift shrunk towards 0 by 5 trips, p90 at 0.92."""
    n_bands, zero = len(params.bands_s) + 1, cal.empty(params)
    medians = cal.band_medians(buckets, params)
    shifts = []
    for hour in range(24):
        weighted, n = 0.0, 0.0
        for band in range(n_bands):
            own, m = buckets.get((hour, band), zero), medians[band]
            if sum(own) > 0 and m is not None:
                weighted += sum(own) * (cal.quantile(own, 0.5, params) - m)
                n += sum(own)
        shifts.append(weighted / (n + PREV_SHIFT_W))
    prior = cal.prior_counts(params)
    pools = []
    for band in range(n_bands):
        summed = [params.prior_weight * p for p in prior]
        for hour in range(24):
            if (hour, band) in buckets:
                for i, c in enumerate(cal.shifted(buckets[(hour, band)], -shifts[hour], params)):
                    summed[i] += c
        pools.append([PREV_POOL_W * c / sum(summed) for c in summed])
    out = {}
    for hour in range(24):
        q50, q90, n_own = [], [], []
        for band in range(n_bands):
            own = buckets.get((hour, band), zero)
            pool = cal.shifted(pools[band], shifts[hour], params)
            blend = [a + b for a, b in zip(own, pool, strict=True)]
            level = min(1.0, PREV_COVERAGE * (1 + 1 / sum(blend)))
            q50.append(cal.quantile(blend, 0.5, params))
            q90.append(cal.quantile(blend, level, params))
            n_own.append(sum(own))
        out[hour] = cal.EtaCalibration(tuple(q50), tuple(q90), tuple(n_own))
    return out


# -- measuring ---------------------------------------------------------------------------

Ranger = Callable[[int, float], tuple[float, float]]  # (hour, base) -> (p50, p90)


def measure(trips: Sequence[TripObs], ranger: Ranger, *, mid: bool = False) -> dict[str, Any]:
    """Coverage and width per hour, and overall."""
    by_hour: dict[int, list[tuple[float, float, float, float]]] = {}
    for t in trips:
        base, actual = (t.mid_base_s, t.mid_actual_s) if mid else (t.base_s, t.actual_s)
        p50, p90 = ranger(t.hour, base)
        by_hour.setdefault(t.hour, []).append((base, actual, p50, p90))
    hours: dict[str, Any] = {}
    for h in sorted(by_hour):
        rows = by_hour[h]
        hours[f"{h:02d}"] = _summary(rows)
    everything = [r for rows in by_hour.values() for r in rows]
    shares = [v["by_p90"] for v in hours.values()]
    return {
        "all": _summary(everything),
        "worst_hour_by_p90": min(shares),
        "hours_at_90": sum(s >= 0.9 for s in shares),
        "hours": hours,
    }


def _summary(rows: Sequence[tuple[float, float, float, float]]) -> dict[str, Any]:
    return {
        "n": len(rows),
        "by_p90": round(sum(a <= p90 for _, a, _, p90 in rows) / len(rows), 4),
        "p50_s_mean": round(statistics.fmean(p50 for _, _, p50, _ in rows), 1),
        "p90_s_mean": round(statistics.fmean(p90 for _, _, _, p90 in rows), 1),
        "actual_s_mean": round(statistics.fmean(a for _, a, _, _ in rows), 1),
        "p90_over_base_median": round(
            statistics.median(p90 / b for b, _, _, p90 in rows if b > 0), 3
        ),
        "p90_over_actual_median": round(
            statistics.median(p90 / a for _, a, _, p90 in rows if a > 0), 3
        ),
    }


def oracle(trips: Sequence[TripObs], params: EtaParams) -> dict[str, Any]:
    """The per-(hour, band) multiplier that covers exactly 90 % of the test set itself."""
    ratios: dict[tuple[int, int], list[float]] = {}
    for t in trips:
        ratios.setdefault((t.hour, cal.band_of(t.base_s, params)), []).append(
            t.actual_s / max(t.base_s, 1.0)
        )
    q = {k: float(np.quantile(v, 0.9, method="inverted_cdf")) for k, v in ratios.items()}
    return measure(trips, lambda h, base: (base, base * q[(h, cal.band_of(base, params))]))


def run_day(
    name: str,
    traffic: dict[int, float],
    graph: RoadGraph,
    router: Router,
    params: EtaParams,
    *,
    train_days: int,
    train_per_day: int,
    test_per_hour: int,
    seed: int,
    stream: int,
) -> dict[str, Any]:
    # One random stream per (seed, day): the days of a seed, and the seeds, share no draws.
    rng = np.random.default_rng([seed, stream])
    weights = np.asarray(hour_weights())
    t0 = time.monotonic()
    train_hours = [
        int(h) for h in rng.choice(24, size=train_days * train_per_day, p=weights / weights.sum())
    ]
    train = make_trips(graph, router, train_hours, traffic, rng, params)
    test = make_trips(
        graph, router, [h for h in range(24) for _ in range(test_per_hour)], traffic, rng, params
    )
    say(
        f"{name}: {len(train)} training and {len(test)} test trips in {time.monotonic() - t0:.0f} s"
    )

    old: dict[int, OldStats] = {}
    for t in train:
        old[t.hour] = old_update(old.get(t.hour, OldStats()), t.actual_s, t.base_s)
    buckets = cal.rebuild(((t.hour, t.actual_s, t.base_s) for t in train), params)
    hours = cal.calibrate(buckets, params)
    prev_hours = previous_calibrate(buckets, params)
    prior = cal.prior_calibration(params)

    def before(h: int, base: float) -> tuple[float, float]:
        return old_range(base, old.get(h, OldStats()))

    def previous(h: int, base: float) -> tuple[float, float]:
        r = eta_range(base, prev_hours[h], params)
        return r.p50_s, r.p90_s

    def before_prior(_h: int, base: float) -> tuple[float, float]:
        return old_range(base, OldStats())

    def after(h: int, base: float) -> tuple[float, float]:
        r = eta_range(base, hours[h], params)
        return r.p50_s, r.p90_s

    def after_prior(_h: int, base: float) -> tuple[float, float]:
        r = eta_range(base, prior, params)
        return r.p50_s, r.p90_s

    # Online: each training trip is predicted with what was learned before it (the
    # calibration re-read every 10 trips, as a server re-reads it every refresh_s).
    online_old: dict[int, OldStats] = {}
    online_buckets: dict[cal.Bucket, cal.Counts] = {}
    online_hours = cal.calibrate({}, params)
    pred_before: dict[int, tuple[float, float]] = {}
    pred_after: dict[int, tuple[float, float]] = {}
    for i, t in enumerate(train):
        pred_before[i] = old_range(t.base_s, online_old.get(t.hour, OldStats()))
        r = eta_range(t.base_s, online_hours[t.hour], params)
        pred_after[i] = (r.p50_s, r.p90_s)
        online_old[t.hour] = old_update(online_old.get(t.hour, OldStats()), t.actual_s, t.base_s)
        if cal.learns_from(t.actual_s, t.base_s, params):
            key = (t.hour, cal.band_of(t.base_s, params))
            online_buckets[key] = cal.add(
                online_buckets.get(key, cal.empty(params)), t.actual_s, t.base_s, params
            )
        if i % 10 == 9:
            online_hours = cal.calibrate(online_buckets, params)

    return {
        "traffic_by_hour": {f"{h:02d}": traffic.get(h, 1.0) for h in range(24)},
        "train_trips": len(train),
        "test_trips": len(test),
        "train_trips_by_hour": {f"{h:02d}": sum(t.hour == h for t in train) for h in range(24)},
        "held_out": {
            "before": measure(test, before),
            "previous": measure(test, previous),
            "after": measure(test, after),
            "before_prior": measure(test, before_prior),
            "after_prior": measure(test, after_prior),
            "oracle": oracle(test, params),
        },
        "held_out_along_the_trip": {
            "before": measure(test, before, mid=True),
            "previous": measure(test, previous, mid=True),
            "after": measure(test, after, mid=True),
        },
        "online_on_the_training_stream": {
            "before": _measure_fixed(train, pred_before),
            "after": _measure_fixed(train, pred_after),
        },
    }


def _measure_fixed(
    trips: Sequence[TripObs], preds: dict[int, tuple[float, float]]
) -> dict[str, Any]:
    """:func:`measure` with a prediction made beforehand for each trip (by position)."""
    it = iter(range(len(trips)))
    return measure(trips, lambda _h, _b: preds[next(it)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trips (a smoke run)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument(
        "--test-per-hour",
        type=int,
        default=None,
        help="held-out trips per hour (default 120, --quick 20): at 120 an hour truly at "
        "93 %% reads below 90 %% about one time in seven",
    )
    args = ap.parse_args()
    params = EtaParams()
    graph = load_futian_graph()
    router = Router(graph, cache_size=4096)
    size = (
        {"train_days": 1, "train_per_day": 400, "test_per_hour": 20}
        if args.quick
        else {"train_days": 3, "train_per_day": 800, "test_per_hour": 120}
    )
    if args.test_per_hour is not None:
        size["test_per_hour"] = args.test_per_hour
    t0 = time.monotonic()
    days = {
        name: run_day(name, traffic, graph, router, params, seed=args.seed, stream=k, **size)
        for k, (name, traffic) in enumerate((("flat", {}), ("rush", RUSH)))
    }
    out = {
        "benchmark": "eta_coverage",
        "method": "held-out simulated trips (simulations/motion.py on the Shenzhen graph, "
        "geofence arrivals); see the module docstring",
        "seed": args.seed,
        "random_streams": "numpy SeedSequence [seed, day]: flat 0, rush 1",
        "size": size,
        "params": {
            k: getattr(params, k)
            for k in (
                "bands_s",
                "bin_width",
                "max_ratio",
                "min_learn_s",
                "prior_ratio",
                "prior_sd",
                "prior_weight",
                "pool_weight",
                "shift_z",
                "own_shift_z",
                "coverage",
                "window",
            )
        },
        "days": days,
        "seconds": round(time.monotonic() - t0, 1),
        "revision": source_revision(),
        "machine": machine(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

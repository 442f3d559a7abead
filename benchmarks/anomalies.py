"""Live-trail anomaly detectors (safety/trail.py): precision and recall per detector on
real GeoLife trails with injected anomalies.

    python -m benchmarks.anomalies --quick   # 2 trials per leg, a few seconds
    python -m benchmarks.anomalies           # 8 trials per leg

**Data.** Two sets of real GeoLife trajectories: the 22 bundled as a test fixture
(tests/data/geolife/trails.csv, *tuned*: the ``[trail]`` parameters were chosen looking
at these) and 19 others of the same subset (benchmarks/data/geolife-holdout, *holdout*:
measured with the same parameters, never tuned on); SOURCES.md beside each. Each is cut
into *legs* at gaps over 60 s
and at real dwells (5 min within 100 m), keeping legs of 8 min or more that end at least
1.5 km from where they began along a path at most twice that straight distance (one
trajectory, a 5.8× wander, is not a trip to anywhere). Each leg is a trip to a job at
its end.

**Scenarios** (seeded; the fixes are fed through :func:`safety.trail.step` as the live
path does, one per GeoLife point, accuracy 10 m):

- *stop*: en route; at a random point of the middle of the leg (more than twice
  ``near_job_m`` from the job: nearer, a stop is parking) the worker stays
  ``STOP_S`` (15 min) — fixes every 5 s with GPS noise — then goes on (later points
  shifted in time). A detection counts when ``stopped`` fires during the dwell.
- *deviation*: en route; at a random point the worker heads ``DETOUR_M`` (2.5 km) away,
  within 60° of directly away from the job, at the leg's own median speed, and comes
  back. A detection counts when ``off_route`` fires during the detour.
- *clean trip*: the leg unchanged; any ``stopped`` or ``off_route`` is a false positive.
- *left site*: in service at the job for 60 min (noisy fixes every 5 s); after 20 min
  the worker walks away along a real leg's path (translated to start at the door) until
  ``LEAVE_M`` (600 m) away, stays 10 min, walks back. Counts when ``left_site`` fires
  while away.
- *clean service*: the same 60 min with a 3-min step outside to 150 m (to the car) at
  minute 20; any ``left_site`` is a false positive.
- *overstay*: on site for the duration plus 60 min (injected) or plus 20 min (clean).
- *late departure*: a scheduled job a leg's length away; the worker waits at home and
  departs (injected) never before the window, or (clean) in time at 5 m/s with 15 min
  to spare.

GPS noise on synthetic stationary fixes: Gaussian σ = 8 m with 3 % of fixes off by
σ = 50 m (multipath indoors); a synthetic part of the scenarios, stated as such. The
moving parts are real GeoLife points.

Per detector: true positives (fired in the injected interval), false negatives (injected
but not fired there), false positives (fired anywhere in a clean scenario of its family,
or outside the injected interval); precision = TP / (TP + FP), recall = TP / (TP + FN).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from geo.coords import haversine_m
from safety.trail import JobView, TrailParams, TrailState, step

REPO = Path(__file__).resolve().parent.parent
DATASETS = {
    # the 22 trails of the test fixture: the [trail] parameters were chosen on these
    "tuned": REPO / "tests" / "data" / "geolife" / "trails.csv",
    # 19 other trails of the same GeoLife subset, never looked at while tuning
    "holdout": REPO / "benchmarks" / "data" / "geolife-holdout" / "trails.csv",
}
ACCURACY_M = 10.0
GAP_S = 60
DWELL_S, DWELL_M = 300, 100.0
MIN_LEG_S, MIN_LEG_M = 480, 1500.0
MAX_DETOUR = 2.0  # a trip to a job: its path at most twice the straight distance
STOP_S = 900
DETOUR_M = 2500.0
LEAVE_M, AWAY_S = 600.0, 600
SERVICE_S = 3600
M_PER_DEG = 111_194.93

Point = tuple[int, float, float]  # ts_ms, lat, lng


def load_legs(path: Path = DATASETS["tuned"]) -> list[list[Point]]:
    """The trails cut into legs (gaps, real dwells), long enough to be trips."""
    trails: dict[str, list[Point]] = defaultdict(list)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            ts = int(datetime.fromisoformat(row["ts_utc"]).timestamp() * 1000)
            trails[f"{row['user_id']}/{row['traj_id']}"].append(
                (ts, float(row["lat"]), float(row["lon"]))
            )
    legs: list[list[Point]] = []
    for rows in trails.values():
        current: list[Point] = []
        for p in rows:
            if current and (p[0] - current[-1][0]) / 1000 > GAP_S:
                legs.extend(_split_dwells(current))
                current = []
            current.append(p)
        legs.extend(_split_dwells(current))
    return [
        leg
        for leg in legs
        if (leg[-1][0] - leg[0][0]) / 1000 >= MIN_LEG_S
        and (d := haversine_m(leg[0][1], leg[0][2], leg[-1][1], leg[-1][2])) >= MIN_LEG_M
        and path_m(leg) <= MAX_DETOUR * d
    ]


def path_m(leg: list[Point]) -> float:
    """The length of the leg's path."""
    return sum(haversine_m(a[1], a[2], b[1], b[2]) for a, b in itertools.pairwise(leg))


def _split_dwells(rows: list[Point]) -> list[list[Point]]:
    """Cut a run of points where it stays DWELL_M for DWELL_S (a real stop)."""
    out: list[list[Point]] = []
    start = 0
    i = 0
    while i < len(rows):
        j = i
        while (
            j + 1 < len(rows)
            and haversine_m(rows[i][1], rows[i][2], rows[j + 1][1], rows[j + 1][2]) <= DWELL_M
        ):
            j += 1
        if (rows[j][0] - rows[i][0]) / 1000 >= DWELL_S:
            if i > start:
                out.append(rows[start : i + 1])
            start = j
            i = j + 1
            continue
        i += 1
    out.append(rows[start:])
    return [leg for leg in out if len(leg) > 1]


def noisy(rng: random.Random, lat: float, lng: float) -> tuple[float, float]:
    """A stationary fix at (lat, lng) with GPS noise."""
    sigma = 50.0 if rng.random() < 0.03 else 8.0
    dy, dx = rng.gauss(0, sigma), rng.gauss(0, sigma)
    return lat + dy / M_PER_DEG, lng + dx / (M_PER_DEG * math.cos(math.radians(lat)))


def offset(lat: float, lng: float, bearing: float, m: float) -> tuple[float, float]:
    """The point ``m`` metres from (lat, lng) on ``bearing`` (radians, 0 = north)."""
    return (
        lat + m * math.cos(bearing) / M_PER_DEG,
        lng + m * math.sin(bearing) / (M_PER_DEG * math.cos(math.radians(lat))),
    )


def bearing_to(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.atan2(dx, dy)


def dwell(rng: random.Random, t0: int, at: tuple[float, float], seconds: int) -> list[Point]:
    """Noisy fixes every 5 s at ``at`` for ``seconds``."""
    return [(t0 + k * 5000, *noisy(rng, *at)) for k in range(1, seconds // 5 + 1)]


def median_speed(leg: list[Point]) -> float:
    speeds = [
        haversine_m(a[1], a[2], b[1], b[2]) / max(1.0, (b[0] - a[0]) / 1000)
        for a, b in itertools.pairwise(leg)
    ]
    return max(1.0, statistics.median(speeds))


@dataclass
class Scenario:
    family: str  # trip | service | overstay | departure
    injected: str | None  # the detector kind injected, or None (clean)
    window: tuple[int, int] | None  # ts_ms interval where the injected anomaly holds
    phases: list[tuple[JobView, list[Point]]]


def run(sc: Scenario, params: TrailParams) -> list[tuple[str, int]]:
    """Every anomaly (kind, ts) the detectors report on the scenario."""
    state: TrailState | None = None
    found: list[tuple[str, int]] = []
    for job, points in sc.phases:
        for ts, lat, lng in points:
            state, anomalies = step(state, job, ts, lat, lng, ACCURACY_M, params)
            found.extend((a.kind, a.ts_ms) for a in anomalies)
    return found


def trip_job(leg: list[Point]) -> JobView:
    return JobView(order_id=1, status="en_route", lat=leg[-1][1], lng=leg[-1][2])


def _middle(rng: random.Random, leg: list[Point], lo: float, hi: float) -> int:
    """A random point between fractions ``lo`` and ``hi`` of the leg, away from the job
    (a stop within ``near_job_m`` of the door is parking, not an anomaly)."""
    end = (leg[-1][1], leg[-1][2])
    far = [
        i
        for i in range(int(len(leg) * lo), max(int(len(leg) * lo) + 1, int(len(leg) * hi)))
        if haversine_m(leg[i][1], leg[i][2], *end) > 2 * TrailParams().near_job_m
    ]
    return rng.choice(far) if far else len(leg) // 2


def stop_scenario(rng: random.Random, leg: list[Point]) -> Scenario:
    i = _middle(rng, leg, 0.2, 0.8)
    t_i = leg[i][0]
    stay = dwell(rng, t_i, (leg[i][1], leg[i][2]), STOP_S)
    shifted = [(t + STOP_S * 1000, la, ln) for t, la, ln in leg[i + 1 :]]
    points = leg[: i + 1] + stay + shifted
    return Scenario(
        "trip", "stopped", (t_i, t_i + STOP_S * 1000 + 60_000), [(trip_job(leg), points)]
    )


def deviation_scenario(rng: random.Random, leg: list[Point]) -> Scenario:
    i = _middle(rng, leg, 0.2, 0.7)
    t_i, here = leg[i][0], (leg[i][1], leg[i][2])
    away = bearing_to((leg[-1][1], leg[-1][2]), here) + rng.uniform(-math.pi / 3, math.pi / 3)
    speed = median_speed(leg)
    step_s = 5
    n = max(2, int(DETOUR_M / speed / step_s))
    out_leg = [
        (t_i + k * step_s * 1000, *offset(*here, away, DETOUR_M * k / n)) for k in range(1, n + 1)
    ]
    back = [
        (t_i + (n + k) * step_s * 1000, *offset(*here, away, DETOUR_M * (n - k) / n))
        for k in range(1, n + 1)
    ]
    shift = 2 * n * step_s * 1000
    shifted = [(t + shift, la, ln) for t, la, ln in leg[i + 1 :]]
    points = leg[: i + 1] + out_leg + back + shifted
    return Scenario("trip", "off_route", (t_i, t_i + shift + 60_000), [(trip_job(leg), points)])


def clean_trip(leg: list[Point]) -> Scenario:
    return Scenario("trip", None, None, [(trip_job(leg), leg)])


def service_job(at: tuple[float, float], since: int) -> JobView:
    return JobView(
        order_id=1, status="in_service", lat=at[0], lng=at[1], since_ms=since, duration_s=SERVICE_S
    )


def walk_path(
    leg: list[Point], home: tuple[float, float], until_m: float
) -> list[tuple[int, float, float]]:
    """A real leg's movement translated to start at ``home``, up to ``until_m`` away:
    (seconds from the start, lat, lng)."""
    t0, lat0, lng0 = leg[0]
    out = []
    for t, la, ln in leg:
        p = (home[0] + la - lat0, home[1] + ln - lng0)
        out.append(((t - t0) // 1000, *p))
        if haversine_m(*home, *p) >= until_m:
            break
    return out


def service_scenario(rng: random.Random, leg: list[Point], *, leave: bool) -> Scenario:
    home = (leg[-1][1], leg[-1][2])
    t0 = leg[-1][0]
    job = service_job(home, t0)
    points = dwell(rng, t0, home, 1200)
    t = points[-1][0]
    if leave:
        path = walk_path(leg, home, LEAVE_M)
        if haversine_m(*home, path[-1][1], path[-1][2]) < LEAVE_M:  # a short leg: straight out
            bearing = rng.uniform(0, 2 * math.pi)
            path = [
                (k * 5, *offset(*home, bearing, 1.4 * 5 * k)) for k in range(int(LEAVE_M / 7) + 2)
            ]
        start = t
        out = [(start + s * 1000, la, ln) for s, la, ln in path[1:]]
        t = out[-1][0]
        far = (out[-1][1], out[-1][2])
        stay = dwell(rng, t, far, AWAY_S)
        t = stay[-1][0]
        dur = path[-1][0]
        back = [(t + (dur - s) * 1000, la, ln) for s, la, ln in reversed(path[:-1])]
        points += out + stay + back
        window = (start, back[-1][0] + 60_000)
        t = back[-1][0]
    else:  # to the car and back: 150 m, 3 min, within the site radius
        bearing = rng.uniform(0, 2 * math.pi)
        car = offset(*home, bearing, 150.0)
        points += dwell(rng, t, car, 180)
        t = points[-1][0]
        window = None
    rest = SERVICE_S - (t - t0) // 1000
    points += dwell(rng, t, home, max(60, rest))
    return Scenario("service", "left_site" if leave else None, window, [(job, points)])


def overstay_scenario(rng: random.Random, leg: list[Point], *, over: bool) -> Scenario:
    home = (leg[-1][1], leg[-1][2])
    t0 = leg[-1][0]
    extra = 3600 if over else 1200
    points = dwell(rng, t0, home, SERVICE_S + extra)
    job = service_job(home, t0)
    window = (
        (t0 + (SERVICE_S + 1800) * 1000, t0 + (SERVICE_S + extra) * 1000 + 5000) if over else None
    )
    return Scenario("overstay", "overstay" if over else None, window, [(job, points)])


def departure_scenario(rng: random.Random, leg: list[Point], *, late: bool) -> Scenario:
    home, dest = (leg[0][1], leg[0][2]), (leg[-1][1], leg[-1][2])
    d = haversine_m(*home, *dest)
    t0 = leg[0][0]
    window_start = t0 + int((d / 5.0 + 3600) * 1000)
    job = JobView(
        order_id=1, status="assigned", lat=dest[0], lng=dest[1], window_start_ms=window_start
    )
    if late:  # still at home when the window opens
        wait_s = (window_start - t0) // 1000 + 600
        window = (t0, window_start + 600_000)
    else:  # departs in time at 5 m/s with 15 min to spare
        wait_s = 3600 - 900
        window = None
    points = dwell(rng, t0, home, wait_s)
    phases = [(job, points)]
    if not late:
        phases.append((JobView(1, "en_route", dest[0], dest[1]), leg))
    return Scenario("departure", "late_departure" if late else None, window, phases)


KINDS = ("stopped", "off_route", "left_site", "overstay", "late_departure")
FAMILY = {
    "stopped": "trip",
    "off_route": "trip",
    "left_site": "service",
    "overstay": "overstay",
    "late_departure": "departure",
}


def scenarios(legs: list[list[Point]], trials: int, seed: int) -> list[Scenario]:
    rng = random.Random(seed)
    out = []
    for leg in legs:
        for _ in range(trials):
            out.append(stop_scenario(rng, leg))
            out.append(deviation_scenario(rng, leg))
            out.append(service_scenario(rng, leg, leave=True))
            out.append(service_scenario(rng, leg, leave=False))
            out.append(overstay_scenario(rng, leg, over=True))
            out.append(overstay_scenario(rng, leg, over=False))
            out.append(departure_scenario(rng, leg, late=True))
            out.append(departure_scenario(rng, leg, late=False))
        out.append(clean_trip(leg))
    return out


def score(all_scenarios: list[Scenario], params: TrailParams) -> dict[str, dict[str, Any]]:
    tally = {k: {"tp": 0, "fp": 0, "fn": 0, "clean_scenarios": 0, "injected": 0} for k in KINDS}
    for sc in all_scenarios:
        found = run(sc, params)
        for kind in KINDS:
            if FAMILY[kind] != sc.family:
                continue
            hits = [ts for k, ts in found if k == kind]
            if sc.injected == kind:
                tally[kind]["injected"] += 1
                assert sc.window is not None
                inside = [ts for ts in hits if sc.window[0] <= ts <= sc.window[1]]
                tally[kind]["tp" if inside else "fn"] += 1
                tally[kind]["fp"] += len(hits) - len(inside)
            else:
                tally[kind]["clean_scenarios"] += 1
                tally[kind]["fp"] += len(hits)
    out: dict[str, dict[str, Any]] = {}
    for kind, t in tally.items():
        tp, fp, fn = t["tp"], t["fp"], t["fn"]
        out[kind] = {
            **t,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="2 trials per leg (default 8)")
    p.add_argument("--seed", type=int, default=19)
    args = p.parse_args()
    started = time.perf_counter()
    params = TrailParams()
    sets: dict[str, Any] = {}
    pooled: list[Scenario] = []
    for name, path in DATASETS.items():
        legs = load_legs(path)
        made = scenarios(legs, 2 if args.quick else 8, args.seed)
        pooled += made
        sets[name] = {
            "file": str(path.relative_to(REPO)),
            "legs": len(legs),
            "leg_minutes_median": round(
                statistics.median((leg[-1][0] - leg[0][0]) / 60000 for leg in legs), 1
            ),
            "leg_km_median": round(
                statistics.median(
                    haversine_m(leg[0][1], leg[0][2], leg[-1][1], leg[-1][2]) / 1000 for leg in legs
                ),
                2,
            ),
            "scenarios": len(made),
            "detectors": score(made, params),
        }
    result = score(pooled, params)
    targets = {k: result[k] for k in ("stopped", "off_route", "left_site")}
    met = all((r["precision"] or 0) >= 0.9 and (r["recall"] or 0) >= 0.9 for r in targets.values())
    print(
        orjson.dumps(
            {
                "benchmark": "anomalies",
                "quick": args.quick,
                "seed": args.seed,
                "params": {k: getattr(params, k) for k in params.__dataclass_fields__},
                "sets": sets,
                "detectors": result,
                "target": "precision and recall >= 0.9 for stopped, off_route, left_site "
                "(both sets pooled; each set's figures under sets)",
                "target_met": met,
                "seconds": round(time.perf_counter() - started, 1),
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

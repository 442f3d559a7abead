"""tracking.geofence: arrival hysteresis, on tables and on real noisy GeoLife trails."""

from __future__ import annotations

import csv
import functools
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from doorstep.params import ParamsError, from_mapping
from geo.coords import EARTH_RADIUS_M, haversine_m
from tracking.eta import EtaParams
from tracking.eta_calibration import EtaCalibration
from tracking.geofence import ArrivalEvent, ArrivalParams, ArrivalState, step
from tracking.jobs import ActiveJob, JobInfo, not_before_window, on_fix

PARAMS = ArrivalParams()
TRAILS_CSV = Path(__file__).parent / "data" / "geolife" / "trails.csv"
M_PER_DEG = math.radians(1) * EARTH_RADIUS_M

DWELL_RADIUS_M = 40.0  # a dwell: the person stayed this close to its first fix ...
DWELL_MIN_S = 180.0  # ... for at least this long
AWAY_M = 300.0  # "never went there": no recorded fix within this distance
ACCURACY_M = 15.0  # GeoLife records no accuracy; a typical phone value
NOISE_SD_M = 20.0  # the noisy variant moves each fix by N(0, 20 m) east and north


def replay(
    fixes: list[tuple[float, float]], params: ArrivalParams = PARAMS
) -> list[ArrivalEvent | None]:
    """Feed (distance_m, accuracy_m) fixes from the initial state; the event after each."""
    state, events = ArrivalState(), []
    for distance_m, accuracy_m in fixes:
        state, event = step(state, distance_m, accuracy_m, params)
        events.append(event)
    return events


def at_(*distances_m: float, accuracy_m: float = 10.0) -> list[tuple[float, float]]:
    """Fixes at these distances, all with the same accuracy."""
    return [(d, accuracy_m) for d in distances_m]


@pytest.mark.parametrize(
    ("fixes", "expected"),
    [
        pytest.param(
            at_(500, 300, 120, 59, 40, 10, 5),
            [None, None, None, None, "arrived", None, None],
            id="approach arrives on the second fix inside",
        ),
        pytest.param(
            at_(500, 55, 70, 55, 200, 300),
            [None] * 6,
            id="single inside fixes never arrive",
        ),
        pytest.param(
            [(500, 10), (50, 10), (20, 200), (10, 81), (30, 10)],
            [None, None, None, None, "arrived"],
            id="bad-accuracy fixes neither count nor reset",
        ),
        pytest.param(
            [(500, 10), (50, 10), (400, 90), (30, 10)],
            [None, None, None, "arrived"],
            id="a bad-accuracy fix far away does not reset the streak",
        ),
        pytest.param(
            at_(50, 50, 59, 61, 58, 70, 100, 55, 140, 60, 65),
            [None, "arrived"] + [None] * 9,
            id="jitter around the enter radius after arrival does not leave",
        ),
        pytest.param(
            at_(50, 50, 200, 30, 200, 40, 200),
            [None, "arrived"] + [None] * 5,
            id="isolated outside fixes never leave",
        ),
        pytest.param(
            [(50, 10), (50, 10), (200, 60), (200, 60), (170, 10), (170, 10)],
            [None, "arrived", None, None, None, "left"],
            id="leaving needs the whole accuracy circle beyond exit twice",
        ),
        pytest.param(
            [(50, 10), (50, 10), (170, 10), (200, 100), (170, 10)],
            [None, "arrived", None, None, "left"],
            id="a bad-accuracy fix between two outside fixes does not reset",
        ),
        pytest.param(
            at_(50, 50, 170, 170, 50, 50, 50),
            [None, "arrived", None, "left", None, "arrived", None],
            id="arrive, leave and arrive again emit one event each",
        ),
        pytest.param(
            [(50, 10), (50, 10), (160, 10), (160, 10), (150.5, 0), (150.5, 0)],
            [None, "arrived", None, None, None, "left"],
            id="exit compares distance minus accuracy strictly with exit_m",
        ),
        pytest.param(
            [(50, math.nan), (50, -1), (math.nan, 10), (50, math.inf)],
            [None] * 4,
            id="non-finite or negative values are ignored",
        ),
    ],
)
def test_step_table(fixes: list[tuple[float, float]], expected: list[ArrivalEvent | None]) -> None:
    """Each sequence of (distance, accuracy) fixes yields exactly the expected events."""
    assert replay(fixes) == expected


@pytest.mark.parametrize("confirm_fixes", [1, 2, 3, 5])
def test_arrival_needs_exactly_confirm_fixes(confirm_fixes: int) -> None:
    """Arrival comes on the ``confirm_fixes``-th consecutive fix inside, not before."""
    params = ArrivalParams(confirm_fixes=confirm_fixes)
    events = replay(at_(*[30.0] * (confirm_fixes + 3)), params)
    assert events.index("arrived") == confirm_fixes - 1
    assert events.count("arrived") == 1


def test_unchanged_state_is_returned_as_is() -> None:
    """An ignored fix returns the very same state object (no allocation per fix)."""
    state = ArrivalState(inside=True, streak=1)
    assert step(state, 500.0, 500.0, PARAMS) == (state, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"enter_m": 0.0}, "enter_m"),
        ({"exit_m": math.nan}, "exit_m"),
        ({"enter_m": 150.0, "exit_m": 150.0}, "enter_m must be < exit_m"),
        ({"confirm_fixes": 0}, "confirm_fixes"),
        ({"max_accuracy_m": -5.0}, "max_accuracy_m"),
        ({"scheduled_early_s": -1.0}, "scheduled_early_s"),
    ],
)
def test_params_reject_bad_values(changes: dict[str, Any], field: str) -> None:
    """An out-of-range knob is a ValueError naming the field and the rule."""
    with pytest.raises(ValueError, match=field):
        ArrivalParams(**changes)


def test_params_load_from_a_toml_table() -> None:
    """The [arrival] table overrides defaults and reports range errors as ParamsError."""
    params = from_mapping(ArrivalParams, {"enter_m": 50, "confirm_fixes": 3}, section="arrival")
    assert params == ArrivalParams(enter_m=50.0, confirm_fixes=3)
    with pytest.raises(ParamsError, match="enter_m must be < exit_m"):
        from_mapping(ArrivalParams, {"enter_m": 200}, section="arrival")
    with pytest.raises(ParamsError, match=r"arrival\.radius"):
        from_mapping(ArrivalParams, {"radius": 1}, section="arrival")


# Real trails ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fix:
    """One GeoLife point."""

    t_s: float
    lat: float
    lng: float


@dataclass(frozen=True)
class Dwell:
    """Fixes ``first..last`` (inclusive) stayed within DWELL_RADIUS_M for DWELL_MIN_S."""

    first: int
    last: int
    lat: float
    lng: float


@functools.cache
def trails() -> dict[str, tuple[Fix, ...]]:
    """The 22 GeoLife trajectories by ``user_id/traj_id``, in time order."""
    by_key: dict[str, list[Fix]] = {}
    with open(TRAILS_CSV, newline="") as f:
        for row in csv.DictReader(f):
            t_s = datetime.fromisoformat(row["ts_utc"].replace("Z", "+00:00")).timestamp()
            fix = Fix(t_s, float(row["lat"]), float(row["lon"]))
            by_key.setdefault(f"{row['user_id']}/{row['traj_id']}", []).append(fix)
    return {key: tuple(sorted(fixes, key=lambda f: f.t_s)) for key, fixes in by_key.items()}


@functools.cache
def dwells(key: str) -> tuple[Dwell, ...]:
    """Stay points (Li et al. 2008): from each fix, the run of fixes within DWELL_RADIUS_M
    of it; a run lasting DWELL_MIN_S is a dwell centred on its mean, and the scan jumps
    past it."""
    fixes, found, i = trails()[key], [], 0
    while i < len(fixes):
        j = i + 1
        while j < len(fixes) and distance_m(fixes[i], fixes[j].lat, fixes[j].lng) <= DWELL_RADIUS_M:
            j += 1
        if fixes[j - 1].t_s - fixes[i].t_s >= DWELL_MIN_S:
            run = fixes[i:j]
            lat = sum(f.lat for f in run) / len(run)
            lng = sum(f.lng for f in run) / len(run)
            found.append(Dwell(i, j - 1, lat, lng))
            i = j
        else:
            i += 1
    return tuple(found)


def distance_m(fix: Fix, lat: float, lng: float) -> float:
    """Great-circle distance from a fix to a point."""
    return haversine_m(fix.lat, fix.lng, lat, lng)


def noisy(fixes: tuple[Fix, ...], sd_m: float, seed: int) -> tuple[Fix, ...]:
    """The fixes, each moved by seeded Gaussian noise of ``sd_m`` east and north."""
    rng = random.Random(seed)
    return tuple(
        Fix(
            f.t_s,
            f.lat + rng.gauss(0, sd_m) / M_PER_DEG,
            f.lng + rng.gauss(0, sd_m) / (M_PER_DEG * math.cos(math.radians(f.lat))),
        )
        for f in fixes
    )


@dataclass(frozen=True)
class Variant:
    """How a trail is replayed: added noise, the accuracy each fix claims, and the radius
    within which (on the recorded trail) a visit must not see the fence flap."""

    name: str
    noise_sd_m: float
    accuracy_m: float
    visit_m: float

    def fixes(self, key: str) -> tuple[Fix, ...]:
        """The trail as the geofence sees it."""
        if self.noise_sd_m == 0:
            return trails()[key]
        return noisy(trails()[key], self.noise_sd_m, seed=KEYS.index(key))


KEYS = sorted(trails())
# The 68% radius of 2-D Gaussian noise is sd × sqrt(-2 ln 0.32) ≈ 1.51 sd; phones report
# accuracy as a 68% radius, so an honest claim for the noisy trail adds it in quadrature.
HONEST_ACCURACY_M = math.hypot(ACCURACY_M, NOISE_SD_M * math.sqrt(-2 * math.log(0.32)))
VARIANTS = [
    pytest.param(Variant("recorded", 0.0, ACCURACY_M, PARAMS.exit_m), id="recorded"),
    # 20 m noise claiming 15 m: a person lingering 130-150 m out can be "left" by noise
    # (FIELD-NOTES: claimed accuracy lies), so only the visit within 100 m must not flap.
    pytest.param(Variant("noisy", NOISE_SD_M, ACCURACY_M, 100.0), id="noisy"),
    pytest.param(Variant("honest", NOISE_SD_M, HONEST_ACCURACY_M, PARAMS.exit_m), id="honest"),
]


def replay_trail(
    fixes: tuple[Fix, ...], lat: float, lng: float, accuracy_m: float
) -> list[ArrivalEvent | None]:
    """The geofence events for a destination at (lat, lng) along a trail."""
    return replay([(distance_m(f, lat, lng), accuracy_m) for f in fixes])


def visit_start(key: str, dwell: Dwell, radius_m: float) -> int:
    """The first fix of the visit that ends with ``dwell``: just after the last fix of the
    recorded trail farther than ``radius_m`` from its centre."""
    fixes = trails()[key]
    start = dwell.first
    while start > 0 and distance_m(fixes[start - 1], dwell.lat, dwell.lng) <= radius_m:
        start -= 1
    return start


def test_trails_have_the_places_we_replay() -> None:
    """The fixture holds 22 trails with 108 dwells and 217 never-visited places near them."""
    assert len(KEYS) == 22
    assert sum(len(dwells(key)) for key in KEYS) == 108
    assert sum(len(far_places(key)) for key in KEYS) == 217


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("key", KEYS)
def test_one_arrival_per_visit_to_a_dwell_place(key: str, variant: Variant) -> None:
    """A visit to a dwell-centre destination holds at most one "arrived", no "left", and ends inside the fence."""
    # The visit is the approach within ``visit_m`` plus the dwell itself.
    fixes = variant.fixes(key)
    for dwell in dwells(key):
        events = replay_trail(fixes, dwell.lat, dwell.lng, variant.accuracy_m)
        visit = events[visit_start(key, dwell, variant.visit_m) : dwell.last + 1]
        assert "left" not in visit, dwell
        assert visit.count("arrived") <= 1, dwell
        last_event = [e for e in events[: dwell.last + 1] if e is not None][-1:]
        assert last_event == ["arrived"], dwell


@pytest.mark.parametrize("key", KEYS)
def test_honest_accuracy_never_fakes_a_departure(key: str) -> None:
    """On the noisy trail claiming its true accuracy, every "left" happens where the recorded trail really was beyond the exit radius."""
    variant = Variant("honest", NOISE_SD_M, HONEST_ACCURACY_M, PARAMS.exit_m)
    fixes, recorded = variant.fixes(key), trails()[key]
    for dwell in dwells(key):
        events = replay_trail(fixes, dwell.lat, dwell.lng, variant.accuracy_m)
        for fix, event in zip(recorded, events, strict=True):
            if event == "left":
                assert distance_m(fix, dwell.lat, dwell.lng) > PARAMS.exit_m, dwell


@functools.cache
def far_places(key: str) -> tuple[tuple[float, float], ...]:
    """Points 400 m from each of the trail's dwell centres (8 directions) that no recorded
    fix of the trail came within AWAY_M of: places it passed near but never went to."""
    fixes, candidates = trails()[key], []
    for d in dwells(key):
        for k in range(8):
            bearing = k * math.pi / 4
            candidates.append(
                (
                    d.lat + 400 * math.cos(bearing) / M_PER_DEG,
                    d.lng + 400 * math.sin(bearing) / (M_PER_DEG * math.cos(math.radians(d.lat))),
                )
            )
    lat = np.radians([f.lat for f in fixes])
    lng = np.radians([f.lng for f in fixes])

    def nearest_m(c_lat: float, c_lng: float) -> float:
        """Haversine from the candidate to the trail's nearest fix."""
        h = (
            np.sin((lat - math.radians(c_lat)) / 2) ** 2
            + np.cos(lat)
            * math.cos(math.radians(c_lat))
            * np.sin((lng - math.radians(c_lng)) / 2) ** 2
        )
        return float(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h)).min())

    return tuple(c for c in candidates if nearest_m(*c) > AWAY_M)


@pytest.mark.parametrize("variant", VARIANTS[:2])  # "honest" has the same fixes as "noisy"
@pytest.mark.parametrize("key", KEYS)
def test_no_arrival_where_the_person_never_went(key: str, variant: Variant) -> None:
    """A destination the recorded trail never came within 300 m of gets no event at all."""
    fixes = variant.fixes(key)
    for lat, lng in far_places(key):
        assert set(replay_trail(fixes, lat, lng, variant.accuracy_m)) == {None}, (lat, lng)


def _walk_in(job: ActiveJob, ts_ms: list[int]) -> list[str | None]:
    """Fixes at the door at the given times; the geofence event of each."""
    events = []
    for i, ts in enumerate(ts_ms):
        job, _, event = on_fix(
            job,
            worker_id=7,
            lat=job.info.lat,
            lng=job.info.lng,
            ts_ms=ts,
            accuracy_m=5.0,
            seq=i + 1,
            stats=EtaCalibration(),
            eta_params=EtaParams(),
            arrival_params=PARAMS,
        )
        events.append(event)
    return events


@pytest.mark.parametrize(
    ("status", "window_in_s", "expected"),
    [
        # assigned, an hour before the window: near the door is not an arrival ...
        ("assigned", 3600, [None, None, None]),
        # ... until the window opens less scheduled_early_s (1800 s): from then, 2 fixes
        ("assigned", 1800 + 5, [None, None, "arrived"]),
        # set off: the worker says they are coming, so the fence counts at once
        ("en_route", 3600, [None, "arrived", None]),
        # instant orders have no window: at once
        ("assigned", None, [None, "arrived", None]),
    ],
)
def test_scheduled_job_arrives_no_earlier_than_its_window_allows(
    status: str, window_in_s: int | None, expected: list[str | None]
) -> None:
    """A worker near a scheduled job's door long before its window has not arrived for it."""
    now = 1_800_000_000_000
    start = now + window_in_s * 1000 if window_in_s is not None else None
    job = ActiveJob(
        info=JobInfo(1, "shenzhen", 22.54, 114.03, status, start), graph=None, times=None
    )
    assert _walk_in(job, [now, now + 5_000, now + 10_000]) == expected


@pytest.mark.parametrize(
    ("status", "window_in_s", "expected"),
    [
        ("assigned", 3600, (3600, 3900)),  # planned ahead: due when the window opens
        ("assigned", 700, (700, 1000)),  # the window opens inside the range: held, width kept
        ("assigned", 300, (600, 900)),  # the drive is longer than the wait: unchanged
        ("en_route", 3600, (600, 900)),  # set out early: the live range, early or not
        ("assigned", None, (600, 900)),  # instant: no window
    ],
)
def test_an_assigned_scheduled_job_is_not_promised_before_its_window(
    status: str, window_in_s: int | None, expected: tuple[int, int]
) -> None:
    """While a scheduled job is only assigned, its ETA range starts no earlier than its window (keeping its width); en route or instant, the live range stands."""
    now = 1_800_000_000_000
    start = now + window_in_s * 1000 if window_in_s is not None else None
    info = JobInfo(1, "shenzhen", 22.54, 114.03, status, start)
    eta = {"p50_s": 600, "p90_s": 900, "method": "road", "base_s": 550}
    held = not_before_window(eta, info, now)
    assert (held["p50_s"], held["p90_s"], held["base_s"]) == (*expected, 550)


def test_the_position_update_of_an_assigned_scheduled_job_carries_the_held_range() -> None:
    """on_fix's update for a job planned an hour ahead says the window, not the drive."""
    now = 1_800_000_000_000
    job = ActiveJob(
        info=JobInfo(1, "shenzhen", 22.54, 114.03, "assigned", now + 3_600_000),
        graph=None,
        times=None,
    )
    _, update, _ = on_fix(
        job,
        worker_id=7,
        lat=22.545,
        lng=114.03,
        ts_ms=now,
        accuracy_m=10.0,
        seq=1,
        stats=EtaCalibration(),
        eta_params=EtaParams(),
        arrival_params=ArrivalParams(),
    )
    assert update is not None
    assert update["eta"]["p50_s"] == 3600
    assert update["eta"]["base_s"] < 600  # the drive itself is a few minutes

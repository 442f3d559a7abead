"""tracking.fixes on real noisy GPS: the GeoLife trails in tests/data/geolife replayed as fixes."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from geo.coords import EARTH_RADIUS_M, haversine_m
from tracking.fixes import Fix, FixParams, Track, Verdict, check

P = FixParams()
ACCURACY_M = 10.0  # GeoLife has no accuracy column; a typical phone GPS figure
TRAILS_CSV = Path(__file__).parent / "data" / "geolife" / "trails.csv"
INJECT_EVERY = 50
JUMP_M = 3_000.0


def _load() -> dict[str, list[tuple[int, float, float]]]:
    """Each trajectory ("user/traj") as its rows (ts_ms, lat, lng), in file order."""
    trails: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    with TRAILS_CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            ts_ms = int(datetime.fromisoformat(row["ts_utc"]).timestamp() * 1000)
            trails[f"{row['user_id']}/{row['traj_id']}"].append(
                (ts_ms, float(row["lat"]), float(row["lon"]))
            )
    return dict(trails)


TRAILS = _load()


def replay(
    rows: list[tuple[int, float, float]], jumps: frozenset[int] = frozenset()
) -> list[Verdict]:
    """Check each row as a fix (seq = index + 1, now = ts + 1 s); rows in ``jumps`` moved 3 km north."""
    track = Track()
    verdicts = []
    for i, (ts_ms, lat, lng) in enumerate(rows):
        if i in jumps:
            lat += JUMP_M / (EARTH_RADIUS_M * 0.017453292519943295)
        track, verdict = check(
            track, Fix(i + 1, ts_ms, lat, lng, ACCURACY_M), now_ms=ts_ms + 1000, params=P
        )
        verdicts.append(verdict)
    return verdicts


def jump_rows(rows: list[tuple[int, float, float]]) -> frozenset[int]:
    """Every 50th row (never the first, which would only set the anchor)."""
    return frozenset(range(INJECT_EVERY - 1, len(rows), INJECT_EVERY))


def test_fixture_has_the_documented_trails() -> None:
    """The fixture holds 22 trajectories and 26,959 points, as SOURCES.md says."""
    assert (len(TRAILS), sum(map(len, TRAILS.values()))) == (22, 26_959)


@pytest.mark.parametrize("trail", TRAILS)
def test_accepted_trail_never_exceeds_max_speed(trail: str) -> None:
    """Consecutive accepted fixes within the gap limit are never faster than max_speed_mps, except where the filter recovered."""
    # A recovery follows a run of consistent jumps; the track was reset there.
    verdicts = replay(TRAILS[trail])
    previous: Verdict | None = None
    for i, verdict in enumerate(verdicts):
        if not verdict.accepted:
            continue
        if previous is not None:
            a, b = previous.fix, verdict.fix
            dt_ms = b.ts_ms - a.ts_ms
            assert dt_ms >= 0
            distance_m = haversine_m(a.lat, a.lng, b.lat, b.lng)
            too_fast = distance_m * 1000 > P.max_speed_mps * max(dt_ms, 1000)
            if dt_ms <= P.speed_check_max_gap_ms and too_fast:
                run = verdicts[i - P.recover_after + 1 : i]
                assert [v.reason for v in run] == ["impossible_speed"] * (P.recover_after - 1)
        previous = verdict


@pytest.mark.parametrize("trail", TRAILS)
def test_real_trails_are_mostly_accepted(trail: str) -> None:
    """At least 95% of each real trajectory's fixes are accepted (measured: 99.7% at worst)."""
    verdicts = replay(TRAILS[trail])
    assert sum(v.accepted for v in verdicts) >= 0.95 * len(verdicts)
    assert {v.reason for v in verdicts} <= {None, "impossible_speed"}


def test_parked_periods_are_clamped() -> None:
    """Stationary stretches of the real trails produce clamped fixes."""
    clamped = sum(v.clamped for rows in TRAILS.values() for v in replay(rows))
    assert clamped > 0


def test_injected_jumps_are_rejected() -> None:
    """At least 99% of 3 km jumps injected every 50th point are rejected as impossible_speed."""
    # Counted over all trails (529 jumps): a jump right after a gap of more than a minute is
    # a plausible move (or, past 10 minutes, cannot be judged) and is accepted; the filter
    # then recovers after recover_after fixes. That happens twice in the fixture.
    injected = rejected = 0
    for rows in TRAILS.values():
        jumps = jump_rows(rows)
        verdicts = replay(rows, jumps)
        injected += len(jumps)
        rejected += sum(verdicts[i].reason == "impossible_speed" for i in jumps)
    assert rejected >= 0.99 * injected


@pytest.mark.parametrize("trail", TRAILS)
def test_injected_jumps_leave_the_rest_of_the_trail_alone(trail: str) -> None:
    """With jumps injected, the other points are accepted at the same rate (±1 point) as without."""
    rows = TRAILS[trail]
    jumps = jump_rows(rows)
    rest = [i for i in range(len(rows)) if i not in jumps]
    clean, injected = replay(rows), replay(rows, jumps)
    clean_rate = sum(clean[i].accepted for i in rest) / len(rest)
    injected_rate = sum(injected[i].accepted for i in rest) / len(rest)
    assert injected_rate == pytest.approx(clean_rate, abs=0.01)

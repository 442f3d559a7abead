"""safety.trail: the live-trail anomaly detectors as pure functions over fixes."""

from __future__ import annotations

from safety.trail import Anomaly, JobView, TrailParams, TrailState, segment_distance_m, step

P = TrailParams()
JOB = (22.5300, 114.0100)
M_LAT = 1 / 111_194.93  # degrees of latitude per metre


def _feed(
    job: JobView, fixes: list[tuple[int, float, float]], state: TrailState | None = None
) -> tuple[TrailState | None, list[Anomaly]]:
    out: list[Anomaly] = []
    for ts, lat, lng in fixes:
        state, found = step(state, job, ts, lat, lng, 10.0, P)
        out.extend(found)
    return state, out


def _en_route() -> JobView:
    return JobView(order_id=1, status="en_route", lat=JOB[0], lng=JOB[1])


def test_a_straight_trip_raises_nothing() -> None:
    """Driving 5 km straight to the job at 8 m/s: no stop, no deviation."""
    start = (JOB[0] - 5000 * M_LAT, JOB[1])
    fixes = [(i * 5000, start[0] + i * 40 * M_LAT, JOB[1]) for i in range(126)]
    assert _feed(_en_route(), fixes)[1] == []


def test_a_long_stop_on_the_way_fires_once() -> None:
    """Eleven minutes in one place 3 km from the job fire one stopped anomaly, not one per fix."""
    here = (JOB[0] - 3000 * M_LAT, JOB[1])
    fixes = [(i * 5000, here[0] + (i % 3) * 5 * M_LAT, here[1]) for i in range(11 * 12 + 1)]
    _, found = _feed(_en_route(), fixes)
    assert [a.kind for a in found] == ["stopped"]
    assert found[0].detail["stopped_s"] >= P.stop_after_s


def test_one_outlier_fix_does_not_end_a_stop() -> None:
    """A single multipath fix 300 m off in the middle of a stop does not restart its clock."""
    here = (JOB[0] - 3000 * M_LAT, JOB[1])
    fixes = [(i * 5000, here[0], here[1]) for i in range(11 * 12 + 1)]
    fixes[60] = (fixes[60][0], here[0] + 300 * M_LAT, here[1])
    assert [a.kind for a in _feed(_en_route(), fixes)[1]] == ["stopped"]


def test_heading_away_from_the_job_is_off_route() -> None:
    """Coming 2 km closer, then driving 2 km back away from the job for minutes: off_route."""
    start = (JOB[0] - 5000 * M_LAT, JOB[1])
    closer = [(i * 5000, start[0] + i * 40 * M_LAT, JOB[1]) for i in range(51)]
    t, lat = closer[-1][0], closer[-1][1]
    away = [(t + i * 5000, lat - i * 40 * M_LAT, JOB[1]) for i in range(1, 61)]
    _, found = _feed(_en_route(), closer + away)
    assert [a.kind for a in found] == ["off_route"]


def test_leaving_the_address_during_the_service_fires_after_the_delay() -> None:
    """In service, 500 m from the door for four minutes: left_site; two minutes would not be."""
    job = JobView(1, "in_service", JOB[0], JOB[1], since_ms=0, duration_s=7200)
    at_door = [(i * 5000, JOB[0], JOB[1]) for i in range(12)]
    away = [(60_000 + i * 5000, JOB[0] + 500 * M_LAT, JOB[1]) for i in range(1, 49)]
    state, found = _feed(job, at_door + away[:24])
    assert found == []
    _, found = _feed(job, away[24:], state)
    assert [a.kind for a in found] == ["left_site"]


def test_staying_long_past_the_duration_is_an_overstay() -> None:
    """A one-hour service: still at the door after 1 h 31 min fires overstay once."""
    job = JobView(1, "in_service", JOB[0], JOB[1], since_ms=0, duration_s=3600)
    fixes = [(m * 60_000, JOB[0], JOB[1]) for m in range(0, 100)]
    _, found = _feed(job, fixes)
    assert [(a.kind, a.ts_ms // 60_000) for a in found] == [("overstay", 91)]


def test_not_departing_in_time_for_a_scheduled_job() -> None:
    """10 km away with the window opening in 5 minutes, still not on the way: late_departure; an hour ahead: nothing."""
    home = (JOB[0] - 10_000 * M_LAT, JOB[1])
    job = JobView(1, "assigned", JOB[0], JOB[1], window_start_ms=3_600_000)
    assert _feed(job, [(0, *home)])[1] == []
    _, found = _feed(job, [(55 * 60_000, *home)])
    assert [a.kind for a in found] == ["late_departure"]


def test_a_new_status_starts_the_detectors_afresh() -> None:
    """The state is per order and status: arriving resets what the trip remembered."""
    s, _ = step(None, _en_route(), 0, JOB[0] - 0.01, JOB[1], 10.0, P)
    s2, _ = step(s, JobView(1, "arrived", JOB[0], JOB[1]), 1000, JOB[0], JOB[1], 10.0, P)
    assert (s2.status, s2.start) == ("arrived", None)


def test_segment_distance() -> None:
    """A point 100 m beside the middle of a 2 km segment is 100 m from it; past the end, from the end."""
    a, b = (22.5, 114.0), (22.5 + 2000 * M_LAT, 114.0)
    mid = (22.5 + 1000 * M_LAT, 114.0 + 100 / (111_194.93 * 0.9238795))
    assert abs(segment_distance_m(*mid, a, b) - 100) < 1
    assert abs(segment_distance_m(22.5 + 2500 * M_LAT, 114.0, a, b) - 500) < 1

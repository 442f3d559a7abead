"""Live-trail anomaly detectors: pure functions over a worker's fix stream.

:func:`step` takes the detectors' state, the job as tracking knows it and one fix, and
returns the new state and the anomalies the fix reveals. No I/O, no clock: time is the
fix's. The parameters are ``[trail]`` in params/doorstep.toml; their precision and
recall on real GeoLife trails with injected anomalies are measured by
``python -m benchmarks.anomalies`` (benchmarks/README.md).

Which detector runs depends on the order's status:

- ``assigned`` with a window (a scheduled job): **late_departure** once the worker,
  still not on the way, could no longer arrive before the window opens plus a grace
  even at ``depart_speed_mps`` in a straight line.
- ``en_route``: **stopped** — within ``stop_radius_m`` of one point for
  ``stop_after_s`` (not near the job); **off_route** — outside the corridor from where
  the trip began to the job (half-width ``corridor_m`` plus ``corridor_ratio`` of the
  trip's straight length), or ``regress_m`` farther from the job than the closest it
  has been, for ``off_route_after_s``.
- ``arrived`` / ``in_service``: **left_site** — farther than ``site_radius_m`` (plus
  the fix's accuracy) from the address for ``leave_after_s``; **overstay** — still at
  the address ``overstay_factor`` × the service's duration plus ``overstay_margin_s``
  after arriving.

Each fires once per episode (a stop, an excursion, an absence), and again only after
the episode ended (moved on, back in the corridor, back on site).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from geo.coords import haversine_m

AnomalyKind = Literal["stopped", "off_route", "left_site", "overstay", "late_departure"]
_M_PER_DEG = 111_194.93
BEST_STEP_M = 25.0


@dataclass(frozen=True, slots=True)
class TrailParams:
    """The detectors' thresholds (section ``[trail]``)."""

    enabled: bool = True
    stop_radius_m: float = 80.0
    stop_after_s: float = 600.0
    near_job_m: float = 300.0
    corridor_m: float = 600.0
    corridor_ratio: float = 0.5
    regress_m: float = 1000.0
    off_route_after_s: float = 60.0
    site_radius_m: float = 200.0
    leave_after_s: float = 180.0
    overstay_factor: float = 1.0
    overstay_margin_s: float = 1800.0
    depart_speed_mps: float = 8.0
    depart_grace_s: float = 600.0

    def __post_init__(self) -> None:
        for name in (
            "stop_radius_m",
            "stop_after_s",
            "corridor_m",
            "regress_m",
            "site_radius_m",
            "depart_speed_mps",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in (
            "near_job_m",
            "corridor_ratio",
            "off_route_after_s",
            "leave_after_s",
            "overstay_factor",
            "overstay_margin_s",
            "depart_grace_s",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True, slots=True)
class JobView:
    """The job as the detectors need it: where, what status since when, how long."""

    order_id: int
    status: str
    lat: float
    lng: float
    since_ms: int | None = None  # when the site time began (arrival), for overstay
    duration_s: float | None = None  # the service's expected duration
    window_start_ms: int | None = None  # a scheduled job's window


@dataclass(frozen=True, slots=True)
class TrailState:
    """What the detectors remember of one worker's current job and status."""

    order_id: int
    status: str
    start: tuple[float, float] | None = None  # where the trip (en route) began
    best_m: float = math.inf  # the closest to the job so far on this trip
    trip_m: float = 0.0  # the trip's straight length, start to job
    anchor: tuple[float, float, int] | None = None  # the current dwell: lat, lng, since
    outside: int = 0  # consecutive fixes outside the dwell (one alone is a GPS outlier)
    off_since_ms: int | None = None
    away_since_ms: int | None = None
    fired: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly found at a fix."""

    kind: AnomalyKind
    order_id: int
    ts_ms: int
    lat: float
    lng: float
    message: str
    detail: dict[str, Any]


def _xy(lat: float, lng: float, lat0: float, lng0: float) -> tuple[float, float]:
    return (lng - lng0) * _M_PER_DEG * math.cos(math.radians(lat0)), (lat - lat0) * _M_PER_DEG


def segment_distance_m(
    lat: float, lng: float, a: tuple[float, float], b: tuple[float, float]
) -> float:
    """Distance from a point to the segment a–b (local flat projection; fine within a city)."""
    px, py = _xy(lat, lng, a[0], a[1])
    bx, by = _xy(b[0], b[1], a[0], a[1])
    length2 = bx * bx + by * by
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, (px * bx + py * by) / length2))
    return math.hypot(px - t * bx, py - t * by)


def step(
    state: TrailState | None,
    job: JobView,
    ts_ms: int,
    lat: float,
    lng: float,
    accuracy_m: float,
    params: TrailParams,
) -> tuple[TrailState, list[Anomaly]]:
    """The detectors after one fix of the worker holding ``job``."""
    if state is None or state.order_id != job.order_id or state.status != job.status:
        state = TrailState(job.order_id, job.status)
    d_job = haversine_m(lat, lng, job.lat, job.lng)
    out: list[Anomaly] = []
    if job.status == "assigned":
        state = _late_departure(state, job, ts_ms, lat, lng, d_job, params, out)
    elif job.status == "en_route":
        state = _stopped(state, job, ts_ms, lat, lng, d_job, params, out)
        state = _off_route(state, job, ts_ms, lat, lng, d_job, params, out)
    elif job.status in ("arrived", "in_service"):
        state = _left_site(state, job, ts_ms, lat, lng, d_job, accuracy_m, params, out)
        state = _overstay(state, job, ts_ms, lat, lng, d_job, accuracy_m, params, out)
    return state, out


def _fire(
    state: TrailState, out: list[Anomaly], anomaly: Anomaly, *, once_key: str | None = None
) -> TrailState:
    out.append(anomaly)
    return replace(state, fired=state.fired | {once_key or anomaly.kind})


def _late_departure(
    s: TrailState,
    job: JobView,
    ts: int,
    lat: float,
    lng: float,
    d_job: float,
    p: TrailParams,
    out: list[Anomaly],
) -> TrailState:
    if job.window_start_ms is None or "late_departure" in s.fired or d_job <= p.near_job_m:
        return s
    need_ms = d_job / p.depart_speed_mps * 1000
    late_by_s = (ts + need_ms - job.window_start_ms) / 1000
    if late_by_s <= p.depart_grace_s:
        return s
    return _fire(
        s,
        out,
        Anomaly(
            "late_departure",
            job.order_id,
            ts,
            lat,
            lng,
            f"未按时出发：距上门地点 {d_job / 1000:.1f} km，预计迟到 {late_by_s / 60:.0f} 分钟 / "
            f"not on the way: {d_job / 1000:.1f} km off, about {late_by_s / 60:.0f} min late",
            {"distance_m": round(d_job), "late_by_s": round(late_by_s)},
        ),
    )


def _stopped(
    s: TrailState,
    job: JobView,
    ts: int,
    lat: float,
    lng: float,
    d_job: float,
    p: TrailParams,
    out: list[Anomaly],
) -> TrailState:
    a = s.anchor
    if a is None:
        return replace(s, anchor=(lat, lng, ts), outside=0)
    if haversine_m(lat, lng, a[0], a[1]) > p.stop_radius_m:
        if s.outside + 1 < 2:  # a single fix out may be multipath: wait for the next
            return replace(s, outside=s.outside + 1)
        fired = s.fired - {"stopped"} if "stopped" in s.fired else s.fired
        return replace(s, anchor=(lat, lng, ts), outside=0, fired=fired)
    if s.outside:
        s = replace(s, outside=0)
    stopped_s = (ts - a[2]) / 1000
    if "stopped" in s.fired or stopped_s < p.stop_after_s or d_job <= p.near_job_m:
        return s
    return _fire(
        s,
        out,
        Anomaly(
            "stopped",
            job.order_id,
            ts,
            a[0],
            a[1],
            f"途中停留 {stopped_s / 60:.0f} 分钟 / stopped {stopped_s / 60:.0f} min on the way",
            {"stopped_s": round(stopped_s), "distance_m": round(d_job)},
        ),
    )


def _off_route(
    s: TrailState,
    job: JobView,
    ts: int,
    lat: float,
    lng: float,
    d_job: float,
    p: TrailParams,
    out: list[Anomaly],
) -> TrailState:
    if s.start is None:
        trip_m = haversine_m(lat, lng, job.lat, job.lng)
        return replace(s, start=(lat, lng), best_m=d_job, trip_m=trip_m)
    # The closest so far, kept to BEST_STEP_M (the regression rule's scale is a
    # kilometre): approaching the job makes a new state every few fixes, not every fix.
    best = d_job if d_job < s.best_m - BEST_STEP_M else s.best_m
    regress = d_job - best
    off_m = segment_distance_m(lat, lng, s.start, (job.lat, job.lng))
    half_width = p.corridor_m + p.corridor_ratio * s.trip_m
    outside = off_m > half_width or regress > p.regress_m
    if not outside:  # the common case: a new state only when something changes
        if best == s.best_m and s.off_since_ms is None and "off_route" not in s.fired:
            return s
        return replace(s, best_m=best, off_since_ms=None, fired=s.fired - {"off_route"})
    since = s.off_since_ms if s.off_since_ms is not None else ts
    s = replace(s, best_m=best, off_since_ms=since)
    if "off_route" in s.fired or (ts - since) / 1000 < p.off_route_after_s:
        return s
    return _fire(
        s,
        out,
        Anomaly(
            "off_route",
            job.order_id,
            ts,
            lat,
            lng,
            f"偏离路线 {off_m:.0f} 米 / off the route to the job by {off_m:.0f} m",
            {
                "off_m": round(off_m),
                "corridor_m": round(half_width),
                "regress_m": round(regress),
                "distance_m": round(d_job),
            },
        ),
    )


def _left_site(
    s: TrailState,
    job: JobView,
    ts: int,
    lat: float,
    lng: float,
    d_job: float,
    accuracy_m: float,
    p: TrailParams,
    out: list[Anomaly],
) -> TrailState:
    if d_job <= p.site_radius_m + accuracy_m:
        if s.away_since_ms is None and "left_site" not in s.fired:
            return s
        return replace(s, away_since_ms=None, fired=s.fired - {"left_site"})
    since = s.away_since_ms if s.away_since_ms is not None else ts
    s = replace(s, away_since_ms=since)
    away_s = (ts - since) / 1000
    if "left_site" in s.fired or away_s < p.leave_after_s:
        return s
    return _fire(
        s,
        out,
        Anomaly(
            "left_site",
            job.order_id,
            ts,
            lat,
            lng,
            f"服务中离开上门地点 {d_job:.0f} 米 / left the job address during the service "
            f"({d_job:.0f} m away)",
            {"distance_m": round(d_job), "away_s": round(away_s)},
        ),
    )


def _overstay(
    s: TrailState,
    job: JobView,
    ts: int,
    lat: float,
    lng: float,
    d_job: float,
    accuracy_m: float,
    p: TrailParams,
    out: list[Anomaly],
) -> TrailState:
    if job.since_ms is None or job.duration_s is None or "overstay" in s.fired:
        return s
    if d_job > p.site_radius_m + accuracy_m:
        return s
    on_site_s = (ts - job.since_ms) / 1000
    limit_s = job.duration_s * p.overstay_factor + p.overstay_margin_s
    if on_site_s <= limit_s:
        return s
    return _fire(
        s,
        out,
        Anomaly(
            "overstay",
            job.order_id,
            ts,
            lat,
            lng,
            f"在上门地点停留 {on_site_s / 60:.0f} 分钟，超出服务时长 / on site "
            f"{on_site_s / 60:.0f} min, long past the service's duration",
            {"on_site_s": round(on_site_s), "limit_s": round(limit_s)},
        ),
    )

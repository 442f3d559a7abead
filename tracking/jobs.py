"""A worker's active job as tracking sees it: where to, how long, arrived yet. Pure.

Dispatch tells tracking which job a worker holds (:class:`JobInfo`); for every live fix
of that worker :func:`on_fix` steps the arrival geofence, computes the ETA range and
builds the update the order's watchers receive.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from geo.coords import haversine_m
from geo.roadgraph import RoadGraph
from tracking.eta import (
    DestinationTimes,
    EtaParams,
    destination_times,
    eta_range,
    eta_s,
    straight_eta_s,
)
from tracking.eta_calibration import EtaCalibration
from tracking.geofence import ArrivalParams, ArrivalState, step

OUTSIDE = ArrivalState(inside=False, streak=0)

# While the order is in one of these, the worker's position goes to its watchers.
SHARED_STATUSES = frozenset({"assigned", "en_route", "arrived", "in_service"})


@dataclass(frozen=True, slots=True)
class JobInfo:
    """The job a worker holds, as dispatch reports it."""

    order_id: int
    city_id: str
    lat: float
    lng: float
    status: str
    window_start_ms: int | None = None  # a scheduled order's window (epoch ms)
    arrived_ms: int | None = None  # when the worker arrived (epoch ms), once they have
    duration_s: int | None = None  # the service's expected duration


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """Tracking's state for one active job."""

    info: JobInfo
    graph: RoadGraph | None
    times: DestinationTimes | None
    arrival: ArrivalState = OUTSIDE


def start_job(info: JobInfo, graph: RoadGraph | None) -> ActiveJob:
    """Prepare a job: one reverse shortest-path search on the city's road graph."""
    times = destination_times(graph, info.lat, info.lng) if graph is not None else None
    return ActiveJob(info=info, graph=graph, times=times)


def estimate(
    job: ActiveJob, lat: float, lng: float, stats: EtaCalibration, params: EtaParams
) -> dict[str, Any]:
    """The ETA range from (lat, lng) to the job, the learned calibration applied."""
    if job.times is not None and job.graph is not None:
        base, method = eta_s(job.times, job.graph, lat, lng, params)
    else:
        base = straight_eta_s(haversine_m(lat, lng, job.info.lat, job.info.lng), params)
        method = "straight"
    r = eta_range(base, stats, params)
    return {
        "p50_s": round(r.p50_s),
        "p90_s": round(r.p90_s),
        "method": method,
        "base_s": round(base),
    }


def not_before_window(eta: dict[str, Any], info: JobInfo, now_ms: int) -> dict[str, Any]:
    """``eta`` held to a scheduled job's window: while the order is only ``assigned`` (the
    worker has not set out) and its window opens later than the range says, p50 and p90
    are at least the time until the window opens — the worker is due then, not as soon as
    they could drive there (a plan assigns scheduled jobs hours ahead, a chained job can
    end early) — and p90 keeps the range's width beyond it (the drive's uncertainty).
    ``base_s`` stays the drive. Once the worker sets out (``en_route``) the live range
    applies, early or not. Pure."""
    start = info.window_start_ms
    if start is None or info.status != "assigned":
        return eta
    until_s = round((start - now_ms) / 1000)
    if until_s <= eta["p50_s"]:
        return eta
    return {**eta, "p50_s": until_s, "p90_s": until_s + eta["p90_s"] - eta["p50_s"]}


def on_fix(
    job: ActiveJob,
    *,
    worker_id: int,
    lat: float,
    lng: float,
    ts_ms: int,
    accuracy_m: float,
    seq: int,
    stats: EtaCalibration,
    eta_params: EtaParams,
    arrival_params: ArrivalParams,
) -> tuple[ActiveJob, dict[str, Any] | None, str | None]:
    """Step the job with one live fix: (new job state, update for watchers or None, event).

    The event is ``"arrived"`` or ``"left"`` from the arrival geofence, else None. No
    update is produced while the order is not in a status that shares the position.
    A scheduled job still only assigned does not step the geofence before its window
    opens less ``arrival_params.scheduled_early_s``: being near the door then is not an
    arrival (the fence counts from that moment, so a worker waiting there arrives then).
    """
    distance_m = haversine_m(lat, lng, job.info.lat, job.info.lng)
    start = job.info.window_start_ms
    too_early = (
        start is not None
        and job.info.status == "assigned"
        and ts_ms < start - arrival_params.scheduled_early_s * 1000
    )
    if too_early:
        arrival, event = OUTSIDE, None
    else:
        arrival, event = step(job.arrival, distance_m, accuracy_m, arrival_params)
    if arrival is not job.arrival:
        job = replace(job, arrival=arrival)
    if job.info.status not in SHARED_STATUSES:
        return job, None, event
    update = {
        "type": "position",
        "order_id": job.info.order_id,
        "worker_id": worker_id,
        "lat": round(lat, 6),
        "lng": round(lng, 6),
        "ts_ms": ts_ms,
        "accuracy_m": accuracy_m,
        "seq": seq,
        "distance_m": round(distance_m),
        "eta": not_before_window(estimate(job, lat, lng, stats, eta_params), job.info, ts_ms)
        if job.info.status in ("assigned", "en_route")
        else None,
    }
    return job, update, event

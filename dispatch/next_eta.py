"""The customer's ETA of a chained order (接力单) while its worker finishes the job before.

A chained order (docs/dispatch.md#chained-orders) is ``assigned`` while its worker is
still on site at their current job (``store.active_for_worker``: the job furthest
along). Tracking follows that job, so the road ETA from the worker's position would
promise the customer a worker who has not left yet. Instead the order socket says the
worker is finishing a job nearby, when they are expected to leave — the current job's
end: the worker's own estimate ("about N minutes left", dispatch/time_left.py), else
the arrival plus the service's duration, the same end as ``time_left.ENDS_AT`` — and the
ETA range = the time until then + the road ETA range from that job's address to the
customer (``tracking.jobs.estimate``, calibrated for the hour of departure). Neither the
other job's address nor the worker's position there is shown (the other customer's home).
Once the job before ends tracking takes up this one and its live ETA takes over.

The wire shapes are msgspec ``Struct``\\s (docs/protocol.md: the snapshot's ``chained``
and the ``chained`` message); :func:`chained_eta` is pure; :func:`for_order` reads the
job before; :func:`push_after_estimate` tells the next customer of a new estimate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from dispatch import store
from dispatch.models import Order
from dispatch.publisher import Etas, Publisher
from doorstep.db import Conn
from doorstep.stores import Stores
from geo.coords import haversine_m
from tracking.eta import EtaParams
from tracking.jobs import JobInfo, estimate, start_job

ON_SITE = frozenset({"arrived", "in_service"})
DISTANCE_STEP_M = 100  # the distance to the job before is shown rounded to this


class Eta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An ETA range as every ETA on the order socket carries it (docs/protocol.md)."""

    p50_s: int
    p90_s: int
    method: Literal["road", "straight"]
    base_s: int


class Chained(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The worker is finishing a job nearby: when they leave it and the drive from it."""

    departs_at: datetime  # the job before's expected end
    departs_in_s: int  # 0 once that end has passed (leaving any moment)
    by: Literal["worker", "duration"]  # the worker's estimate, or arrival + duration
    distance_m: int  # from the job before to the customer, straight, rounded to 100 m
    drive: Eta  # the road ETA range from the job before to the customer


class ChainedMsg(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="chained", tag_field="type"
):
    """Pushed on the order's channel when the expected departure changes (a new estimate
    of the job before); ``eta`` is the whole wait, as in the snapshot."""

    order_id: int
    worker_id: int
    chained: Chained
    eta: Eta


def chained_eta(
    drive: dict[str, Any],
    ends_at: datetime,
    now: datetime,
    *,
    by_worker: bool,
    distance_m: float,
    window_start: datetime | None = None,
) -> tuple[Chained, Eta]:
    """The ``chained`` block and the whole ETA range: the time until ``ends_at`` (none once
    it has passed) plus the ``drive`` range (``tracking.jobs.estimate``'s dict), and for a
    scheduled order not before its ``window_start`` (``tracking.jobs.not_before_window``:
    a job before that ends early does not bring the booked window forward). Pure."""
    wait_s = max(0, round((ends_at - now).total_seconds()))
    leg = Eta(
        p50_s=int(drive["p50_s"]),
        p90_s=int(drive["p90_s"]),
        method=drive["method"],
        base_s=int(drive["base_s"]),
    )
    block = Chained(
        departs_at=ends_at,
        departs_in_s=wait_s,
        by="worker" if by_worker else "duration",
        distance_m=int(round(distance_m / DISTANCE_STEP_M) * DISTANCE_STEP_M),
        drive=leg,
    )
    p50_s, p90_s = wait_s + leg.p50_s, wait_s + leg.p90_s
    if window_start is not None:
        until_s = max(0, round((window_start - now).total_seconds()))
        if until_s > p50_s:  # as tracking.jobs.not_before_window: the range's width kept
            p50_s, p90_s = until_s, until_s + p90_s - p50_s
    whole = Eta(p50_s=p50_s, p90_s=p90_s, method=leg.method, base_s=wait_s + leg.base_s)
    return block, whole


async def job_before(db: Conn, order: Order) -> Order | None:
    """The job on site that ``order`` waits for: its one worker's current job when that is
    another order, arrived or in service; None if ``order`` is not such a chained one."""
    if order.status != "assigned" or order.worker_id is None or order.crew:
        return None
    current = await store.active_for_worker(db, order.worker_id)
    if current is None or current.id == order.id or current.status not in ON_SITE:
        return None
    return current


async def for_order(
    db: Conn, etas: Etas, params: EtaParams, order: Order, now: datetime
) -> tuple[Chained, Eta] | None:
    """The chained block and the whole ETA for ``order`` if its worker is still on the job
    before it; else None (the usual live ETA applies)."""
    before = await job_before(db, order)
    if before is None:
        return None
    ends_at = before.ends_at
    if ends_at is None:
        return None
    departs_ms = int(max(ends_at, now).timestamp() * 1000)
    job = start_job(
        JobInfo(order.id, order.city_id, order.lat, order.lng, order.status),
        await etas.graph_for(order.city_id),
    )
    drive = estimate(job, before.lat, before.lng, etas.stats_for(order.city_id, departs_ms), params)
    distance = haversine_m(before.lat, before.lng, order.lat, order.lng)
    return chained_eta(
        drive,
        ends_at,
        now,
        by_worker=before.expected_end_at is not None,
        distance_m=distance,
        window_start=order.window_start if order.kind == "scheduled" else None,
    )


async def waiting_for(db: Conn, job: Order) -> Order | None:
    """The chained order waiting for ``job`` (on site): its worker's other order still
    ``assigned``, if any (a worker holds at most one such, docs/dispatch.md)."""
    if job.worker_id is None or job.status not in ON_SITE:
        return None
    held = await store.list_for(
        db,
        customer_id=None,
        worker_id=job.worker_id,
        city_id=None,
        status="assigned",
        before_id=2**63 - 1,
        limit=2,
    )
    return next((o for o in held if o.id != job.id and not o.crew), None)


async def push_after_estimate(
    stores: Stores, tracking: Publisher, job: Order, now: datetime
) -> bool:
    """After a new estimate of ``job``'s end, tell the watchers of the chained order
    waiting for it (a ``chained`` message); False if there is none."""
    waiting = await waiting_for(stores.pool, job)
    if waiting is None or waiting.worker_id is None:
        return False
    got = await for_order(stores.pool, tracking.eta, tracking.eta_params, waiting, now)
    if got is None:
        return False
    block, eta = got
    message = ChainedMsg(order_id=waiting.id, worker_id=waiting.worker_id, chained=block, eta=eta)
    await tracking.publish_order(waiting.city_id, waiting.id, encode(message))
    return True


def encode(value: msgspec.Struct) -> Any:
    """A wire struct as plain JSON-ready data (for the snapshot's dict and orjson)."""
    return msgspec.to_builtins(value)

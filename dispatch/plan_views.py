"""What workers and dispatchers read of a stored day plan (REST and the ``plan`` message).

A worker sees their own route in order with expected arrival, start and departure
times; like everywhere else, the exact address and the door only while they hold the
job (assigned to completion + 30 min), otherwise the area (~100 m). Stops of orders
cancelled or failed since the plan was stored are left out. Dispatchers see every
route and the jobs that fit nowhere (``dropped``), with exact positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from dispatch import service, store
from dispatch.lifecycle import WITH_WORKER
from dispatch.plan_store import PlannedRoute, StoredPlan
from dispatch.service import Caller
from doorstep.stores import Stores

HIDDEN = frozenset({"cancelled", "failed"})


@dataclass(frozen=True, slots=True)
class StopView:
    """One stop of a worker's day, in order."""

    seq: int
    order_id: int
    status: str
    service_code: str
    window_start: datetime | None
    window_end: datetime | None
    arrival_at: datetime  # expected arrival
    start_at: datetime  # expected start of service (waits if early for the window)
    departure_at: datetime
    slack_s: int  # how much later this stop could start without breaking a later one
    duration_min: int
    lat: float
    lng: float
    address_detail: str  # only while the worker holds the job


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """A worker's day: stops in order. ``version`` None: no plan for that day yet."""

    worker_id: int
    city_id: str
    date: date
    version: int | None
    planned_at: datetime | None
    stops: list[StopView]
    breaks: list[dict[str, Any]]
    travel_s: int
    distance_m: int

    def to_json(self) -> dict[str, Any]:
        """As JSON-ready builtins (for the socket message)."""
        out: dict[str, Any] = orjson.loads(orjson.dumps(self))
        return out


@dataclass(frozen=True, slots=True)
class DroppedView:
    """A job the plan could not fit anywhere, and the planner's reason."""

    order_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class CityPlan:
    """Every worker's route of a city's day, with what did not fit."""

    city_id: str
    date: date
    version: int | None
    kind: str | None  # solve (a full re-plan) or insert (a booking fitted in)
    reason: str
    planned_at: datetime | None
    objective: int
    solve_ms: int
    routes: list[WorkerPlan]
    dropped: list[DroppedView]


async def _stops(stores: Stores, route: PlannedRoute | None, viewer: Caller) -> list[StopView]:
    if route is None:
        return []
    orders = await store.by_ids(stores.pool, [s.order_id for s in route.stops])
    out: list[StopView] = []
    for s in route.stops:
        order = orders.get(s.order_id)
        if order is None or order.status in HIDDEN:
            continue
        await service.audit_reveal(stores, order, viewer)
        seen = service.view(order, viewer)
        out.append(
            StopView(
                seq=len(out),
                order_id=order.id,
                status=order.status,
                service_code=order.service_code,
                window_start=order.window_start,
                window_end=order.window_end,
                arrival_at=s.arrival_at,
                start_at=s.start_at,
                departure_at=s.departure_at,
                slack_s=s.slack_s,
                duration_min=order.duration_min,
                lat=seen.lat,
                lng=seen.lng,
                address_detail=seen.address_detail,
            )
        )
    return out


async def worker_plan(
    stores: Stores,
    plan: StoredPlan | None,
    worker_id: int,
    *,
    viewer: Caller,
    city_id: str = "",
    day: date | None = None,
) -> WorkerPlan:
    """The worker's route in ``plan`` as ``viewer`` may see it."""
    if plan is None:
        assert day is not None
        return WorkerPlan(worker_id, city_id, day, None, None, [], [], 0, 0)
    route = plan.route_of(worker_id)
    return WorkerPlan(
        worker_id=worker_id,
        city_id=plan.city_id,
        date=plan.plan_date,
        version=plan.version,
        planned_at=plan.created_at,
        stops=await _stops(stores, route, viewer),
        breaks=route.breaks if route else [],
        travel_s=route.travel_s if route else 0,
        distance_m=route.distance_m if route else 0,
    )


async def city_plan(
    stores: Stores, plan: StoredPlan | None, *, city_id: str, day: date, viewer: Caller
) -> CityPlan:
    """Every route of the city's plan (staff)."""
    if plan is None:
        return CityPlan(city_id, day, None, None, "", None, 0, 0, [], [])
    routes = [await worker_plan(stores, plan, r.worker_id, viewer=viewer) for r in plan.routes]
    dropped_ids = [int(d["order_id"]) for d in plan.dropped]
    orders = await store.by_ids(stores.pool, dropped_ids)
    dropped = [
        DroppedView(int(d["order_id"]), str(d["reason"]))
        for d in plan.dropped
        if int(d["order_id"]) in orders
        and orders[int(d["order_id"])].status not in HIDDEN | {"completed"}
        and orders[int(d["order_id"])].status not in WITH_WORKER
    ]
    return CityPlan(
        city_id=plan.city_id,
        date=plan.plan_date,
        version=plan.version,
        kind=plan.kind,
        reason=plan.reason,
        planned_at=plan.created_at,
        objective=plan.objective,
        solve_ms=plan.solve_ms,
        routes=routes,
        dropped=dropped,
    )

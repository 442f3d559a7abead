"""Active reassignment: jobs whose worker is predicted to miss the window, or went quiet.

Every ``[engine] risk_every_s`` the engine looks at each held job not yet on site
(``assigned``: the worker has not set off; ``en_route``). From the worker's live
position it computes the ETA range to the door (the road ETA with the learned bias,
as the customer sees it) and judges it with :func:`judge` (pure):

- **stale**: no fix for ``risk_stale_s`` — the worker's phone is gone;
- **late**: now + the ETA's p90 is past the deadline (a scheduled order's window end;
  an instant order's latest start, booking + ``[matching] instant_sla_s``).

What is done about it depends on how far the job is:

- ``assigned`` and the worker stale, or late even by the ETA's p50: **reassign** — the
  order goes back to dispatch (``unassign`` by the system, with the reason), the worker
  is kept away from it for the offers' cooldown, and the engine offers it again;
- otherwise (late only by the p90, or already ``en_route``): **alert** the city's
  dispatchers (``late_predicted`` / ``worker_stale``, dispatch/alerts.py) with the
  reason, once per order and kind.

A crew order (docs/dispatch.md#crews) is judged member by member: every member not on
site yet, also once the order is ``arrived`` (a crew-mate there first), from their own
fix; the reason names the member. Reassigning unassigns the whole crew (the order is
offered to a new crew) and keeps that member away; on an ``arrived`` crew order a late or
silent member is alerted on.

A chained job (docs/dispatch.md#chained-orders), held while the worker's job on site
lasts, adds the time left of that job (its expected end) to the ETA range.

Pinned orders are only alerted on. The existing rule that an ``assigned`` worker silent
for ``stale_reassign_s`` loses the job (engine) stays; this one reacts sooner and also
to lateness.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dispatch import alerts, offers, service, store
from dispatch.publisher import Publisher
from dispatch.service import Caller
from dispatch.time_left import ends_at
from doorstep.stores import Stores
from geo.coords import haversine_m
from tracking import positions
from tracking.eta import EtaParams, destination_times, eta_range, eta_s, straight_eta_s

SYSTEM = Caller("system", None)
HELD_BEFORE_SITE = ("assigned", "en_route")


@dataclass(frozen=True, slots=True)
class Risk:
    """What to do about one held job, and why (the reason names the numbers)."""

    kind: Literal["late_predicted", "worker_stale"]
    action: Literal["reassign", "alert"]
    reason: str


def judge(
    *,
    status: str,
    now_s: float,
    deadline_s: float,
    p50_s: float | None,
    p90_s: float | None,
    fix_age_s: float | None,
    stale_s: float,
    pinned: bool = False,
) -> Risk | None:
    """The verdict on one held job (None: fine). Pure."""
    can_move = status == "assigned" and not pinned
    if fix_age_s is None or fix_age_s > stale_s:
        heard = "never" if fix_age_s is None else f"{fix_age_s:.0f} s ago"
        return Risk(
            "worker_stale",
            "reassign" if can_move else "alert",
            f"the worker's last fix was {heard} (limit {stale_s:.0f} s)",
        )
    if p50_s is None or p90_s is None or now_s + p90_s <= deadline_s:
        return None
    late_by = (now_s + p90_s - deadline_s) / 60
    reason = (
        f"predicted to miss the window: ETA {p50_s / 60:.0f}–{p90_s / 60:.0f} min, "
        f"the p90 {late_by:.0f} min past the deadline"
    )
    sure = now_s + p50_s > deadline_s
    return Risk("late_predicted", "reassign" if can_move and sure else "alert", reason)


@dataclass(frozen=True, slots=True)
class RiskParams:
    """The knobs active reassignment reads (from ``[engine]``, ``[matching]``, ``[offers]``)."""

    stale_s: float
    instant_sla_s: int
    cooldown_s: int


async def check(
    stores: Stores,
    tracking: Publisher,
    city_id: str,
    now: datetime,
    params: RiskParams,
) -> dict[str, int]:
    """Judge every held job of the city not yet on site; reassign or alert. Counts by action."""
    rows = await stores.pool.fetch(
        "SELECT o.id, coalesce(c.worker_id, o.worker_id) AS worker_id, o.status, o.lat, o.lng, "
        "o.created_at, o.window_end, o.pinned, c.worker_id AS member, "
        # A chained job (docs/dispatch.md#chained-orders) waits for the worker's job on
        # site: its expected end (the worker's estimate, else the service's duration),
        # when they set off at the earliest.
        f"(SELECT max({ends_at('n')}) FROM orders n "
        "WHERE n.worker_id = o.worker_id AND n.id <> o.id AND o.crew_size = 1 "
        "AND n.status IN ('arrived', 'in_service')) AS busy_until FROM orders o "
        "LEFT JOIN order_crew c ON c.order_id = o.id AND o.crew_size > 1 "
        "AND c.released_at IS NULL AND c.arrived_at IS NULL "
        "WHERE o.city_id = $1 AND o.worker_id IS NOT NULL AND (o.status = ANY($2) "
        "OR (o.crew_size > 1 AND o.status = 'arrived' AND c.worker_id IS NOT NULL)) "
        "ORDER BY o.id, c.seat",
        city_id,
        list(HELD_BEFORE_SITE),
    )
    done = {"reassign": 0, "alert": 0}
    if not rows:
        return done
    live = await positions.read_many(
        stores.redis, stores.keys, city_id, list({r["worker_id"] for r in rows})
    )
    graph = await tracking.eta.graph_for(city_id)
    eta_params: EtaParams = tracking.eta_params
    now_s = now.timestamp()
    stats = tracking.eta.stats_for(city_id, int(now_s * 1000))
    for r in rows:
        state = live.get(r["worker_id"])
        fix_age = None
        p50 = p90 = None
        if state is not None and state.seen_ms is not None:
            fix_age = max(0.0, now_s - state.seen_ms / 1000)
        at = state.position if state is not None else None
        if at is not None:
            if graph is not None:
                times = destination_times(graph, r["lat"], r["lng"])
                base, _ = eta_s(times, graph, at.lat, at.lng, eta_params)
            else:
                metres = haversine_m(at.lat, at.lng, r["lat"], r["lng"])
                base = straight_eta_s(metres, eta_params)
            rng = eta_range(base, stats, eta_params)
            p50, p90 = rng.p50_s, rng.p90_s
            if r["busy_until"] is not None:  # chained: the time left of the job on site first
                left = max(0.0, r["busy_until"].timestamp() - now_s)
                p50, p90 = p50 + left, p90 + left
        deadline = (
            r["window_end"].timestamp()
            if r["window_end"] is not None
            else r["created_at"].timestamp() + params.instant_sla_s
        )
        risk = judge(
            status=r["status"],
            now_s=now_s,
            deadline_s=deadline,
            p50_s=p50,
            p90_s=p90,
            fix_age_s=fix_age,
            stale_s=params.stale_s,
            pinned=r["pinned"],
        )
        if risk is None:
            continue
        if r["member"] is not None:  # one of a crew: say who
            risk = Risk(risk.kind, risk.action, f"crew member {r['member']}: {risk.reason}")
        moved = risk.action == "reassign" and await _reassign(
            stores, tracking, r["id"], r["worker_id"], risk, now, params
        )
        if moved:
            done["reassign"] += 1
        elif await _alert(stores, r["id"], risk, now):
            done["alert"] += 1
    return done


async def _reassign(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    worker_id: int,
    risk: Risk,
    now: datetime,
    params: RiskParams,
) -> bool:
    with contextlib.suppress(Exception):  # it moved on meanwhile (set off, cancelled…)
        await service.act(
            stores, tracking, order_id, "unassign", SYSTEM, reason=f"reassigned: {risk.reason}"
        )
        async with stores.pool.acquire() as conn, conn.transaction():
            await offers.exclude(
                conn,
                order_id,
                worker_id,
                reason=f"reassigned: {risk.reason}",
                actor="system",
                actor_id=None,
                until=now + timedelta(seconds=params.cooldown_s),
            )
        return True
    return False


async def _alert(stores: Stores, order_id: int, risk: Risk, now: datetime) -> bool:
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None or order.status not in (
            (*HELD_BEFORE_SITE, "arrived") if order.crew else HELD_BEFORE_SITE
        ):
            return False
        raised = await alerts.raise_alert(
            conn,
            city_id=order.city_id,
            order_id=order.id,
            version=order.version,
            kind=risk.kind,
            message=f"order {order.id}: {risk.reason}",
            at=now,
        )
    return raised is not None

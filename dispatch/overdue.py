"""Orders stuck on site: arrived or in service well past their expected end.

The expected end is the worker's own estimate ("about N minutes left",
``orders.expected_end_at``, dispatch/time_left.py) when they gave one, else the arrival
plus the service's duration: the same ``time_left.ends_at`` that chaining and active
reassignment read. Nothing else ends such an order (the worker forgot to complete it, the app died, or
something went wrong at the door), and it holds its worker busy. Past the duration plus
a margin, a dispatcher is alerted (``overdue_on_site``, dispatch/alerts.py) once per
order; the alert is resolved when the order ends. The check runs every minute as a
periodic job (dispatch/tasks.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatch import alerts, store
from dispatch.models import job_end
from dispatch.time_left import ENDS_AT
from doorstep.stores import Stores

MARGIN = timedelta(minutes=30)
ON_SITE = ("arrived", "in_service")


def overdue_at(
    arrived_at: datetime,
    duration_min: int,
    margin: timedelta = MARGIN,
    expected_end_at: datetime | None = None,
) -> datetime:
    """When an order that arrived at ``arrived_at`` counts as stuck on site: the margin
    past the worker's estimate of its end if given (sooner or later than the
    catalogue's), else past the service's duration. Pure."""
    return job_end(arrived_at, duration_min, expected_end_at) + margin


async def flag_overdue(stores: Stores, now: datetime, margin: timedelta = MARGIN) -> list[int]:
    """Alert the dispatchers of every order on site past its time without such an alert
    yet; the ids alerted now."""
    rows = await stores.pool.fetch(
        "SELECT o.id FROM orders o WHERE o.status = ANY($1) AND o.arrived_at IS NOT NULL "
        f"AND {ENDS_AT} + $2 <= $3 "
        "AND NOT EXISTS (SELECT 1 FROM dispatch_alerts a WHERE a.order_id = o.id "
        "AND a.kind = 'overdue_on_site' AND a.resolved_at IS NULL) ORDER BY o.id LIMIT 500",
        list(ON_SITE),
        margin,
        now,
    )
    alerted = []
    for row in rows:
        async with stores.pool.acquire() as conn, conn.transaction():
            order = await store.get(conn, row["id"], lock=True)
            if order is None or order.status not in ON_SITE or order.arrived_at is None:
                continue  # it moved on meanwhile
            due = overdue_at(order.arrived_at, order.duration_min, margin, order.expected_end_at)
            if due > now:
                continue
            late_min = int((now - order.arrived_at).total_seconds() // 60)
            expected = ""
            if order.expected_end_at is not None:
                past_min = int((now - order.expected_end_at).total_seconds() // 60)
                expected = f"; {past_min} min past the worker's own estimate of its end"
            raised = await alerts.raise_alert(
                conn,
                city_id=order.city_id,
                order_id=order.id,
                version=order.version,
                kind="overdue_on_site",
                message=(
                    f"order {order.id} has been {order.status} for {late_min} min "
                    f"(service {order.duration_min} min{expected})"
                ),
                at=now,
            )
        if raised is not None:
            alerted.append(order.id)
    return alerted

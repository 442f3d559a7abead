"""Orders stuck on site: arrived or in service well past the service's duration.

Nothing else ends such an order (the worker forgot to complete it, the app died, or
something went wrong at the door), and it holds its worker busy. Past the duration plus
a margin, a dispatcher is alerted (``overdue_on_site``, dispatch/alerts.py) once per
order; the alert is resolved when the order ends. The check runs every minute as a
periodic job (dispatch/tasks.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatch import alerts, store
from doorstep.stores import Stores

MARGIN = timedelta(minutes=30)
ON_SITE = ("arrived", "in_service")


def overdue_at(arrived_at: datetime, duration_min: int, margin: timedelta = MARGIN) -> datetime:
    """When an order that arrived at ``arrived_at`` counts as stuck on site. Pure."""
    return arrived_at + timedelta(minutes=duration_min) + margin


async def flag_overdue(stores: Stores, now: datetime, margin: timedelta = MARGIN) -> list[int]:
    """Alert the dispatchers of every order on site past its time without such an alert
    yet; the ids alerted now."""
    rows = await stores.pool.fetch(
        "SELECT o.id FROM orders o WHERE o.status = ANY($1) AND o.arrived_at IS NOT NULL "
        "AND o.arrived_at + make_interval(mins => o.duration_min) + $2 <= $3 "
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
            due = overdue_at(order.arrived_at, order.duration_min, margin)
            if due > now:
                continue
            late_min = int((now - order.arrived_at).total_seconds() // 60)
            raised = await alerts.raise_alert(
                conn,
                city_id=order.city_id,
                order_id=order.id,
                version=order.version,
                kind="overdue_on_site",
                message=(
                    f"order {order.id} has been {order.status} for {late_min} min "
                    f"(service {order.duration_min} min)"
                ),
                at=now,
            )
        if raised is not None:
            alerted.append(order.id)
    return alerted

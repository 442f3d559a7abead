"""Dispatcher alerts about orders, kept in PostgreSQL (``dispatch_alerts``).

An alert is raised in the transaction of what caused it (a start locked by wrong codes,
an order overdue on site) with an ``alert.raised`` event, and resolved with
``alert.resolved``; the ``alert-push`` consumer (tracking/order_push.py) tells the city's
dispatcher feed. At most one alert of a kind is open per order, so raising again is a
no-op. The console lists the open ones (``GET /v1/alerts``) and hears the rest live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from doorstep.db import Conn, Tx
from doorstep.errors import NotFound
from events import store as events_store
from events.types import AlertChanged, aggregate_key

AlertKind = Literal["start_locked", "overdue_on_site", "late_predicted", "worker_stale"]
_COLS = "id, city_id, order_id, kind, message, raised_at, resolved_at, resolved_by"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert for the city's dispatchers; open while ``resolved_at`` is null."""

    id: int
    city_id: str
    order_id: int
    kind: str
    message: str
    raised_at: datetime
    resolved_at: datetime | None
    resolved_by: int | None


def _alert(row: asyncpg.Record) -> Alert:
    return Alert(**dict(row))


def _payload(alert: Alert, at: datetime) -> AlertChanged:
    return AlertChanged(
        alert_id=alert.id,
        city_id=alert.city_id,
        order_id=alert.order_id,
        kind=alert.kind,
        message=alert.message,
        raised_at=alert.raised_at,
        resolved=alert.resolved_at is not None,
        resolved_by=alert.resolved_by,
        at=at,
    )


async def raise_alert(
    tx: Tx,
    *,
    city_id: str,
    order_id: int,
    version: int,
    kind: AlertKind,
    message: str,
    at: datetime,
) -> Alert | None:
    """Open an alert (and its event) unless one of this kind is open for the order.

    Call it holding the order's row lock: the event belongs to ``order:<id>``."""
    row = await tx.fetchrow(
        "INSERT INTO dispatch_alerts (city_id, order_id, kind, message, raised_at) "
        "VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (order_id, kind) WHERE resolved_at IS NULL DO NOTHING "
        f"RETURNING {_COLS}",
        city_id,
        order_id,
        kind,
        message,
        at,
    )
    if row is None:
        return None
    alert = _alert(row)
    await events_store.append(
        tx,
        "alert.raised",
        aggregate_key("order", order_id),
        _payload(alert, at),
        version=version,
        at=at,
    )
    return alert


async def resolve(
    tx: Tx,
    order_id: int,
    *,
    version: int,
    at: datetime,
    by: int | None,
    kinds: tuple[AlertKind, ...] | None = None,
) -> list[Alert]:
    """Close the order's open alerts (of ``kinds``, or all), each with its event."""
    rows = await tx.fetch(
        "UPDATE dispatch_alerts SET resolved_at = $2, resolved_by = $3 "
        "WHERE order_id = $1 AND resolved_at IS NULL "
        "AND ($4::text[] IS NULL OR kind = ANY($4)) "
        f"RETURNING {_COLS}",
        order_id,
        at,
        by,
        list(kinds) if kinds is not None else None,
    )
    closed = [_alert(r) for r in rows]
    for alert in closed:
        await events_store.append(
            tx,
            "alert.resolved",
            aggregate_key("order", order_id),
            _payload(alert, at),
            version=version,
            at=at,
        )
    return closed


async def open_in(db: Conn, city_id: str, *, limit: int = 200) -> list[Alert]:
    """A city's open alerts, oldest first."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM dispatch_alerts WHERE city_id = $1 AND resolved_at IS NULL "
        "ORDER BY raised_at, id LIMIT $2",
        city_id,
        limit,
    )
    return [_alert(r) for r in rows]


async def of_order(db: Conn, order_id: int) -> list[Alert]:
    """Every alert of an order, newest first."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM dispatch_alerts WHERE order_id = $1 ORDER BY id DESC", order_id
    )
    return [_alert(r) for r in rows]


async def _resolve_one(tx: Tx, alert_id: int, *, at: datetime, by: int | None) -> Alert | None:
    """Close one open alert (a dispatcher dismisses it); None if no such open alert."""
    row = await tx.fetchrow(
        "SELECT order_id FROM dispatch_alerts WHERE id = $1 AND resolved_at IS NULL", alert_id
    )
    if row is None:
        return None
    version = await tx.fetchval(
        "SELECT version FROM orders WHERE id = $1 FOR NO KEY UPDATE",  # store.ROW_LOCK
        row["order_id"],
    )
    rows = await tx.fetch(
        "UPDATE dispatch_alerts SET resolved_at = $2, resolved_by = $3 "
        f"WHERE id = $1 AND resolved_at IS NULL RETURNING {_COLS}",
        alert_id,
        at,
        by,
    )
    if not rows:
        return None
    alert = _alert(rows[0])
    await events_store.append(
        tx,
        "alert.resolved",
        aggregate_key("order", alert.order_id),
        _payload(alert, at),
        version=int(version or 0),
        at=at,
    )
    return alert


async def dismiss(
    pool: asyncpg.Pool, alert_id: int, *, by: int, cities: list[str] | None = None
) -> Alert:
    """A dispatcher closes an open alert; 404 if there is no such open alert (or, with
    ``cities``, none in those cities)."""
    async with pool.acquire() as conn, conn.transaction():
        if cities is not None:
            city = await conn.fetchval(
                "SELECT city_id FROM dispatch_alerts WHERE id = $1", alert_id
            )
            if city not in cities:
                raise NotFound(f"no open alert {alert_id}", field="alert_id")
        alert = await _resolve_one(conn, alert_id, at=datetime.now(UTC), by=by)
    if alert is None:
        raise NotFound(f"no open alert {alert_id}", field="alert_id")
    return alert

"""PostgreSQL access for orders and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch.models import Order, OrderEvent
from doorstep.db import Conn, Tx
from privacy.crypto import reveal, seal

# The crew holding the order, lead first (order_crew has no ``id``: ``id`` is the order's,
# in every query below whether or not it names the table).
CREW = (
    "coalesce((SELECT array_agg(c.worker_id ORDER BY c.seat) FROM order_crew c "
    "WHERE c.order_id = id AND c.released_at IS NULL), '{}') AS crew"
)
_COLS = (
    "id, city_id, customer_id, service_code, kind, status, version, lat, lng, address_id, "
    "address_detail, contact_phone, window_start, window_end, duration_min, price_minor, "
    "currency, notes, worker_id, start_code, en_route_at, arrived_at, cancel_fee_minor, "
    "created_at, updated_at, pinned, dispatch_attempts, completed_at, series_id, merchant_id, "
    "crew_size, expected_end_at, " + CREW
)


# Personal fields of an order, encrypted at rest (privacy/crypto.py).
_SEALED = {"address_detail": "orders.address_detail", "contact_phone": "orders.contact_phone"}


def _order(r: asyncpg.Record) -> Order:
    fields = dict(r)
    fields["crew"] = tuple(fields["crew"])
    for name, column in _SEALED.items():
        fields[name] = reveal(column, fields[name])
    return Order(**fields)


def _sealed(fields: dict[str, Any]) -> dict[str, Any]:
    return {n: seal(_SEALED[n], v) if n in _SEALED else v for n, v in fields.items()}


async def insert(db: Conn, **fields: Any) -> Order:
    """Insert an order row (status ``created``)."""
    fields = _sealed(fields)
    names = list(fields)
    row = await db.fetchrow(
        f"INSERT INTO orders ({', '.join(names)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}) "
        f"RETURNING {_COLS}",
        *fields.values(),
    )
    assert row is not None
    return _order(row)


async def by_ids(db: Conn, order_ids: list[int]) -> dict[int, Order]:
    """Orders by id (missing ones are left out)."""
    rows = await db.fetch(f"SELECT {_COLS} FROM orders WHERE id = ANY($1)", order_ids)
    return {r["id"]: _order(r) for r in rows}


async def by_idempotency_key(
    db: Conn, customer_id: int, key: str
) -> tuple[Order, str | None] | None:
    """The order a customer created with this Idempotency-Key, if any, and the
    fingerprint of the request that created it (None for orders booked before migration 0017)."""
    row = await db.fetchrow(
        f"SELECT {_COLS}, idempotency_fingerprint FROM orders "
        "WHERE customer_id = $1 AND idempotency_key = $2",
        customer_id,
        key,
    )
    if row is None:
        return None
    fields = dict(row)
    fingerprint = fields.pop("idempotency_fingerprint")
    fields["crew"] = tuple(fields["crew"])
    for name, column in _SEALED.items():
        fields[name] = reveal(column, fields[name])
    return Order(**fields), fingerprint


# The row lock a change of an order takes: it excludes every other change of the order,
# but not a transaction that only references the order (a foreign key check takes FOR KEY
# SHARE: a day plan's stop, a ledger line). FOR UPDATE would make such a transaction wait,
# and one that holds a lock the changer needs next (the day plan's, which a reschedule takes
# after the order's) is then a deadlock. Orders' ids never change and orders are never
# deleted, so nothing needs the stronger lock.
ROW_LOCK = "FOR NO KEY UPDATE"


async def get(db: Conn, order_id: int, *, lock: bool = False) -> Order | None:
    """One order; ``lock`` takes the order's row lock (``ROW_LOCK``) for the rest of the
    transaction."""
    row = await db.fetchrow(
        f"SELECT {_COLS} FROM orders WHERE id = $1{' ' + ROW_LOCK if lock else ''}", order_id
    )
    return _order(row) if row else None


async def update(db: Tx, order_id: int, version: int, fields: dict[str, Any]) -> Order | None:
    """Set ``fields`` and bump the version if it is still ``version``; None if it moved on."""
    fields = _sealed(fields)
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(names))
    row = await db.fetchrow(
        f"UPDATE orders SET {sets}, version = version + 1, updated_at = now() "
        f"WHERE id = $1 AND version = $2 RETURNING {_COLS}",
        order_id,
        version,
        *fields.values(),
    )
    return _order(row) if row else None


async def update_recorded(
    db: Tx,
    order_id: int,
    version: int,
    fields: dict[str, Any],
    *,
    action: str,
    from_status: str,
    actor: str,
    actor_id: int | None,
    reason: str,
    data: dict[str, Any] | None,
    at: datetime,
    outbox: tuple[str, str, int, dict[str, Any]],
) -> Order | None:
    """:func:`update` and :func:`add_event` (with its ``outbox`` event) in one statement;
    the history row and the event are written only if the order was still at
    ``version`` (None otherwise, nothing written)."""
    fields = _sealed(fields)
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(names))
    k = 2 + len(names)
    row = await db.fetchrow(
        f"WITH u AS (UPDATE orders SET {sets}, version = version + 1, updated_at = now() "
        f"WHERE id = $1 AND version = $2 RETURNING {_COLS}), "
        "h AS (INSERT INTO order_events (order_id, at, action, from_status, to_status, actor, "
        f"actor_id, reason, data) SELECT u.id, ${k + 1}::timestamptz, ${k + 2}::text, "
        f"${k + 3}::text, u.status, ${k + 4}::text, ${k + 5}::bigint, ${k + 6}::text, "
        f"${k + 7}::jsonb FROM u), "
        "e AS (INSERT INTO events (type, aggregate, version, payload, occurred_at) "
        f"SELECT ${k + 8}::text, ${k + 9}::text, ${k + 10}::int, ${k + 11}::jsonb, "
        f"${k + 1}::timestamptz FROM u) "
        "SELECT * FROM u",
        order_id,
        version,
        *fields.values(),
        at,
        action,
        from_status,
        actor,
        actor_id,
        reason,
        data or {},
        *outbox,
    )
    return _order(row) if row else None


async def add_event(
    db: Tx,
    order_id: int,
    *,
    action: str,
    from_status: str | None,
    to_status: str,
    actor: str,
    actor_id: int | None,
    reason: str,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    outbox: tuple[str, str, int, dict[str, Any]] | None = None,
) -> None:
    """Record one status change; with ``outbox`` (type, aggregate, version, encoded
    payload) also its domain event, in the same statement (one round trip: the event
    write adds no wait to the caller's transaction, see benchmarks/events.py)."""
    history = (
        "INSERT INTO order_events (order_id, at, action, from_status, to_status, actor, actor_id, reason, data) "
        "VALUES ($1, coalesce($2, now()), $3, $4, $5, $6, $7, $8, $9)"
    )
    args: list[Any] = [order_id, at, action, from_status, to_status, actor, actor_id, reason]
    args.append(data or {})
    if outbox is None:
        await db.execute(history, *args)
        return
    await db.execute(
        f"WITH history AS ({history}) "
        "INSERT INTO events (type, aggregate, version, payload, occurred_at) "
        "VALUES ($10, $11, $12, $13, coalesce($2, now()))",
        *args,
        *outbox,
    )


async def events(db: Conn, order_id: int) -> list[OrderEvent]:
    """An order's history, oldest first."""
    rows = await db.fetch(
        "SELECT at, action, from_status, to_status, actor, actor_id, reason "
        "FROM order_events WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return [OrderEvent(**dict(r)) for r in rows]


async def last_event(db: Conn, order_id: int) -> OrderEvent | None:
    """An order's latest history row."""
    row = await db.fetchrow(
        "SELECT at, action, from_status, to_status, actor, actor_id, reason "
        "FROM order_events WHERE order_id = $1 ORDER BY id DESC LIMIT 1",
        order_id,
    )
    return OrderEvent(**dict(row)) if row is not None else None


async def active_for_worker(db: Conn, worker_id: int) -> Order | None:
    """The job a worker holds now (assigned, en route, arrived or in service), alone or
    as a member of its crew. With a chained job (docs/dispatch.md#chained-orders) they
    hold two: the one furthest along is the current one (the chained one waits,
    ``assigned``, until it ends)."""
    row = await db.fetchrow(
        f"SELECT {_COLS} FROM orders WHERE (worker_id = $1 OR id IN (SELECT order_id FROM "
        "order_crew WHERE worker_id = $1 AND released_at IS NULL)) "
        "AND status IN ('assigned', 'en_route', 'arrived', 'in_service') ORDER BY "
        "array_position(ARRAY['in_service', 'arrived', 'en_route', 'assigned'], status::text), id "
        "LIMIT 1",
        worker_id,
    )
    return _order(row) if row else None


async def list_for(
    db: Conn,
    *,
    customer_id: int | None,
    worker_id: int | None,
    city_id: str | None,
    status: str | None,
    before_id: int,
    limit: int,
    city_ids: list[str] | None = None,
    merchant_ids: list[int] | None = None,
) -> list[Order]:
    """Orders newest first, filtered; keyset pages by ``before_id``. With ``city_ids``
    (a scoped caller), only those cities' orders and ``merchant_ids``' orders."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM orders WHERE id < $1 AND ($2::bigint IS NULL OR customer_id = $2) "
        "AND ($3::bigint IS NULL OR worker_id = $3 OR id IN (SELECT order_id FROM order_crew "
        "WHERE worker_id = $3 AND released_at IS NULL)) AND ($4::text IS NULL OR city_id = $4) "
        "AND ($5::text IS NULL OR status = $5) "
        "AND ($7::text[] IS NULL OR city_id = ANY($7) OR merchant_id = ANY($8::bigint[])) "
        "ORDER BY id DESC LIMIT $6",
        before_id,
        customer_id,
        worker_id,
        city_id,
        status,
        limit,
        city_ids,
        merchant_ids or [],
    )
    return [_order(r) for r in rows]


async def open_orders(
    db: Conn,
    city_id: str,
    *,
    due_before: datetime,
    limit: int,
    instant_only: bool = False,
    unreleased_before: datetime | None = None,
) -> list[Order]:
    """Orders waiting for dispatch, oldest first: not pinned, no offer open, due soon enough
    (``instant_only``: scheduled orders are left to the day plans, except those whose
    window opens before ``unreleased_before`` and that the plan has not released; crew
    orders, which day plans leave out, from ``due_before`` as without day plans). Orders
    routed to a merchant are among them: the engine offers those to the merchant's staff
    only."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM orders o WHERE city_id = $1 AND status IN ('confirmed', 'dispatching') "
        "AND NOT pinned AND (window_start IS NULL OR (NOT $4 AND window_start <= $2) "
        "OR ($4 AND window_start <= $5) OR (crew_size > 1 AND window_start <= $2)) "
        "AND NOT EXISTS (SELECT 1 FROM offers f WHERE f.order_id = o.id AND f.status = 'pending') "
        "ORDER BY created_at LIMIT $3",
        city_id,
        due_before,
        limit,
        instant_only,
        unreleased_before,
    )
    return [_order(r) for r in rows]

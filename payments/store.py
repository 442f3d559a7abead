"""PostgreSQL access for payments: pay modes, price breakdowns, trades, refunds, and
the log of incoming notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from ledger import store as ledger_store
from ledger.rules import Entry

_PAY = (
    "id, order_id, customer_id, purpose, provider, channel, out_trade_no, amount_fen, currency, "
    "status, provider_trade_no, prepay, reserved_fen, created_at, expires_at, paid_at, closed_at"
)
_REF = (
    "id, payment_id, order_id, out_refund_no, amount_fen, cause, reason, status, "
    "provider_refund_no, requested_by, created_at, updated_at, succeeded_at"
)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A trade at a provider, as we hold it."""

    id: int
    order_id: int
    customer_id: int
    purpose: str
    provider: str
    channel: str
    out_trade_no: str
    amount_fen: int
    currency: str
    status: str
    provider_trade_no: str | None
    prepay: dict[str, Any]
    reserved_fen: int
    created_at: datetime
    expires_at: datetime | None
    paid_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefundRow:
    """A refund, as we hold it."""

    id: int
    payment_id: int
    order_id: int
    out_refund_no: str
    amount_fen: int
    cause: str
    reason: str
    status: str
    provider_refund_no: str | None
    requested_by: int | None
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None


def _pay(r: asyncpg.Record | None) -> PaymentRow | None:
    return PaymentRow(**dict(r)) if r is not None else None


def _ref(r: asyncpg.Record | None) -> RefundRow | None:
    return RefundRow(**dict(r)) if r is not None else None


async def service_mode(db: Conn, service_code: str) -> asyncpg.Record | None:
    """A service's pay mode row (None: paid after the service)."""
    return await db.fetchrow(
        "SELECT pay_mode, deposit_fen, inspection_fee_fen FROM service_payment "
        "WHERE service_code = $1",
        service_code,
    )


async def set_service_mode(
    db: Conn, service_code: str, pay_mode: str, deposit_fen: int, inspection_fee_fen: int
) -> None:
    """Set how a service is paid."""
    await db.execute(
        "INSERT INTO service_payment (service_code, pay_mode, deposit_fen, inspection_fee_fen) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (service_code) DO UPDATE SET pay_mode = $2, "
        "deposit_fen = $3, inspection_fee_fen = $4, updated_at = now()",
        service_code,
        pay_mode,
        deposit_fen,
        inspection_fee_fen,
    )


async def save_price(db: Tx, order_id: int, breakdown: dict[str, Any]) -> None:
    """Store an order's price breakdown (once, at booking)."""
    await db.execute(
        "INSERT INTO order_prices (order_id, pay_mode, lines, total_fen, deposit_fen, "
        "inspection_fee_fen) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        order_id,
        breakdown["pay_mode"],
        breakdown["lines"],
        breakdown["total_fen"],
        breakdown["deposit_fen"],
        breakdown["inspection_fee_fen"],
    )


async def set_price_lines(
    db: Tx, order_id: int, lines: list[dict[str, Any]], total_fen: int
) -> None:
    """Rewrite an unpaid order's price lines and total (growth's checkout: the discount
    lines of a coupon and of points)."""
    await db.execute(
        "UPDATE order_prices SET lines = $2, total_fen = $3 WHERE order_id = $1",
        order_id,
        lines,
        total_fen,
    )


async def price(db: Conn, order_id: int) -> dict[str, Any] | None:
    """An order's stored breakdown."""
    r = await db.fetchrow(
        "SELECT pay_mode, lines, total_fen, deposit_fen, inspection_fee_fen FROM order_prices "
        "WHERE order_id = $1",
        order_id,
    )
    if r is None:
        return None
    return {**dict(r), "currency": "CNY"}


async def insert_payment(db: Tx, **fields: Any) -> PaymentRow:
    """A new trade row (pending)."""
    names = list(fields)
    row = await db.fetchrow(
        f"INSERT INTO payments ({', '.join(names)}) VALUES "
        f"({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING {_PAY}",
        *fields.values(),
    )
    p = _pay(row)
    assert p is not None
    return p


async def payment_by_no(db: Conn, out_trade_no: str, *, lock: bool = False) -> PaymentRow | None:
    """A trade by our number (``lock``: its row lock, as :func:`payment`)."""
    return _pay(
        await db.fetchrow(
            f"SELECT {_PAY} FROM payments WHERE out_trade_no = $1"
            f"{' FOR NO KEY UPDATE' if lock else ''}",
            out_trade_no,
        )
    )


async def payment_by_no_or_duplicate(
    db: Conn, out_trade_no: str, *, provider: str, amount_fen: int, log: tuple[str, str] | None
) -> tuple[PaymentRow | None, bool]:
    """A trade by our number, unlocked (as :func:`payment_by_no`), and by the same
    statement, if it is already paid, through ``provider``, for ``amount_fen``, the payment
    notification ``log`` (provider, notify id) logged as a duplicate (True): a redelivery
    answered in one round trip, not two. The caller gives ``log`` only for a report whose
    own terms make it a duplicate of a paid trade of that provider and amount (paid, with
    the provider's trade number, our merchant, our currency: ``Payments.notification``)."""
    if log is None:
        return await payment_by_no(db, out_trade_no), False
    r = await db.fetchrow(
        f"WITH p AS (SELECT {_PAY} FROM payments WHERE out_trade_no = $1), "
        "n AS (INSERT INTO payment_notifications (provider, notify_id, kind, out_trade_no, "
        "outcome, reason) SELECT $4::text, $5::text, 'payment', $1, 'duplicate', 'already paid' "
        "FROM p WHERE p.status = 'paid' AND p.provider = $2 AND p.amount_fen = $3 RETURNING 1) "
        "SELECT p.*, EXISTS (SELECT 1 FROM n) AS logged FROM p",
        out_trade_no,
        provider,
        amount_fen,
        *log,
    )
    if r is None:
        return None, False
    row = dict(r)
    logged = bool(row.pop("logged"))
    return PaymentRow(**row), logged


async def payment(db: Conn, payment_id: int, *, lock: bool = False) -> PaymentRow | None:
    """A trade by id (``lock``: its row lock, FOR NO KEY UPDATE: a refund or a discount
    that references the trade is not held up; docs/architecture.md "Row locks"). Marking a
    trade paid sets ``provider_trade_no``, a unique column: that UPDATE (:func:`mark_paid`)
    takes the stronger lock itself, no caller of this one changes it."""
    return _pay(
        await db.fetchrow(
            f"SELECT {_PAY} FROM payments WHERE id = $1{' FOR NO KEY UPDATE' if lock else ''}",
            payment_id,
        )
    )


async def payments_of_order(db: Conn, order_id: int) -> list[PaymentRow]:
    """An order's trades, oldest first."""
    rows = await db.fetch(f"SELECT {_PAY} FROM payments WHERE order_id = $1 ORDER BY id", order_id)
    return [PaymentRow(**dict(r)) for r in rows]


async def update_payment(db: Tx, payment_id: int, **fields: Any) -> PaymentRow:
    """Set fields of a trade."""
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    row = await db.fetchrow(
        f"UPDATE payments SET {sets} WHERE id = $1 RETURNING {_PAY}", payment_id, *fields.values()
    )
    p = _pay(row)
    assert p is not None
    return p


async def mark_paid(
    db: Tx,
    payment_id: int,
    *,
    provider_trade_no: str,
    paid_at: datetime,
    log: tuple[str, str | None, str] | None = None,
    entry: Entry | None = None,
    flag: str | None = None,
) -> tuple[PaymentRow, bool, bool] | None:
    """Mark a trade paid (its row locked by the update); None if it was paid already.
    With the row: whether another trade of its order, for the same purpose, is paid too
    (the same statement: one round trip fewer on a notification's path), and the value of
    ``flag``, a boolean SQL expression over the trade ``p`` (False without one): e.g.
    whether its order has a discount (``growth.store.has_discount``), read by the same
    statement rather than one of its own.

    By the same statement, only if it marks the trade: ``entry`` (the capture's ledger
    entry) is posted (``ledger.store.posting``: a key posted before is checked as
    ``post`` checks it). With ``log`` (provider, notify id, out_trade_no) the payment
    notification being applied is logged (:func:`log_notification`): ``applied`` if it
    marked the trade, ``duplicate`` (already paid) if not."""
    returning = ", ".join(f"p.{c.strip()}" for c in _PAY.split(",")) + (
        ", EXISTS (SELECT 1 FROM payments o WHERE o.order_id = p.order_id "
        "AND o.id <> p.id AND o.purpose = p.purpose AND o.status = 'paid') AS others_paid, "
        f"{flag or 'false'} AS flag"
    )
    ctes = [
        "m AS (UPDATE payments p SET status = 'paid', provider_trade_no = $2, paid_at = $3 "
        f"WHERE id = $1 AND status <> 'paid' RETURNING {returning})"
    ]
    args: list[Any] = [payment_id, provider_trade_no, paid_at]
    if log is not None:
        k = len(args)
        ctes.append(
            "n AS (INSERT INTO payment_notifications (provider, notify_id, kind, out_trade_no, "
            f"outcome, reason) SELECT ${k + 1}::text, ${k + 2}::text, 'payment', ${k + 3}::text, "
            "CASE WHEN EXISTS (SELECT 1 FROM m) THEN 'applied' ELSE 'duplicate' END, "
            "CASE WHEN EXISTS (SELECT 1 FROM m) THEN '' ELSE 'already paid' END)"
        )
        args += log
    if entry is not None:
        sql, more = ledger_store.posting(db, entry, first=len(args) + 1, after="m")
        ctes.append(sql)
        args += more
    r = await db.fetchrow(
        f"WITH {', '.join(ctes)} SELECT m.*"
        + (", (SELECT id FROM e) AS entry_id" if entry is not None else "")
        + " FROM m",
        *args,
    )
    if r is None:
        return None
    row = dict(r)
    others = bool(row.pop("others_paid"))
    flagged = bool(row.pop("flag"))
    if entry is not None:
        await ledger_store.posted(db, entry, row.pop("entry_id"))
    return PaymentRow(**row), others, flagged


async def pending_older_than(db: Conn, before: datetime, limit: int = 200) -> list[str]:
    """Trades still pending since before ``before`` (to query at the provider)."""
    rows = await db.fetch(
        "SELECT out_trade_no FROM payments WHERE status = 'pending' AND created_at < $1 "
        "ORDER BY created_at LIMIT $2",
        before,
        limit,
    )
    return [r["out_trade_no"] for r in rows]


async def insert_refund(db: Tx, **fields: Any) -> RefundRow:
    """A new refund row (requested)."""
    names = list(fields)
    row = await db.fetchrow(
        f"INSERT INTO refunds ({', '.join(names)}) VALUES "
        f"({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING {_REF}",
        *fields.values(),
    )
    r = _ref(row)
    assert r is not None
    return r


async def refund_by_no(db: Conn, out_refund_no: str, *, lock: bool = False) -> RefundRow | None:
    """A refund by our number."""
    return _ref(
        await db.fetchrow(
            f"SELECT {_REF} FROM refunds WHERE out_refund_no = $1{' FOR UPDATE' if lock else ''}",
            out_refund_no,
        )
    )


async def refunds_of_order(db: Conn, order_id: int) -> list[RefundRow]:
    """An order's refunds, oldest first."""
    rows = await db.fetch(f"SELECT {_REF} FROM refunds WHERE order_id = $1 ORDER BY id", order_id)
    return [RefundRow(**dict(r)) for r in rows]


async def update_refund(db: Tx, refund_id: int, **fields: Any) -> RefundRow:
    """Set fields of a refund."""
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    row = await db.fetchrow(
        f"UPDATE refunds SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_REF}",
        refund_id,
        *fields.values(),
    )
    r = _ref(row)
    assert r is not None
    return r


async def open_refunds_older_than(db: Conn, before: datetime, limit: int = 200) -> list[str]:
    """Refunds requested or processing since before ``before``."""
    rows = await db.fetch(
        "SELECT out_refund_no FROM refunds WHERE status IN ('requested', 'processing') "
        "AND updated_at < $1 ORDER BY updated_at LIMIT $2",
        before,
        limit,
    )
    return [r["out_refund_no"] for r in rows]


async def log_notification(
    db: Conn,
    *,
    provider: str,
    notify_id: str | None,
    kind: str | None,
    out_trade_no: str | None,
    outcome: str,
    reason: str = "",
) -> None:
    """Record one incoming notification and what became of it."""
    await db.execute(
        "INSERT INTO payment_notifications (provider, notify_id, kind, out_trade_no, outcome, "
        "reason) VALUES ($1, $2, $3, $4, $5, $6)",
        provider,
        notify_id,
        kind,
        out_trade_no,
        outcome,
        reason[:500],
    )


async def extras_of_order(db: Conn, order_id: int) -> list[asyncpg.Record]:
    """An order's quotes and add-ons, oldest first."""
    return list(
        await db.fetch(
            "SELECT id, order_id, kind, items, total_fen, status, worker_id, created_at, "
            "decided_at FROM order_extras WHERE order_id = $1 ORDER BY id",
            order_id,
        )
    )


async def insert_extra(
    db: Tx, *, order_id: int, kind: str, items: list[dict[str, Any]], total_fen: int, worker_id: int
) -> asyncpg.Record:
    """A proposed quote or add-on."""
    row = await db.fetchrow(
        "INSERT INTO order_extras (order_id, kind, items, total_fen, worker_id) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id, order_id, kind, items, total_fen, status, "
        "worker_id, created_at, decided_at",
        order_id,
        kind,
        items,
        total_fen,
        worker_id,
    )
    assert row is not None
    found: asyncpg.Record = row
    return found


async def decide_extra(db: Tx, extra_id: int, status: str) -> asyncpg.Record:
    """The customer's decision on a proposed quote or add-on."""
    row = await db.fetchrow(
        "UPDATE order_extras SET status = $2, decided_at = now() WHERE id = $1 "
        "RETURNING id, order_id, kind, items, total_fen, status, worker_id, created_at, decided_at",
        extra_id,
        status,
    )
    assert row is not None
    found: asyncpg.Record = row
    return found

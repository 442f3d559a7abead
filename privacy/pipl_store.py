"""PostgreSQL of a person's rights under PIPL: what their export holds, their deletion
requests, and the anonymisation that ends one (docs/privacy.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from privacy.crypto import reveal

log = logging.getLogger("doorstep.privacy")

# Orders of a customer that are not over: a deletion waits for them.
OPEN_ORDER = "status NOT IN ('completed', 'cancelled', 'failed')"


@dataclass(frozen=True, slots=True)
class DeletionRequest:
    """A request to delete an account: pending until due (cancellable), then done."""

    id: int
    user_id: int
    status: str
    requested_at: datetime
    due_at: datetime
    cancelled_at: datetime | None
    done_at: datetime | None


_REQ = "id, user_id, status, requested_at, due_at, cancelled_at, done_at"


def _request(r: asyncpg.Record) -> DeletionRequest:
    return DeletionRequest(**dict(r))


def _rows(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


async def export_rows(db: Conn, user_id: int) -> dict[str, Any]:
    """Everything kept about one person, by kind, personal fields decrypted."""
    out: dict[str, Any] = {}
    orders = await db.fetch(
        "SELECT id, city_id, service_code, kind, status, lat, lng, address_detail, "
        "contact_phone, window_start, window_end, duration_min, price_minor, currency, notes, "
        "worker_id, created_at, completed_at FROM orders WHERE customer_id = $1 ORDER BY id",
        user_id,
    )
    out["orders"] = [
        {
            **dict(r),
            "address_detail": reveal("orders.address_detail", r["address_detail"]),
            "contact_phone": reveal("orders.contact_phone", r["contact_phone"]),
        }
        for r in orders
    ]
    out["jobs_as_worker"] = _rows(
        await db.fetch(
            "SELECT id, city_id, service_code, status, window_start, completed_at "
            "FROM orders WHERE worker_id = $1 ORDER BY id",
            user_id,
        )
    )
    out["reviews"] = _rows(
        await db.fetch(
            "SELECT order_id, worker_id, stars, quality, attitude, punctuality, text, tags, "
            "photo_ids, created_at, edited_at, reply FROM ratings WHERE customer_id = $1 "
            "ORDER BY order_id",
            user_id,
        )
    )
    out["payments"] = _rows(
        await db.fetch(
            "SELECT id, order_id, purpose, provider, channel, out_trade_no, amount_fen, "
            "currency, status, created_at, paid_at FROM payments WHERE customer_id = $1 "
            "ORDER BY id",
            user_id,
        )
    )
    out["refunds"] = _rows(
        await db.fetch(
            "SELECT r.id, r.payment_id, r.order_id, r.amount_fen, r.cause, r.reason, r.status, "
            "r.created_at, r.succeeded_at FROM refunds r JOIN payments p ON p.id = r.payment_id "
            "WHERE p.customer_id = $1 ORDER BY r.id",
            user_id,
        )
    )
    contacts = await db.fetch(
        "SELECT position, name, phone FROM emergency_contacts WHERE user_id = $1 ORDER BY position",
        user_id,
    )
    out["emergency_contacts"] = [
        {**dict(r), "phone": reveal("emergency_contacts.phone", r["phone"])} for r in contacts
    ]
    settings = await db.fetchrow(
        "SELECT language, timezone, quiet_start, quiet_end, sms FROM notification_settings "
        "WHERE user_id = $1",
        user_id,
    )
    out["notification_settings"] = dict(settings) if settings is not None else None
    out["notifications"] = _rows(
        await db.fetch(
            "SELECT id, kind, order_id, title, body, created_at, read_at FROM notifications "
            "WHERE user_id = $1 ORDER BY id DESC LIMIT 1000",
            user_id,
        )
    )
    app = await db.fetchrow(
        "SELECT id, status, city_id, real_name, id_number, birth_date, skills, created_at, "
        "submitted_at, decided_at FROM applications WHERE user_id = $1",
        user_id,
    )
    if app is not None:
        number = app["id_number"]
        out["worker_application"] = {
            **dict(app),
            "id_number": None if number is None else reveal("applications.id_number", number),
        }
    else:
        out["worker_application"] = None
    out["files"] = _rows(
        await db.fetch(
            "SELECT id, purpose, created_at FROM files WHERE owner_id = $1 ORDER BY id", user_id
        )
    )
    out["deletion_requests"] = _rows(
        await db.fetch(
            f"SELECT {_REQ} FROM deletion_requests WHERE user_id = $1 ORDER BY id", user_id
        )
    )
    return out


async def open_orders(db: Conn, user_id: int) -> list[int]:
    """Ids of the orders the user booked or works that are not over."""
    rows = await db.fetch(
        f"SELECT id FROM orders WHERE (customer_id = $1 OR worker_id = $1) AND {OPEN_ORDER} "
        "ORDER BY id LIMIT 20",
        user_id,
    )
    return [int(r["id"]) for r in rows]


async def insert_request(
    tx: Tx, *, user_id: int, cancel_hash: str, now: datetime, due_at: datetime
) -> DeletionRequest | None:
    """A pending request; None if the user has one pending already."""
    row = await tx.fetchrow(
        "INSERT INTO deletion_requests (user_id, cancel_hash, requested_at, due_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) WHERE status = 'pending' DO NOTHING "
        f"RETURNING {_REQ}",
        user_id,
        cancel_hash,
        now,
        due_at,
    )
    return _request(row) if row is not None else None


async def pending_by_code(tx: Tx, cancel_hash: str) -> DeletionRequest | None:
    """The pending request this cancel code belongs to, locked."""
    row = await tx.fetchrow(
        f"SELECT {_REQ} FROM deletion_requests WHERE cancel_hash = $1 AND status = 'pending' "
        "FOR UPDATE",
        cancel_hash,
    )
    return _request(row) if row is not None else None


async def set_request(tx: Tx, request_id: int, status: str, now: datetime) -> None:
    """Mark a request cancelled or done."""
    column = "cancelled_at" if status == "cancelled" else "done_at"
    await tx.execute(
        f"UPDATE deletion_requests SET status = $2, {column} = $3 WHERE id = $1",
        request_id,
        status,
        now,
    )


async def due(tx: Tx, now: datetime, limit: int) -> list[DeletionRequest]:
    """Pending requests past their cooling-off, locked (others skip them)."""
    rows = await tx.fetch(
        f"SELECT {_REQ} FROM deletion_requests WHERE status = 'pending' AND due_at <= $1 "
        "ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_request(r) for r in rows]


async def anonymise(tx: Tx, user_id: int, *, phone_key: str, name: str) -> dict[str, int]:
    """Remove or blank one person's personal data, keeping the rows the law and the
    ledger need (orders, payments, refunds, ledger entries, reviews' stars, the audit
    log). ``phone_key``: the blind index (hex) that stands for their phone in the login
    tables. How many rows of each kind were touched."""
    counts: dict[str, int] = {}

    async def run(kind: str, sql: str, *args: Any) -> None:
        status = await tx.execute(sql, user_id, *args)
        counts[kind] = counts.get(kind, 0) + int(status.split()[-1])

    # Coordinates kept coarse (two decimals, about 1 km): where the service was, not whose door.
    await run(
        "orders",
        "UPDATE orders SET address_detail = '', contact_phone = '', notes = '', "
        "lat = round(lat::numeric, 2)::float8, lng = round(lng::numeric, 2)::float8 "
        "WHERE customer_id = $1",
    )
    await run(
        "addresses",
        "DELETE FROM addresses a WHERE user_id = $1 "
        "AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.address_id = a.id)",
    )
    await run(
        "addresses",
        "UPDATE addresses SET label = '-', detail = '', contact_name = '', contact_phone = '', "
        "lat = round(lat::numeric, 2)::float8, lng = round(lng::numeric, 2)::float8 "
        "WHERE user_id = $1",
    )
    await run("reviews", "UPDATE ratings SET text = '', photo_ids = '{}' WHERE customer_id = $1")
    await run("emergency_contacts", "DELETE FROM emergency_contacts WHERE user_id = $1")
    await run(
        "applications",
        "UPDATE applications SET real_name = '', id_number = NULL, id_number_bidx = NULL, "
        "birth_date = NULL, identity_detail = '', background_detail = '', "
        "home_lat = round(home_lat::numeric, 2)::float8, "
        "home_lng = round(home_lng::numeric, 2)::float8 WHERE user_id = $1",
    )
    await run(
        "workers",
        "UPDATE workers SET home_lat = round(home_lat::numeric, 2)::float8, "
        "home_lng = round(home_lng::numeric, 2)::float8, photo_file_id = NULL "
        "WHERE user_id = $1",
    )
    # Documents and photos: the identity scans of an application, certificate scans, the
    # person's uploads. The files clean-up job then removes the contents no file uses.
    await run(
        "files",
        "DELETE FROM application_documents WHERE application_id IN "
        "(SELECT id FROM applications WHERE user_id = $1)",
    )
    await run(
        "files",
        "UPDATE worker_certificates SET file_id = NULL, number = 'deleted:' || id "
        "WHERE worker_id = $1",
    )
    try:
        async with tx.transaction():  # a savepoint: a file another record still needs stays
            await run("files", "DELETE FROM files WHERE owner_id = $1")
    except asyncpg.ForeignKeyViolationError as e:
        log.warning("user %s: files kept, still referenced: %s", user_id, e)
    await run("notifications", "DELETE FROM notifications WHERE user_id = $1")
    await run("notifications", "DELETE FROM notification_settings WHERE user_id = $1")
    await run("sms", "UPDATE sms_messages SET phone = '', phone_bidx = NULL WHERE user_id = $1")
    await run("sms", "DELETE FROM sms_codes WHERE phone = $2 AND $1::bigint IS NOT NULL", phone_key)
    await run(
        "sms", "DELETE FROM login_failures WHERE phone = $2 AND $1::bigint IS NOT NULL", phone_key
    )
    await run("tokens", "DELETE FROM refresh_tokens WHERE user_id = $1")
    await run(
        "account",
        "UPDATE users SET phone = '', phone_bidx = NULL, name = $2, password_hash = '!', "
        "status = 'closed', updated_at = now() WHERE id = $1",
        name,
    )
    return counts


async def account_phone(db: Conn, user_id: int) -> str:
    """A user's phone, decrypted ('' once anonymised)."""
    sealed = await db.fetchval("SELECT phone FROM users WHERE id = $1", user_id)
    return reveal("users.phone", sealed or "")

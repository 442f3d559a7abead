"""PostgreSQL of notifications: settings, the inbox, SMS messages, what events need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from notifications.models import Notification, SmsMessage
from notifications.rules import DEFAULT_TIMEZONE, QuietHours
from privacy.crypto import blind, reveal, seal


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who is told, and how they want to be."""

    user_id: int
    phone: str
    active: bool
    language: str
    timezone: str
    quiet: QuietHours | None
    sms: dict[str, bool]


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What templates say about an order."""

    service_zh: str
    service_en: str
    worker_name: str
    timezone: str


async def recipient(db: Conn, user_id: int) -> Recipient | None:
    """The user with their notification settings (defaults if they set none)."""
    row = await db.fetchrow(
        "SELECT u.id, u.phone, u.status, s.language, s.timezone, s.quiet_start, s.quiet_end, "
        "s.sms FROM users u LEFT JOIN notification_settings s ON s.user_id = u.id WHERE u.id = $1",
        user_id,
    )
    if row is None:
        return None
    quiet = (
        QuietHours(row["quiet_start"], row["quiet_end"]) if row["quiet_start"] is not None else None
    )
    return Recipient(
        user_id=row["id"],
        phone=reveal("users.phone", row["phone"]),
        active=row["status"] == "active",
        language=row["language"] or "zh",
        timezone=row["timezone"] or DEFAULT_TIMEZONE,
        quiet=quiet,
        sms=dict(row["sms"] or {}),
    )


async def save_settings(
    db: Conn,
    user_id: int,
    *,
    language: str,
    timezone: str,
    quiet: QuietHours | None,
    sms: dict[str, bool],
) -> None:
    """Store a user's settings (all of them)."""
    await db.execute(
        "INSERT INTO notification_settings (user_id, language, timezone, quiet_start, quiet_end, sms) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET "
        "language = $2, timezone = $3, quiet_start = $4, quiet_end = $5, sms = $6, updated_at = now()",
        user_id,
        language,
        timezone,
        quiet.start_min if quiet else None,
        quiet.end_min if quiet else None,
        sms,
    )


async def order_facts(db: Conn, order_id: int, worker_id: int | None) -> OrderFacts:
    """The order's service names, the worker's name and the city's time zone."""
    row = await db.fetchrow(
        "SELECT s.name_zh, s.name_en, c.timezone, "
        "(SELECT name FROM users WHERE id = $2) AS worker_name FROM orders o "
        "JOIN services s ON s.code = o.service_code JOIN cities c ON c.id = o.city_id "
        "WHERE o.id = $1",
        order_id,
        worker_id,
    )
    if row is None:
        return OrderFacts("", "", "", DEFAULT_TIMEZONE)
    return OrderFacts(
        row["name_zh"] or "", row["name_en"] or "", row["worker_name"] or "", row["timezone"]
    )


async def pending_offers(db: Conn, order_id: int) -> list[tuple[int, int]]:
    """(offer id, worker id) of the order's offers still waiting for an answer."""
    rows = await db.fetch(
        "SELECT id, worker_id FROM offers WHERE order_id = $1 AND status = 'pending' ORDER BY id",
        order_id,
    )
    return [(r["id"], r["worker_id"]) for r in rows]


_NOTE = "id, key, kind, title, body, order_id, created_at, read_at"


def _note(row: asyncpg.Record) -> Notification:
    return Notification(**dict(row))


async def add_to_inbox(
    tx: Tx,
    *,
    user_id: int,
    key: str,
    kind: str,
    event_id: int | None,
    order_id: int | None,
    title: str,
    body: str,
) -> Notification | None:
    """Store an inbox item; None if one with ``key`` is there already."""
    row = await tx.fetchrow(
        "INSERT INTO notifications (user_id, key, kind, event_id, order_id, title, body) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING {_NOTE}",
        user_id,
        key,
        kind,
        event_id,
        order_id,
        title,
        body,
    )
    return None if row is None else _note(row)


async def inbox(
    db: Conn, user_id: int, *, before_id: int, limit: int, unread_only: bool
) -> list[Notification]:
    """A page of the user's inbox, newest first."""
    rows = await db.fetch(
        f"SELECT {_NOTE} FROM notifications WHERE user_id = $1 AND id < $2 "
        "AND (NOT $3 OR read_at IS NULL) ORDER BY id DESC LIMIT $4",
        user_id,
        before_id,
        unread_only,
        limit,
    )
    return [_note(r) for r in rows]


async def unread(db: Conn, user_id: int) -> int:
    """How many of the user's items are unread."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id
        )
    )


async def mark_read(db: Conn, user_id: int, note_id: int, now: datetime) -> Notification | None:
    """Mark one item read (it stays read at its first reading); None if not the user's."""
    row = await db.fetchrow(
        f"UPDATE notifications SET read_at = coalesce(read_at, $3) WHERE id = $1 AND user_id = $2 "
        f"RETURNING {_NOTE}",
        note_id,
        user_id,
        now,
    )
    return None if row is None else _note(row)


async def mark_all_read(db: Conn, user_id: int, now: datetime) -> int:
    """Mark every unread item read; how many were."""
    status = await db.execute(
        "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL", user_id, now
    )
    return int(status.split()[-1])


async def queue_sms(
    tx: Tx,
    *,
    key: str,
    user_id: int | None,
    phone: str,
    template_code: str,
    params: dict[str, str],
    not_before: datetime,
) -> int | None:
    """Record an SMS to send; its id, or None if one with ``key`` exists already."""
    value: Any = await tx.fetchval(
        "INSERT INTO sms_messages (key, user_id, phone, phone_bidx, template_code, params, "
        "not_before) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING id",
        key,
        user_id,
        seal("sms_messages.phone", phone),
        blind("phone", phone),
        template_code,
        params,
        not_before,
    )
    return None if value is None else int(value)


_SMS = (
    "id, key, user_id, phone, template_code, params, not_before, status, attempts, last_error, "
    "biz_id, sent_at, reported_at"
)


def _sms(row: asyncpg.Record) -> SmsMessage:
    fields = dict(row)
    fields["phone"] = reveal("sms_messages.phone", fields["phone"])
    return SmsMessage(**fields)


async def sms_message(db: Conn, message_id: int, *, lock: bool = False) -> SmsMessage | None:
    """One SMS message."""
    row = await db.fetchrow(
        f"SELECT {_SMS} FROM sms_messages WHERE id = $1{' FOR UPDATE' if lock else ''}", message_id
    )
    return None if row is None else _sms(row)


async def sms_messages(db: Conn, *, phone: str | None, limit: int) -> list[SmsMessage]:
    """SMS messages, newest first."""
    rows = await db.fetch(
        f"SELECT {_SMS} FROM sms_messages WHERE $1::bytea IS NULL OR phone_bidx = $1 "
        "ORDER BY id DESC LIMIT $2",
        None if phone is None else blind("phone", phone),
        limit,
    )
    return [_sms(r) for r in rows]


async def sms_sent(db: Conn, message_id: int, biz_id: str, now: datetime) -> None:
    """The gateway took the message."""
    await db.execute(
        "UPDATE sms_messages SET status = 'sent', biz_id = $2, sent_at = $3, "
        "attempts = attempts + 1, last_error = NULL WHERE id = $1 AND status = 'queued'",
        message_id,
        biz_id,
        now,
    )


async def sms_attempt_failed(db: Conn, message_id: int, error: str, *, final: bool) -> None:
    """An attempt failed; ``final``: no more attempts."""
    await db.execute(
        "UPDATE sms_messages SET attempts = attempts + 1, last_error = $2, "
        "status = CASE WHEN $3 THEN 'failed' ELSE status END WHERE id = $1 AND status = 'queued'",
        message_id,
        error[:500],
        final,
    )


async def sms_reported(db: Conn, biz_id: str, out_id: str, delivered: bool, now: datetime) -> bool:
    """Record a delivery receipt; False if it names no message of ours. A repeated
    receipt changes nothing."""
    if not out_id.isdigit():
        return False
    found = await db.fetchval(
        "UPDATE sms_messages SET status = CASE WHEN status IN ('queued', 'sent') THEN $3 "
        "ELSE status END, reported_at = coalesce(reported_at, $4), biz_id = coalesce(biz_id, $2) "
        "WHERE id = $1 AND (biz_id IS NULL OR biz_id = $2) RETURNING id",
        int(out_id),
        biz_id,
        "delivered" if delivered else "undelivered",
        now,
    )
    return found is not None

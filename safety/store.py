"""Safety alerts and emergency contacts in PostgreSQL (migration 0024)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from privacy.crypto import reveal, seal

_COLS = (
    "id, city_id, kind, subject_id, subject_role, order_id, source, message, lat, lng, "
    "position_ts_ms, detail, raised_at, repeats, last_raised_at, acknowledged_at, "
    "acknowledged_by, escalations, escalated_at, resolved_at, resolved_by, resolution"
)


@dataclass(frozen=True, slots=True)
class SafetyAlert:
    """An alert about a person's safety; open while ``resolved_at`` is null."""

    id: int
    city_id: str
    kind: str
    subject_id: int
    subject_role: str
    order_id: int | None
    source: str
    message: str
    lat: float | None
    lng: float | None
    position_ts_ms: int | None
    detail: dict[str, Any]
    raised_at: datetime
    repeats: int
    last_raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    escalations: int
    escalated_at: datetime | None
    resolved_at: datetime | None
    resolved_by: int | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    """An emergency contact."""

    name: str
    phone: str


def _alert(row: asyncpg.Record) -> SafetyAlert:
    return SafetyAlert(**{k: row[k] for k in SafetyAlert.__dataclass_fields__})


async def raise_alert(
    tx: Conn,
    *,
    city_id: str,
    kind: str,
    subject_id: int,
    subject_role: str,
    order_id: int | None,
    source: str,
    message: str,
    lat: float | None,
    lng: float | None,
    position_ts_ms: int | None,
    detail: dict[str, Any],
    at: datetime,
) -> tuple[SafetyAlert, bool, str]:
    """Open an alert, or count a repeat on the open one of the same person, kind and
    order (with the newer position); (the alert, whether it is new, the person's name).
    One statement: on its own it commits at once."""
    row = await tx.fetchrow(
        "WITH a AS (INSERT INTO safety_alerts (city_id, kind, subject_id, subject_role, "
        "order_id, source, message, lat, lng, position_ts_ms, detail, raised_at, last_raised_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) "
        "ON CONFLICT (subject_id, kind, COALESCE(order_id, 0)) WHERE resolved_at IS NULL "
        "DO UPDATE SET repeats = safety_alerts.repeats + 1, "
        "last_raised_at = EXCLUDED.last_raised_at, "
        "lat = COALESCE(EXCLUDED.lat, safety_alerts.lat), "
        "lng = COALESCE(EXCLUDED.lng, safety_alerts.lng), "
        "position_ts_ms = COALESCE(EXCLUDED.position_ts_ms, safety_alerts.position_ts_ms) "
        f"RETURNING {_COLS}, (xmax = 0) AS inserted) "
        "SELECT a.*, u.name AS subject_name FROM a JOIN users u ON u.id = a.subject_id",
        city_id,
        kind,
        subject_id,
        subject_role,
        order_id,
        source,
        message,
        lat,
        lng,
        position_ts_ms,
        detail,
        at,
    )
    assert row is not None
    return _alert(row), bool(row["inserted"]), str(row["subject_name"])


async def get(db: Conn, alert_id: int) -> SafetyAlert | None:
    """One alert."""
    row = await db.fetchrow(f"SELECT {_COLS} FROM safety_alerts WHERE id = $1", alert_id)
    return _alert(row) if row is not None else None


async def open_in(db: Conn, city_id: str, *, limit: int = 200) -> list[SafetyAlert]:
    """A city's open alerts: SOS first, then oldest first."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM safety_alerts WHERE city_id = $1 AND resolved_at IS NULL "
        "ORDER BY (kind = 'sos') DESC, raised_at, id LIMIT $2",
        city_id,
        limit,
    )
    return [_alert(r) for r in rows]


async def acknowledge(tx: Tx, alert_id: int, *, by: int, at: datetime) -> SafetyAlert | None:
    """Mark an open, unacknowledged alert acknowledged; None if it is not one."""
    row = await tx.fetchrow(
        "UPDATE safety_alerts SET acknowledged_at = $2, acknowledged_by = $3 "
        "WHERE id = $1 AND acknowledged_at IS NULL AND resolved_at IS NULL "
        f"RETURNING {_COLS}",
        alert_id,
        at,
        by,
    )
    return _alert(row) if row is not None else None


async def resolve(
    tx: Tx, alert_id: int, *, by: int | None, at: datetime, resolution: str
) -> SafetyAlert | None:
    """Close an open alert (acknowledging it too if nobody had); None if not open."""
    row = await tx.fetchrow(
        "UPDATE safety_alerts SET resolved_at = $2, resolved_by = $3, resolution = $4, "
        "acknowledged_at = COALESCE(acknowledged_at, $2), "
        "acknowledged_by = COALESCE(acknowledged_by, $3) "
        f"WHERE id = $1 AND resolved_at IS NULL RETURNING {_COLS}",
        alert_id,
        at,
        by,
        resolution,
    )
    return _alert(row) if row is not None else None


async def escalate(tx: Tx, alert_id: int, *, at: datetime) -> SafetyAlert | None:
    """Count one escalation of an alert still open and unacknowledged; None otherwise."""
    row = await tx.fetchrow(
        "UPDATE safety_alerts SET escalations = escalations + 1, escalated_at = $2 "
        "WHERE id = $1 AND acknowledged_at IS NULL AND resolved_at IS NULL "
        f"RETURNING {_COLS}",
        alert_id,
        at,
    )
    return _alert(row) if row is not None else None


async def contacts(db: Conn, user_id: int) -> list[Contact]:
    """A user's emergency contacts, in order."""
    rows = await db.fetch(
        "SELECT name, phone FROM emergency_contacts WHERE user_id = $1 ORDER BY position",
        user_id,
    )
    return [Contact(r["name"], reveal("emergency_contacts.phone", r["phone"])) for r in rows]


async def save_contacts(tx: Tx, user_id: int, items: list[tuple[str, str]]) -> None:
    """Replace a user's emergency contacts."""
    await tx.execute("DELETE FROM emergency_contacts WHERE user_id = $1", user_id)
    await tx.executemany(
        "INSERT INTO emergency_contacts (user_id, position, name, phone) VALUES ($1, $2, $3, $4)",
        [
            (user_id, i + 1, name, seal("emergency_contacts.phone", phone))
            for i, (name, phone) in enumerate(items)
        ],
    )


async def staff_to_tell(db: Conn, *, limit: int = 20) -> list[int]:
    """Active dispatchers and admins, the escalation's recipients (dispatchers first)."""
    rows = await db.fetch(
        "SELECT id FROM users WHERE status = 'active' AND roles && ARRAY['dispatcher','admin'] "
        "ORDER BY ('dispatcher' = ANY(roles)) DESC, id LIMIT $1",
        limit,
    )
    return [int(r["id"]) for r in rows]


async def person(db: Conn, user_id: int) -> tuple[str, str] | None:
    """(name, phone) of a user."""
    row = await db.fetchrow("SELECT name, phone FROM users WHERE id = $1", user_id)
    if row is None:
        return None
    return str(row["name"]), reveal("users.phone", row["phone"])


async def follow_ups_due(db: Conn, *, raised_after: datetime, due_before: datetime) -> list[int]:
    """Open SOS alerts nobody acknowledged, raised since ``raised_after``, not escalated
    yet though due before ``due_before``: their follow-ups may be missing (a crash
    between the alert's commit and its follow-ups' transaction)."""
    rows = await db.fetch(
        "SELECT id FROM safety_alerts WHERE kind = 'sos' AND resolved_at IS NULL "
        "AND acknowledged_at IS NULL AND escalations = 0 "
        "AND raised_at > $1 AND raised_at < $2 ORDER BY id",
        raised_after,
        due_before,
    )
    return [int(r["id"]) for r in rows]

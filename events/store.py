"""PostgreSQL access for events, consumers' cursors and parked deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from events.types import Event, Payload, decode_payload, encode_payload

_COLS = "id, seq, type, aggregate, version, payload, occurred_at"


def _event(row: asyncpg.Record) -> Event:
    return Event(
        id=row["id"],
        seq=row["seq"] or 0,
        type=row["type"],
        aggregate=row["aggregate"],
        version=row["version"],
        payload=decode_payload(row["type"], row["payload"]),
        occurred_at=row["occurred_at"],
    )


async def append(
    tx: Tx,
    event_type: str,
    aggregate: str,
    payload: Payload,
    *,
    version: int = 0,
    at: datetime | None = None,
) -> int:
    """Record an event in the caller's transaction; returns its id.

    Call it while holding the aggregate's row lock (or in the transaction that creates
    the aggregate), so that the aggregate's events are appended in the order of its
    changes.
    """
    data = encode_payload(event_type, payload)
    event_id = await tx.fetchval(
        "INSERT INTO events (type, aggregate, version, payload, occurred_at) "
        "VALUES ($1, $2, $3, $4, coalesce($5, now())) RETURNING id",
        event_type,
        aggregate,
        version,
        data,
        at,
    )
    return int(event_id)


async def sequence(db: Conn, batch: int) -> int:
    """Number committed events (up to ``batch``); the highest seq so far."""
    return int(await db.fetchval("SELECT events_sequence($1)", batch))


async def head(db: Conn) -> int:
    """The highest seq given so far."""
    return int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM events"))


async def unsequenced(db: Conn) -> int:
    """Committed events still waiting for a seq."""
    return int(await db.fetchval("SELECT count(*) FROM events WHERE seq IS NULL"))


async def after(
    db: Conn, position: int, upto: int, types: frozenset[str], limit: int
) -> list[Event]:
    """A consumer's events with ``position < seq <= upto``, in seq order."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM events WHERE seq > $1 AND seq <= $2 AND type = ANY($3) "
        "ORDER BY seq LIMIT $4",
        position,
        upto,
        list(types),
        limit,
    )
    return [_event(r) for r in rows]


async def by_ids(db: Conn, ids: list[int]) -> dict[int, Event]:
    """Events by id."""
    rows = await db.fetch(f"SELECT {_COLS} FROM events WHERE id = ANY($1)", ids)
    return {r["id"]: _event(r) for r in rows}


async def of_aggregate(db: Conn, aggregate: str, *, limit: int = 200) -> list[Event]:
    """An aggregate's events, oldest first."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM events WHERE aggregate = $1 ORDER BY id LIMIT $2", aggregate, limit
    )
    return [_event(r) for r in rows]


async def cursor(db: Conn, consumer: str) -> int:
    """A consumer's cursor; a new consumer starts at the current head (no history)."""
    position = await db.fetchval("SELECT position FROM event_cursors WHERE consumer = $1", consumer)
    if position is not None:
        return int(position)
    await db.execute(
        "INSERT INTO event_cursors (consumer, position) "
        "SELECT $1, coalesce(max(seq), 0) FROM events ON CONFLICT (consumer) DO NOTHING",
        consumer,
    )
    return int(
        await db.fetchval("SELECT position FROM event_cursors WHERE consumer = $1", consumer)
    )


async def advance(tx: Tx, consumer: str, old: int, new: int) -> bool:
    """Move the cursor from ``old`` to ``new``; False if it is not at ``old`` any more
    (another process took over the consumer), and the caller's transaction must roll back."""
    status = await tx.execute(
        "UPDATE event_cursors SET position = $3, updated_at = now() "
        "WHERE consumer = $1 AND position = $2",
        consumer,
        old,
        new,
    )
    return status.endswith(" 1")


async def park(
    tx: Tx,
    consumer: str,
    event: Event,
    *,
    state: str,
    attempts: int,
    next_at: datetime,
    error: str,
) -> None:
    """Set a delivery aside: failed (``attempts`` ≥ 1), or waiting behind one (0)."""
    await tx.execute(
        "INSERT INTO event_parked (consumer, seq, event_id, aggregate, state, attempts, "
        "next_at, last_error, dead_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "CASE WHEN $5 = 'dead' THEN now() END)",
        consumer,
        event.seq,
        event.id,
        event.aggregate,
        state,
        attempts,
        next_at,
        error,
    )


@dataclass(frozen=True, slots=True)
class Parked:
    """A delivery set aside."""

    id: int
    consumer: str
    seq: int
    event_id: int
    aggregate: str
    state: str
    attempts: int
    next_at: datetime
    last_error: str
    parked_at: datetime
    dead_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """For the admin API."""
        return {
            "id": self.id,
            "consumer": self.consumer,
            "seq": self.seq,
            "event_id": self.event_id,
            "aggregate": self.aggregate,
            "state": self.state,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "last_error": self.last_error,
            "parked_at": self.parked_at,
            "dead_at": self.dead_at,
        }


_PARKED = (
    "id, consumer, seq, event_id, aggregate, state, attempts, next_at, last_error, "
    "parked_at, dead_at"
)


async def blocked_aggregates(db: Conn, consumer: str) -> set[str]:
    """Aggregates with a pending parked delivery: the consumer's later events wait."""
    rows = await db.fetch(
        "SELECT DISTINCT aggregate FROM event_parked WHERE consumer = $1 AND state = 'pending'",
        consumer,
    )
    return {r["aggregate"] for r in rows}


async def heads_due(db: Conn, consumer: str, now: datetime, limit: int) -> list[Parked]:
    """Per aggregate, the first pending parked delivery, if its time has come."""
    rows = await db.fetch(
        f"SELECT {_PARKED} FROM (SELECT DISTINCT ON (aggregate) {_PARKED} FROM event_parked "
        "WHERE consumer = $1 AND state = 'pending' ORDER BY aggregate, seq) AS h "
        "WHERE next_at <= $2 ORDER BY seq LIMIT $3",
        consumer,
        now,
        limit,
    )
    return [Parked(**dict(r)) for r in rows]


async def next_due(db: Conn, consumer: str) -> datetime | None:
    """When the consumer's earliest pending head is due."""
    value: datetime | None = await db.fetchval(
        "SELECT min(next_at) FROM (SELECT DISTINCT ON (aggregate) next_at FROM event_parked "
        "WHERE consumer = $1 AND state = 'pending' ORDER BY aggregate, seq) AS h",
        consumer,
    )
    return value


async def unpark(tx: Tx, parked_id: int, attempts: int) -> bool:
    """Remove a delivered parked row, if nobody else did (``attempts`` unchanged)."""
    status = await tx.execute(
        "DELETE FROM event_parked WHERE id = $1 AND attempts = $2 AND state = 'pending'",
        parked_id,
        attempts,
    )
    return status.endswith(" 1")


async def failed_again(
    db: Conn,
    parked_id: int,
    *,
    attempts: int,
    state: str,
    next_at: datetime,
    error: str,
) -> None:
    """Record another failed attempt of a parked delivery."""
    await db.execute(
        "UPDATE event_parked SET attempts = $2, state = $3, next_at = $4, last_error = $5, "
        "dead_at = CASE WHEN $3 = 'dead' THEN now() END WHERE id = $1",
        parked_id,
        attempts,
        state,
        next_at,
        error,
    )


async def list_parked(
    db: Conn, *, state: str | None, consumer: str | None, after_id: int, limit: int
) -> list[Parked]:
    """Parked deliveries for the admin, by id."""
    rows = await db.fetch(
        f"SELECT {_PARKED} FROM event_parked WHERE id > $1 "
        "AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR consumer = $3) "
        "ORDER BY id LIMIT $4",
        after_id,
        state,
        consumer,
        limit,
    )
    return [Parked(**dict(r)) for r in rows]


async def replay(db: Conn, parked_id: int, now: datetime) -> Parked | None:
    """A dead delivery back to pending, to be tried at once; None if not dead."""
    row = await db.fetchrow(
        "UPDATE event_parked SET state = 'pending', attempts = 0, next_at = $2, dead_at = NULL "
        f"WHERE id = $1 AND state = 'dead' RETURNING {_PARKED}",
        parked_id,
        now,
    )
    return Parked(**dict(row)) if row else None


async def counts(db: Conn) -> dict[tuple[str, str], int]:
    """Parked deliveries by (consumer, state), for /metrics."""
    rows = await db.fetch("SELECT consumer, state, count(*) AS n FROM event_parked GROUP BY 1, 2")
    return {(r["consumer"], r["state"]): int(r["n"]) for r in rows}


async def cursors(db: Conn) -> dict[str, int]:
    """Every consumer's cursor."""
    rows = await db.fetch("SELECT consumer, position FROM event_cursors")
    return {r["consumer"]: int(r["position"]) for r in rows}

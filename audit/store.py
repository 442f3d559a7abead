"""The audit log in PostgreSQL: appending (serialised) and reading for verification.

An append takes a transaction-scoped advisory lock, reads the head, inserts the entry
linked to it and moves the head, all in the caller's transaction: concurrent appends
form one line, and an entry exists exactly when the change it records commits. The
table refuses UPDATE, DELETE and TRUNCATE (a trigger, migration 0024).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from audit.chain import GENESIS, Entry, Report, canonical, link, verify
from doorstep.db import Conn, Tx

_LOCK = 0x6175646974  # "audit"
_COLS = "seq, at, actor_id, action, subject, detail, prev_hash, hash"


async def append(
    tx: Tx,
    *,
    actor_id: int | None,
    action: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Entry:
    """Add an entry at the end of the chain, inside the caller's transaction."""
    await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
    head = await tx.fetchrow("SELECT seq, hash FROM audit_head")
    prev_seq, prev_hash = (head["seq"], head["hash"]) if head is not None else (0, GENESIS)
    when = (at or datetime.now(UTC)).astimezone(UTC)
    body = detail or {}
    seq = prev_seq + 1
    digest = link(prev_hash, canonical(seq, when, actor_id, action, subject, body))
    await tx.execute(
        f"INSERT INTO audit_log ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        seq,
        when,
        actor_id,
        action,
        subject,
        body,
        prev_hash,
        digest,
    )
    await tx.execute(
        "INSERT INTO audit_head (one, seq, hash) VALUES (true, $1, $2) "
        "ON CONFLICT (one) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        seq,
        digest,
    )
    return Entry(seq, when, actor_id, action, subject, body, prev_hash, digest)


async def entries(db: Conn, *, after: int = 0, batch: int = 5000) -> AsyncIterator[Entry]:
    """Every entry in ``seq`` order, read in batches."""
    last = after
    while True:
        rows = await db.fetch(
            f"SELECT {_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", last, batch
        )
        for r in rows:
            yield Entry(**dict(r))
        if len(rows) < batch:
            return
        last = rows[-1]["seq"]


async def of_subject(db: Conn, subject: str, *, limit: int = 200) -> list[Entry]:
    """A subject's entries, newest first."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM audit_log WHERE subject = $1 ORDER BY seq DESC LIMIT $2",
        subject,
        limit,
    )
    return [Entry(**dict(r)) for r in rows]


async def check(db: Conn) -> Report:
    """Verify the whole chain (``doorstep audit verify``)."""
    head_row = await db.fetchrow("SELECT seq, hash FROM audit_head")
    head = (int(head_row["seq"]), str(head_row["hash"])) if head_row is not None else None
    found = [e async for e in entries(db)]
    return verify(found, head)

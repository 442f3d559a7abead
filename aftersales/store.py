"""PostgreSQL access of after-sales: tickets, notes, outcomes, rulings, insurance, spot checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from aftersales import rules
from aftersales.models import (
    Claim,
    Insurance,
    Note,
    Outcome,
    Ruling,
    SpotCheck,
    Ticket,
)
from doorstep.db import Conn, Tx

_TICKET = (
    "t.id, t.order_id, t.customer_id, t.worker_id, t.city_id, t.kind, t.status, t.description, "
    "t.asked_fen, t.escalation_level, t.first_response_due, t.resolution_due, "
    "t.first_response_at, t.closed_at, t.close_reason, t.created_at, t.updated_at, "
    "EXISTS (SELECT 1 FROM order_insurance i WHERE i.order_id = t.order_id) AS insured, "
    # A crew order's workers, the lead first (docs/dispatch.md#crews): all are involved.
    "coalesce((SELECT array_agg(c.worker_id ORDER BY c.seat) FROM order_crew c "
    "WHERE c.order_id = t.order_id AND c.released_at IS NULL), '{}') AS crew"
)
_SPOT = (
    "id, order_id, worker_id, customer_id, city_id, period_start, seed, status, answers, passed, "
    "note, done_by, done_at, created_at"
)


def ticket_of(r: asyncpg.Record, now: datetime | None = None) -> Ticket:
    """A ticket row as the wire shape, with its timers at ``now``."""
    zh, en = rules.KIND_NAMES[r["kind"]]
    t = Ticket(**dict(r), kind_zh=zh, kind_en=en)
    if now is not None:
        s = rules.sla(
            status=t.status,
            first_response_at=t.first_response_at,
            first_response_due=t.first_response_due,
            resolution_due=t.resolution_due,
            now=now,
        )
        t.first_response_left_s, t.resolution_left_s, t.breached = (
            s.first_response_left_s,
            s.resolution_left_s,
            s.breached,
        )
    return t


async def insert_ticket(tx: Tx, **fields: Any) -> int:
    """A new ticket; its id."""
    names = list(fields)
    return int(
        await tx.fetchval(
            f"INSERT INTO aftersales_tickets ({', '.join(names)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING id",
            *fields.values(),
        )
    )


async def ticket(db: Conn, ticket_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """One ticket row (``lock``: for the rest of the transaction; FOR NO KEY UPDATE, so a
    note that only references the ticket is not held up: docs/architecture.md "Row locks")."""
    if lock:
        await db.execute(
            "SELECT 1 FROM aftersales_tickets WHERE id = $1 FOR NO KEY UPDATE", ticket_id
        )
    return await db.fetchrow(
        f"SELECT {_TICKET} FROM aftersales_tickets t WHERE t.id = $1", ticket_id
    )


async def update_ticket(tx: Tx, ticket_id: int, now: datetime, **fields: Any) -> None:
    """Set fields of a ticket."""
    sets = ", ".join(f"{k} = ${i + 3}" for i, k in enumerate(fields))
    await tx.execute(
        f"UPDATE aftersales_tickets SET {sets}, updated_at = $2 WHERE id = $1",
        ticket_id,
        now,
        *fields.values(),
    )


async def tickets_of_order(db: Conn, order_id: int) -> list[asyncpg.Record]:
    """An order's tickets, newest first."""
    return list(
        await db.fetch(
            f"SELECT {_TICKET} FROM aftersales_tickets t WHERE t.order_id = $1 ORDER BY t.id DESC",
            order_id,
        )
    )


async def tickets_of(db: Conn, side: str, user_id: int, limit: int) -> list[asyncpg.Record]:
    """A customer's tickets, or those on a worker's jobs (alone, or in the crew), newest
    first."""
    where = (
        "t.customer_id = $1"
        if side == "customer"
        else "(t.worker_id = $1 OR t.order_id IN (SELECT c.order_id FROM order_crew c "
        "WHERE c.worker_id = $1 AND c.released_at IS NULL))"
    )
    return list(
        await db.fetch(
            f"SELECT {_TICKET} FROM aftersales_tickets t WHERE {where} ORDER BY t.id DESC LIMIT $2",
            user_id,
            limit,
        )
    )


async def queue(
    db: Conn,
    *,
    statuses: Sequence[str],
    cities: list[str] | None,
    merchants: list[int],
    limit: int,
) -> list[asyncpg.Record]:
    """Tickets in these states (in the caller's cities or merchants; None: everywhere),
    the nearest deadline first."""
    return list(
        await db.fetch(
            f"SELECT {_TICKET} FROM aftersales_tickets t WHERE t.status = ANY($1) "
            "AND ($2::text[] IS NULL OR t.city_id = ANY($2) OR t.merchant_id = ANY($3)) "
            "ORDER BY CASE WHEN t.first_response_at IS NULL AND t.status = 'open' "
            "THEN least(t.first_response_due, t.resolution_due) ELSE t.resolution_due END, t.id "
            "LIMIT $4",
            list(statuses),
            cities,
            merchants,
            limit,
        )
    )


async def due_escalations(tx: Tx, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Open tickets past a deadline their level does not show yet, locked (others skipped)."""
    return list(
        await tx.fetch(
            f"SELECT {_TICKET} FROM aftersales_tickets t "
            "WHERE t.status IN ('open', 'in_progress', 'disputed') AND ("
            "(t.resolution_due <= $1 AND t.escalation_level < 2) OR "
            "(t.first_response_at IS NULL AND t.first_response_due <= $1 AND t.escalation_level < 1)) "
            "ORDER BY t.id LIMIT $2 FOR NO KEY UPDATE OF t SKIP LOCKED",  # tickets stay
            now,
            limit,
        )
    )


async def add_note(
    tx: Tx,
    ticket_id: int,
    *,
    author_id: int | None,
    side: str,
    kind: str,
    body: str,
    photos: Sequence[int] = (),
    at: datetime,
) -> int:
    """A note on a ticket; its id."""
    return int(
        await tx.fetchval(
            "INSERT INTO aftersales_notes (ticket_id, author_id, side, kind, body, photo_ids, at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            ticket_id,
            author_id,
            side,
            kind,
            body,
            list(photos),
            at,
        )
    )


async def notes(db: Conn, ticket_id: int) -> list[Note]:
    """A ticket's notes, oldest first."""
    rows = await db.fetch(
        "SELECT id, side, kind, author_id, body, photo_ids AS photos, at FROM aftersales_notes "
        "WHERE ticket_id = $1 ORDER BY id",
        ticket_id,
    )
    return [Note(**dict(r)) for r in rows]


async def sides_stated(db: Conn, ticket_id: int) -> set[str]:
    """The sides that stated their case in the ticket's dispute."""
    rows = await db.fetch(
        "SELECT side FROM aftersales_notes WHERE ticket_id = $1 AND kind = 'statement'", ticket_id
    )
    return {str(r["side"]) for r in rows}


async def photos_of(db: Conn, ticket_id: int) -> list[int]:
    """Every photo on a ticket's notes."""
    rows = await db.fetch(
        "SELECT DISTINCT unnest(photo_ids) AS f FROM aftersales_notes WHERE ticket_id = $1 "
        "ORDER BY 1",
        ticket_id,
    )
    return [int(r["f"]) for r in rows]


async def add_outcome(
    tx: Tx,
    ticket_id: int,
    kind: str,
    *,
    amount_fen: int | None = None,
    out_refund_no: str | None = None,
    ledger_key: str | None = None,
    redo_order_id: int | None = None,
    detail: dict[str, Any] | None = None,
    by_id: int | None,
    at: datetime,
) -> None:
    """One outcome of a ticket (one of a kind)."""
    await tx.execute(
        "INSERT INTO aftersales_outcomes (ticket_id, kind, amount_fen, out_refund_no, ledger_key, "
        "redo_order_id, detail, by_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        ticket_id,
        kind,
        amount_fen,
        out_refund_no,
        ledger_key,
        redo_order_id,
        detail or {},
        by_id,
        at,
    )


async def outcomes(db: Conn, ticket_id: int) -> list[Outcome]:
    """A ticket's outcomes."""
    rows = await db.fetch(
        "SELECT kind, amount_fen, out_refund_no, ledger_key, redo_order_id, detail, at "
        "FROM aftersales_outcomes WHERE ticket_id = $1 ORDER BY at, kind",
        ticket_id,
    )
    return [Outcome(**dict(r)) for r in rows]


async def insert_ruling(
    tx: Tx, ticket_id: int, *, in_favour: str, reason: str, by: int, at: datetime
) -> bool:
    """The ruling of a dispute; False if one was given (a ruling is final)."""
    status = await tx.execute(
        "INSERT INTO aftersales_rulings (ticket_id, in_favour, reason, ruled_by, ruled_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        ticket_id,
        in_favour,
        reason,
        by,
        at,
    )
    return bool(status.endswith(" 1"))


async def ruling(db: Conn, ticket_id: int) -> Ruling | None:
    """A ticket's ruling, if any."""
    r = await db.fetchrow(
        "SELECT in_favour, reason, ruled_by, ruled_at FROM aftersales_rulings WHERE ticket_id = $1",
        ticket_id,
    )
    return None if r is None else Ruling(**dict(r))


# --- insurance --------------------------------------------------------------------------


async def set_insurance(
    tx: Tx, service_code: str, premium_fen: int, coverage_fen: int, active: bool
) -> Insurance:
    """A service's insurance option (replaced)."""
    r = await tx.fetchrow(
        "INSERT INTO service_insurance (service_code, premium_fen, coverage_fen, active) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (service_code) DO UPDATE SET "
        "premium_fen = EXCLUDED.premium_fen, coverage_fen = EXCLUDED.coverage_fen, "
        "active = EXCLUDED.active, updated_at = now() "
        "RETURNING service_code, premium_fen, coverage_fen, active",
        service_code,
        premium_fen,
        coverage_fen,
        active,
    )
    assert r is not None
    return Insurance(**dict(r))


async def insurance(db: Conn, service_code: str) -> Insurance | None:
    """A service's insurance option, if any."""
    r = await db.fetchrow(
        "SELECT service_code, premium_fen, coverage_fen, active FROM service_insurance "
        "WHERE service_code = $1",
        service_code,
    )
    return None if r is None else Insurance(**dict(r))


async def insure(tx: Tx, order_id: int, premium_fen: int, coverage_fen: int) -> None:
    """The order took the cover."""
    await tx.execute(
        "INSERT INTO order_insurance (order_id, premium_fen, coverage_fen) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        order_id,
        premium_fen,
        coverage_fen,
    )


async def order_cover(db: Conn, order_id: int) -> tuple[int, int] | None:
    """(premium, coverage) of an insured order."""
    r = await db.fetchrow(
        "SELECT premium_fen, coverage_fen FROM order_insurance WHERE order_id = $1", order_id
    )
    return None if r is None else (int(r["premium_fen"]), int(r["coverage_fen"]))


_CLAIM = (
    "id, ticket_id, order_id, status, claimed_fen, assessed_fen, coverage_fen, reason, "
    "assessed_at, decided_at, created_at"
)


async def insert_claim(
    tx: Tx, ticket_id: int, order_id: int, claimed_fen: int | None, coverage_fen: int, at: datetime
) -> None:
    """A claim for a damage ticket on an insured order."""
    await tx.execute(
        "INSERT INTO insurance_claims (ticket_id, order_id, claimed_fen, coverage_fen, created_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        ticket_id,
        order_id,
        claimed_fen,
        coverage_fen,
        at,
    )


async def claim(db: Conn, ticket_id: int, *, lock: bool = False) -> Claim | None:
    """A ticket's claim."""
    r = await db.fetchrow(
        f"SELECT {_CLAIM} FROM insurance_claims WHERE ticket_id = $1"
        f"{' FOR UPDATE' if lock else ''}",
        ticket_id,
    )
    return None if r is None else Claim(**dict(r))


async def update_claim(tx: Tx, claim_id: int, **fields: Any) -> None:
    """Set fields of a claim."""
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
    await tx.execute(
        f"UPDATE insurance_claims SET {sets} WHERE id = $1", claim_id, *fields.values()
    )


# --- spot checks ----------------------------------------------------------------------


async def completed_between(db: Conn, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(order, worker) of the orders completed in [start, end)."""
    rows = await db.fetch(
        "SELECT id, worker_id FROM orders WHERE status = 'completed' AND worker_id IS NOT NULL "
        "AND completed_at >= $1 AND completed_at < $2",
        start,
        end,
    )
    return [(int(r["id"]), int(r["worker_id"])) for r in rows]


async def insert_spot_checks(
    tx: Tx, picked: Sequence[tuple[int, int]], *, period_start: datetime, seed: int, at: datetime
) -> int:
    """Call-back tasks for the sampled orders (an order sampled before is left as it is)."""
    if not picked:
        return 0
    status = await tx.execute(
        "INSERT INTO spot_checks (order_id, worker_id, customer_id, city_id, period_start, seed, "
        "created_at) SELECT o.id, o.worker_id, o.customer_id, o.city_id, $2, $3, $4 "
        "FROM orders o WHERE o.id = ANY($1) ON CONFLICT (order_id) DO NOTHING",
        [o for o, _ in picked],
        period_start,
        seed,
        at,
    )
    return int(status.split()[-1])


async def spot_checks(
    db: Conn, *, status: str | None, cities: list[str] | None, limit: int
) -> list[SpotCheck]:
    """Spot checks, oldest first (in the caller's cities; None: everywhere)."""
    rows = await db.fetch(
        f"SELECT {_SPOT} FROM spot_checks WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::text[] IS NULL OR city_id = ANY($2)) ORDER BY id LIMIT $3",
        status,
        cities,
        limit,
    )
    return [SpotCheck(**dict(r)) for r in rows]


async def spot_check(db: Conn, spot_id: int, *, lock: bool = False) -> SpotCheck | None:
    """One spot check."""
    r = await db.fetchrow(
        f"SELECT {_SPOT} FROM spot_checks WHERE id = $1{' FOR UPDATE' if lock else ''}", spot_id
    )
    return None if r is None else SpotCheck(**dict(r))


async def finish_spot_check(tx: Tx, spot_id: int, **fields: Any) -> None:
    """Record a call-back's result."""
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
    await tx.execute(f"UPDATE spot_checks SET {sets} WHERE id = $1", spot_id, *fields.values())


async def staff_to_tell(db: Conn, *, limit: int = 20) -> list[int]:
    """Who hears of an escalation: active admins and holders of a live customer-service
    grant (or of a role made with ``aftersales.write``), admins first."""
    rows = await db.fetch(
        "SELECT u.id FROM users u WHERE u.status = 'active' AND ('admin' = ANY(u.roles) OR "
        "EXISTS (SELECT 1 FROM role_grants g LEFT JOIN roles r ON r.name = g.role "
        "WHERE g.user_id = u.id AND g.revoked_at IS NULL AND (g.role = 'customer_service' "
        "OR 'aftersales.write' = ANY(r.permissions)))) "
        "ORDER BY ('admin' = ANY(u.roles)) DESC, u.id LIMIT $1",
        limit,
    )
    return [int(r["id"]) for r in rows]

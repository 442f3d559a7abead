"""PostgreSQL access for quality facts, discipline actions and their steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from doorstep.db import Conn, Tx
from quality.rules import Facts


@dataclass(frozen=True, slots=True)
class Action:
    """A reward or penalty, with its appeal."""

    id: int
    worker_id: int
    kind: str
    amount_fen: int | None
    starts_at: datetime
    ends_at: datetime | None
    status: str
    reason: str
    score: int | None
    ledger_status: str
    ledger_key: str | None
    created_by: int | None
    created_at: datetime
    appeal_text: str | None
    appealed_at: datetime | None
    decided_by: int | None
    decided_at: datetime | None
    decision_reason: str


_ACTION = (
    "id, worker_id, kind, amount_fen, starts_at, ends_at, status, reason, score, ledger_status, "
    "ledger_key, created_by, created_at, appeal_text, appealed_at, decided_by, decided_at, decision_reason"
)


def _action(r: asyncpg.Record) -> Action:
    return Action(**dict(r))


async def facts(
    db: Conn, worker_ids: list[int], since: datetime, late_grace_min: int
) -> dict[int, Facts]:
    """What each worker did since ``since`` (one query per source, not per worker)."""
    out: dict[int, dict[str, int]] = {w: {} for w in worker_ids}
    for r in await db.fetch(
        "SELECT worker_id, count(*) FILTER (WHERE status = 'completed') AS jobs, "
        "count(*) FILTER (WHERE window_start IS NOT NULL AND arrived_at IS NOT NULL) AS scheduled, "
        "count(*) FILTER (WHERE window_start IS NOT NULL AND arrived_at > window_start + $3) AS late "
        "FROM orders WHERE worker_id = ANY($1) AND created_at >= $2 GROUP BY worker_id",
        worker_ids,
        since,
        timedelta(minutes=late_grace_min),
    ):
        out[r["worker_id"]].update(jobs=r["jobs"], scheduled=r["scheduled"], late=r["late"])
    for r in await db.fetch(
        "SELECT worker_id, coalesce(sum(stars), 0) AS s, count(*) AS n FROM ratings "
        "WHERE worker_id = ANY($1) AND created_at >= $2 GROUP BY worker_id",
        worker_ids,
        since,
    ):
        out[r["worker_id"]].update(stars_sum=int(r["s"]), ratings=int(r["n"]))
    for r in await db.fetch(
        "SELECT actor_id, count(*) AS n FROM order_events WHERE action = 'unassign' "
        "AND actor = 'worker' AND actor_id = ANY($1) AND at >= $2 GROUP BY actor_id",
        worker_ids,
        since,
    ):
        out[r["actor_id"]].update(dropped=int(r["n"]))
    for r in await db.fetch(
        "SELECT worker_id, count(*) FILTER (WHERE kind = 'complaint') AS complaints, "
        "count(*) FILTER (WHERE kind = 'spot_check' AND passed) AS spot_passed, "
        "count(*) FILTER (WHERE kind = 'spot_check' AND NOT passed) AS spot_failed "
        "FROM quality_events WHERE worker_id = ANY($1) AND at >= $2 GROUP BY worker_id",
        worker_ids,
        since,
    ):
        out[r["worker_id"]].update(
            complaints=r["complaints"], spot_passed=r["spot_passed"], spot_failed=r["spot_failed"]
        )
    return {w: Facts(**{k: int(v) for k, v in f.items()}) for w, f in out.items()}


async def insert_event(
    db: Conn,
    *,
    worker_id: int,
    kind: str,
    passed: bool | None,
    order_id: int | None,
    note: str,
    actor_id: int,
    now: datetime,
) -> int:
    """A complaint or a spot check."""
    return int(
        await db.fetchval(
            "INSERT INTO quality_events (worker_id, kind, passed, order_id, note, created_by, at) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id",
            worker_id,
            kind,
            passed,
            order_id,
            note,
            actor_id,
            now,
        )
    )


async def insert_action(
    db: Tx,
    *,
    worker_id: int,
    kind: str,
    amount_fen: int | None,
    starts_at: datetime,
    ends_at: datetime | None,
    reason: str,
    score: int | None,
    actor_id: int | None,
) -> Action:
    """A reward or penalty; its money (a fine, a bonus) is ``unbooked`` until the caller
    books it in this same transaction (``quality.service``)."""
    row = await db.fetchrow(
        "INSERT INTO discipline_actions (worker_id, kind, amount_fen, starts_at, ends_at, reason, "
        "score, ledger_status, created_by, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$4) "
        f"RETURNING {_ACTION}",
        worker_id,
        kind,
        amount_fen,
        starts_at,
        ends_at,
        reason,
        score,
        "unbooked" if amount_fen else "not_applicable",
        actor_id,
    )
    assert row is not None
    await add_step(db, row["id"], step="given", actor_id=actor_id, now=starts_at, reason=reason)
    return _action(row)


async def unbooked(db: Conn, limit: int) -> list[int]:
    """Actions whose money is not booked yet (recorded before the ledger existed)."""
    rows = await db.fetch(
        "SELECT id FROM discipline_actions WHERE ledger_status = 'unbooked' ORDER BY id LIMIT $1",
        limit,
    )
    return [int(r["id"]) for r in rows]


async def add_step(
    db: Conn, action_id: int, *, step: str, actor_id: int | None, now: datetime, reason: str
) -> None:
    """One step of an action's audit trail."""
    await db.execute(
        "INSERT INTO discipline_steps (action_id, at, actor_id, step, reason) VALUES ($1,$2,$3,$4,$5)",
        action_id,
        now,
        actor_id,
        step,
        reason,
    )


async def action(db: Conn, action_id: int, *, lock: bool = False) -> Action | None:
    """One action (``lock``: its row lock, FOR NO KEY UPDATE: the steps that reference it
    are not held up; docs/architecture.md "Row locks")."""
    row = await db.fetchrow(
        f"SELECT {_ACTION} FROM discipline_actions WHERE id = $1"
        f"{' FOR NO KEY UPDATE' if lock else ''}",
        action_id,
    )
    return _action(row) if row else None


async def actions(db: Conn, worker_id: int) -> list[Action]:
    """A worker's actions, newest first."""
    rows = await db.fetch(
        f"SELECT {_ACTION} FROM discipline_actions WHERE worker_id = $1 ORDER BY id DESC",
        worker_id,
    )
    return [_action(r) for r in rows]


async def update_action(db: Tx, action_id: int, **fields: object) -> Action:
    """Set some columns of an action."""
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    row = await db.fetchrow(
        f"UPDATE discipline_actions SET {sets} WHERE id = $1 RETURNING {_ACTION}",
        action_id,
        *fields.values(),
    )
    assert row is not None
    return _action(row)


@dataclass(frozen=True, slots=True)
class ActionStep:
    """One step of an action: given, appealed, upheld, overturned."""

    at: datetime
    actor_id: int | None
    step: str
    reason: str


async def steps(db: Conn, action_id: int) -> list[ActionStep]:
    """An action's audit trail, oldest first."""
    rows = await db.fetch(
        "SELECT at, actor_id, step, reason FROM discipline_steps WHERE action_id = $1 ORDER BY id",
        action_id,
    )
    return [ActionStep(**dict(r)) for r in rows]


async def recent_kinds(db: Conn, worker_id: int, since: datetime) -> set[str]:
    """Kinds of actions given to the worker since ``since`` (not overturned)."""
    rows = await db.fetch(
        "SELECT DISTINCT kind FROM discipline_actions WHERE worker_id = $1 AND created_at >= $2 "
        "AND status <> 'overturned'",
        worker_id,
        since,
    )
    return {r["kind"] for r in rows}


async def suspensions_since(db: Conn, worker_id: int, since: datetime) -> int:
    """Suspensions (not overturned) since ``since``."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM discipline_actions WHERE worker_id = $1 AND kind = 'suspension' "
            "AND status <> 'overturned' AND created_at >= $2",
            worker_id,
            since,
        )
    )


async def city_workers(db: Conn, city_id: str) -> list[asyncpg.Record]:
    """A city's workers with names."""
    return await db.fetch(
        "SELECT w.user_id, u.name FROM workers w JOIN users u ON u.id = w.user_id "
        "WHERE w.city_id = $1 ORDER BY w.user_id",
        city_id,
    )

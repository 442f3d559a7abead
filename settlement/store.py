"""PostgreSQL access for commission rules and snapshots, settlements, withdrawals and
reconciliations. Money itself is only in the ledger (``ledger.store``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from settlement.commission import Commission, CommissionRule
from settlement.models import (
    CommissionOut,
    DifferenceOut,
    EarningsBucket,
    Payee,
    ReconciliationOut,
    RuleOut,
    SettlementOut,
    ShareMember,
    WithdrawalOut,
)
from settlement.reconcile import Difference
from settlement.rules import COUNTED, DayUse, ShareFen

# --- commission rules ---------------------------------------------------------------

_RULE = (
    "id, city_id, category, service_code, merchant_id, rate_bps, fixed_fen, min_fen, max_fen, "
    "note, active, created_at, updated_at"
)


def _rule(r: asyncpg.Record) -> RuleOut:
    rule = as_rule(r)
    return RuleOut(
        id=r["id"],
        city_id=r["city_id"],
        category=r["category"],
        service_code=r["service_code"],
        merchant_id=r["merchant_id"],
        rate_bps=r["rate_bps"],
        fixed_fen=r["fixed_fen"],
        min_fen=r["min_fen"],
        max_fen=r["max_fen"],
        note=r["note"],
        active=r["active"],
        specificity=rule.specificity,
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def as_rule(r: asyncpg.Record | RuleOut) -> CommissionRule:
    """The pure rule of a stored one."""
    d: dict[str, Any] = (
        dict(r.items())
        if isinstance(r, asyncpg.Record)
        else {k: getattr(r, k) for k in RuleOut.__slots__}
    )
    return CommissionRule(
        id=d["id"],
        rate_bps=d["rate_bps"],
        fixed_fen=d["fixed_fen"],
        min_fen=d["min_fen"],
        max_fen=d["max_fen"],
        city_id=d["city_id"],
        category=d["category"],
        service_code=d["service_code"],
        merchant_id=d["merchant_id"],
    )


async def insert_rule(tx: Tx, rule: CommissionRule, note: str, created_by: int) -> RuleOut:
    """Store a new rule."""
    row = await tx.fetchrow(
        "INSERT INTO commission_rules (city_id, category, service_code, merchant_id, rate_bps, "
        "fixed_fen, min_fen, max_fen, note, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        f"$9, $10) RETURNING {_RULE}",
        rule.city_id,
        rule.category,
        rule.service_code,
        rule.merchant_id,
        rule.rate_bps,
        rule.fixed_fen,
        rule.min_fen,
        rule.max_fen,
        note,
        created_by,
    )
    assert row is not None
    return _rule(row)


async def set_rule_active(tx: Tx, rule_id: int, active: bool) -> RuleOut | None:
    """Switch a rule on or off (rules are never edited: a new rule replaces an old one)."""
    row = await tx.fetchrow(
        "UPDATE commission_rules SET active = $2, updated_at = now(), deactivated_at = "
        "CASE WHEN $2 THEN NULL ELSE coalesce(deactivated_at, now()) END "
        f"WHERE id = $1 RETURNING {_RULE}",
        rule_id,
        active,
    )
    return _rule(row) if row else None


async def rules(db: Conn, *, active_only: bool = True) -> list[RuleOut]:
    """The rules, newest first."""
    rows = await db.fetch(
        f"SELECT {_RULE} FROM commission_rules WHERE active OR NOT $1 ORDER BY id DESC",
        active_only,
    )
    return [_rule(r) for r in rows]


async def rules_at(db: Conn, at: datetime) -> list[RuleOut]:
    """The rules that were in force at ``at`` (made by then, not yet switched off), newest
    first."""
    rows = await db.fetch(
        f"SELECT {_RULE} FROM commission_rules WHERE created_at <= $1 "
        "AND (active OR deactivated_at > $1) ORDER BY id DESC",
        at,
    )
    return [_rule(r) for r in rows]


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What settlement needs of an order."""

    order_id: int
    city_id: str
    category: str
    service_code: str
    status: str
    price_fen: int
    worker_id: int | None
    # The order's merchant: the worker's team's once a worker has it, else the merchant it
    # was routed to (orders.merchant_id), else None.
    merchant_id: int | None
    completed_at: datetime | None
    updated_at: datetime


_FACTS = (
    "SELECT o.id, o.city_id, s.category, o.service_code, o.status, o.price_minor, "
    "o.worker_id, CASE WHEN o.worker_id IS NULL THEN o.merchant_id ELSE t.merchant_id END "
    "AS merchant_id, o.completed_at, o.updated_at FROM orders o "
    "JOIN services s ON s.code = o.service_code "
    "LEFT JOIN workers w ON w.user_id = o.worker_id LEFT JOIN teams t ON t.id = w.team_id "
)


async def order_facts(db: Conn, order_id: int, *, lock: bool = False) -> OrderFacts | None:
    """The order's city, category, service, worker and the worker's merchant."""
    row = await db.fetchrow(
        # an order's row lock is FOR NO KEY UPDATE (dispatch.store.ROW_LOCK)
        _FACTS + "WHERE o.id = $1" + (" FOR NO KEY UPDATE OF o" if lock else ""),
        order_id,
    )
    return _facts(row) if row is not None else None


async def orders_facts(db: Conn, order_ids: list[int]) -> dict[int, OrderFacts]:
    """:func:`order_facts` of several orders, by order (one statement)."""
    rows = await db.fetch(_FACTS + "WHERE o.id = ANY($1::bigint[])", order_ids)
    return {r["id"]: _facts(r) for r in rows}


def _facts(row: asyncpg.Record) -> OrderFacts:
    return OrderFacts(
        order_id=row["id"],
        city_id=row["city_id"],
        category=row["category"],
        service_code=row["service_code"],
        status=row["status"],
        price_fen=row["price_minor"],
        worker_id=row["worker_id"],
        merchant_id=row["merchant_id"],
        completed_at=row["completed_at"],
        updated_at=row["updated_at"],
    )


async def crew_of(db: Conn, order_id: int) -> list[int]:
    """The workers of the order's crew, the lead first (empty: a one-worker order)."""
    rows = await db.fetch(
        "SELECT worker_id FROM order_crew WHERE order_id = $1 AND released_at IS NULL "
        "ORDER BY seat",
        order_id,
    )
    return [r["worker_id"] for r in rows]


async def merchant_of(db: Conn, worker_id: int) -> int | None:
    """The merchant of the worker's team, if any."""
    found = await db.fetchval(
        "SELECT t.merchant_id FROM workers w JOIN teams t ON t.id = w.team_id WHERE w.user_id = $1",
        worker_id,
    )
    return int(found) if found is not None else None


async def snapshot(
    tx: Tx, order_id: int, c: Commission, at: datetime, *, merchant_id: int | None = None
) -> CommissionOut:
    """Keep the commission's terms on the order, taken for ``merchant_id`` (the first
    snapshot stays; :func:`resnapshot` replaces it)."""
    row = await tx.fetchrow(
        "INSERT INTO order_commissions (order_id, rule_id, rate_bps, fixed_fen, min_fen, max_fen, "
        "base_fen, commission_fen, snapshot_at, merchant_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (order_id) DO NOTHING "
        "RETURNING *",
        order_id,
        c.rule_id,
        c.rate_bps,
        c.fixed_fen,
        c.min_fen,
        c.max_fen,
        c.base_fen,
        c.commission_fen,
        at,
        merchant_id,
    )
    if row is not None:
        return _commission(row)
    got = await snapshot_of(tx, order_id)  # there was one: it stays
    assert got is not None
    return got


async def snapshots(tx: Tx, taken: list[tuple[int, Commission, datetime, int | None]]) -> None:
    """:func:`snapshot` of several orders in one statement: (order, commission, time,
    merchant) each; an order's first snapshot stays (the first of the list, if twice)."""
    await tx.execute(
        "INSERT INTO order_commissions (order_id, rule_id, rate_bps, fixed_fen, min_fen, max_fen, "
        "base_fen, commission_fen, snapshot_at, merchant_id) "
        "SELECT o, r, bps, fx, mn, mx, b, c, at, m FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[], "
        "$5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::timestamptz[], "
        "$10::bigint[]) WITH ORDINALITY AS t(o, r, bps, fx, mn, mx, b, c, at, m, i) "
        "ORDER BY i ON CONFLICT (order_id) DO NOTHING",
        [o for o, _, _, _ in taken],
        [c.rule_id for _, c, _, _ in taken],
        [c.rate_bps for _, c, _, _ in taken],
        [c.fixed_fen for _, c, _, _ in taken],
        [c.min_fen for _, c, _, _ in taken],
        [c.max_fen for _, c, _, _ in taken],
        [c.base_fen for _, c, _, _ in taken],
        [c.commission_fen for _, c, _, _ in taken],
        [at for _, _, at, _ in taken],
        [m for _, _, _, m in taken],
    )


async def resnapshot(
    tx: Tx, order_id: int, c: Commission, *, merchant_id: int | None, at: datetime
) -> CommissionOut:
    """Take an order's snapshot again for another merchant (its time and rules_at stay)."""
    await tx.execute(
        "UPDATE order_commissions SET rule_id = $2, rate_bps = $3, fixed_fen = $4, min_fen = $5, "
        "max_fen = $6, commission_fen = $7, merchant_id = $8, resnapshot_at = $9 "
        "WHERE order_id = $1",
        order_id,
        c.rule_id,
        c.rate_bps,
        c.fixed_fen,
        c.min_fen,
        c.max_fen,
        c.commission_fen,
        merchant_id,
        at,
    )
    got = await snapshot_of(tx, order_id)
    assert got is not None
    return got


async def is_settled(db: Conn, order_id: int) -> bool:
    """Whether the order's money has been settled (booked from its commission)."""
    found = await db.fetchval("SELECT status FROM settlements WHERE order_id = $1", order_id)
    return bool(found == "settled")


async def snapshot_of(db: Conn, order_id: int, *, lock: bool = False) -> CommissionOut | None:
    """The commission snapshotted on an order, if any (``lock``: its row, for a change)."""
    r = await db.fetchrow(
        "SELECT * FROM order_commissions WHERE order_id = $1" + (" FOR UPDATE" if lock else ""),
        order_id,
    )
    return None if r is None else _commission(r)


def _commission(r: asyncpg.Record) -> CommissionOut:
    return CommissionOut(
        order_id=r["order_id"],
        rule_id=r["rule_id"],
        rate_bps=r["rate_bps"],
        fixed_fen=r["fixed_fen"],
        min_fen=r["min_fen"],
        max_fen=r["max_fen"],
        base_fen=r["base_fen"],
        commission_fen=r["commission_fen"],
        payee_fen=r["base_fen"] - r["commission_fen"],
        snapshot_at=r["snapshot_at"],
        merchant_id=r["merchant_id"],
        rules_at=r["rules_at"],
        resnapshot_at=r["resnapshot_at"],
    )


# --- settlements ----------------------------------------------------------------------


async def add_settlement(
    tx: Tx,
    *,
    order_id: int,
    payee: Payee,
    worker_id: int,
    city_id: str,
    completed_at: datetime,
    due_at: datetime,
    gross_fen: int,
    commission_fen: int,
) -> bool:
    """A pending settlement for an order; False if it had one."""
    status = await tx.execute(
        "INSERT INTO settlements (order_id, payee_kind, payee_id, worker_id, city_id, "
        "completed_at, due_at, gross_fen, commission_fen, net_fen) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9::bigint, $8::bigint - $9::bigint) "
        "ON CONFLICT (order_id) DO NOTHING",
        order_id,
        payee.kind,
        payee.id,
        worker_id,
        city_id,
        completed_at,
        due_at,
        gross_fen,
        commission_fen,
    )
    return bool(status.endswith(" 1"))


async def due_settlements(tx: Tx, now: datetime, limit: int) -> list[int]:
    """Orders whose settlement is due and not held (an open after-sales ticket), locked
    (others' skipped)."""
    rows = await tx.fetch(
        "SELECT order_id FROM settlements WHERE status = 'pending' AND due_at <= $1 "
        "AND NOT EXISTS (SELECT 1 FROM settlement_holds h WHERE h.order_id = settlements.order_id) "
        # NO KEY: a claimed settlement is settled, never deleted (docs/architecture.md)
        "ORDER BY due_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [r["order_id"] for r in rows]


async def hold(tx: Tx, order_id: int, key: str) -> str | None:
    """Hold an order's settlement (an after-sales ticket, ``key``), in the caller's
    transaction. The order's settlement row is locked first, so a settlement running now
    finishes before the hold is taken: the answer is its status then (None: no row yet,
    the completion not heard yet; the hold applies when it comes)."""
    status = await tx.fetchval(
        "SELECT status FROM settlements WHERE order_id = $1 FOR NO KEY UPDATE", order_id
    )
    await tx.execute(
        "INSERT INTO settlement_holds (order_id, hold_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        order_id,
        key,
    )
    return None if status is None else str(status)


async def release(tx: Tx, order_id: int, key: str) -> None:
    """Lift one hold; the order settles at the next run once none is left and it is due."""
    await tx.execute(
        "DELETE FROM settlement_holds WHERE order_id = $1 AND hold_key = $2", order_id, key
    )


async def holds(db: Conn, order_id: int) -> list[str]:
    """The holds on an order's settlement."""
    rows = await db.fetch(
        "SELECT hold_key FROM settlement_holds WHERE order_id = $1 ORDER BY hold_key", order_id
    )
    return [str(r["hold_key"]) for r in rows]


async def premium_of(db: Conn, order_id: int) -> int:
    """The insurance premium an order took at booking (after-sales' ``order_insurance``), 0
    if none: settlement moves it to the insurance fund, not to the worker."""
    found = await db.fetchval(
        "SELECT premium_fen FROM order_insurance WHERE order_id = $1", order_id
    )
    return int(found or 0)


async def lock_settlement(tx: Tx, order_id: int) -> SettlementOut | None:
    """One settlement, locked."""
    rows = await _settlements(tx, "s.order_id = $1", [order_id], lock=True)
    return rows[0] if rows else None


async def mark_settled(
    tx: Tx, order_id: int, *, gross_fen: int, commission_fen: int, at: datetime
) -> None:
    """The settlement is done with these amounts."""
    await tx.execute(
        "UPDATE settlements SET status = 'settled', gross_fen = $2::bigint, "
        "commission_fen = $3::bigint, "
        "net_fen = $2::bigint - $3::bigint, settled_at = $4 WHERE order_id = $1",
        order_id,
        gross_fen,
        commission_fen,
        at,
    )


async def put_shares(tx: Tx, order_id: int, shares: Sequence[tuple[int, Payee, ShareFen]]) -> None:
    """Keep who gets which share of a crew order's settlement: (member, the wallet paid,
    the amounts), in the split's order (the lead first); replaces what was kept (none:
    the order's settlement row says it all)."""
    await tx.execute("DELETE FROM settlement_shares WHERE order_id = $1", order_id)
    if shares:
        await tx.executemany(
            "INSERT INTO settlement_shares (order_id, part, worker_id, payee_kind, payee_id, "
            "gross_fen, commission_fen, net_fen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (order_id, i, w, p.kind, p.id, f.gross_fen, f.commission_fen, f.net_fen)
                for i, (w, p, f) in enumerate(shares)
            ],
        )


async def _settlements(
    db: Conn, where: str, args: list[Any], *, limit: int = 1, lock: bool = False
) -> list[SettlementOut]:
    n = len(args) + 1
    rows = await db.fetch(
        "SELECT s.*, o.service_code, greatest((SELECT count(*) FROM settlement_shares x "
        "WHERE x.order_id = s.order_id), 1) AS crew_size "
        "FROM settlements s JOIN orders o ON o.id = s.order_id "
        f"WHERE {where} ORDER BY s.completed_at DESC, s.order_id DESC LIMIT ${n}"
        + (" FOR NO KEY UPDATE OF s" if lock else ""),
        *args,
        limit,
    )
    return [_settlement(r) for r in rows]


def _settlement(r: asyncpg.Record) -> SettlementOut:
    return SettlementOut(
        order_id=r["order_id"],
        payee_kind=r["payee_kind"],
        payee_id=r["payee_id"],
        worker_id=r["worker_id"],
        city_id=r["city_id"],
        service_code=r["service_code"],
        status=r["status"],
        completed_at=r["completed_at"],
        due_at=r["due_at"],
        settled_at=r["settled_at"],
        gross_fen=r["gross_fen"],
        commission_fen=r["commission_fen"],
        net_fen=r["net_fen"],
        crew_size=int(r["crew_size"]),
    )


# A wallet's part of each settlement ($1, $2: the payee's kind and id): a settlement row's
# own amounts, for an order without shares (one worker; a crew order opened before
# shares were kept), or the sum of the wallet's shares of a crew order
# (``settlement_shares``: another member's or merchant's are not the wallet's, whoever
# the settlement row's payee is). ``parts``: the wallet's places in the crew's split, of
# ``crew_size``; ``members``, ``member_nets``: the wallet's members on the crew and their
# shares' nets, in the split's order (empty without shares).
_MINE = (
    "(SELECT s.order_id, s.worker_id, s.city_id, s.status, s.completed_at, s.due_at, "
    "s.settled_at, s.gross_fen, s.commission_fen, s.net_fen, 1::bigint AS crew_size, "
    "ARRAY[0] AS parts, '{}'::bigint[] AS members, '{}'::bigint[] AS member_nets "
    "FROM settlements s WHERE s.payee_kind = $1 AND s.payee_id = $2 "
    "AND NOT EXISTS (SELECT 1 FROM settlement_shares x WHERE x.order_id = s.order_id) "
    "UNION ALL "
    "SELECT s.order_id, m.worker_id, s.city_id, s.status, s.completed_at, s.due_at, "
    "s.settled_at, m.gross_fen, m.commission_fen, m.net_fen, m.crew_size, m.parts, "
    "m.members, m.member_nets "
    "FROM (SELECT x.order_id, (array_agg(x.worker_id ORDER BY x.part))[1] AS worker_id, "
    "sum(x.gross_fen)::bigint AS gross_fen, sum(x.commission_fen)::bigint AS commission_fen, "
    "sum(x.net_fen)::bigint AS net_fen, (SELECT count(*) FROM settlement_shares y "
    "WHERE y.order_id = x.order_id) AS crew_size, array_agg(x.part ORDER BY x.part) AS parts, "
    "array_agg(x.worker_id ORDER BY x.part) AS members, "
    "array_agg(x.net_fen ORDER BY x.part) AS member_nets "
    "FROM settlement_shares x WHERE x.payee_kind = $1 AND x.payee_id = $2 "
    "GROUP BY x.order_id) m JOIN settlements s ON s.order_id = m.order_id)"
)


async def settlements_of(
    db: Conn, payee: Payee, *, status: str | None, limit: int
) -> list[SettlementOut]:
    """A wallet's settlements, newest completion first: of a crew order, the wallet's
    shares of it and its members on the crew, named (see ``_MINE``)."""
    rows = await db.fetch(
        "SELECT m.*, $1::text AS payee_kind, $2::bigint AS payee_id, o.service_code "
        f"FROM {_MINE} m JOIN orders o ON o.id = m.order_id "
        "WHERE ($3::text IS NULL OR m.status = $3) "
        "ORDER BY m.completed_at DESC, m.order_id DESC LIMIT $4",
        payee.kind,
        payee.id,
        status,
        limit,
    )
    ids = sorted({w for r in rows for w in r["members"]})
    names = (
        {
            r["id"]: r["name"]
            for r in await db.fetch("SELECT id, name FROM users WHERE id = ANY($1)", ids)
        }
        if ids
        else {}
    )
    return [
        replace(
            _settlement(r),
            members=tuple(
                ShareMember(worker_id=w, name=names.get(w, ""), net_fen=n)
                for w, n in zip(r["members"], r["member_nets"], strict=True)
            ),
        )
        for r in rows
    ]


async def all_settlements(
    db: Conn,
    *,
    status: str | None,
    city_id: str | None,
    limit: int,
    city_ids: list[str] | None = None,
) -> list[SettlementOut]:
    """Every wallet's settlements (finance), newest completion first; ``city_ids``: only
    those cities' (a city-scoped caller)."""
    return await _settlements(
        db,
        "($1::text IS NULL OR s.status = $1) AND ($2::text IS NULL OR s.city_id = $2) "
        "AND ($3::text[] IS NULL OR s.city_id = ANY($3))",
        [status, city_id, city_ids],
        limit=limit,
    )


async def payee_city(db: Conn, payee: Payee) -> str | None:
    """The city of a wallet's holder (a worker's, a merchant's), or None."""
    sql = (
        "SELECT city_id FROM workers WHERE user_id = $1"
        if payee.kind == "worker"
        else "SELECT city_id FROM merchants WHERE id = $1"
    )
    found = await db.fetchval(sql, payee.id)
    return str(found) if found is not None else None


@dataclass(frozen=True, slots=True)
class PendingFunds:
    """A wallet's order still in its after-sales window."""

    order_id: int
    held_fen: int  # what the order's funds hold now
    terms: CommissionRule | None  # the snapshot's, if any
    crew_size: int  # members its earnings are split between (1: the wallet takes them all)
    parts: tuple[int, ...]  # the wallet's places in that split


async def pending_funds(db: Conn, payee: Payee) -> list[PendingFunds]:
    """The wallet's orders still in their after-sales window (of a crew order, those it
    has a share of), with what their funds hold now, in one query (the ledger's account
    index)."""
    rows = await db.fetch(
        "SELECT m.order_id, m.crew_size, m.parts, c.rule_id, c.rate_bps, c.fixed_fen, "
        "c.min_fen, c.max_fen, "
        "coalesce((SELECT sum(l.credit_fen - l.debit_fen) FROM ledger_lines l "
        "WHERE l.account = 'order_funds:' || m.order_id), 0)::bigint AS held "
        f"FROM {_MINE} m LEFT JOIN order_commissions c ON c.order_id = m.order_id "
        "WHERE m.status = 'pending'",
        payee.kind,
        payee.id,
    )
    return [
        PendingFunds(
            order_id=r["order_id"],
            held_fen=int(r["held"]),
            terms=CommissionRule(
                id=r["rule_id"],
                rate_bps=r["rate_bps"],
                fixed_fen=r["fixed_fen"],
                min_fen=r["min_fen"],
                max_fen=r["max_fen"],
            )
            if r["rate_bps"] is not None
            else None,
            crew_size=int(r["crew_size"]),
            parts=tuple(r["parts"]),
        )
        for r in rows
    ]


async def earnings(
    db: Conn, payee: Payee, *, period: str, timezone: str, since: datetime
) -> list[EarningsBucket]:
    """The wallet's earnings by local day, week or month since ``since`` (completion time);
    of a crew order, the wallet's shares of it (see ``_MINE``)."""
    rows = await db.fetch(
        "SELECT date_trunc($3, completed_at AT TIME ZONE $4)::date AS start, count(*) AS orders, "
        "sum(gross_fen)::bigint AS gross, sum(commission_fen)::bigint AS commission, "
        "sum(net_fen)::bigint AS net, "
        "coalesce(sum(net_fen) FILTER (WHERE status = 'settled'), 0)::bigint AS settled, "
        "coalesce(sum(net_fen) FILTER (WHERE status = 'pending'), 0)::bigint AS frozen "
        f"FROM {_MINE} m WHERE completed_at >= $5 "
        "GROUP BY 1 ORDER BY 1 DESC",
        payee.kind,
        payee.id,
        period,
        timezone,
        since,
    )
    return [
        EarningsBucket(
            start=r["start"],
            orders=r["orders"],
            gross_fen=r["gross"],
            commission_fen=r["commission"],
            net_fen=r["net"],
            settled_fen=r["settled"],
            frozen_fen=r["frozen"],
        )
        for r in rows
    ]


# --- a worker's jobs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoloJobs:
    """A worker's completed one-worker jobs since a time and in all: how many, their prices."""

    since_jobs: int
    since_fen: int
    total_jobs: int
    total_fen: int


@dataclass(frozen=True, slots=True)
class CrewJob:
    """A completed crew job a worker was on to the end."""

    order_id: int
    price_fen: int
    completed_at: datetime
    crew: tuple[int, ...]  # the members holding it, the lead first (settlement's split order)
    terms: CommissionRule | None  # the order's commission snapshot, if taken


# An order's members holding it (not released), by seat: the crew settlement splits between.
_CREW = (
    "(SELECT array_agg(c.worker_id ORDER BY c.seat) FROM order_crew c "
    "WHERE c.order_id = o.id AND c.released_at IS NULL)"
)


async def solo_jobs(db: Conn, worker_id: int, since: datetime) -> SoloJobs:
    """The worker's completed jobs that were not split between a crew (a crew order's lead
    holds ``orders.worker_id`` too: those are :func:`crew_jobs`)."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE o.completed_at >= $2) AS since_jobs, "
        "coalesce(sum(o.price_minor) FILTER (WHERE o.completed_at >= $2), 0)::bigint AS since_fen, "
        "count(*) AS total_jobs, coalesce(sum(o.price_minor), 0)::bigint AS total_fen "
        "FROM orders o WHERE o.worker_id = $1 AND o.status = 'completed' "
        f"AND coalesce(cardinality({_CREW}), 0) < 2",
        worker_id,
        since,
    )
    assert row is not None
    return SoloJobs(
        since_jobs=int(row["since_jobs"]),
        since_fen=int(row["since_fen"]),
        total_jobs=int(row["total_jobs"]),
        total_fen=int(row["total_fen"]),
    )


async def crew_jobs(db: Conn, worker_id: int) -> list[CrewJob]:
    """The completed crew jobs (two members or more holding it) the worker was on to the
    end, with what settlement splits them by."""
    rows = await db.fetch(
        f"SELECT o.id, o.price_minor, o.completed_at, {_CREW} AS crew, c.rule_id, c.rate_bps, "
        "c.fixed_fen, c.min_fen, c.max_fen FROM orders o "
        "JOIN order_crew me ON me.order_id = o.id AND me.worker_id = $1 "
        "AND me.released_at IS NULL "
        "LEFT JOIN order_commissions c ON c.order_id = o.id "
        "WHERE o.status = 'completed'",
        worker_id,
    )
    return [
        CrewJob(
            order_id=r["id"],
            price_fen=r["price_minor"],
            completed_at=r["completed_at"],
            crew=tuple(r["crew"]),
            terms=CommissionRule(
                id=r["rule_id"],
                rate_bps=r["rate_bps"],
                fixed_fen=r["fixed_fen"],
                min_fen=r["min_fen"],
                max_fen=r["max_fen"],
            )
            if r["rate_bps"] is not None
            else None,
        )
        for r in rows
        if len(r["crew"]) >= 2
    ]


async def merchant_named(db: Conn, worker_id: int) -> tuple[int, str] | None:
    """The merchant of the worker's team and its name (its business's, else its account's)."""
    row = await db.fetchrow(
        "SELECT t.merchant_id, coalesce(m.name, u.name) AS name FROM workers w "
        "JOIN teams t ON t.id = w.team_id JOIN users u ON u.id = t.merchant_id "
        "LEFT JOIN merchants m ON m.id = t.merchant_id WHERE w.user_id = $1",
        worker_id,
    )
    return (int(row["merchant_id"]), str(row["name"])) if row is not None else None


# --- withdrawals ----------------------------------------------------------------------

_WD = (
    "id, payee_kind, payee_id, amount_fen, status, requested_at, reviewed_by, reviewed_at, "
    "reason, out_batch_no, out_detail_no, openid, provider_state, fail_reason, finished_at"
)


@dataclass(frozen=True, slots=True)
class WithdrawalRow:
    """A withdrawal with what the payout needs."""

    out: WithdrawalOut
    out_detail_no: str
    openid: str

    @property
    def payee(self) -> Payee:
        """Whose wallet."""
        return Payee(self.out.payee_kind, self.out.payee_id)


def _wd(r: asyncpg.Record) -> WithdrawalRow:
    return WithdrawalRow(
        WithdrawalOut(
            id=r["id"],
            payee_kind=r["payee_kind"],
            payee_id=r["payee_id"],
            amount_fen=r["amount_fen"],
            status=r["status"],
            requested_at=r["requested_at"],
            reviewed_by=r["reviewed_by"],
            reviewed_at=r["reviewed_at"],
            reason=r["reason"],
            out_batch_no=r["out_batch_no"],
            provider_state=r["provider_state"],
            fail_reason=r["fail_reason"],
            finished_at=r["finished_at"],
        ),
        r["out_detail_no"],
        r["openid"],
    )


async def day_use(tx: Conn, payee: Payee, start: datetime, end: datetime) -> DayUse:
    """What the wallet withdrew in ``[start, end)`` (withdrawals whose money did not return)."""
    row = await tx.fetchrow(
        "SELECT coalesce(sum(amount_fen), 0) AS total, count(*) AS n FROM withdrawals "
        "WHERE payee_kind = $1 AND payee_id = $2 AND requested_at >= $3 AND requested_at < $4 "
        "AND status = ANY($5)",
        payee.kind,
        payee.id,
        start,
        end,
        list(COUNTED),
    )
    assert row is not None
    return DayUse(int(row["total"]), int(row["n"]))


async def discipline_sums(db: Conn, payable: str, receivable: str) -> tuple[int, int]:
    """Fines charged to a wallet (from its balance or owed) and bonuses paid into it, in fen,
    net of reversals (quality/: entries of kinds ``discipline.fine`` and ``discipline.bonus``)."""
    row = await db.fetchrow(
        "SELECT coalesce(sum(l.debit_fen - l.credit_fen) FILTER (WHERE e.kind LIKE "
        "'discipline.fine%'), 0) AS fines, coalesce(sum(l.credit_fen - l.debit_fen) FILTER "
        "(WHERE e.kind LIKE 'discipline.bonus%'), 0) AS bonuses FROM ledger_lines l "
        "JOIN ledger_entries e ON e.id = l.entry_id WHERE l.account = ANY($1) "
        "AND e.kind LIKE 'discipline.%'",
        [payable, receivable],
    )
    assert row is not None
    return int(row["fines"]), int(row["bonuses"])


async def insert_withdrawal(
    tx: Tx, payee: Payee, amount_fen: int, openid: str, now: datetime
) -> WithdrawalRow:
    """A requested withdrawal, with its payout numbers (``WD`` + the id)."""
    row = await tx.fetchrow(
        "WITH s AS (SELECT nextval('withdrawals_id_seq') AS id) "
        "INSERT INTO withdrawals (id, payee_kind, payee_id, amount_fen, openid, out_batch_no, "
        "out_detail_no, requested_at) SELECT s.id, $1, $2, $3, $4, 'WDB' || lpad(s.id::text, 16, '0'), "
        f"'WDD' || lpad(s.id::text, 16, '0'), $5 FROM s RETURNING {_WD}",
        payee.kind,
        payee.id,
        amount_fen,
        openid,
        now,
    )
    assert row is not None
    return _wd(row)


async def withdrawal(db: Conn, withdrawal_id: int, *, lock: bool = False) -> WithdrawalRow | None:
    """One withdrawal (locked with ``lock``)."""
    row = await db.fetchrow(
        f"SELECT {_WD} FROM withdrawals WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        withdrawal_id,
    )
    return _wd(row) if row else None


async def update_withdrawal(tx: Tx, withdrawal_id: int, **changes: Any) -> WithdrawalRow:
    """Set some columns of a withdrawal (names from this module only)."""
    cols = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(changes))
    row = await tx.fetchrow(
        f"UPDATE withdrawals SET {cols} WHERE id = $1 RETURNING {_WD}",
        withdrawal_id,
        *changes.values(),
    )
    assert row is not None
    return _wd(row)


async def withdrawals_of(db: Conn, payee: Payee, *, limit: int) -> list[WithdrawalOut]:
    """A wallet's withdrawals, newest first."""
    rows = await db.fetch(
        f"SELECT {_WD} FROM withdrawals WHERE payee_kind = $1 AND payee_id = $2 "
        "ORDER BY requested_at DESC, id DESC LIMIT $3",
        payee.kind,
        payee.id,
        limit,
    )
    return [_wd(r).out for r in rows]


async def all_withdrawals(
    db: Conn, *, status: str | None, limit: int, city_ids: list[str] | None = None
) -> list[WithdrawalOut]:
    """Every withdrawal (finance): the oldest first when filtered by status (a queue), else
    the newest first; ``city_ids``: only those whose payee is of those cities."""
    order = "ASC" if status else "DESC"
    rows = await db.fetch(
        f"SELECT {_WD} FROM withdrawals WHERE ($1::text IS NULL OR status = $1) "
        "AND ($3::text[] IS NULL OR (CASE WHEN payee_kind = 'worker' THEN (SELECT city_id "
        "FROM workers WHERE user_id = payee_id) ELSE (SELECT city_id FROM merchants "
        "WHERE id = payee_id) END) = ANY($3)) "
        f"ORDER BY requested_at {order}, id {order} LIMIT $2",
        status,
        limit,
        city_ids,
    )
    return [_wd(r).out for r in rows]


async def withdrawal_sums(db: Conn, payee: Payee) -> tuple[int, int]:
    """(withdrawing, withdrawn) fen of a wallet."""
    row = await db.fetchrow(
        "SELECT coalesce(sum(amount_fen) FILTER (WHERE status IN ('requested', 'paying')), 0) AS a, "
        "coalesce(sum(amount_fen) FILTER (WHERE status = 'paid'), 0) AS b FROM withdrawals "
        "WHERE payee_kind = $1 AND payee_id = $2",
        payee.kind,
        payee.id,
    )
    assert row is not None
    return int(row["a"]), int(row["b"])


# --- reconciliations ------------------------------------------------------------------


async def save_reconciliation(
    tx: Tx,
    *,
    provider: str,
    bill_date: Any,
    ran_at: datetime,
    bill_rows: int,
    bill_sha1: str,
    ledger_items: int,
    differences: list[Difference],
) -> int:
    """Store a run and its differences; its id.

    Runs of one provider and day are told apart by ``ran_at``: two in the same instant
    (the caller's clock has whole seconds) get the later one a microsecond after the
    other, under a lock of that provider and day, instead of a unique violation."""
    await tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('doorstep-reconciliation'), "
        "hashtext($1 || ':' || $2::date::text))",
        provider,
        bill_date,
    )
    run_id = await tx.fetchval(
        "INSERT INTO reconciliations (provider, bill_date, ran_at, bill_rows, bill_sha1, "
        "ledger_items, differences) VALUES ($1, $2, greatest($3::timestamptz, ("
        "SELECT max(ran_at) + interval '1 microsecond' FROM reconciliations "
        "WHERE provider = $1 AND bill_date = $2)), $4, $5, $6, $7) RETURNING id",
        provider,
        bill_date,
        ran_at,
        bill_rows,
        bill_sha1,
        ledger_items,
        len(differences),
    )
    if differences:
        await tx.executemany(
            "INSERT INTO reconciliation_differences (reconciliation_id, kind, ref, problem, "
            "bill_fen, ledger_fen) VALUES ($1, $2, $3, $4, $5, $6)",
            [(run_id, d.kind, d.ref, d.problem, d.bill_fen, d.ledger_fen) for d in differences],
        )
    return int(run_id)


def _run(r: asyncpg.Record, items: list[DifferenceOut]) -> ReconciliationOut:
    return ReconciliationOut(
        id=r["id"],
        provider=r["provider"],
        bill_date=r["bill_date"],
        ran_at=r["ran_at"],
        bill_rows=r["bill_rows"],
        bill_sha1=r["bill_sha1"],
        ledger_items=r["ledger_items"],
        differences=r["differences"],
        items=items,
    )


async def reconciliation(db: Conn, run_id: int) -> ReconciliationOut | None:
    """A run with its differences."""
    r = await db.fetchrow("SELECT * FROM reconciliations WHERE id = $1", run_id)
    if r is None:
        return None
    rows = await db.fetch(
        "SELECT * FROM reconciliation_differences WHERE reconciliation_id = $1 "
        "ORDER BY problem, kind, ref",
        run_id,
    )
    items = [
        DifferenceOut(x["id"], x["kind"], x["ref"], x["problem"], x["bill_fen"], x["ledger_fen"])
        for x in rows
    ]
    return _run(r, items)


async def reconciliations(db: Conn, *, limit: int) -> list[ReconciliationOut]:
    """Runs, newest first, without their differences."""
    rows = await db.fetch(
        "SELECT * FROM reconciliations ORDER BY ran_at DESC, id DESC LIMIT $1", limit
    )
    return [_run(r, []) for r in rows]

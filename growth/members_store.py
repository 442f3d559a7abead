"""Membership in PostgreSQL: the level last computed per customer, points over a window,
the system templates of the monthly packs, who is due a check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from doorstep.db import Conn, Tx
from growth.rules import TemplateSpec
from growth.store import insert_template


@dataclass(frozen=True, slots=True)
class MembershipRow:
    """A customer's level as last computed."""

    customer_id: int
    level: str
    points_12m: int
    since: datetime
    checked_at: datetime


# Points that count toward a level: earned, less taken back, plus those restored when a
# refund that took them back was closed (the same as an order's, growth.store.points_on).
_COUNTED = "(kind IN ('earn', 'reverse') OR key LIKE 'restore:unearn:%')"


async def points_since(db: Conn, customer_id: int, since: datetime) -> int:
    """Points a customer earned (net) at or after ``since``."""
    n = await db.fetchval(
        f"SELECT coalesce(sum(points), 0) FROM points_history WHERE customer_id = $1 "
        f"AND at >= $2 AND {_COUNTED}",
        customer_id,
        since,
    )
    return int(n)


async def membership(db: Conn, customer_id: int, *, lock: bool = False) -> MembershipRow | None:
    """The customer's row (``lock``: its row lock; checks also take ``lock_customer``)."""
    r = await db.fetchrow(
        "SELECT customer_id, level, points_12m, since, checked_at FROM memberships "
        f"WHERE customer_id = $1{' FOR UPDATE' if lock else ''}",
        customer_id,
    )
    return None if r is None else MembershipRow(**dict(r))


async def save(tx: Tx, row: MembershipRow) -> None:
    """The customer's level as computed now."""
    await tx.execute(
        "INSERT INTO memberships (customer_id, level, points_12m, since, checked_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer_id) DO UPDATE SET "
        "level = EXCLUDED.level, points_12m = EXCLUDED.points_12m, since = EXCLUDED.since, "
        "checked_at = EXCLUDED.checked_at",
        row.customer_id,
        row.level,
        row.points_12m,
        row.since,
        row.checked_at,
    )


async def lock_customer(tx: Tx, customer_id: int) -> None:
    """Serialise checks of one customer (a transaction-scoped advisory lock)."""
    await tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('member:' || $1::bigint, 0))", customer_id
    )


async def system_template(tx: Tx, key: str, spec: TemplateSpec) -> int:
    """The id of the system template ``key`` (made from ``spec`` the first time)."""
    found = await tx.fetchval("SELECT id FROM coupon_templates WHERE system_key = $1", key)
    if found is not None:
        return int(found)
    await tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
    found = await tx.fetchval("SELECT id FROM coupon_templates WHERE system_key = $1", key)
    if found is not None:
        return int(found)
    t = await insert_template(tx, spec, None)
    await tx.execute("UPDATE coupon_templates SET system_key = $2 WHERE id = $1", t.id, key)
    return t.id


async def due_for_check(db: Conn, since: datetime, limit: int, after: int) -> list[int]:
    """Customers whose level may change or who may be due a pack: those above the first
    level and those who earned points in the window, by id after ``after``."""
    rows = await db.fetch(
        "SELECT customer_id FROM (SELECT customer_id FROM memberships "
        "UNION SELECT customer_id FROM points_history WHERE at >= $1) c "
        "WHERE customer_id > $3 ORDER BY customer_id LIMIT $2",
        since,
        limit,
        after,
    )
    return [int(r["customer_id"]) for r in rows]


async def pack_coupons(db: Conn, customer_id: int, month: str) -> list[dict[str, object]]:
    """The coupons of the customer's packs of ``month``."""
    rows = await db.fetch(
        "SELECT c.id, c.status, t.amount_fen, t.min_spend_fen, c.valid_until "
        "FROM coupons c JOIN coupon_templates t ON t.id = c.template_id "
        "WHERE c.customer_id = $1 AND c.source = 'member' AND c.source_key LIKE $2 "
        "ORDER BY c.id",
        customer_id,
        f"member:{customer_id}:{month}:%",
    )
    return [dict(r) for r in rows]

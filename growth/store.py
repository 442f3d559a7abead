"""Growth in PostgreSQL: coupon templates, coupons, orders' discounts, points.

Writes take the caller's transaction (``Tx``); the service decides and locks in the
order: the order, then the template or the coupon, then the points account.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from doorstep.db import Conn, Tx
from growth.rules import TemplateSpec, Terms


@dataclass(frozen=True, slots=True)
class TemplateRow:
    """A coupon template as stored."""

    id: int
    name_zh: str
    name_en: str
    kind: str
    amount_fen: int
    percent_off: int
    cap_fen: int | None
    min_spend_fen: int
    categories: list[str]
    services: list[str]
    cities: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    total_stock: int
    issued: int
    per_user_limit: int
    claimable: bool
    auto_event: str | None
    active: bool
    created_by: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def terms(self) -> Terms:
        """What its coupons take off and where they apply."""
        return terms_of(self)


def terms_of(row: Any) -> Terms:
    """The terms of a template row (or a coupon row joined with its template)."""
    return Terms(
        kind=row.kind,
        amount_fen=row.amount_fen,
        percent_off=row.percent_off,
        cap_fen=row.cap_fen,
        min_spend_fen=row.min_spend_fen,
        categories=tuple(row.categories),
        services=tuple(row.services),
        cities=tuple(row.cities),
    )


@dataclass(frozen=True, slots=True)
class CouponRow:
    """A coupon with its template's terms and names."""

    id: int
    template_id: int
    customer_id: int
    status: str
    source: str
    valid_from: datetime
    valid_until: datetime
    order_id: int | None
    issued_at: datetime
    used_at: datetime | None
    returned_at: datetime | None
    name_zh: str
    name_en: str
    kind: str
    amount_fen: int
    percent_off: int
    cap_fen: int | None
    min_spend_fen: int
    categories: list[str]
    services: list[str]
    cities: list[str]

    @property
    def terms(self) -> Terms:
        """The template's terms."""
        return terms_of(self)


@dataclass(frozen=True, slots=True)
class DiscountRow:
    """An order's discount snapshot."""

    order_id: int
    customer_id: int
    price_fen: int
    coupon_id: int | None
    coupon_fen: int
    points: int
    points_fen: int
    payable_fen: int
    status: str
    payment_id: int | None
    created_at: datetime
    updated_at: datetime
    trade_id: int | None  # the trade that holds it while applied (None: no trade yet)
    hold_until: datetime | None  # applied and no trade holds it: released then
    honoured: str | None  # why the platform paid what a late capture could not take again


def _cols(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


_TPL = _cols(TemplateRow)
_COUPON = ", ".join(
    f"c.{f.name}" if i < 11 else f"t.{f.name}" for i, f in enumerate(fields(CouponRow))
)
_DISC = _cols(DiscountRow)


def _template(r: Any) -> TemplateRow | None:
    return None if r is None else TemplateRow(**dict(r))


def _coupon(r: Any) -> CouponRow | None:
    return None if r is None else CouponRow(**dict(r))


# --- templates ------------------------------------------------------------------------


async def insert_template(tx: Tx, spec: TemplateSpec, created_by: int | None) -> TemplateRow:
    """A new template."""
    row = await tx.fetchrow(
        "INSERT INTO coupon_templates (name_zh, name_en, kind, amount_fen, percent_off, cap_fen, "
        "min_spend_fen, categories, services, cities, valid_from, valid_until, valid_days, "
        "total_stock, per_user_limit, claimable, auto_event, created_by) VALUES ($1, $2, $3, $4, "
        f"$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING {_TPL}",
        spec.name_zh,
        spec.name_en,
        spec.kind,
        spec.amount_fen,
        spec.percent_off,
        spec.cap_fen,
        spec.min_spend_fen,
        list(spec.categories),
        list(spec.services),
        list(spec.cities),
        spec.valid_from,
        spec.valid_until,
        spec.valid_days,
        spec.total_stock,
        spec.per_user_limit,
        spec.claimable,
        spec.auto_event,
        created_by,
    )
    found = _template(row)
    assert found is not None
    return found


async def template(db: Conn, template_id: int, *, lock: bool = False) -> TemplateRow | None:
    """One template (``lock``: its row lock, FOR NO KEY UPDATE: coupons issued from it, which
    reference it, are not held up; docs/architecture.md "Row locks")."""
    return _template(
        await db.fetchrow(
            f"SELECT {_TPL} FROM coupon_templates WHERE id = $1"
            f"{' FOR NO KEY UPDATE' if lock else ''}",
            template_id,
        )
    )


async def templates(db: Conn) -> list[TemplateRow]:
    """Every template, newest first."""
    rows = await db.fetch(f"SELECT {_TPL} FROM coupon_templates ORDER BY id DESC LIMIT 500")
    return [TemplateRow(**dict(r)) for r in rows]


async def update_template(tx: Tx, template_id: int, changes: dict[str, Any]) -> TemplateRow:
    """Change some columns of a template (names checked by the caller)."""
    names = list(changes)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    row = await tx.fetchrow(
        f"UPDATE coupon_templates SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_TPL}",
        template_id,
        *[changes[n] for n in names],
    )
    found = _template(row)
    assert found is not None
    return found


async def auto_templates(db: Conn, event_type: str) -> list[TemplateRow]:
    """Active templates issued on an event."""
    rows = await db.fetch(
        f"SELECT {_TPL} FROM coupon_templates WHERE auto_event = $1 AND active ORDER BY id",
        event_type,
    )
    return [TemplateRow(**dict(r)) for r in rows]


async def claimable(db: Conn, now: datetime) -> list[TemplateRow]:
    """Templates customers may claim now (active, in stock, not ended)."""
    rows = await db.fetch(
        f"SELECT {_TPL} FROM coupon_templates WHERE active AND claimable AND issued < total_stock "
        "AND (valid_until IS NULL OR valid_until > $1) AND (valid_from IS NULL OR valid_from <= $1 "
        "OR valid_days IS NULL) ORDER BY id DESC LIMIT 100",
        now,
    )
    return [TemplateRow(**dict(r)) for r in rows]


async def take_one(tx: Tx, template_id: int) -> TemplateRow | None:
    """One more coupon out of the template's stock (the row stays locked until commit, so
    claims of one template are serialised); None when the stock is gone."""
    return _template(
        await tx.fetchrow(
            "UPDATE coupon_templates SET issued = issued + 1 WHERE id = $1 AND issued < total_stock "
            f"RETURNING {_TPL}",
            template_id,
        )
    )


async def held_by(db: Conn, template_id: int, customer_id: int) -> int:
    """How many coupons of the template the customer was issued."""
    n = await db.fetchval(
        "SELECT count(*) FROM coupons WHERE template_id = $1 AND customer_id = $2",
        template_id,
        customer_id,
    )
    return int(n)


async def held_counts(db: Conn, customer_id: int) -> dict[int, int]:
    """Coupons issued to the customer, by template."""
    rows = await db.fetch(
        "SELECT template_id, count(*) AS n FROM coupons WHERE customer_id = $1 GROUP BY template_id",
        customer_id,
    )
    return {r["template_id"]: int(r["n"]) for r in rows}


# --- coupons --------------------------------------------------------------------------


async def insert_coupon(
    tx: Tx,
    *,
    template_id: int,
    customer_id: int,
    source: str,
    valid_from: datetime,
    valid_until: datetime,
    issued_at: datetime,
    source_key: str | None = None,
    granted_by: int | None = None,
) -> int | None:
    """A new coupon's id; None if ``source_key`` issued one before."""
    found = await tx.fetchval(
        "INSERT INTO coupons (template_id, customer_id, source, source_key, valid_from, "
        "valid_until, issued_at, granted_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (source_key) DO NOTHING RETURNING id",
        template_id,
        customer_id,
        source,
        source_key,
        valid_from,
        valid_until,
        issued_at,
        granted_by,
    )
    return None if found is None else int(found)


_COUPON_FROM = "FROM coupons c JOIN coupon_templates t ON t.id = c.template_id"


async def coupon(db: Conn, coupon_id: int, *, lock: bool = False) -> CouponRow | None:
    """One coupon with its template's terms (``lock``: the coupon's row, FOR NO KEY UPDATE:
    a discount that references it is not held up)."""
    return _coupon(
        await db.fetchrow(
            f"SELECT {_COUPON} {_COUPON_FROM} WHERE c.id = $1"
            f"{' FOR NO KEY UPDATE OF c' if lock else ''}",
            coupon_id,
        )
    )


async def coupons_of(db: Conn, customer_id: int) -> list[CouponRow]:
    """A customer's coupons, newest first."""
    rows = await db.fetch(
        f"SELECT {_COUPON} {_COUPON_FROM} WHERE c.customer_id = $1 ORDER BY c.id DESC LIMIT 200",
        customer_id,
    )
    return [CouponRow(**dict(r)) for r in rows]


async def set_coupon(
    tx: Tx,
    coupon_id: int,
    *,
    status: str,
    order_id: int | None,
    used_at: datetime | None = None,
    returned_at: datetime | None = None,
) -> None:
    """A coupon's state."""
    await tx.execute(
        "UPDATE coupons SET status = $2, order_id = $3, used_at = coalesce($4, used_at), "
        "returned_at = coalesce($5, returned_at) WHERE id = $1",
        coupon_id,
        status,
        order_id,
        used_at,
        returned_at,
    )


async def take_back_coupon(tx: Tx, coupon_id: int, order_id: int) -> None:
    """A coupon given back with a cancelled order is the order's again (its refund was
    closed by the provider): used, no longer returned."""
    await tx.execute(
        "UPDATE coupons SET status = 'used', order_id = $2, returned_at = NULL WHERE id = $1",
        coupon_id,
        order_id,
    )


# --- orders' discounts ----------------------------------------------------------------


def has_discount(order_id_sql: str) -> str:
    """SQL, true if the order ``order_id_sql`` has a discount (of any status), for another
    statement to read beside its own work (``payments.store.mark_paid``: a round trip fewer
    on a payment's capture). Read while holding the order's row lock, it stays what it was
    until that transaction ends: a discount row is written first only by checkout, which
    holds the order's lock (``save_discount``), and never deleted."""
    return f"EXISTS (SELECT 1 FROM order_discounts WHERE order_id = {order_id_sql})"


async def discount(db: Conn, order_id: int, *, lock: bool = False) -> DiscountRow | None:
    """An order's discount snapshot."""
    r = await db.fetchrow(
        f"SELECT {_DISC} FROM order_discounts WHERE order_id = $1{' FOR UPDATE' if lock else ''}",
        order_id,
    )
    return None if r is None else DiscountRow(**dict(r))


async def save_discount(
    tx: Tx,
    *,
    order_id: int,
    customer_id: int,
    price_fen: int,
    coupon_id: int | None,
    coupon_fen: int,
    points: int,
    points_fen: int,
) -> DiscountRow:
    """Write (or rewrite) an order's discount while it waits for its payment."""
    r = await tx.fetchrow(
        "INSERT INTO order_discounts (order_id, customer_id, price_fen, coupon_id, coupon_fen, "
        "points, points_fen, payable_fen) VALUES ($1, $2, $3, $4, $5, $6, $7, $3::bigint - $5::bigint - $7::bigint) "
        "ON CONFLICT (order_id) DO UPDATE SET coupon_id = $4, coupon_fen = $5, points = $6, "
        "points_fen = $7, payable_fen = $3::bigint - $5::bigint - $7::bigint, status = 'applied', "
        "trade_id = NULL, hold_until = NULL, updated_at = now() "
        f"RETURNING {_DISC}",
        order_id,
        customer_id,
        price_fen,
        coupon_id,
        coupon_fen,
        points,
        points_fen,
    )
    assert r is not None
    return DiscountRow(**dict(r))


async def set_discount(
    tx: Tx, order_id: int, *, status: str, payment_id: int | None = None
) -> None:
    """An order's discount captured (with its trade) or void."""
    await tx.execute(
        "UPDATE order_discounts SET status = $2, payment_id = coalesce($3, payment_id), "
        "updated_at = now() WHERE order_id = $1",
        order_id,
        status,
        payment_id,
    )


async def set_hold(
    tx: Tx, order_id: int, *, trade_id: int | None, hold_until: datetime | None
) -> None:
    """Which trade holds an applied discount (None: none, released at ``hold_until``)."""
    await tx.execute(
        "UPDATE order_discounts SET trade_id = $2, hold_until = $3, updated_at = now() "
        "WHERE order_id = $1",
        order_id,
        trade_id,
        hold_until,
    )


async def capture_late(
    tx: Tx,
    order_id: int,
    *,
    coupon_fen: int,
    points: int,
    points_fen: int,
    payment_id: int,
    honoured: str | None,
) -> None:
    """A late capture's discount as posted: what the platform paid (``coupon_fen``, with
    whatever it honoured) and the points taken; captured with the trade."""
    await tx.execute(
        "UPDATE order_discounts SET coupon_fen = $2, points = $3, points_fen = $4, "
        "payable_fen = price_fen - $2::bigint - $4::bigint, status = 'captured', "
        "payment_id = $5, trade_id = NULL, hold_until = NULL, honoured = $6, "
        "updated_at = now() WHERE order_id = $1",
        order_id,
        coupon_fen,
        points,
        points_fen,
        payment_id,
        honoured,
    )


async def unheld_until(db: Conn, before: datetime, limit: int = 200) -> list[int]:
    """Orders whose applied discount no trade holds and whose hold ended before ``before``."""
    rows = await db.fetch(
        "SELECT order_id FROM order_discounts WHERE status = 'applied' AND trade_id IS NULL "
        "AND hold_until <= $1 ORDER BY hold_until LIMIT $2",
        before,
        limit,
    )
    return [int(r["order_id"]) for r in rows]


# --- points ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointsAccount:
    """A customer's points: the balance and what checkout holds for unpaid orders."""

    customer_id: int
    balance: int
    held: int

    @property
    def available(self) -> int:
        """What may be spent now."""
        return max(0, self.balance - self.held)


async def points_account(db: Conn, customer_id: int, *, lock: bool = False) -> PointsAccount:
    """A customer's points (zero if they never had any; ``lock`` creates and locks the row)."""
    if lock:
        await db.execute(
            "INSERT INTO points_accounts (customer_id) VALUES ($1) ON CONFLICT DO NOTHING",
            customer_id,
        )
    r = await db.fetchrow(
        "SELECT customer_id, balance, held FROM points_accounts WHERE customer_id = $1"
        + (" FOR UPDATE" if lock else ""),
        customer_id,
    )
    if r is None:
        return PointsAccount(customer_id, 0, 0)
    return PointsAccount(r["customer_id"], r["balance"], r["held"])


async def hold_points(tx: Tx, customer_id: int, delta: int) -> None:
    """Hold (delta > 0) or release (delta < 0) points for an unpaid order (row locked)."""
    await tx.execute(
        "UPDATE points_accounts SET held = held + $2 WHERE customer_id = $1", customer_id, delta
    )


async def move_points(
    tx: Tx,
    customer_id: int,
    points: int,
    *,
    kind: str,
    key: str,
    order_id: int | None,
    basis_fen: int | None = None,
    release_held: int = 0,
) -> int | None:
    """Change a customer's balance by ``points`` with its history row, once per ``key``
    (None: that key moved points before); the new balance."""
    await tx.execute(
        "INSERT INTO points_accounts (customer_id) VALUES ($1) ON CONFLICT DO NOTHING",
        customer_id,
    )
    balance = await tx.fetchval(
        "WITH h AS (SELECT 1 FROM points_history WHERE key = $3) "
        "UPDATE points_accounts SET balance = balance + $2, held = held - $4 "
        "WHERE customer_id = $1 AND NOT EXISTS (SELECT 1 FROM h) RETURNING balance",
        customer_id,
        points,
        key,
        release_held,
    )
    if balance is None:
        return None
    await tx.execute(
        "INSERT INTO points_history (customer_id, kind, points, balance_after, order_id, key, "
        "basis_fen) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        customer_id,
        kind,
        points,
        balance,
        order_id,
        key,
        basis_fen,
    )
    return int(balance)


async def points_history(db: Conn, customer_id: int, limit: int) -> list[dict[str, Any]]:
    """A customer's points history, newest first."""
    rows = await db.fetch(
        "SELECT id, kind, points, balance_after, order_id, at FROM points_history "
        "WHERE customer_id = $1 ORDER BY id DESC LIMIT $2",
        customer_id,
        limit,
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True, slots=True)
class OrderPoints:
    """The points terms of a completed order (fixed at completion)."""

    order_id: int
    customer_id: int
    rate_bps: int
    fen_per_100_points: int
    level: str
    completed_at: datetime


async def save_order_points(tx: Tx, terms: OrderPoints) -> None:
    """The order's points terms, once (a redelivered completion keeps the first)."""
    await tx.execute(
        "INSERT INTO order_points (order_id, customer_id, rate_bps, fen_per_100_points, level, "
        "completed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        terms.order_id,
        terms.customer_id,
        terms.rate_bps,
        terms.fen_per_100_points,
        terms.level,
        terms.completed_at,
    )


async def order_points(db: Conn, order_id: int) -> OrderPoints | None:
    """A completed order's points terms (None: not completed, or before 0034)."""
    r = await db.fetchrow(
        "SELECT order_id, customer_id, rate_bps, fen_per_100_points, level, completed_at "
        "FROM order_points WHERE order_id = $1",
        order_id,
    )
    return None if r is None else OrderPoints(**dict(r))


async def points_on(db: Conn, order_id: int) -> int:
    """The points an order has given its customer so far: earned, less taken back, plus
    those restored when a refund that took them back was closed."""
    n = await db.fetchval(
        "SELECT coalesce(sum(points), 0) FROM points_history WHERE order_id = $1 "
        "AND (kind IN ('earn', 'reverse') OR key LIKE 'restore:unearn:%')",
        order_id,
    )
    return int(n)


async def net_paid(db: Conn, order_id: int) -> int:
    """Cash paid for the order, less refunds asked and not closed (fen)."""
    n = await db.fetchval(
        "SELECT coalesce(sum(amount_fen - reserved_fen), 0) FROM payments "
        "WHERE order_id = $1 AND status = 'paid'",
        order_id,
    )
    return int(n)


# --- stats ----------------------------------------------------------------------------


async def stats(db: Conn) -> list[dict[str, Any]]:
    """Per template: issued, used (orders paid with one), returned, and what they cost
    (the subsidy expense of the orders paid with one, net of what refunds reversed)."""
    rows = await db.fetch(
        "SELECT t.id AS template_id, t.name_zh, t.name_en, t.total_stock, t.issued, t.active, "
        "t.cities, "
        "count(c.id) FILTER (WHERE c.status = 'used') AS used, "
        "count(c.id) FILTER (WHERE c.returned_at IS NOT NULL) AS returned, "
        "coalesce((SELECT sum(l.debit_fen - l.credit_fen) FROM order_discounts d "
        "  JOIN coupons c2 ON c2.id = d.coupon_id "
        "  JOIN ledger_entries e ON e.order_id = d.order_id "
        "  JOIN ledger_lines l ON l.entry_id = e.id AND l.account = 'subsidy_expense' "
        "  WHERE c2.template_id = t.id AND d.status = 'captured'), 0)::bigint AS cost_fen "
        "FROM coupon_templates t LEFT JOIN coupons c ON c.template_id = t.id "
        "GROUP BY t.id ORDER BY t.id DESC LIMIT 500"
    )
    return [dict(r) for r in rows]

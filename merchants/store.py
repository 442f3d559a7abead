"""PostgreSQL access for merchants and their services (migration 0022)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from dispatch import changes
from dispatch import store as dispatch_store
from dispatch.models import Order
from doorstep.db import Conn, Tx
from merchants.models import Merchant, MerchantService

_COLS = (
    "id, name, city_id, licence_number, licence_file_id, status, reason, reviewed_by, "
    "reviewed_at, created_at"
)


def _merchant(r: asyncpg.Record) -> Merchant:
    return Merchant(**dict(r))


async def upsert_application(
    db: Conn, *, user_id: int, name: str, city_id: str, licence_number: str, file_id: int
) -> Merchant | None:
    """A new application, or a rejected one made again; None if the user has a pending
    or approved one, or another merchant has the licence number."""
    try:
        row = await db.fetchrow(
            "INSERT INTO merchants (id, name, city_id, licence_number, licence_file_id) "
            "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
            "city_id = EXCLUDED.city_id, licence_number = EXCLUDED.licence_number, "
            "licence_file_id = EXCLUDED.licence_file_id, status = 'pending', reason = '', "
            "reviewed_by = NULL, reviewed_at = NULL, updated_at = now() "
            f"WHERE merchants.status = 'rejected' RETURNING {_COLS}",
            user_id,
            name,
            city_id,
            licence_number,
            file_id,
        )
    except asyncpg.UniqueViolationError:
        return None
    return _merchant(row) if row else None


async def get(db: Conn, merchant_id: int, *, lock: bool = False) -> Merchant | None:
    """One merchant (``lock``: its row lock, FOR NO KEY UPDATE: its orders and services,
    which reference it, are not held up)."""
    row = await db.fetchrow(
        f"SELECT {_COLS} FROM merchants WHERE id = $1{' FOR NO KEY UPDATE' if lock else ''}",
        merchant_id,
    )
    return _merchant(row) if row else None


async def by_licence(db: Conn, licence_number: str) -> Merchant | None:
    """The merchant holding a licence number."""
    row = await db.fetchrow(
        f"SELECT {_COLS} FROM merchants WHERE licence_number = $1", licence_number
    )
    return _merchant(row) if row else None


async def listing(
    db: Conn, *, status: str | None, city_ids: list[str] | None, merchant_ids: list[int] | None
) -> list[Merchant]:
    """Merchants by id, filtered."""
    rows = await db.fetch(
        f"SELECT {_COLS} FROM merchants WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::text[] IS NULL OR city_id = ANY($2) OR id = ANY($3::bigint[])) ORDER BY id",
        status,
        city_ids,
        merchant_ids or [],
    )
    return [_merchant(r) for r in rows]


async def set_review(
    db: Conn, merchant_id: int, *, status: str, reason: str, by: int, at: datetime
) -> Merchant:
    """Record a review."""
    row = await db.fetchrow(
        "UPDATE merchants SET status = $2, reason = $3, reviewed_by = $4, reviewed_at = $5, "
        f"updated_at = $5 WHERE id = $1 RETURNING {_COLS}",
        merchant_id,
        status,
        reason,
        by,
        at,
    )
    assert row is not None
    return _merchant(row)


async def services(db: Conn, merchant_id: int) -> list[MerchantService]:
    """A merchant's services with the catalog price beside theirs."""
    rows = await db.fetch(
        "SELECT m.merchant_id, m.service_code, m.price_minor, s.price_minor AS catalog_price_minor, "
        "m.active FROM merchant_services m JOIN services s ON s.code = m.service_code "
        "WHERE m.merchant_id = $1 ORDER BY m.service_code",
        merchant_id,
    )
    return [MerchantService(**dict(r)) for r in rows]


async def put_service(
    db: Conn, merchant_id: int, service_code: str, *, price_minor: int, active: bool
) -> None:
    """Offer (or change) a service."""
    await db.execute(
        "INSERT INTO merchant_services (merchant_id, service_code, price_minor, active) "
        "VALUES ($1,$2,$3,$4) ON CONFLICT (merchant_id, service_code) DO UPDATE SET "
        "price_minor = EXCLUDED.price_minor, active = EXCLUDED.active, updated_at = now()",
        merchant_id,
        service_code,
        price_minor,
        active,
    )


async def offers(db: Conn, merchant_id: int, service_code: str) -> bool:
    """True if the merchant offers the service now."""
    return bool(
        await db.fetchval(
            "SELECT active FROM merchant_services WHERE merchant_id = $1 AND service_code = $2",
            merchant_id,
            service_code,
        )
    )


async def route_order(
    tx: Tx,
    order: Order,
    merchant_id: int | None,
    *,
    action: str,
    actor: str,
    actor_id: int | None,
    reason: str,
    data: dict[str, Any] | None = None,
) -> Order:
    """Route ``order`` (locked by the caller) to a merchant, or back to the platform with
    None, as one change of the order (its version bumped, a history row and an
    ``order.routed``/``order.overflowed`` event: the day plans re-plan its day). When it
    was routed is kept for the overflow. Its rounds of offers start again from zero: the
    merchant's staff and the platform's workers each get ``[offers] max_attempts``."""
    at = datetime.now(UTC)
    fields: dict[str, Any] = {
        "merchant_id": merchant_id,
        "merchant_routed_at": at if merchant_id is not None else None,
        "dispatch_attempts": 0,
    }
    updated = await dispatch_store.update(tx, order.id, order.version, fields)
    assert updated is not None  # the caller holds the row lock
    await changes.record(
        tx,
        order,
        updated,
        action=action,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        at=at,
        data={"merchant_id": merchant_id or order.merchant_id, **(data or {})},
    )
    return updated


async def staff_of(db: Conn, merchant_ids: list[int]) -> dict[int, list[int]]:
    """Each merchant's staff (the workers on its teams), by merchant."""
    rows = await db.fetch(
        "SELECT t.merchant_id, w.user_id FROM workers w JOIN teams t ON t.id = w.team_id "
        "WHERE t.merchant_id = ANY($1) ORDER BY w.user_id",
        merchant_ids,
    )
    out: dict[int, list[int]] = {m: [] for m in merchant_ids}
    for r in rows:
        out[int(r["merchant_id"])].append(int(r["user_id"]))
    return out


async def routed_since(db: Conn, order_ids: list[int]) -> dict[int, datetime]:
    """When each order was routed to its merchant (its creation if not recorded)."""
    rows = await db.fetch(
        "SELECT id, coalesce(merchant_routed_at, created_at) AS since FROM orders "
        "WHERE id = ANY($1) AND merchant_id IS NOT NULL",
        order_ids,
    )
    return {int(r["id"]): r["since"] for r in rows}


async def set_team(db: Conn, worker_id: int, team_id: int | None) -> None:
    """Put a worker on a team, or take them off (None)."""
    await db.execute(
        "UPDATE workers SET team_id = $2, updated_at = now() WHERE user_id = $1", worker_id, team_id
    )

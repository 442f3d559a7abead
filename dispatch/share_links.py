"""Share links with their state in PostgreSQL: issuing, revoking, checking a link.

The rules are in dispatch/share.py (pure); revocations live in ``share_revocations``
(the time up to which issued links are void), so a Redis loss revives nothing.
"""

from __future__ import annotations

import contextlib

import orjson

from dispatch import store
from dispatch.errors import OrderNotFound
from dispatch.models import Order
from dispatch.share import ShareEnded, issue_at, issue_share, refusal
from doorstep.db import Conn
from doorstep.stores import Stores

REVOKED = {"type": "share_revoked"}


async def revoked_iat(db: Conn, order_id: int) -> int | None:
    """Links of the order issued up to this second are revoked (None: none revoked)."""
    value = await db.fetchval(
        "SELECT revoked_iat FROM share_revocations WHERE order_id = $1", order_id
    )
    return int(value) if value is not None else None


async def why_not(db: Conn, order: Order) -> str | None:
    """Why the order cannot be watched through a link now (ended, customer frozen)."""
    status = await db.fetchval("SELECT status FROM users WHERE id = $1", order.customer_id)
    return refusal(order.status, status)


async def issue(stores: Stores, order: Order, *, now: int, ttl_s: int, key: str) -> tuple[str, int]:
    """A new link for the order and its issue time; 409 share_ended when it cannot be shared."""
    reason = await why_not(stores.pool, order)
    if reason is not None:
        raise ShareEnded(reason, field="order_id")
    iat = issue_at(now, await revoked_iat(stores.pool, order.id))
    return issue_share(order.id, now=iat, ttl_s=ttl_s, key=key), iat


async def revoke(stores: Stores, order_id: int, customer_id: int, *, now: int) -> None:
    """Void every link of the customer's order issued so far; watchers through one are
    closed (best effort: a link checked later is refused by the database)."""
    order = await store.get(stores.pool, order_id)
    if order is None or order.customer_id != customer_id:
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    await stores.pool.execute(
        "INSERT INTO share_revocations (order_id, revoked_iat, revoked_at) "
        "VALUES ($1, $2, now()) ON CONFLICT (order_id) DO UPDATE "
        "SET revoked_iat = GREATEST(share_revocations.revoked_iat, EXCLUDED.revoked_iat), "
        "revoked_at = now()",
        order_id,
        now,
    )
    # Redis down: a socket already open through a link is not told (it still ends with
    # the job and the link's expiry); every new connection is refused by the database.
    with contextlib.suppress(Exception):
        await stores.redis.publish(
            stores.keys.order_channel(order.city_id, order.id), orjson.dumps(REVOKED)
        )

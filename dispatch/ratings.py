"""Ratings: after completion the customer rates the job once; the worker's rating moves."""

from __future__ import annotations

from dispatch import store
from dispatch.errors import DispatchError, InvalidOrder, OrderNotFound
from dispatch.models import Rating
from doorstep.errors import Conflict
from doorstep.stores import Stores


class AlreadyRated(Conflict, DispatchError):
    """The order has a rating already."""

    code = "already_rated"


async def rate(stores: Stores, order_id: int, customer_id: int, stars: int, text: str) -> Rating:
    """Store the rating and fold it into the worker's sum and count, atomically."""
    if not 1 <= stars <= 5:
        raise InvalidOrder("must be 1 to 5", field="stars")
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None or order.customer_id != customer_id:
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        if order.status != "completed" or order.worker_id is None:
            raise InvalidOrder(
                f"only a completed order can be rated; this one is {order.status}", field="order_id"
            )
        row = await conn.fetchrow(
            "INSERT INTO ratings (order_id, worker_id, customer_id, stars, text) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING "
            "RETURNING order_id, worker_id, stars, text, created_at",
            order_id,
            order.worker_id,
            customer_id,
            stars,
            text.strip(),
        )
        if row is None:
            raise AlreadyRated("this order is rated already", field="order_id")
        await conn.execute(
            "UPDATE workers SET rating_sum = rating_sum + $2, rating_count = rating_count + 1, "
            "updated_at = now() WHERE user_id = $1",
            order.worker_id,
            stars,
        )
    return Rating(**dict(row))

"""Start-code attempts in PostgreSQL: the limits of dispatch/start_guard.py applied.

The counts live in ``start_code_guards`` (per order) and ``start_code_failures`` (each
wrong code, for the per-worker window), written in the attempt's own transaction under
the order's row lock, so parallel guesses are counted one by one and a Redis loss
resets nothing (fail closed). A dispatcher unlocks an order (dispatch/overrides.py) or
the customer issues a new code (:func:`reissue`); both start the count again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatch import alerts, store
from dispatch.booking import new_start_code
from dispatch.errors import InvalidOrder, StartLocked, TooManyStartAttempts
from dispatch.models import Order
from dispatch.start_guard import StartGuardParams, attempts_left, locks_now, worker_wait_s
from doorstep.db import Conn, Tx
from doorstep.errors import DoorstepError

LOCKED = (
    "the start is locked after too many wrong start codes; a dispatcher can unlock it, "
    "or the customer can issue a new code"
)


async def is_locked(db: Conn, order_id: int) -> bool:
    """Whether the order's start is locked."""
    return bool(
        await db.fetchval(
            "SELECT locked_at IS NOT NULL FROM start_code_guards WHERE order_id = $1", order_id
        )
    )


async def attempt(
    tx: Tx,
    order: Order,
    user_id: int | None,
    code: str,
    *,
    now: datetime,
    params: StartGuardParams,
) -> DoorstepError | None:
    """Check a start code for ``order`` (row locked by the caller) sent by ``user_id``.

    Raises at once when the start is locked or the sender must wait (nothing to
    record). A wrong code is recorded here and *returned*: the caller commits, then
    raises it. None: the code is right.
    """
    guard = await tx.fetchrow(
        "SELECT failures, locked_at FROM start_code_guards WHERE order_id = $1", order.id
    )
    if guard is not None and guard["locked_at"] is not None:
        raise StartLocked(LOCKED, field="start_code")
    if user_id is not None:
        since = now - timedelta(seconds=params.worker_window_s)
        times = await tx.fetch(
            "SELECT at FROM start_code_failures WHERE worker_id = $1 AND at > $2",
            user_id,
            since,
        )
        wait = worker_wait_s([r["at"] for r in times], now=now, params=params)
        if wait is not None:
            raise TooManyStartAttempts(
                f"too many wrong start codes lately; try again in {wait} s",
                field="start_code",
                retry_after_s=wait,
            )
    if code.strip() == order.start_code:
        return None
    failures = (guard["failures"] if guard is not None else 0) + 1
    locked = locks_now(failures, params)
    await tx.execute(
        "INSERT INTO start_code_guards (order_id, failures, locked_at, updated_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO UPDATE "
        "SET failures = EXCLUDED.failures, locked_at = EXCLUDED.locked_at, "
        "updated_at = EXCLUDED.updated_at",
        order.id,
        failures,
        now if locked else None,
        now,
    )
    await tx.execute(
        "INSERT INTO start_code_failures (order_id, worker_id, at) VALUES ($1, $2, $3)",
        order.id,
        user_id if user_id is not None else 0,
        now,
    )
    if locked:
        await alerts.raise_alert(
            tx,
            city_id=order.city_id,
            order_id=order.id,
            version=order.version,
            kind="start_locked",
            message=f"order {order.id}: start locked after {failures} wrong start codes",
            at=now,
        )
        return StartLocked(LOCKED, field="start_code")
    left = attempts_left(failures, params)
    return InvalidOrder(
        f"the start code does not match; ask the customer for it ({left} attempts left "
        "before the start locks)",
        field="start_code",
    )


async def clear(tx: Tx, order: Order, *, now: datetime, by: int | None) -> bool:
    """Unlock the order's start and count from zero; resolve its alert. Whether it was
    locked."""
    was = await tx.fetchval(
        "DELETE FROM start_code_guards WHERE order_id = $1 RETURNING locked_at IS NOT NULL",
        order.id,
    )
    await alerts.resolve(
        tx, order.id, version=order.version, at=now, by=by, kinds=("start_locked",)
    )
    return bool(was)


async def reissue(tx: Tx, order: Order, *, now: datetime, customer_id: int) -> Order:
    """A new start code for the order (the old one stops working), the count cleared."""
    updated = await store.update(tx, order.id, order.version, {"start_code": new_start_code()})
    assert updated is not None  # the caller holds the row lock
    await clear(tx, updated, now=now, by=customer_id)
    await store.add_event(
        tx,
        order.id,
        action="new_start_code",
        from_status=order.status,
        to_status=order.status,
        actor="customer",
        actor_id=customer_id,
        reason="",
    )
    return updated

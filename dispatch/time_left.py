"""The worker's own estimate of when a job on site ends (预计还需N分钟): "about N minutes
left", tapped on site, sets ``orders.expected_end_at`` (migration 0041).

The engine's chained orders (``dispatch/chains.py``) and active reassignment
(``dispatch/at_risk.py``) take a job's end from it when given, else from ``arrived_at`` +
the service's duration (:data:`ENDS_AT`): a worker who knows the job runs short or long
says so, and is offered their next job (接力单) when it really ends soon
(docs/dispatch.md#chained-orders). A new estimate replaces the last one; each is kept in
the order's history (``time_left``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from dispatch import store
from dispatch.errors import InvalidOrder, NotOnSite, OrderNotFound
from dispatch.models import Order
from dispatch.next_eta import push_after_estimate
from dispatch.publisher import Publisher
from dispatch.service import Caller, may_see
from doorstep.stores import Stores

MIN_MINUTES: Final = 1
MAX_MINUTES: Final = 600
ON_SITE: Final = frozenset({"arrived", "in_service"})


def ends_at(alias: str) -> str:
    """SQL: when the job of the orders row ``alias`` is expected to end — the worker's
    estimate if given, else ``arrived_at`` + the service's duration (``models.job_end``
    and ``Order.ends_at`` in Python)."""
    return (
        f"coalesce({alias}.expected_end_at, "
        f"{alias}.arrived_at + make_interval(mins => {alias}.duration_min))"
    )


ENDS_AT: Final = ends_at("o")


def expected_end(order: Order, caller: Caller, minutes_left: int, now: datetime) -> datetime:
    """When the job ends if ``caller`` says ``minutes_left`` remain at ``now``: the order's
    worker, or staff whose scope reaches the order entering the worker's estimate for them
    (as they may depart, arrive and start for them). Refuses an estimate out of range,
    from anyone else, for a crew job, or off site. Pure."""
    if not MIN_MINUTES <= minutes_left <= MAX_MINUTES:
        raise InvalidOrder(
            f"must be {MIN_MINUTES}–{MAX_MINUTES} minutes, not {minutes_left}",
            field="minutes_left",
        )
    if caller.role == "customer" or not may_see(caller, order):
        raise OrderNotFound(f"no order {order.id}", field="order_id")
    if order.crew_size > 1:
        raise InvalidOrder(
            f"order {order.id} is a crew job (crew of {order.crew_size}): only a one-worker "
            "job takes an estimate of its end",
            field="order_id",
        )
    if order.status not in ON_SITE:
        raise NotOnSite(
            f"order {order.id} is {order.status}: the time left can be given only on site "
            "(arrived or in service)",
            field="status",
        )
    return now + timedelta(minutes=minutes_left)


async def report(
    stores: Stores,
    order_id: int,
    caller: Caller,
    minutes_left: int,
    now: datetime,
    tracking: Publisher | None = None,
) -> Order:
    """Record the worker's "about ``minutes_left`` minutes left" on their job on site (said by
    the worker, or entered for them by staff: :func:`expected_end`): the
    order's ``expected_end_at`` and a ``time_left`` entry in its history, in one transaction.
    With ``tracking``, then tell the watchers of the chained order waiting for this job
    its new expected departure (``dispatch.next_eta``)."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None:
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        end = expected_end(order, caller, minutes_left, now)
        updated = await store.update(conn, order_id, order.version, {"expected_end_at": end})
        assert updated is not None  # the row lock is held
        await store.add_event(
            conn,
            order_id,
            action="time_left",
            from_status=order.status,
            to_status=order.status,
            actor=caller.role,
            actor_id=caller.user_id,
            reason=f"about {minutes_left} min left",
            data={"minutes_left": minutes_left, "expected_end_at": end.isoformat()},
            at=now,
        )
    if tracking is not None:
        await push_after_estimate(stores, tracking, updated, now)
    return updated

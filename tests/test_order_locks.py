"""The order's row lock against the day plan's lock: a change of an order (a reschedule
locks the order, then its day plan) and a plan writer (which holds the plan's lock and
stores stops that reference the order) must not wait for each other in a circle. CI saw
that deadlock as a 500 on a reschedule while a background re-plan stored the same day."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date

import httpx

from dispatch import plan_store
from dispatch import store as dispatch_store
from doorstep.stores import Stores
from tests.helpers import MakeUser
from tests.live import book


async def _blocked(stores: Stores, pid: int) -> bool:
    """Whether backend ``pid`` waits for a lock."""
    return bool(
        await stores.pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
    )


async def test_a_plan_writer_referencing_an_order_does_not_wait_for_its_change(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A plan writer that references an order (a stop's foreign key) goes through while a change of that order waits for the plan's lock: no deadlock."""
    customer = await make_user("customer")
    order_id = (await book(client, customer, instant_service))["id"]
    city, day = f"locks-{uuid.uuid4().hex[:8]}", date(2030, 1, 1)
    async with stores.pool.acquire() as planner, stores.pool.acquire() as changer:
        planning = planner.transaction()
        changing = changer.transaction()
        await planning.start()
        await changing.start()
        committed = False
        try:
            await plan_store.lock(planner, city, day)
            assert await dispatch_store.get(changer, order_id, lock=True) is not None
            waiting = asyncio.create_task(plan_store.lock(changer, city, day))
            deadline = time.monotonic() + 30
            while not await _blocked(stores, changer.get_server_pid()):
                assert time.monotonic() < deadline, "the change never waited for the plan"
                await asyncio.sleep(0.02)
            # what inserting a day_plan_stops row checks on the order it names
            await planner.execute("SELECT 1 FROM orders WHERE id = $1 FOR KEY SHARE", order_id)
            await planning.commit()
            committed = True
            await asyncio.wait_for(waiting, timeout=30)
            assert not await _blocked(stores, changer.get_server_pid())
        finally:
            if not committed:
                await planning.rollback()
            await changing.rollback()

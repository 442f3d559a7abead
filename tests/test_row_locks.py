"""Row locks on rows other tables reference (docs/architecture.md "Row locks"): a city's
row lock (a dispatch pause) is FOR NO KEY UPDATE, so a writer that only references the
city (a booking's order, a day plan's version) neither waits for it nor makes it wait.
With FOR UPDATE, the foreign key check of such a writer waits for the lock's holder, and
a holder that then waits for a lock the writer holds (the day plan's) is a deadlock: the
cycle CI saw on an order (tests/test_order_locks.py), here on a city."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import date, timedelta
from typing import Any

import httpx

from dispatch import overrides, plan_store
from doorstep.stores import Stores
from tests.files_samples import jpeg
from tests.helpers import MakeUser
from tests.live import DEST, book
from tests.onboarding_setup import sign_up, upload


async def _blocked(stores: Stores, pid: int) -> bool:
    """Whether backend ``pid`` waits for a lock."""
    return bool(
        await stores.pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
    )


async def _waiting_for(stores: Stores, pid: int) -> int:
    """How many backends wait for a lock backend ``pid`` holds."""
    return int(
        await stores.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
        )
    )


async def _behind(
    stores: Stores,
    holding: list[tuple[str, int]],
    request: Callable[[], Coroutine[Any, Any, httpx.Response]],
    what: str,
) -> httpx.Response:
    """``request``'s answer when it was made while a transaction had run ``holding`` (SQL
    with one id each), waited for that transaction's locks, and got them once it committed."""
    async with stores.pool.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        task: asyncio.Task[httpx.Response] | None = None
        try:
            for sql, arg in holding:
                await holder.execute(sql, arg)
            task = asyncio.create_task(request())
            deadline = time.monotonic() + 30
            while not await _waiting_for(stores, holder.get_server_pid()):
                assert not task.done(), f"{what} did not wait: {task.result().text}"
                assert time.monotonic() < deadline, f"{what} never waited"
                await asyncio.sleep(0.02)
            await tx.commit()
        finally:
            if holder.is_in_transaction():
                await tx.rollback()
        assert task is not None
        return await asyncio.wait_for(task, timeout=30)


def _a_day() -> date:
    """A day no other test plans (the plan's lock is per city and day)."""
    return date(2031, 1, 1) + timedelta(days=uuid.uuid4().int % 3000)


async def test_a_day_plan_writer_does_not_wait_for_a_city_pause_waiting_for_its_plan(
    stores: Stores, live_city: str
) -> None:
    """A day plan's writer stores a version (a row referencing the city) while the holder of the city's row lock waits for that plan's lock: no deadlock."""
    day = _a_day()
    async with stores.pool.acquire() as planner, stores.pool.acquire() as pauser:
        planning = planner.transaction()
        pausing = pauser.transaction()
        await planning.start()
        await pausing.start()
        planned = False
        try:
            await plan_store.lock(planner, live_city, day)
            assert await overrides.lock_city(pauser, live_city) is not None
            waiting = asyncio.create_task(plan_store.lock(pauser, live_city, day))
            deadline = time.monotonic() + 30
            while not await _blocked(stores, pauser.get_server_pid()):
                assert time.monotonic() < deadline, "the pause never waited for the plan"
                await asyncio.sleep(0.02)
            stored = await plan_store.store(
                planner,
                city_id=live_city,
                day=day,
                after_version=0,
                kind="solve",
                reason="row locks test",
                actor_id=None,
                objective=0,
                solve_ms=0,
                dropped=[],
                routes=[],
                keep_versions=3,
            )
            assert stored.version == 1
            planned = True
            await planning.rollback()  # the plan's lock goes: the pause gets it
            await asyncio.wait_for(waiting, timeout=30)
            assert not await _blocked(stores, pauser.get_server_pid())
        finally:
            if not planned:
                await planning.rollback()
            await pausing.rollback()


async def test_a_booking_in_a_city_does_not_wait_for_its_dispatch_pause(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """An order is booked in a city (its row references the city) while a dispatch pause holds the city's row lock, and never waits for it."""
    customer = await make_user("customer")
    async with stores.pool.acquire() as pauser:
        pausing = pauser.transaction()
        await pausing.start()
        booking: asyncio.Task[dict[str, Any]] | None = None
        try:
            assert await overrides.lock_city(pauser, live_city) is not None
            booking = asyncio.create_task(book(client, customer, instant_service))
            deadline = time.monotonic() + 30
            while not booking.done():
                assert not await _waiting_for(stores, pauser.get_server_pid()), (
                    "the booking waited for the pause's lock on the city"
                )
                assert time.monotonic() < deadline, "the booking never finished"
                await asyncio.sleep(0.02)
            order = booking.result()
            assert (
                await stores.pool.fetchval("SELECT city_id FROM orders WHERE id = $1", order["id"])
                == live_city
            )
        finally:
            await pausing.rollback()
            if booking is not None and not booking.done():  # it waited: let it finish
                await asyncio.wait_for(asyncio.shield(booking), timeout=30)


async def test_a_booking_waiting_behind_an_account_freeze_is_refused(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A booking whose order insert waits for an erasure's lock on its customer is refused (401) once the erasure froze the account, and leaves no order."""
    customer = await make_user("customer")
    r = await _behind(
        stores,
        [  # what privacy.pipl.request_deletion does first
            ("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", customer.id),
            ("UPDATE users SET status = 'frozen' WHERE id = $1", customer.id),
        ],
        lambda: client.post(
            "/v1/orders",
            headers=customer.auth,
            json={
                "service_code": instant_service,
                "lat": DEST[0],
                "lng": DEST[1],
                "address_detail": "景田北街3号 5栋1203",
            },
        ),
        "the booking",
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_token"
    assert not await stores.pool.fetchval(
        "SELECT count(*) FROM orders WHERE customer_id = $1", customer.id
    )


async def test_a_document_waiting_behind_a_submission_is_refused(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """A document added while the application is being submitted waits for the submission's lock and is then refused (409 at status), not attached to a submitted application."""
    who = await sign_up(client, stores)
    r = await client.get("/v1/onboarding/application", headers=who.auth)  # the draft
    assert r.status_code == 200, r.text
    app_id = r.json()["id"]
    fid = await upload(client, who, jpeg(640, 480, gps=False), "id_card")
    r = await _behind(
        stores,  # what onboarding.service.submit's transaction does first
        [("UPDATE applications SET status = 'submitted' WHERE id = $1", app_id)],
        lambda: client.post(
            "/v1/onboarding/application/documents",
            headers=who.auth,
            json={"kind": "id_front", "file_id": fid},
        ),
        "the document",
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["field"] == "status"
    assert not await stores.pool.fetchval(
        "SELECT count(*) FROM application_documents WHERE application_id = $1", app_id
    )

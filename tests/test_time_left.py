"""The worker's estimate of the time left on site (预计还需N分钟, ``POST
/v1/orders/{id}/time-left``) on real stores: its rules, its history entry, and chained
orders counting a job's end from it (docs/dispatch.md#chained-orders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dispatch import chains, store
from dispatch.time_left import ENDS_AT
from doorstep.stores import Stores
from tests.chain_setup import assign_by_hand
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker


async def time_left(
    client: httpx.AsyncClient, worker: Account, order_id: int, minutes: Any
) -> httpx.Response:
    """The worker says about ``minutes`` are left."""
    return await client.post(
        f"/v1/orders/{order_id}/time-left", headers=worker.auth, json={"minutes_left": minutes}
    )


async def test_the_worker_on_site_sets_the_expected_end_and_it_is_in_the_history(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Arrived, then in service, the worker's "about N minutes left" sets expected_end_at to
    now + N min (a later one replaces it); each is a ``time_left`` entry of the history."""
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    await assign_by_hand(client, dispatcher, worker, order)
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    before = datetime.now(UTC)
    r = await time_left(client, worker, order["id"], 90)
    assert r.status_code == 200, r.text
    end = datetime.fromisoformat(r.json()["expected_end_at"])
    assert before + timedelta(minutes=90) <= end <= datetime.now(UTC) + timedelta(minutes=90)
    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker.auth,
        json={"start_code": order["start_code"]},
    )
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["expected_end_at"]) == end  # kept by the start
    r = await time_left(client, worker, order["id"], 5)
    assert r.status_code == 200, r.text
    later = datetime.fromisoformat(r.json()["expected_end_at"])
    assert later < end
    stored = await stores.pool.fetchval(
        "SELECT expected_end_at FROM orders WHERE id = $1", order["id"]
    )
    assert stored == later
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=dispatcher.auth)).json()
    told = [(e["action"], e["from_status"], e["to_status"], e["reason"]) for e in events]
    assert ("time_left", "arrived", "arrived", "about 90 min left") in told
    assert told[-1] == ("time_left", "in_service", "in_service", "about 5 min left")
    assert events[-1]["actor"] == "worker"
    assert events[-1]["actor_id"] == worker.id


@pytest.mark.parametrize("minutes", [0, 601, -3, "10", 2.5, None])
async def test_minutes_left_out_of_1_to_600_is_refused_naming_the_field(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    minutes: Any,
) -> None:
    """minutes_left must be a whole number 1–600: anything else is 422 naming minutes_left,
    and the order keeps no estimate."""
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    await assign_by_hand(client, dispatcher, worker, order)
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    r = await time_left(client, worker, order["id"], minutes)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "minutes_left"
    assert (
        await stores.pool.fetchval("SELECT expected_end_at FROM orders WHERE id = $1", order["id"])
        is None
    )


async def test_only_the_orders_worker_on_site_may_say_the_time_left(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Before arrival and after completion 409 not_on_site (field status); another worker
    404 as for any order not theirs; the customer 403 (not a job step of theirs)."""
    worker = await make_worker(stores, client, engine_city.id)
    other = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    await assign_by_hand(client, dispatcher, worker, order)
    r = await time_left(client, worker, order["id"], 30)
    assert r.status_code == 409, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("not_on_site", "status")
    assert "assigned" in r.json()["error"]["message"]
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    r = await time_left(client, other, order["id"], 30)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["field"] == "order_id"
    r = await time_left(client, customer, order["id"], 30)
    assert r.status_code == 403, r.text
    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker.auth,
        json={"start_code": order["start_code"]},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order['id']}/complete", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    r = await time_left(client, worker, order["id"], 30)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "not_on_site"
    r = await time_left(client, worker, 2**62, 30)
    assert r.status_code == 404, r.text
    assert (
        await stores.pool.fetchval("SELECT expected_end_at FROM orders WHERE id = $1", order["id"])
        is None
    )


async def test_ending_soon_counts_the_end_from_the_workers_estimate(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A 2-hour job just started is not ending soon by the catalogue; "about 3 minutes
    left" makes its worker a chained candidate ending then; a job the catalogue says ends
    now but whose worker says 40 minutes more is not one."""
    short = await make_worker(stores, client, engine_city.id)
    long = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, engine_city.here)
    second = await book_here(client, customer, instant_service, engine_city.here)
    for worker, order in ((short, first), (long, second)):
        await assign_by_hand(client, dispatcher, worker, order)
        r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
        assert r.status_code == 200, r.text
    await stores.pool.execute(  # the catalogue says the second ends now (120 min on site)
        "UPDATE orders SET arrived_at = now() - make_interval(mins => duration_min) WHERE id = $1",
        second["id"],
    )
    soon = await chains.ending_soon(stores.pool, engine_city.id, datetime.now(UTC), 300.0)
    assert set(soon) == {long.id}
    r = await time_left(client, short, first["id"], 3)
    assert r.status_code == 200, r.text
    r = await time_left(client, long, second["id"], 40)
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    soon = await chains.ending_soon(stores.pool, engine_city.id, now, 300.0)
    assert set(soon) == {short.id}
    chain = soon[short.id].chain
    assert chain.order_id == first["id"]
    expected = datetime.fromisoformat(r.json()["expected_end_at"])  # the second's, 40 min
    assert abs(chain.ends_s - (now + timedelta(minutes=3)).timestamp()) <= 60
    assert expected - now >= timedelta(minutes=39)
    assert await chains.ending_soon(stores.pool, engine_city.id, now, 120.0) == {}


async def test_staff_in_scope_enter_the_workers_estimate_for_them(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A dispatcher may enter the worker's estimate (as they may depart, arrive and start for them): it sets expected_end_at and the history names the dispatcher."""
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    await assign_by_hand(client, dispatcher, worker, order)
    r = await time_left(client, dispatcher, order["id"], 20)
    assert r.status_code == 409, r.text  # not on site yet: the same rule as for the worker
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    r = await time_left(client, dispatcher, order["id"], 20)
    assert r.status_code == 200, r.text
    assert r.json()["expected_end_at"] is not None
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=dispatcher.auth)).json()
    entry = [e for e in events if e["action"] == "time_left"][-1]
    assert (entry["actor"], entry["actor_id"]) == ("dispatcher", dispatcher.id)


async def test_the_sql_and_python_ends_of_a_job_agree(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """``time_left.ENDS_AT`` (SQL) and ``Order.ends_at`` (Python) give the same end: none
    before arrival, arrival + duration on arrival, the worker's estimate once given."""
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    await assign_by_hand(client, dispatcher, worker, order)

    async def both() -> tuple[datetime | None, datetime | None]:
        in_sql = await stores.pool.fetchval(
            f"SELECT {ENDS_AT} FROM orders o WHERE o.id = $1", order["id"]
        )
        got = await store.get(stores.pool, order["id"])
        assert got is not None
        return in_sql, got.ends_at

    assert await both() == (None, None)
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    in_sql, in_python = await both()
    arrived = datetime.fromisoformat(r.json()["arrived_at"])
    assert in_sql == in_python == arrived + timedelta(minutes=r.json()["duration_min"])
    r = await time_left(client, worker, order["id"], 7)
    assert r.status_code == 200, r.text
    in_sql, in_python = await both()
    assert in_sql == in_python == datetime.fromisoformat(r.json()["expected_end_at"])

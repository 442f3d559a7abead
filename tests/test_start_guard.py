"""Start codes cannot be guessed: wrong codes are counted in PostgreSQL per order and per
worker, the start locks after five and a dispatcher is alerted, who can unlock it, or the
customer issues a new code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import connect

from dispatch.start_guard import StartGuardParams, attempts_left, locks_now, worker_wait_s
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import book, next_of, recv, worker_profile

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
PARAMS = StartGuardParams()


def test_the_order_locks_at_the_fifth_wrong_code() -> None:
    """Four wrong codes leave attempts; the fifth locks the order's start."""
    assert [locks_now(n, PARAMS) for n in range(1, 7)] == [False] * 4 + [True] * 2
    assert [attempts_left(n, PARAMS) for n in range(6)] == [5, 4, 3, 2, 1, 0]


def test_a_worker_waits_until_the_oldest_counted_failure_leaves_the_hour() -> None:
    """Nine failures in the hour let a worker try; ten make them wait until the oldest is an hour old."""
    times = [NOW - timedelta(minutes=50 - i) for i in range(9)]
    assert worker_wait_s(times, now=NOW, params=PARAMS) is None
    times.append(NOW)
    assert worker_wait_s(times, now=NOW, params=PARAMS) == 10 * 60
    old = [NOW - timedelta(hours=2)] * 50  # outside the window: forgotten
    assert worker_wait_s(old + times[:9], now=NOW, params=PARAMS) is None


def _error(r: httpx.Response) -> tuple[int, str, str | None]:
    error: dict[str, Any] = r.json()["error"]
    return r.status_code, error["code"], error["field"]


def _wrong(code: str, n: int = 1) -> str:
    return f"{(int(code) + n) % 10**6:06d}"


async def _arrived(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    city: str,
    service: str,
    worker: Account | None = None,
) -> tuple[dict[str, Any], Account, Account, Account]:
    """A booked order whose worker is at the door: (order, customer, worker, dispatcher)."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = worker or await worker_profile(stores, make_user, city)
    order = await book(client, customer, service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    return order, customer, worker, dispatcher


async def _start(
    client: httpx.AsyncClient, who: Account, order_id: int, code: str
) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order_id}/start", headers=who.auth, json={"start_code": code}
    )


async def test_five_wrong_codes_lock_the_start_even_for_the_right_code(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """Wrong codes 1–4 are 422 with the attempts left, the fifth is 409 start_locked, and then the right code is refused too; the count is in PostgreSQL."""
    order, _, worker, _ = await _arrived(client, make_user, stores, live_city, instant_service)
    for n in range(1, 5):
        r = await _start(client, worker, order["id"], _wrong(order["start_code"], n))
        assert _error(r) == (422, "invalid_order", "start_code")
        assert f"{5 - n} attempts left" in r.json()["error"]["message"]
    r = await _start(client, worker, order["id"], _wrong(order["start_code"], 5))
    assert _error(r) == (409, "start_locked", "start_code")
    r = await _start(client, worker, order["id"], order["start_code"])
    assert _error(r) == (409, "start_locked", "start_code")
    row = await stores.pool.fetchrow(
        "SELECT failures, locked_at FROM start_code_guards WHERE order_id = $1", order["id"]
    )
    assert row is not None
    assert row["failures"] == 5
    assert row["locked_at"] is not None
    status = await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"])
    assert status == "arrived"


async def test_a_locked_start_alerts_the_dispatchers_and_a_dispatcher_unlocks_it(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """The lock raises a start_locked alert (listed, and pushed on the city feed); a dispatcher's unlock resolves it and the right code then starts the job."""
    order, _, worker, dispatcher = await _arrived(
        client, make_user, stores, live_city, instant_service
    )
    feed = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    try:
        assert (await recv(feed))["type"] == "snapshot"
        for n in range(1, 6):
            await _start(client, worker, order["id"], _wrong(order["start_code"], n))
        pushed = await next_of(feed, "alert", timeout_s=10)
        while pushed["order_id"] != order["id"]:
            pushed = await next_of(feed, "alert", timeout_s=10)
        assert (pushed["kind"], pushed["resolved"]) == ("start_locked", False)
        listed = await client.get(
            "/v1/alerts", headers=dispatcher.auth, params={"city_id": live_city}
        )
        assert listed.status_code == 200, listed.text
        mine = [a for a in listed.json() if a["order_id"] == order["id"]]
        assert [a["kind"] for a in mine] == ["start_locked"]
        r = await client.post(
            f"/v1/orders/{order['id']}/start/unlock", headers=worker.auth, json={"reason": "x"}
        )
        assert r.status_code == 403
        r = await client.post(
            f"/v1/orders/{order['id']}/start/unlock",
            headers=dispatcher.auth,
            json={"reason": "customer confirmed by phone"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["override"]["action"] == "unlock_start"
        resolved = await next_of(feed, "alert", timeout_s=10)
        assert (resolved["alert_id"], resolved["resolved"]) == (mine[0]["id"], True)
    finally:
        await feed.close()
    listed = await client.get("/v1/alerts", headers=dispatcher.auth, params={"city_id": live_city})
    assert order["id"] not in [a["order_id"] for a in listed.json()]
    r = await _start(client, worker, order["id"], order["start_code"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_service"


async def test_the_customer_issues_a_new_code_which_unlocks_the_start(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """POST /v1/orders/{id}/start-code gives the customer a new code: the old one stops working and the lock is gone."""
    order, customer, worker, _ = await _arrived(
        client, make_user, stores, live_city, instant_service
    )
    for n in range(1, 6):
        await _start(client, worker, order["id"], _wrong(order["start_code"], n))
    r = await client.post(f"/v1/orders/{order['id']}/start-code", headers=worker.auth)
    assert r.status_code == 403
    r = await client.post(f"/v1/orders/{order['id']}/start-code", headers=customer.auth)
    assert r.status_code == 200, r.text
    code = r.json()["start_code"]
    assert code != order["start_code"]
    assert len(code) == 6
    r = await _start(client, worker, order["id"], order["start_code"])
    assert _error(r) == (422, "invalid_order", "start_code")
    r = await _start(client, worker, order["id"], code)
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order['id']}/start-code", headers=customer.auth)
    assert _error(r) == (409, "illegal_transition", "status")


async def test_a_worker_with_ten_wrong_codes_in_an_hour_must_wait(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """After ten wrong codes within an hour over any orders, a worker's next start is 429 with Retry-After, even with the right code."""
    order, _, worker, _ = await _arrived(client, make_user, stores, live_city, instant_service)
    earlier = await book(client, await make_user("customer"), instant_service)
    now = datetime.now(UTC)
    await stores.pool.executemany(  # nine wrong codes on an earlier job, 30–38 minutes ago
        "INSERT INTO start_code_failures (order_id, worker_id, at) VALUES ($1, $2, $3)",
        [(earlier["id"], worker.id, now - timedelta(minutes=30 + i)) for i in range(9)],
    )
    r = await _start(client, worker, order["id"], _wrong(order["start_code"]))
    assert _error(r) == (422, "invalid_order", "start_code")
    r = await _start(client, worker, order["id"], order["start_code"])
    assert _error(r) == (429, "too_many_start_attempts", "start_code")
    wait = int(r.headers["Retry-After"])
    assert 21 * 60 <= wait <= 23 * 60  # when the one from 38 minutes ago is an hour old


async def test_codes_from_those_without_the_job_are_not_counted(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A worker not holding the job gets 403/404 and their tries do not move the order's count."""
    order, _, _, _ = await _arrived(client, make_user, stores, live_city, instant_service)
    other = await worker_profile(stores, make_user, live_city)
    for n in range(6):
        r = await _start(client, other, order["id"], _wrong(order["start_code"], n + 1))
        assert r.status_code in (403, 404), r.text
    count = await stores.pool.fetchval(
        "SELECT count(*) FROM start_code_guards WHERE order_id = $1", order["id"]
    )
    assert count == 0

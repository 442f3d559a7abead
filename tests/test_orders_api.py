"""Orders over HTTP: who sees what, lists, actions and their errors, fees, history, versions, races."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from catalog import service as catalog_service
from catalog import store as catalog_store
from dispatch import service as dispatch_service
from dispatch import store as dispatch_store
from dispatch.lifecycle import TRANSITIONS
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import DEST, book, worker_profile

DETAIL = "景田北街3号 5栋1203"  # what tests.live.book puts in address_detail
ACTIVE = ("assigned", "en_route", "arrived", "in_service")
FAR_SQUARE = {  # a 2 km square in Hangzhou, far from the live city
    "type": "Polygon",
    "coordinates": [
        [[120.10, 30.20], [120.12, 30.20], [120.12, 30.22], [120.10, 30.22], [120.10, 30.20]]
    ],
}


@pytest.fixture(scope="module")
async def other_city(stores: Stores) -> str:
    """A city of this module's own, elsewhere."""
    city = catalog_service.build_city(
        id=f"far-{secrets.token_hex(4)}",
        name_zh="别城",
        name_en="Elsewhere",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=FAR_SQUARE,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    return city.id


async def _assign(
    client: httpx.AsyncClient, dispatcher: Account, order_id: int, worker_id: int
) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker_id, "reason": "nearest", "force": True},
    )


async def _assigned(
    client: httpx.AsyncClient, dispatcher: Account, order_id: int, worker_id: int
) -> dict[str, Any]:
    r = await _assign(client, dispatcher, order_id, worker_id)
    assert r.status_code == 200, r.text
    return _order(r)


def _order(r: httpx.Response) -> dict[str, Any]:
    """The order in a response (the assign endpoint may wrap it with its audit entry)."""
    body: dict[str, Any] = r.json()
    inner: dict[str, Any] = body.get("order", body)
    return inner


def _error(r: httpx.Response) -> tuple[int, str, str | None]:
    error: dict[str, Any] = r.json()["error"]
    return r.status_code, error["code"], error["field"]


async def _post(
    client: httpx.AsyncClient, who: Account, order_id: int, action: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/v1/orders/{order_id}/{action}", headers=who.auth, json=body)


async def _row(stores: Stores, order_id: int) -> dict[str, Any]:
    row = await stores.pool.fetchrow(
        "SELECT status, version, worker_id, cancel_fee_minor FROM orders WHERE id = $1", order_id
    )
    assert row is not None
    return dict(row)


async def _events(stores: Stores, order_id: int) -> list[dict[str, Any]]:
    rows = await stores.pool.fetch(
        "SELECT action, from_status, to_status, actor, actor_id, reason FROM order_events "
        "WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return [dict(r) for r in rows]


def _chain_ends_at(events: list[dict[str, Any]], status: str) -> None:
    """Each event starts where the previous ended, and the last ends at ``status``."""
    assert events[0]["from_status"] is None
    for before, after in itertools.pairwise(events):
        assert after["from_status"] == before["to_status"], events
    assert events[-1]["to_status"] == status, events


def _possible(status: str) -> str:
    legal = sorted(a for (s, a) in TRANSITIONS if s == status)
    return ", ".join(legal) if legal else "nothing (it is final)"


# ---- visibility and lists -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("owner", 200, None),
        ("other-customer", 404, "order_not_found"),
        ("unassigned-worker", 404, "order_not_found"),
        ("assigned-worker", 200, None),
        ("dispatcher", 200, None),
        ("admin", 200, None),
        ("merchant", 403, "forbidden"),
    ],
)
async def test_who_may_read_an_order(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
    who: str,
    status: int,
    code: str | None,
) -> None:
    """Its customer, its worker and staff read an order and its history; other customers and workers get 404, a merchant 403."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    holder = await worker_profile(stores, make_user, live_city)
    await _assigned(client, dispatcher, order["id"], holder.id)
    readers = {
        "owner": customer,
        "assigned-worker": holder,
        "dispatcher": dispatcher,
        "admin": await make_user("admin"),
        "other-customer": await make_user("customer"),
        "unassigned-worker": await worker_profile(stores, make_user, live_city),
        "merchant": await make_user("merchant"),
    }
    reader = readers[who]
    for path in (f"/v1/orders/{order['id']}", f"/v1/orders/{order['id']}/events"):
        r = await client.get(path, headers=reader.auth)
        assert r.status_code == status, r.text
        if code is not None:
            assert r.json()["error"]["code"] == code
            if code == "order_not_found":
                assert r.json()["error"]["field"] == "order_id"
    if status == 200:
        got = (await client.get(f"/v1/orders/{order['id']}", headers=reader.auth)).json()
        assert got["id"] == order["id"]


async def test_an_unknown_order_is_404_even_for_staff(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A dispatcher asking for an order that does not exist gets 404 order_not_found."""
    dispatcher = await make_user("dispatcher")
    r = await client.get(f"/v1/orders/{2**62}", headers=dispatcher.auth)
    assert _error(r) == (404, "order_not_found", "order_id")


async def test_customers_list_only_their_own_newest_first(
    client: httpx.AsyncClient, make_user: MakeUser, instant_service: str
) -> None:
    """A customer's list holds only their orders, newest first, filtered by status and paged by id."""
    customer, other = await make_user("customer"), await make_user("customer")
    mine = [(await book(client, customer, instant_service))["id"] for _ in range(3)]
    theirs = (await book(client, other, instant_service))["id"]
    r = await client.get("/v1/orders", headers=customer.auth)
    assert r.status_code == 200
    assert [o["id"] for o in r.json()] == mine[::-1]
    r = await client.get("/v1/orders", headers=other.auth)
    assert [o["id"] for o in r.json()] == [theirs]
    r = await _post(client, customer, mine[1], "cancel", {})
    assert r.status_code == 200, r.text
    for status, expected in [
        ("cancelled", [mine[1]]),
        ("confirmed", [mine[2], mine[0]]),
        ("completed", []),
    ]:
        r = await client.get("/v1/orders", headers=customer.auth, params={"status": status})
        assert r.status_code == 200
        assert [o["id"] for o in r.json()] == expected, status
    r = await client.get("/v1/orders", headers=customer.auth, params={"limit": 2})
    assert [o["id"] for o in r.json()] == [mine[2], mine[1]]
    r = await client.get("/v1/orders", headers=customer.auth, params={"before_id": mine[1]})
    assert [o["id"] for o in r.json()] == [mine[0]]


@pytest.mark.parametrize("bad", ["done", "CONFIRMED", "confirmed ", ""])
async def test_a_bad_status_filter_is_422(
    client: httpx.AsyncClient, make_user: MakeUser, bad: str
) -> None:
    """An unknown status filter is 422 at field status."""
    customer = await make_user("customer")
    r = await client.get("/v1/orders", headers=customer.auth, params={"status": bad})
    assert _error(r) == (422, "invalid_field", "status")


# ---- what a worker sees -------------------------------------------------------------------


async def test_the_worker_sees_the_address_only_while_holding_the_job(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A worker never sees the start code nor the customer's phone (masked); the address from assignment until 30 min after completion (each reveal audited)."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    oid = order["id"]
    assert order["contact_phone"] == customer.phone
    r = await client.get(f"/v1/orders/{oid}", headers=worker.auth)
    assert _error(r) == (404, "order_not_found", "order_id")
    await _assigned(client, dispatcher, oid, worker.id)
    masked = customer.phone[:3] + "****" + customer.phone[-4:]
    assert masked.startswith("147****")
    seen = (await client.get(f"/v1/orders/{oid}", headers=worker.auth)).json()
    assert seen["start_code"] is None
    assert (seen["address_detail"], seen["contact_phone"]) == (DETAIL, masked)
    listed = (await client.get("/v1/orders", headers=worker.auth)).json()
    assert [o["id"] for o in listed] == [oid]
    assert listed[0]["start_code"] is None
    assert listed[0]["address_detail"] == DETAIL
    assert (await client.get(f"/v1/orders/{oid}", headers=customer.auth)).json()[
        "start_code"
    ] == order["start_code"]
    for action, body in [
        ("depart", {}),
        ("arrive", {}),
        ("start", {"start_code": order["start_code"]}),
    ]:
        r = await _post(client, worker, oid, action, body)
        assert r.status_code == 200, r.text
        assert r.json()["start_code"] is None
        assert r.json()["address_detail"] == DETAIL
    r = await _post(client, worker, oid, "complete", {})
    assert r.status_code == 200, r.text
    seen = (await client.get(f"/v1/orders/{oid}", headers=worker.auth)).json()
    assert seen["status"] == "completed"
    assert (seen["address_detail"], seen["contact_phone"]) == (DETAIL, masked)  # grace
    completed = await dispatch_store.get(stores.pool, oid)
    assert completed is not None
    assert completed.completed_at is not None
    later = dispatch_service.view(
        completed,
        dispatch_service.Caller("worker", worker.id),
        now=completed.completed_at + dispatch_service.REVEAL_GRACE + timedelta(seconds=1),
    )
    assert (later.start_code, later.address_detail, later.contact_phone) == (None, "", masked)
    reveals = await stores.pool.fetchval(
        "SELECT count(*) FROM address_reveals WHERE order_id = $1 AND worker_id = $2",
        oid,
        worker.id,
    )
    assert reveals >= 6  # every response that showed the worker the address is audited
    full = (await client.get(f"/v1/orders/{oid}", headers=customer.auth)).json()
    assert (full["address_detail"], full["contact_phone"]) == (DETAIL, customer.phone)


# ---- actions and their errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "action", "actor"),
    [
        ("confirmed", "complete", "dispatcher"),
        ("confirmed", "depart", "dispatcher"),
        ("confirmed", "arrive", "admin"),
        ("assigned", "complete", "dispatcher"),
        ("assigned", "complete", "worker"),
        ("assigned", "start", "worker"),
        ("cancelled", "cancel", "customer"),
        ("cancelled", "complete", "dispatcher"),
    ],
)
async def test_an_illegal_transition_is_409_naming_the_status(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
    state: str,
    action: str,
    actor: str,
) -> None:
    """An action not legal in the order's status is 409 illegal_transition naming the status and what is possible; nothing changes."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    if state == "assigned":
        await _assigned(client, dispatcher, order["id"], worker.id)
    if state == "cancelled":
        assert (await _post(client, customer, order["id"], "cancel", {})).status_code == 200
    before = await _row(stores, order["id"])
    assert before["status"] == state
    who = {"dispatcher": dispatcher, "worker": worker, "customer": customer}.get(actor)
    acting = who or await make_user(actor)
    body = {"start_code": order["start_code"]} if action == "start" else {}
    r = await _post(client, acting, order["id"], action, body)
    assert _error(r) == (409, "illegal_transition", "status"), r.text
    assert r.json()["error"]["message"] == (
        f"cannot {action} an order that is {state}; possible now: {_possible(state)}"
    )
    assert await _row(stores, order["id"]) == before


@pytest.mark.parametrize(
    ("action", "status", "code"),
    [
        ("depart", 404, "order_not_found"),
        ("arrive", 404, "order_not_found"),
        ("start", 404, "order_not_found"),
        ("complete", 404, "order_not_found"),
        ("cancel", 403, "forbidden"),
        ("assign", 403, "forbidden"),
        ("unassign", 403, "forbidden"),
    ],
)
async def test_a_worker_cannot_act_on_another_workers_job(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
    action: str,
    status: int,
    code: str,
) -> None:
    """Job actions on another worker's job are 404 (a worker may not learn the order exists); staff-only actions are 403 by role."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    holder, intruder = (
        await worker_profile(stores, make_user, live_city),
        await worker_profile(stores, make_user, live_city),
    )
    order = await book(client, customer, instant_service)
    await _assigned(client, dispatcher, order["id"], holder.id)
    before = await _row(stores, order["id"])
    body: dict[str, Any] = {
        "start": {"start_code": order["start_code"]},
        "assign": {"worker_id": intruder.id, "reason": "mine"},
        "unassign": {"reason": "mine"},
    }.get(action, {})
    r = await _post(client, intruder, order["id"], action, body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert await _row(stores, order["id"]) == before


async def test_start_needs_the_customers_code(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A wrong start code is 422 at start_code and changes nothing; the right one (spaces trimmed) starts the service."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    await _assigned(client, dispatcher, order["id"], worker.id)
    assert (await _post(client, worker, order["id"], "arrive", {})).status_code == 200
    before = await _row(stores, order["id"])
    wrong = f"{(int(order['start_code']) + 1) % 10**6:06d}"
    for code in (wrong, order["start_code"][:5], "abcdef"):
        r = await _post(client, worker, order["id"], "start", {"start_code": code})
        assert _error(r) == (422, "invalid_order", "start_code")
    assert await _row(stores, order["id"]) == before
    r = await _post(
        client, worker, order["id"], "start", {"start_code": f" {order['start_code']} "}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_service"


@pytest.mark.parametrize(
    ("steps", "canceller", "percent", "why"),
    [
        ((), "customer", 0, "free: no worker had committed to it yet"),
        (("assign",), "customer", 20, "20% of the price: the worker had committed"),
        (("assign",), "dispatcher", 0, "free: cancelled by staff"),
        (("assign", "depart"), "customer", 50, "50% of the price: the worker had travelled"),
        (("assign", "arrive"), "customer", 50, "50% of the price: the worker had travelled"),
        (("scheduled", "assign"), "customer", 0, "free: more than 2 hours before"),
    ],
)
async def test_cancellation_fees_over_http(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
    steps: tuple[str, ...],
    canceller: str,
    percent: int,
    why: str,
) -> None:
    """Cancelling is free before assignment, by staff, or ≥ 2 h before a window; 20% once assigned; 50% en route or there."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    if "scheduled" in steps:
        start = datetime.now(UTC) + timedelta(hours=3)
        r = await client.post(
            "/v1/orders",
            headers=customer.auth,
            json={
                "service_code": instant_service,
                "lat": DEST[0],
                "lng": DEST[1],
                "window_start": start.isoformat(),
                "window_end": (start + timedelta(hours=2)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        order: dict[str, Any] = r.json()
    else:
        order = await book(client, customer, instant_service)
    for step in steps:
        if step == "assign":
            await _assigned(client, dispatcher, order["id"], worker.id)
        elif step != "scheduled":
            r = await _post(client, worker, order["id"], step, {})
            assert r.status_code == 200, r.text
    who = customer if canceller == "customer" else dispatcher
    r = await _post(client, who, order["id"], "cancel", {"reason": "plans changed"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["cancel_fee_minor"] == order["price_minor"] * percent // 100
    assert order["price_minor"] * percent % 100 == 0  # the test price divides evenly
    last = (await client.get(f"/v1/orders/{order['id']}/events", headers=customer.auth)).json()[-1]
    assert (last["action"], last["actor"], last["actor_id"]) == ("cancel", canceller, who.id)
    assert last["reason"].startswith(f"plans changed ({why}")


async def test_the_history_lists_every_change_with_who_and_why(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """The events endpoint lists book, confirm, assign, depart, arrive, start, complete with actor, actor id and reason."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    oid = order["id"]
    await _assigned(client, dispatcher, oid, worker.id)
    for action, body in [
        ("depart", {"reason": "on my way"}),
        ("arrive", {}),
        ("start", {"start_code": order["start_code"]}),
        ("complete", {"reason": "all clean"}),
    ]:
        r = await _post(client, worker, oid, action, body)
        assert r.status_code == 200, r.text
    expected = [
        ("book", None, "created", "customer", customer.id, ""),
        ("confirm", "created", "confirmed", "system", None, "no payment required"),
        ("assign", "confirmed", "assigned", "dispatcher", dispatcher.id, "nearest"),
        ("depart", "assigned", "en_route", "worker", worker.id, "on my way"),
        ("arrive", "en_route", "arrived", "worker", worker.id, "by hand"),
        ("start", "arrived", "in_service", "worker", worker.id, ""),
        ("complete", "in_service", "completed", "worker", worker.id, "all clean"),
    ]
    for reader in (customer, dispatcher, worker):
        r = await client.get(f"/v1/orders/{oid}/events", headers=reader.auth)
        assert r.status_code == 200
        events = r.json()
        assert [
            (e["action"], e["from_status"], e["to_status"], e["actor"], e["actor_id"], e["reason"])
            for e in events
        ] == expected
        times = [datetime.fromisoformat(e["at"]) for e in events]
        assert times == sorted(times)


@pytest.mark.parametrize("off_by", [-1, 1, 100])
async def test_a_stale_version_is_409(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    off_by: int,
) -> None:
    """Cancel with a version other than the order's is 409 stale_version at version and changes nothing; the right one works."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    before = await _row(stores, order["id"])
    assert before["version"] == order["version"]
    r = await _post(client, customer, order["id"], "cancel", {"version": order["version"] + off_by})
    assert _error(r) == (409, "stale_version", "version")
    assert await _row(stores, order["id"]) == before
    r = await _post(client, customer, order["id"], "cancel", {"version": order["version"]})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == order["version"] + 1


@pytest.mark.parametrize("target", ["other-city", "not-a-worker", "unknown"])
async def test_assigning_a_worker_who_cannot_take_it_is_422(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    other_city: str,
    target: str,
) -> None:
    """A worker of another city, a user without a worker profile, or no user at all is 422 at worker_id."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    worker_id = {
        "other-city": (await worker_profile(stores, make_user, other_city)).id,
        "not-a-worker": customer.id,
        "unknown": 2**62,
    }[target]
    before = await _row(stores, order["id"])
    r = await _assign(client, dispatcher, order["id"], worker_id)
    assert _error(r) == (422, "invalid_order", "worker_id"), r.text
    assert await _row(stores, order["id"]) == before


# ---- races on the real database -----------------------------------------------------------


@pytest.mark.parametrize("orders", [2, 5])
async def test_race_one_worker_assigned_to_several_orders_at_once(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
    orders: int,
) -> None:
    """Dispatchers assigning the same worker to different orders at once: exactly one 200, the rest 409 worker_busy."""
    dispatchers = [await make_user("dispatcher"), await make_user("dispatcher")]
    customer = await make_user("customer")
    for _ in range(3):
        worker = await worker_profile(stores, make_user, live_city)
        ids = [(await book(client, customer, instant_service))["id"] for _ in range(orders)]
        results = await asyncio.gather(
            *(_assign(client, dispatchers[i % 2], oid, worker.id) for i, oid in enumerate(ids))
        )
        won = [oid for oid, r in zip(ids, results, strict=True) if r.status_code == 200]
        lost = [r for r in results if r.status_code != 200]
        assert len(won) == 1, [r.text for r in results]
        assert [_error(r) for r in lost] == [(409, "worker_busy", "worker_id")] * (orders - 1)
        held = await stores.pool.fetch(
            "SELECT id FROM orders WHERE worker_id = $1 AND status = ANY($2::text[])",
            worker.id,
            list(ACTIVE),
        )
        assert [r["id"] for r in held] == won
        for oid in ids:
            row = await _row(stores, oid)
            events = await _events(stores, oid)
            if oid in won:
                assert (row["status"], row["worker_id"]) == ("assigned", worker.id)
                assert [e["action"] for e in events] == ["book", "confirm", "assign"]
            else:
                assert (row["status"], row["worker_id"], row["version"]) == ("confirmed", None, 1)
                assert [e["action"] for e in events] == ["book", "confirm"]


async def test_race_two_workers_assigned_to_one_order_at_once(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """Two dispatchers assigning different workers to one order at once: exactly one 200 and one 409; the loser stays free."""
    dispatchers = [await make_user("dispatcher"), await make_user("dispatcher")]
    customer = await make_user("customer")
    for _ in range(3):
        workers = [
            await worker_profile(stores, make_user, live_city),
            await worker_profile(stores, make_user, live_city),
        ]
        oid = (await book(client, customer, instant_service))["id"]
        results = await asyncio.gather(
            *(_assign(client, d, oid, w.id) for d, w in zip(dispatchers, workers, strict=True))
        )
        statuses = [r.status_code for r in results]
        assert sorted(statuses) == [200, 409], [r.text for r in results]
        winner = workers[statuses.index(200)]
        loser = workers[statuses.index(409)]
        assert results[statuses.index(409)].json()["error"]["code"] in (
            "illegal_transition",
            "stale_version",
        )  # the loser sees the order moved on, by status or by version
        row = await _row(stores, oid)
        assert (row["status"], row["worker_id"]) == ("assigned", winner.id)
        events = await _events(stores, oid)
        assert [e["action"] for e in events] == ["book", "confirm", "assign"]
        _chain_ends_at(events, "assigned")
        other = (await book(client, customer, instant_service))["id"]
        await _assigned(client, dispatchers[0], other, loser.id)


@pytest.mark.parametrize("with_version", [True, False])
async def test_race_cancel_against_assign(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
    with_version: bool,
) -> None:
    """Cancel and assign at once end in one outcome whose history, status and fee agree; with the read version exactly one succeeds."""
    # Without the version the cancel always succeeds; it costs 20% only if the
    # assignment committed first.
    dispatcher = await make_user("dispatcher")
    for _ in range(3):
        customer = await make_user("customer")
        worker = await worker_profile(stores, make_user, live_city)
        order = await book(client, customer, instant_service)
        oid = order["id"]
        body: dict[str, Any] = {"reason": "no longer needed"}
        if with_version:
            body["version"] = order["version"]
        cancel, assign = await asyncio.gather(
            _post(client, customer, oid, "cancel", body),
            _assign(client, dispatcher, oid, worker.id),
        )
        row = await _row(stores, oid)
        events = await _events(stores, oid)
        actions = [e["action"] for e in events]
        _chain_ends_at(events, row["status"])
        assert row["version"] == len(events) - 1
        if assign.status_code == 200 and cancel.status_code == 200:
            assert not with_version, (cancel.text, assign.text)
            assert actions == ["book", "confirm", "assign", "cancel"]
            assert (row["status"], row["cancel_fee_minor"]) == (
                "cancelled",
                order["price_minor"] * 20 // 100,
            )
        elif assign.status_code == 200:
            assert with_version
            assert _error(cancel) == (409, "stale_version", "version")
            assert actions == ["book", "confirm", "assign"]
            assert (row["status"], row["worker_id"]) == ("assigned", worker.id)
        else:
            assert cancel.status_code == 200, (cancel.text, assign.text)
            assert _error(assign) in (
                (409, "illegal_transition", "status"),
                (409, "stale_version", "version"),
            )
            assert actions == ["book", "confirm", "cancel"]
            assert (row["status"], row["worker_id"], row["cancel_fee_minor"]) == (
                "cancelled",
                None,
                0,
            )
            other = (await book(client, customer, instant_service))["id"]
            await _assigned(client, dispatcher, other, worker.id)


async def test_completion_attaches_the_workers_own_job_photos(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """Completing with photos attaches the worker's job_photo uploads to the order in the
    same change; another user's photo is refused and nothing is completed or attached."""
    from tests.files_samples import jpeg

    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker, other = (
        await worker_profile(stores, make_user, live_city),
        await worker_profile(stores, make_user, live_city),
    )
    order = await book(client, customer, instant_service)
    assert (await _assign(client, dispatcher, order["id"], worker.id)).status_code == 200
    for step in ("depart", "arrive"):
        r = await client.post(f"/v1/orders/{order['id']}/{step}", headers=worker.auth, json={})
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker.auth,
        json={"start_code": order["start_code"]},
    )
    assert r.status_code == 200, r.text

    async def upload(who: Account) -> int:
        r = await client.post(
            "/v1/files?purpose=job_photo",
            headers={**who.auth, "Content-Type": "image/jpeg"},
            content=jpeg(),
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    mine, theirs = await upload(worker), await upload(other)
    r = await client.post(
        f"/v1/orders/{order['id']}/complete", headers=worker.auth, json={"photos": [mine, theirs]}
    )
    assert r.status_code == 404, r.text
    assert await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"]) == (
        "in_service"
    )
    assert await stores.pool.fetchval("SELECT attached_to FROM files WHERE id = $1", mine) is None
    r = await client.post(
        f"/v1/orders/{order['id']}/complete", headers=worker.auth, json={"photos": [mine, mine]}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "photos")
    r = await client.post(
        f"/v1/orders/{order['id']}/complete", headers=worker.auth, json={"photos": [mine]}
    )
    assert r.status_code == 200, r.text
    assert await stores.pool.fetchval("SELECT attached_to FROM files WHERE id = $1", mine) == (
        f"order:{order['id']}"
    )

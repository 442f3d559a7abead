"""Number masking (隐私号, issue 19 §5): the customer and the worker call each other through
a temporary AXB number valid during the job only, from a provider sandbox that speaks
Aliyun's Dyplsapi protocol (docs/privacy.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from doorstep.embedded import free_port
from events.types import Event, OrderChanged
from notifications.sandbox import SandboxServer
from privacy import rules
from privacy.axb import AliyunLikeAxb, AxbConfig, Binding, MaskingFailed
from privacy.axb_sandbox import POOL_KEY, AxbSandbox
from tests.helpers import Account, MakeUser, new_phone
from tests.live import book

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_only_a_job_under_way_with_a_worker_is_callable() -> None:
    """A binding is wanted from assignment to the job's end, and only with a worker."""
    assert rules.wanted("assigned", 7)
    assert rules.wanted("in_service", 7)
    assert not rules.wanted("assigned", None)
    for status in ("confirmed", "dispatching", "offered", "completed", "cancelled", "failed"):
        assert not rules.wanted(status, 7)


def test_the_provider_keeps_a_binding_past_the_window_but_not_forever() -> None:
    """Expiry: the window's end plus the grace, never less than an hour from now."""
    assert rules.expires_at(NOW, NOW + timedelta(hours=2)) == NOW + timedelta(hours=6)
    assert rules.expires_at(NOW, None) == NOW + rules.PROVIDER_GRACE
    assert rules.expires_at(NOW, NOW - timedelta(days=1)) == NOW + rules.PROVIDER_GRACE


@pytest.fixture
async def provider() -> AsyncIterator[tuple[AliyunLikeAxb, SandboxServer, AxbSandbox]]:
    """A sandbox provider on its own port (a 2-number pool) and a client of it."""
    sandbox = AxbSandbox("LTAItest", "s3cret", pool_size=2)
    server = SandboxServer(sandbox, free_port(), name="axb test sandbox")
    await server.start()
    client = AliyunLikeAxb(AxbConfig(server.url, "LTAItest", "s3cret", POOL_KEY))
    try:
        yield client, server, sandbox
    finally:
        await client.close()
        await server.stop()


async def _call(url: str, caller: str, number: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        answer: dict[str, Any] = (
            await http.post(url + "call", json={"from": caller, "to": number})
        ).json()
        return answer


async def test_a_binding_connects_a_and_b_both_ways_until_unbound(
    provider: tuple[AliyunLikeAxb, SandboxServer, AxbSandbox],
) -> None:
    """A calls X and reaches B, B reaches A, a stranger reaches nobody; unbound, nobody."""
    client, server, _ = provider
    a, b, stranger = new_phone(), new_phone(), new_phone()
    binding = await client.bind(
        a=a, b=b, expires=datetime.now(UTC) + timedelta(hours=1), out_id="o1w2"
    )
    assert (await _call(server.url, a, binding.secret_no))["connected_to"] == b
    assert (await _call(server.url, b, binding.secret_no))["connected_to"] == a
    assert (await _call(server.url, stranger, binding.secret_no))["Code"] == "isv.NO_BINDING"
    again = await client.bind(
        a=a, b=b, expires=datetime.now(UTC) + timedelta(hours=1), out_id="o1w2"
    )
    assert again == binding  # a retried bind with the same OutId: the same binding
    await client.unbind(binding)
    assert (await _call(server.url, a, binding.secret_no))["Code"] == "isv.NO_BINDING"
    await client.unbind(binding)  # already gone: not an error


async def test_the_sandbox_checks_what_the_provider_checks(
    provider: tuple[AliyunLikeAxb, SandboxServer, AxbSandbox],
) -> None:
    """A wrong secret, a past expiration, a bad number and an empty pool are refused by code."""
    client, server, sandbox = provider
    later = datetime.now(UTC) + timedelta(hours=1)
    forger = AliyunLikeAxb(AxbConfig(server.url, "LTAItest", "wrong", POOL_KEY))
    try:
        with pytest.raises(MaskingFailed) as e:
            await forger.bind(a=new_phone(), b=new_phone(), expires=later, out_id="x")
        assert e.value.code == "SignatureDoesNotMatch"
    finally:
        await forger.close()
    with pytest.raises(MaskingFailed) as e:
        await client.bind(
            a=new_phone(),
            b=new_phone(),
            expires=datetime.now(UTC) - timedelta(minutes=1),
            out_id="p",
        )
    assert e.value.code == "isv.INVALID_PARAMETERS"
    with pytest.raises(MaskingFailed) as e:
        await client.bind(a="12345", b=new_phone(), expires=later, out_id="q")
    assert e.value.code == "isv.INVALID_PARAMETERS"
    busy = new_phone()  # one party in two bindings gets two different numbers; a third: none left
    first = await client.bind(a=busy, b=new_phone(), expires=later, out_id="r1")
    second = await client.bind(a=busy, b=new_phone(), expires=later, out_id="r2")
    assert first.secret_no != second.secret_no
    with pytest.raises(MaskingFailed) as e:
        await client.bind(a=busy, b=new_phone(), expires=later, out_id="r3")
    assert e.value.code == "isv.NO_AVAILABLE_NUMBER"
    assert e.value.retryable
    await client.unbind(Binding("nope", first.secret_no))  # unknown: counts as ended
    assert len(sandbox.bound) == 2  # ... and ends nothing else


async def _contact(client: httpx.AsyncClient, order_id: int, who: Account) -> httpx.Response:
    """The contact route, waiting (≤ 10 s) for the consumer while it answers not ready."""
    deadline = time.monotonic() + 10
    while True:
        r = await client.get(f"/v1/orders/{order_id}/contact", headers=who.auth)
        if r.status_code != 409 or "not ready" not in r.text or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


async def test_customer_and_worker_reach_each_other_only_during_the_job(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    worker_account: Account,
    instant_service: str,
) -> None:
    """Assigned: both get the same masked number and each reaches the other's real phone;
    a stranger gets 404; cancelled: 409 and the number reaches nobody."""
    sandbox_url = live_app[1].state.axb_sandbox.url
    customer, dispatcher, stranger = (
        await make_user("customer"),
        await make_user("dispatcher"),
        await make_user("customer"),
    )
    order = await book(client, customer, instant_service)
    r = await client.get(f"/v1/orders/{order['id']}/contact", headers=customer.auth)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "no_contact"
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker_account.id, "reason": "nearest", "force": True},
    )
    assert r.status_code == 200, r.text
    mine = await _contact(client, order["id"], customer)
    assert mine.status_code == 200, mine.text
    theirs = await _contact(client, order["id"], worker_account)
    assert theirs.status_code == 200, theirs.text
    number = mine.json()["number"]
    assert theirs.json()["number"] == number
    assert (mine.json()["calls"], theirs.json()["calls"]) == ("worker", "customer")
    assert number not in (customer.phone, worker_account.phone)
    assert (await _call(sandbox_url, customer.phone, number))[
        "connected_to"
    ] == worker_account.phone
    assert (await _call(sandbox_url, worker_account.phone, number))[
        "connected_to"
    ] == customer.phone
    r = await client.get(f"/v1/orders/{order['id']}/contact", headers=stranger.auth)
    assert r.status_code == 404
    r = await client.post(
        f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={"reason": "plans changed"}
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/orders/{order['id']}/contact", headers=customer.auth)
    assert r.status_code == 409
    deadline = time.monotonic() + 10
    while (await _call(sandbox_url, customer.phone, number)).get("Code") != "isv.NO_BINDING":
        assert time.monotonic() < deadline, "the binding outlived the job"
        await asyncio.sleep(0.05)


def _change(order: dict[str, Any], status: str, worker: int | None, version: int) -> Event:
    """An order.* event of ``order`` moving to ``status`` (held by ``worker``)."""
    payload = OrderChanged(
        order_id=order["id"],
        city_id=order["city_id"],
        customer_id=order["customer_id"],
        kind="instant",
        service_code=order["service_code"],
        status=status,
        previous=None,
        action="test",
        actor="dispatcher",
        actor_id=None,
        version=version,
        worker_id=worker,
        previous_worker_id=None,
        window_start=None,
        window_end=None,
        previous_window_start=None,
        at=datetime.now(UTC),
    )
    return Event(
        id=-version,
        seq=-version,
        type="order.test",
        aggregate=f"order:{order['id']}",
        version=version,
        payload=payload,
        occurred_at=payload.at,
    )


async def test_a_batch_binds_and_releases_as_its_events_one_by_one_would(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    worker_account: Account,
    instant_service: str,
) -> None:
    """The consumer's batch path: an order assigned then cancelled in one batch ends with
    its binding made and released; assigned then en route, with one live binding."""
    masking = live_app[1].state.masking
    pool = live_app[1].state.stores.pool
    customer = await make_user("customer")
    ended = await book(client, customer, instant_service)
    going = await book(client, customer, instant_service)
    await live_app[1].state.relay.drain()  # the bookings' own events handled before ours
    async with pool.acquire() as conn, conn.transaction():
        await masking.handle_batch(
            conn,
            [
                _change(ended, "assigned", worker_account.id, 101),
                _change(going, "assigned", worker_account.id, 102),
                _change(ended, "cancelled", None, 103),
                _change(going, "en_route", worker_account.id, 104),
            ],
        )
    rows = await pool.fetch(
        "SELECT order_id, released_at FROM number_bindings WHERE order_id = ANY($1::bigint[])",
        [ended["id"], going["id"]],
    )
    by_order: dict[int, list[Any]] = {}
    for r in rows:
        by_order.setdefault(r["order_id"], []).append(r["released_at"])
    assert len(by_order[ended["id"]]) == 1
    assert by_order[ended["id"]][0] is not None  # made, then released
    assert by_order[going["id"]] == [None]  # one binding, still live

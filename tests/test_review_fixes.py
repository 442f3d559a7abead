"""Regressions for defects found in review: each test pins one fixed behaviour."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from dispatch import offers
from dispatch import store as dispatch_store
from dispatch.offers import OfferParams
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_generalist, make_worker, online, recv
from tracking.archive import TrailArchiver
from tracking.fixes import Fix, FixParams, Track, check
from tracking.live import LiveHub


def test_an_absurd_speed_is_out_of_range() -> None:
    """A speed no phone measures (it would not even fit the archive's column) is rejected."""
    fix = Fix(1, 1_000, 22.5, 114.0, 5.0, speed_mps=1e39)
    _, verdict = check(Track(), fix, now_ms=1_000, params=FixParams())
    assert verdict.reason == "out_of_range"


async def test_a_row_postgres_refuses_is_dropped_alone(
    stores: Stores, worker_account: Account
) -> None:
    """One unstorable trail row is dropped and counted; the rest of its batch is archived."""
    archiver = TrailArchiver(stores.pool)
    now = int(time.time() * 1000)
    good = [
        (worker_account.id, now, 22.5, 114.0, 5.0, None, None, s, False, now) for s in (901, 902)
    ]
    bad = (worker_account.id, now, 22.5, 114.0, 5.0, 1e39, None, 903, False, now)
    archiver.add([good[0], bad, good[1]])
    assert await archiver.flush() == 2
    assert archiver.dropped == 1
    seqs = await stores.pool.fetch(
        "SELECT seq FROM trail_points WHERE worker_id = $1 AND seq > 900", worker_account.id
    )
    assert sorted(r["seq"] for r in seqs) == [901, 902]


async def test_a_row_postgres_refuses_in_copy_is_dropped_alone(
    stores: Stores, worker_account: Account
) -> None:
    """A row PostgreSQL refuses (a time past its range) is dropped alone; the rest read back exactly."""
    archiver = TrailArchiver(stores.pool)
    now = int(time.time() * 1000)
    beyond = 946_684_800_000 + 9_223_371_331_300_000  # µs since 2000 past PostgreSQL's last
    rows = [
        (worker_account.id, now, 22.5, 114.0, 5.0, 1.5, 90.0, 911, True, now),
        (worker_account.id, beyond, 22.5, 114.0, 5.0, None, None, 912, False, now),
        (worker_account.id, now, 22.5, 114.0, 5.0, None, None, 913, False, now),
        (worker_account.id, now, 22.5, 114.0, 5.0, 2.25, None, 914, False, now),
        (worker_account.id, now, 22.5, 114.0, 5.0, None, 180.5, 915, False, now),
    ]
    archiver.add(rows)
    assert await archiver.flush() == 4
    assert archiver.dropped == 1
    got = await stores.pool.fetch(
        "SELECT seq, speed_mps, heading_deg, clamped, ts FROM trail_points "
        "WHERE worker_id = $1 AND seq BETWEEN 911 AND 915 ORDER BY seq",
        worker_account.id,
    )
    assert [(r["seq"], r["speed_mps"], r["heading_deg"], r["clamped"]) for r in got] == [
        (911, 1.5, 90.0, True),
        (913, None, None, False),
        (914, 2.25, None, False),
        (915, None, 180.5, False),
    ]
    assert got[0]["ts"] == datetime.fromtimestamp(now / 1000, UTC)


async def test_a_failing_control_handler_does_not_stop_the_hub(stores: Stores) -> None:
    """An exception in one channel's handler is logged; the hub keeps delivering everything else."""
    hub = LiveHub(stores.redis)
    await hub.start()
    try:

        def boom(_: bytes) -> None:
            raise RuntimeError("bad control message")

        await hub.handle(stores.keys.process_channel("review-test"), boom)
        sub = await hub.subscribe(stores.keys.feed("review-test"))
        await asyncio.sleep(0.05)
        await stores.redis.publish(stores.keys.process_channel("review-test"), b"x")
        await stores.redis.publish(stores.keys.feed("review-test"), b"still here")
        assert await asyncio.wait_for(sub.get(), 5) == b"still here"
        await sub.close()
    finally:
        await hub.stop()


async def test_a_failed_accept_returns_the_order_to_dispatch(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Accepting a second job while holding one is refused, and that order is dispatched again."""
    tracking = live_app[1].state.tracking
    worker = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], worker, engine_city.here)
    customer = await make_user("customer")
    first = await book_here(client, customer, instant_service, engine_city.here)
    second = await book_here(client, customer, instant_service, engine_city.here)
    now = datetime.now(UTC)
    made = []
    for o in (first, second):
        order = await dispatch_store.get(stores.pool, o["id"])
        assert order is not None
        made += await offers.make_offers(
            stores,
            tracking,
            order,
            [(worker.id, None, None)],
            mode="direct",
            params=OfferParams(),
            now=now,
        )
    ok = await client.post(f"/v1/offers/{made[0].id}/accept", headers=worker.auth)
    assert ok.status_code == 200, ok.text
    refused = await client.post(f"/v1/offers/{made[1].id}/accept", headers=worker.auth)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "offer_gone")
    status = await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", second["id"])
    assert status == "dispatching"
    await ws.close()


async def test_an_order_nobody_could_be_offered_fails_after_the_sla(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """An instant order still confirmed past its SLA (no worker ever in range) fails with a reason."""
    engine = live_app[1].state.engine
    # On shift but never online (with nobody at all, the booking is refused: nobody_can_serve).
    await make_worker(stores, client, engine_city.id)
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    later = datetime.now(UTC) + timedelta(seconds=engine.match.instant_sla_s + 60)
    report = await engine.tick(engine_city.id, later)
    assert report.failed == 1
    row = await stores.pool.fetchrow(
        "SELECT o.status, e.reason FROM orders o JOIN order_events e ON e.order_id = o.id "
        "WHERE o.id = $1 ORDER BY e.id DESC LIMIT 1",
        order["id"],
    )
    assert row is not None
    assert row["status"] == "failed"
    assert "no worker" in row["reason"]


@pytest.mark.parametrize("text", ["ab\u0000c", "\u0000"])
async def test_nul_characters_are_a_4xx_not_a_500(
    client: httpx.AsyncClient, make_user: MakeUser, text: str
) -> None:
    """PostgreSQL cannot store NUL: a body carrying one is refused with 422 nul_character."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/me/addresses",
        headers=customer.auth | {"content-type": "application/json"},
        content=orjson.dumps({"label": text, "lat": 22.53, "lng": 114.01}),
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "nul_character")


async def test_excluding_an_unknown_worker_is_a_422(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    engine_city: EngineCity,
    stores: Stores,
) -> None:
    """Excluding a worker who does not exist names the field instead of failing on a foreign key."""
    dispatcher, customer = await make_user("dispatcher"), await make_user("customer")
    await make_generalist(stores, engine_city.id)  # someone could serve it (else 409 at booking)
    order = await book_here(client, customer, instant_service, engine_city.here)
    r = await client.post(
        f"/v1/orders/{order['id']}/exclude",
        headers=dispatcher.auth,
        json={"worker_id": 2**40, "reason": "test"},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "worker_id")


async def test_watchers_get_no_position_from_a_worker_who_no_longer_holds_the_order(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """After a reassignment the order socket forwards only the new worker's positions."""
    from websockets.asyncio.client import connect

    tracking = live_app[1].state.tracking
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    new = await make_worker(stores, client, engine_city.id)
    order = await book_here(client, customer, instant_service, engine_city.here)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": new.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200
    watcher = await connect(
        f"ws://{live_app[0]}/v1/ws/orders/{order['id']}", additional_headers=customer.auth
    )
    await recv(watcher)
    stale = {
        "type": "position",
        "order_id": order["id"],
        "worker_id": new.id + 1,
        "lat": 1.0,
        "lng": 1.0,
        "ts_ms": int(time.time() * 1000),
        "seq": 1,
    }
    fresh = {**stale, "worker_id": new.id, "seq": 2}
    await tracking.publish_order(order["city_id"], order["id"], stale)
    await tracking.publish_order(order["city_id"], order["id"], fresh)
    frame = orjson.loads(await asyncio.wait_for(watcher.recv(), 5))
    assert (frame["type"], frame["worker_id"]) == ("position", new.id)
    await watcher.close()

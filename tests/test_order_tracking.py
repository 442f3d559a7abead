"""Customers watch their worker arrive: order socket, ETA, arrival geofence, privacy, share links."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from accounts import service as accounts
from dispatch.share import issue_share
from doorstep.settings import Settings
from doorstep.stores import Stores
from geo.coords import haversine_m
from tests.helpers import Account, MakeUser
from tests.live import (
    DEST,
    book,
    closed_code,
    make_worker,
    next_of,
    no_frame_of,
    open_worker,
    recv,
    send_acked,
    walk,
    watch,
)


async def test_customer_watches_the_worker_arrive(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    worker_account: Account,
    instant_service: str,
    stores: Stores,
) -> None:
    """Snapshot, then a position with an ETA range per fix; the geofence marks arrival; nothing after completion."""
    address = live_app[0]
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker_account.id, "reason": "nearest", "force": True},
    )
    assert r.status_code == 200, r.text
    worker, hello = await open_worker(address, worker_account)
    assert hello["state"] == "busy"  # holding a job: out of the available set used by matching
    busy = stores.keys.geo(order["city_id"], "busy")
    available = stores.keys.geo(order["city_id"], "available")
    start = (DEST[0] + 0.006, DEST[1] + 0.004)  # about 770 m away
    now = int(time.time() * 1000) - 60_000
    await send_acked(worker, {"type": "fixes", "fixes": walk(1, start, start, 1, now)})
    assert await stores.redis.zscore(busy, str(worker_account.id)) is not None
    assert await stores.redis.zscore(available, str(worker_account.id)) is None
    watcher, snap = await watch(address, order["id"], headers=customer.auth)
    assert snap["order"]["status"] == "assigned"
    assert snap["order"]["start_code"] == order["start_code"]
    assert snap["worker"]["name"].endswith("师傅")
    assert snap["position"]["lat"] == pytest.approx(start[0], abs=1e-6)
    assert snap["eta"]["p50_s"] <= snap["eta"]["p90_s"]
    assert snap["eta"]["method"] == "road"
    assert len(snap["route"]) > 2  # a road route, not a straight segment
    r = await client.post(f"/v1/orders/{order['id']}/depart", headers=worker_account.auth, json={})
    assert r.status_code == 200
    assert (await next_of(watcher, "status"))["status"] == "en_route"
    etas, distances = [], []
    fixes = walk(3, start, DEST, 25, now + 4000)
    for f in fixes[:20]:
        await send_acked(worker, {"type": "fix", **f})  # job pushes may come first
        update = await next_of(watcher, "position")
        assert update["seq"] == f["seq"]
        etas.append(update["eta"]["p50_s"])
        distances.append(update["distance_m"])
    assert distances == sorted(distances, reverse=True)
    assert etas[-1] < etas[0]
    for f in fixes[20:]:  # the last stretch: two fixes inside the enter radius mark arrival
        await send_acked(worker, {"type": "fix", **f})  # job pushes may come first
    arrived = await next_of(watcher, "status")
    assert arrived["status"] == "arrived"
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=customer.auth)).json()
    assert events[-1]["actor"] == "system"
    assert events[-1]["reason"] == "arrival geofence"
    learned = False
    learned_key = stores.keys.eta_learned(order["city_id"], order["id"])
    for _ in range(400):  # learning follows the arrival's announcement (a consumer)
        learned = bool(await stores.redis.exists(learned_key))
        if learned:
            break
        await asyncio.sleep(0.05)
    assert learned  # the trip's observed time taught the ETA model
    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker_account.auth,
        json={"start_code": "000000" if order["start_code"] != "000000" else "111111"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "start_code"
    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker_account.auth,
        json={"start_code": order["start_code"]},
    )
    assert r.json()["status"] == "in_service"
    r = await client.post(
        f"/v1/orders/{order['id']}/complete", headers=worker_account.auth, json={}
    )
    assert r.json()["status"] == "completed"
    assert (await next_of(watcher, "status"))["status"] == "in_service"
    assert (await next_of(watcher, "status"))["status"] == "completed"
    last = fixes[-1]
    await send_acked(
        worker,
        {"type": "fix", **{**last, "seq": last["seq"] + 1, "ts_ms": last["ts_ms"] + 2000}},
    )  # job pushes may come first
    await no_frame_of(watcher, "position")  # privacy: no position after completion
    # Free again: the completion's event releases the job (a consumer, after the commit).
    for _ in range(1000):
        if await stores.redis.zscore(available, str(worker_account.id)) is not None:
            break
        await asyncio.sleep(0.02)
    assert await stores.redis.zscore(available, str(worker_account.id)) is not None
    await watcher.close()
    await worker.close()


async def test_no_position_before_assignment(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    worker_account: Account,
    instant_service: str,
) -> None:
    """Before a worker is assigned the snapshot has no worker and no position frames arrive."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    watcher, snap = await watch(live_app[0], order["id"], headers=customer.auth)
    assert snap["worker"] is None
    assert snap["position"] is None
    worker, _ = await open_worker(live_app[0], worker_account)
    await send_acked(
        worker,
        {
            "type": "fix",
            "seq": 1,
            "ts_ms": int(time.time() * 1000),
            "lat": DEST[0],
            "lng": DEST[1],
            "accuracy_m": 5.0,
        },
    )  # job pushes may come first
    await no_frame_of(watcher, "position")
    await watcher.close()
    await worker.close()


async def test_share_links_and_who_may_watch(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    settings: Settings,
) -> None:
    """A share token opens one order (without the start code); other orders, expired tokens and other customers are refused."""
    address = live_app[0]
    customer, other = await make_user("customer"), await make_user("customer")
    order = await book(client, customer, instant_service)
    second = await book(client, customer, instant_service)
    r = await client.post(f"/v1/orders/{order['id']}/share", headers=customer.auth)
    assert r.status_code == 201
    link = r.json()
    ws, snap = await watch(address, order["id"], share=link["token"])
    assert snap["order"]["id"] == order["id"]
    assert snap["order"]["start_code"] is None
    await ws.close()
    ws, error = await watch(address, second["id"], share=link["token"])
    assert error["code"] == "invalid_share_token"
    assert await closed_code(ws) == 4401
    key = live_app[1].state.policy.key
    expired = issue_share(order["id"], now=int(time.time()) - 7200, ttl_s=3600, key=key)
    ws, error = await watch(address, order["id"], share=expired)
    assert "expired" in error["message"]
    assert await closed_code(ws) == 4401
    ws, error = await watch(address, order["id"], headers=other.auth)
    assert error["code"] == "order_not_found"
    assert await closed_code(ws) == 4404
    r = await client.post(f"/v1/orders/{order['id']}/share", headers=other.auth)
    assert r.status_code == 404


async def test_dispatcher_feed_shows_positions_states_and_stale_workers(
    live_app: tuple[str, Any], make_user: MakeUser, worker_account: Account, live_city: str
) -> None:
    """The city feed: snapshot, a positions batch per fix (≤ 1 Hz), state changes, and stale alerts from the sweep."""
    dispatcher = await make_user("dispatcher")
    worker, _ = await open_worker(live_app[0], worker_account)
    await send_acked(
        worker,
        {
            "type": "fix",
            "seq": 1,
            "ts_ms": int(time.time() * 1000),
            "lat": DEST[0],
            "lng": DEST[1],
            "accuracy_m": 5.0,
        },
    )  # job pushes may come first
    feed = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    snap = await recv(feed)
    assert snap["type"] == "snapshot"
    assert worker_account.id in [w["id"] for w in snap["workers"]]
    await asyncio.sleep(1.05)  # the feed carries each worker at most once a second
    await send_acked(
        worker,
        {
            "type": "fix",
            "seq": 2,
            "ts_ms": int(time.time() * 1000) + 1500,
            "lat": DEST[0] + 1e-4,
            "lng": DEST[1],
            "accuracy_m": 5.0,
        },
    )  # job pushes may come first
    positions = await next_of(feed, "positions")
    assert any(w["id"] == worker_account.id for w in positions["workers"])
    await worker.send('{"type": "state", "state": "unavailable"}')
    state = await next_of(feed, "worker_state")
    assert (state["id"], state["state"], state["previous"]) == (
        worker_account.id,
        "unavailable",
        "available",
    )
    tracking = live_app[1].state.tracking
    found = await tracking.sweep([live_city], int(time.time() * 1000) + 3_600_000)
    assert worker_account.id in found[live_city]
    stale = await next_of(feed, "stale")
    assert worker_account.id in stale["ids"]
    await feed.close()
    await worker.close()


async def test_the_feed_is_for_staff_only(
    live_app: tuple[str, Any], make_user: MakeUser, live_city: str
) -> None:
    """A customer cannot open a city feed (4403); an unknown city is 4404."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    ws = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=customer.auth
    )
    assert (await recv(ws))["code"] == "forbidden"
    assert await closed_code(ws) == 4403
    ws = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/atlantis/feed", additional_headers=dispatcher.auth
    )
    assert (await recv(ws))["code"] == "not_found"
    assert await closed_code(ws) == 4404


def test_walk_helper_moves_at_a_plausible_speed() -> None:
    """The test walk moves at a walking/riding pace the fix filter accepts."""
    fixes = walk(1, (DEST[0] + 0.006, DEST[1] + 0.004), DEST, 25, 0)
    step_m = haversine_m(fixes[0]["lat"], fixes[0]["lng"], fixes[1]["lat"], fixes[1]["lng"])
    assert 10 < step_m / 2 < 55


async def test_watchers_sockets_answer_pings_and_refuse_other_messages(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """The order socket and the city feed answer {"type": "ping"} with a pong; other messages get an error frame and the socket stays open."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    watcher, _ = await watch(live_app[0], order["id"], headers=customer.auth)
    feed = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    assert (await recv(feed))["type"] == "snapshot"
    for ws in (watcher, feed):
        await ws.send('{"type": "ping"}')
        assert await next_of(ws, "pong") == {"type": "pong"}
        await ws.send('{"type": "subscribe"}')
        error = await next_of(ws, "error")
        assert (error["code"], error["field"]) == ("unknown_type", "type")
        await ws.send("not json")
        assert (await next_of(ws, "error"))["code"] == "invalid_frame"
        await ws.send('{"type": "ping"}')
        assert await next_of(ws, "pong") == {"type": "pong"}
        await ws.close()


async def test_the_feed_sends_a_held_back_last_position(
    live_app: tuple[str, Any], make_user: MakeUser, worker_account: Account, live_city: str
) -> None:
    """A fix the feed's 1 Hz limit held back reaches the feed once the second is over, with no further fix."""
    dispatcher = await make_user("dispatcher")
    worker, _ = await open_worker(live_app[0], worker_account)
    feed = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    assert (await recv(feed))["type"] == "snapshot"
    now = int(time.time() * 1000)
    for seq, lat in ((1, DEST[0]), (2, DEST[0] + 2e-4)):  # the second within the same second
        fix = {"type": "fix", "seq": seq, "ts_ms": now + seq, "lat": lat, "lng": DEST[1]}
        await worker.send(orjson.dumps({**fix, "accuracy_m": 5.0}).decode())
        assert (await next_of(worker, "ack"))["seq"] == seq
    seen: list[tuple[float, float]] = []  # (lat, when the message came)
    while DEST[0] + 2e-4 not in [lat for lat, _ in seen]:
        positions = await next_of(feed, "positions", timeout_s=3.0)
        at = time.monotonic()
        seen += [(w["lat"], at) for w in positions["workers"] if w["id"] == worker_account.id]
    assert seen[0][0] == DEST[0]
    assert seen[-1][1] - seen[0][1] >= 0.5  # held back, then sent when the second was over
    await feed.close()
    await worker.close()


async def test_freezing_an_account_closes_its_open_sockets(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
    live_city: str,
) -> None:
    """A frozen worker, customer or dispatcher loses the sockets already open: an error frame, then 4401."""
    worker_acc = await make_worker(stores, client, live_city)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    worker, _ = await open_worker(live_app[0], worker_acc)
    watcher, _ = await watch(live_app[0], order["id"], headers=customer.auth)
    feed = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    assert (await recv(feed))["type"] == "snapshot"
    for account, ws in ((worker_acc, worker), (customer, watcher), (dispatcher, feed)):
        r = await client.put(
            f"/v1/users/{account.id}/status", json={"status": "frozen"}, headers=admin.auth
        )
        assert r.status_code == 200, r.text
        assert (await next_of(ws, "error"))["code"] == "account_frozen"
        assert await closed_code(ws) == 4401


async def test_a_freeze_while_a_feed_socket_opens_closes_it(
    live_app: tuple[str, Any],
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dispatcher frozen after the feed socket signed in, before it was registered, gets it closed with 4401."""
    address, app = live_app
    dispatcher = await make_user("dispatcher")
    hub = app.state.tracking.hub
    real_subscribe = hub.subscribe

    async def freeze_first(channel: str) -> Any:
        await accounts.set_status(
            stores, app.state.policy, dispatcher.id, "frozen", now=int(time.time())
        )
        await asyncio.sleep(0.2)  # the revocation reaches this process first
        return await real_subscribe(channel)

    monkeypatch.setattr(hub, "subscribe", freeze_first)
    feed = await connect(
        f"ws://{address}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    try:
        assert await closed_code(feed) == 4401
    finally:
        monkeypatch.undo()
        await feed.close()

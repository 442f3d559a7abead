"""The dispatch engine end to end: offers down real sockets, accept/reject/timeout, grab mode,
leases, pause, pin, and the stored "why" of every decision."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from dispatch.engine import Engine
from dispatch.offers import OfferParams
from doorstep.stores import Stores
from matching.model import Decision
from tests.helpers import METRICS_AUTH, Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online, recv, status_of


@pytest.fixture
def engine(live_app: tuple[str, Any]) -> Engine:
    """The app's engine (its loop is off in tests: we tick by hand)."""
    engine: Engine = live_app[1].state.engine
    return engine


async def test_the_nearest_worker_gets_the_offer_and_accepts_over_the_socket(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A tick offers the order to the nearer worker; accepting on the socket assigns it; the why is stored, exactly the decision's JSON."""
    near = await make_worker(stores, client, engine_city.id)
    far = await make_worker(stores, client, engine_city.id)
    ws_near = await online(live_app[0], near, (engine_city.here[0] + 0.001, engine_city.here[1]))
    ws_far = await online(live_app[0], far, (engine_city.here[0] + 0.008, engine_city.here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    offer = await next_of(ws_near, "offer")
    assert offer["order_id"] == order["id"]
    assert await status_of(stores, order["id"]) == "offered"
    await ws_near.send(
        orjson.dumps(
            {"type": "offer_reply", "offer_id": offer["offer_id"], "accept": True}
        ).decode()
    )
    frames: dict[str, dict[str, Any]] = {}
    while {"offer_result", "job"} - set(frames):  # the job push may come before the result
        frame = await recv(ws_near)
        frames[frame["type"]] = frame
    assert frames["offer_result"]["ok"] is True
    assert frames["job"]["status"] == "assigned"
    assert await status_of(stores, order["id"]) == "assigned"
    r = await client.get(f"/v1/orders/{order['id']}/decisions", headers=dispatcher.auth)
    decision = r.json()[0]
    assert decision["worker_id"] == near.id
    considered = {c["candidate"]["worker_id"] for c in decision["decision"]["candidates"]}
    assert {near.id, far.id} <= considered
    # Stored as the JSON text of Decision.to_json (cast to jsonb in SQL): read back, it is
    # that JSON, and parses into the decision as stored.
    (made,) = [d for d in report.decisions if d.order_id == order["id"]]
    stored = await stores.pool.fetchval(
        "SELECT decision FROM dispatch_decisions WHERE order_id = $1 ORDER BY id LIMIT 1",
        order["id"],
    )
    assert stored == orjson.loads(made.to_json())
    assert Decision.from_json(orjson.dumps(stored)) == made.for_storage()
    await ws_near.close()
    await ws_far.close()


async def test_reject_and_timeout_move_on_then_fail_after_the_attempts(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A rejection excludes the worker, a timeout too; after max attempts the order fails and the customer is told."""
    a = await make_worker(stores, client, engine_city.id)
    b = await make_worker(stores, client, engine_city.id)
    ws_a = await online(live_app[0], a, (engine_city.here[0] + 0.0005, engine_city.here[1]))
    ws_b = await online(live_app[0], b, (engine_city.here[0] + 0.004, engine_city.here[1]))
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    strict = Engine(
        stores,
        live_app[1].state.tracking,
        match=engine.match,
        offer=OfferParams(ttl_s=5, max_attempts=2),
        engine=engine.params,
    )
    now = datetime.now(UTC)
    await strict.tick(engine_city.id, now)
    offer = await next_of(ws_a, "offer")
    r = await client.post(
        f"/v1/offers/{offer['offer_id']}/reject", headers=a.auth, json={"reason": "too far"}
    )
    assert r.status_code == 204
    assert await status_of(stores, order["id"]) == "dispatching"
    await strict.tick(engine_city.id, now)
    offer_b = await next_of(ws_b, "offer")  # a is excluded now
    assert offer_b["order_id"] == order["id"]
    report = await strict.tick(engine_city.id, now + timedelta(seconds=6))  # b never answers
    assert (report.expired, report.failed) == (1, 1)  # timed out, and that was the last round
    assert (await next_of(ws_b, "offer_withdrawn"))["reason"] == "expired"
    assert await status_of(stores, order["id"]) == "failed"
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=customer.auth)).json()
    assert events[-1]["action"] == "fail"
    assert "2 rounds" in events[-1]["reason"]
    excluded = await stores.pool.fetch(
        "SELECT worker_id, reason FROM order_exclusions WHERE order_id = $1",
        order["id"],
    )
    assert {r["worker_id"] for r in excluded} == {a.id, b.id}
    await ws_a.close()
    await ws_b.close()


async def test_grab_mode_first_accept_wins_and_the_others_are_withdrawn(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """In grab mode (抢单) the top candidates all get the offer; the first accept wins, the rest are withdrawn."""
    workers = [await make_worker(stores, client, engine_city.id) for _ in range(3)]
    sockets = [
        await online(live_app[0], w, (engine_city.here[0] + 0.001 * (i + 1), engine_city.here[1]))
        for i, w in enumerate(workers)
    ]
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    grab = Engine(
        stores,
        live_app[1].state.tracking,
        match=engine.match,
        offer=OfferParams(mode="grab", grab_candidates=3),
        engine=engine.params,
    )
    await grab.tick(engine_city.id, datetime.now(UTC))
    offers = [await next_of(ws, "offer") for ws in sockets]
    assert {o["order_id"] for o in offers} == {order["id"]}
    assert {o["mode"] for o in offers} == {"grab"}
    winner = await client.post(
        f"/v1/offers/{offers[2]['offer_id']}/accept", headers=workers[2].auth
    )
    assert winner.status_code == 200, winner.text
    late = await client.post(f"/v1/offers/{offers[0]['offer_id']}/accept", headers=workers[0].auth)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "offer_gone"
    withdrawn = await next_of(sockets[1], "offer_withdrawn")
    assert withdrawn["order_id"] == order["id"]
    row = await stores.pool.fetchrow(
        "SELECT status, worker_id FROM orders WHERE id = $1", order["id"]
    )
    assert row is not None
    assert (row["status"], row["worker_id"]) == ("assigned", workers[2].id)
    for ws in sockets:
        await ws.close()


async def test_one_engine_per_city_and_concurrent_ticks_never_double_offer(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Only the lease holder ticks a city; even two ticks at once make one offer per order."""
    tracking = live_app[1].state.tracking
    first = Engine(stores, tracking, match=engine.match, offer=engine.offer, engine=engine.params)
    second = Engine(
        stores,
        replace_process(tracking),
        match=engine.match,
        offer=engine.offer,
        engine=engine.params,
    )
    assert await first.lease(engine_city.id)
    assert not await second.lease(engine_city.id)
    assert await first.lease(engine_city.id)  # renewal by the holder
    worker = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], worker, engine_city.here)
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    now = datetime.now(UTC)
    await asyncio.gather(first.tick(engine_city.id, now), second.tick(engine_city.id, now))
    count = await stores.pool.fetchval(
        "SELECT count(*) FROM offers WHERE order_id = $1", order["id"]
    )
    assert count == 1
    await stores.redis.delete(stores.keys.city(engine_city.id, "engine-lease"))
    await ws.close()


def replace_process(tracking: Any) -> Any:
    """A stand-in tracking runtime with another process id (a second server process)."""
    other = object.__new__(type(tracking))
    other.__dict__.update(tracking.__dict__)
    other.process_id = "other-" + tracking.process_id
    return other


async def test_pause_stops_dispatch_and_pinned_orders_are_left_alone(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A paused city gets no offers until resumed; a pinned order is never offered; both audited."""
    dispatcher, customer = await make_user("dispatcher"), await make_user("customer")
    worker = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], worker, engine_city.here)
    order = await book_here(client, customer, instant_service, engine_city.here)
    r = await client.put(
        f"/v1/cities/{engine_city.id}/dispatch",
        headers=dispatcher.auth,
        json={"paused": True, "reason": "typhoon"},
    )
    assert r.status_code == 200
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 0
    r = await client.post(
        f"/v1/orders/{order['id']}/pin",
        headers=dispatcher.auth,
        json={"pinned": True, "reason": "VIP: waiting for her usual nanny"},
    )
    assert r.json()["order"]["pinned"] is True
    await client.put(
        f"/v1/cities/{engine_city.id}/dispatch",
        headers=dispatcher.auth,
        json={"paused": False, "reason": "weather cleared"},
    )
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert await status_of(stores, order["id"]) == "confirmed"  # pinned: untouched
    await client.post(
        f"/v1/orders/{order['id']}/pin",
        headers=dispatcher.auth,
        json={"pinned": False, "reason": "she is away"},
    )
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    audit = (
        await client.get(f"/v1/overrides?city_id={engine_city.id}", headers=dispatcher.auth)
    ).json()
    assert [a["action"] for a in audit[:4]] == ["unpin", "resume", "pin", "pause"]
    assert audit[3]["before"] == {"dispatch_paused": False}
    await ws.close()


async def test_rating_moves_the_workers_average_once(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A completed order is rated once; the worker's sum and count move; a second rating is 409."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await make_worker(stores, client, engine_city.id, rating=(45, 10))
    order = await book_here(client, customer, instant_service, engine_city.here)
    r = await client.post(
        f"/v1/orders/{order['id']}/rating", headers=customer.auth, json={"stars": 5}
    )
    assert r.status_code == 422  # not completed yet
    await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    for action, body in (
        ("arrive", {}),
        ("start", {"start_code": order["start_code"]}),
        ("complete", {}),
    ):
        r = await client.post(f"/v1/orders/{order['id']}/{action}", headers=worker.auth, json=body)
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/orders/{order['id']}/rating",
        headers=customer.auth,
        json={"stars": 2, "text": "late, and the floor was still wet"},
    )
    assert r.status_code == 201
    row = await stores.pool.fetchrow(
        "SELECT rating_sum, rating_count FROM workers WHERE user_id = $1", worker.id
    )
    assert row is not None
    assert (row["rating_sum"], row["rating_count"]) == (47, 11)
    again = await client.post(
        f"/v1/orders/{order['id']}/rating", headers=customer.auth, json={"stars": 5}
    )
    assert again.status_code == 409
    other = await make_user("customer")
    r = await client.post(f"/v1/orders/{order['id']}/rating", headers=other.auth, json={"stars": 1})
    assert r.status_code == 404


async def test_overrides_warn_force_exclude_and_reach_the_feed(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """An infeasible assign is 409 with the reason; force assigns and is audited; unassign excludes; the feed hears it."""
    from websockets.asyncio.client import connect

    tag = secrets.token_hex(3)
    await client.post(
        "/v1/skills",
        headers=admin.auth,
        json={"code": f"sk_{tag}", "name_zh": "电工", "name_en": "Electrician"},
    )
    await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"c_{tag}", "name_zh": "维修", "name_en": "Repair"},
    )
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"s_{tag}",
            "category": f"c_{tag}",
            "name_zh": "电路维修",
            "name_en": "Wiring",
            "price_minor": 8000,
            "duration_min": 60,
            "instant": True,
            "scheduled": True,
            "required_skills": [f"sk_{tag}"],
        },
    )
    assert r.status_code == 201, r.text
    dispatcher, customer = await make_user("dispatcher"), await make_user("customer")
    unskilled = await make_worker(stores, client, engine_city.id)
    # A skilled worker, offline: without one the booking is refused (nobody_can_serve).
    await make_worker(stores, client, engine_city.id, skills=(f"sk_{tag}",))
    ws = await online(live_app[0], unskilled, engine_city.here)
    feed = await connect(
        f"ws://{live_app[0]}/v1/ws/cities/{engine_city.id}/feed", additional_headers=dispatcher.auth
    )
    await recv(feed)  # snapshot
    order = await book_here(client, customer, f"s_{tag}", engine_city.here)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": unskilled.id, "reason": "only one nearby"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "infeasible_assignment"
    assert f"sk_{tag}" in r.json()["error"]["message"]
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": unskilled.id, "reason": "only one nearby", "force": True},
    )
    assert r.status_code == 200, r.text
    audit = r.json()["override"]
    assert (audit["forced"], audit["before"]["status"], audit["after"]["status"]) == (
        True,
        "confirmed",
        "assigned",
    )
    assert any(f"sk_{tag}" in w for w in audit["warnings"])
    heard = await next_of(feed, "override")
    assert (heard["action"], heard["order_id"]) == ("assign", order["id"])
    assert (await next_of(ws, "job"))["status"] == "assigned"
    r = await client.post(
        f"/v1/orders/{order['id']}/unassign",
        headers=dispatcher.auth,
        json={"reason": "customer asked for someone else"},
    )
    assert r.json()["order"]["status"] == "dispatching"
    assert (await next_of(ws, "job"))["status"] == "withdrawn"
    excluded = await stores.pool.fetchval(
        "SELECT reason FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        order["id"],
        unskilled.id,
    )
    assert excluded.startswith("unassigned")
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": unskilled.id, "reason": "try again"},
    )
    assert r.status_code == 409  # excluded from this order now, unless forced
    await feed.close()
    await ws.close()


async def test_ticks_and_decisions_are_counted_on_metrics(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A tick that decides an order shows on /metrics as a decided tick and a decision with a worker."""

    def sample(text: str, line_start: str) -> float:
        found = [ln for ln in text.splitlines() if ln.startswith(line_start)]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

    decided = 'doorstep_dispatch_tick_seconds_count{decided="true"}'
    chosen = 'doorstep_dispatch_decisions_total{outcome="worker",policy="batch"}'
    before = (await client.get("/metrics", headers=METRICS_AUTH)).text
    worker = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], worker, engine_city.here)
    await book_here(client, await make_user("customer"), instant_service, engine_city.here)
    assert (await engine.tick(engine_city.id, datetime.now(UTC))).offered == 1
    after = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert sample(after, decided) == sample(before, decided) + 1
    assert sample(after, chosen) == sample(before, chosen) + 1
    await ws.close()


async def test_a_fix_newer_than_the_tick_does_not_break_it(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A worker whose last fix arrived after the tick's `now` (a fix landing mid-tick) is a candidate, not a failed tick."""
    worker = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], worker, engine_city.here)
    await book_here(client, await make_user("customer"), instant_service, engine_city.here)
    report = await engine.tick(engine_city.id, datetime.now(UTC) - timedelta(seconds=3))
    assert report.offered == 1
    assert (await next_of(ws, "offer"))["mode"] == "direct"
    await ws.close()


class _SlowEngine(Engine):
    """An engine whose ETA step takes 1.2 s, as a tick does on a loaded machine."""

    @staticmethod
    def _etas(*args: Any, **kwargs: Any) -> Any:
        import time

        time.sleep(1.2)
        return Engine._etas(*args, **kwargs)


async def test_a_tick_longer_than_the_offer_window_sends_offers_that_are_still_open(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """An offer's window starts when it is sent, not when its tick started: after a 1.2 s tick a 5 s offer is still open 5.5 s after the tick began."""
    worker = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], worker, (engine_city.here[0] + 0.0005, engine_city.here[1]))
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    slow = _SlowEngine(
        stores,
        live_app[1].state.tracking,
        match=engine.match,
        offer=OfferParams(ttl_s=5),
        engine=engine.params,
    )
    now = datetime.now(UTC)
    report = await slow.tick(engine_city.id, now)
    assert report.offered == 1
    offer = await next_of(ws, "offer")
    expires = await stores.pool.fetchval(
        "SELECT expires_at FROM offers WHERE id = $1", offer["offer_id"]
    )
    assert expires >= now + timedelta(seconds=6.2)  # sent ≥ 1.2 s into the tick, + 5 s
    later = await slow.tick(engine_city.id, now + timedelta(seconds=5.5))
    assert later.expired == 0
    assert await status_of(stores, order["id"]) == "offered"
    await ws.close()

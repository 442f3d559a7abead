"""The engine dispatches an order routed to a merchant within the merchant's team, and
overflows it to the platform's workers when the staff cannot serve it, by time or by rounds
of offers (issue 18 §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dispatch import store as dispatch_store
from dispatch.engine import Engine
from dispatch.offers import OfferParams
from doorstep.stores import Stores
from tests.access import licence
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online, status_of
from workforce import store as workforce_store


@pytest.fixture
def engine(live_app: tuple[str, Any]) -> Engine:
    """The app's engine (its loop is off in tests: we tick by hand)."""
    engine: Engine = live_app[1].state.engine
    return engine


async def _merchant(
    stores: Stores, make_user: MakeUser, city: str, service: str
) -> tuple[Account, int]:
    """An approved merchant of ``city`` offering ``service``, with a team of its own."""
    owner = await make_user("merchant")
    await stores.pool.execute(
        "INSERT INTO merchants (id, name, city_id, licence_number, status) "
        "VALUES ($1, $2, $3, $4, 'approved')",
        owner.id,
        f"商家{owner.id}",
        city,
        licence(),
    )
    team = await workforce_store.insert_team(
        stores.pool, name=f"团队{owner.id}", city_id=city, merchant_id=owner.id, upsert=False
    )
    await stores.pool.execute(
        "INSERT INTO merchant_services (merchant_id, service_code, price_minor) VALUES ($1,$2,$3)",
        owner.id,
        service,
        10000,
    )
    return owner, team


async def _staff(stores: Stores, client: httpx.AsyncClient, city: str, team: int) -> Account:
    worker = await make_worker(stores, client, city)
    await stores.pool.execute("UPDATE workers SET team_id = $2 WHERE user_id = $1", worker.id, team)
    return worker


async def _routed(
    client: httpx.AsyncClient,
    admin: Account,
    customer: Account,
    service: str,
    city: EngineCity,
    merchant: int,
) -> int:
    order = await book_here(client, customer, service, city.here)
    r = await client.put(
        f"/v1/orders/{order['id']}/merchant", headers=admin.auth, json={"merchant_id": merchant}
    )
    assert r.status_code == 200, r.text
    return int(order["id"])


async def _offered_to(stores: Stores, order_id: int) -> set[int]:
    rows = await stores.pool.fetch("SELECT worker_id FROM offers WHERE order_id = $1", order_id)
    return {r["worker_id"] for r in rows}


async def test_a_merchants_order_is_offered_only_to_its_staff(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
) -> None:
    """A platform worker and another merchant's staff stand nearer; the tick considers and offers the merchant's own staff member only."""
    here = engine_city.here
    owner, team = await _merchant(stores, make_user, engine_city.id, instant_service)
    _rival, rival_team = await _merchant(stores, make_user, engine_city.id, instant_service)
    mine = await _staff(stores, client, engine_city.id, team)
    theirs = await _staff(stores, client, engine_city.id, rival_team)
    platform = await make_worker(stores, client, engine_city.id)
    ws_platform = await online(live_app[0], platform, (here[0] + 0.0005, here[1]))
    ws_theirs = await online(live_app[0], theirs, (here[0] + 0.001, here[1]))
    ws_mine = await online(live_app[0], mine, (here[0] + 0.004, here[1]))
    order_id = await _routed(
        client, admin, await make_user("customer"), instant_service, engine_city, owner.id
    )
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert (report.offered, report.overflowed) == (1, 0)
    offer = await next_of(ws_mine, "offer")
    assert offer["order_id"] == order_id
    assert await _offered_to(stores, order_id) == {mine.id}
    (decision,) = report.decisions
    assert decision.worker_id == mine.id
    assert {c.candidate.worker_id for c in decision.candidates} == {mine.id}
    # The preview (a dispatcher's "candidates") holds the same team only.
    current = await dispatch_store.get(stores.pool, order_id)
    assert current is not None
    assert current.merchant_id == owner.id
    preview = await engine.preview(current, datetime.now(UTC))
    assert {c.candidate.worker_id for c in preview.candidates} <= {mine.id}
    for ws in (ws_platform, ws_theirs, ws_mine):
        await ws.close()


async def test_an_order_its_staff_cannot_serve_overflows_to_the_platform(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
) -> None:
    """Its only staff member is offline: no offer, the merchant keeps it until merchant_overflow_s has passed; then the engine hands it to the platform (an overflow event) and the next tick offers it to a platform worker."""
    here = engine_city.here
    owner, team = await _merchant(stores, make_user, engine_city.id, instant_service)
    await _staff(stores, client, engine_city.id, team)  # never comes online
    platform = await make_worker(stores, client, engine_city.id)
    ws_platform = await online(live_app[0], platform, (here[0] + 0.001, here[1]))
    customer = await make_user("customer")
    order_id = await _routed(client, admin, customer, instant_service, engine_city, owner.id)
    now = datetime.now(UTC)
    wait = engine.params.merchant_overflow_s
    report = await engine.tick(engine_city.id, now)
    assert (report.offered, report.overflowed) == (0, 0)
    assert await _offered_to(stores, order_id) == set()
    current = await dispatch_store.get(stores.pool, order_id)
    assert current is not None
    assert current.merchant_id == owner.id

    report = await engine.tick(engine_city.id, now + timedelta(seconds=wait + 1))
    assert (report.offered, report.overflowed) == (0, 1)
    current = await dispatch_store.get(stores.pool, order_id)
    assert current is not None
    assert current.merchant_id is None
    events = (await client.get(f"/v1/orders/{order_id}/events", headers=customer.auth)).json()
    assert events[-1]["action"] == "overflow"
    assert str(owner.id) in events[-1]["reason"]

    # The next tick (at the real time: the platform worker's fix is fresh then) offers it.
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    offer = await next_of(ws_platform, "offer")
    assert offer["order_id"] == order_id
    assert await status_of(stores, order_id) == "offered"
    await ws_platform.close()


async def test_an_order_out_of_its_teams_rounds_overflows_and_fails_only_after_the_platforms(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
) -> None:
    """Two staff members refuse within the attempts limit: the order overflows (not fails) with a reason naming the rounds, the same tick offers it to a platform worker, and it fails only when the platform's own rounds run out."""
    here = engine_city.here
    owner, team = await _merchant(stores, make_user, engine_city.id, instant_service)
    staff = [await _staff(stores, client, engine_city.id, team) for _ in range(2)]
    platform = [await make_worker(stores, client, engine_city.id) for _ in range(2)]
    sockets = [
        await online(live_app[0], w, (here[0] + 0.001 * (i + 1), here[1]))
        for i, w in enumerate([*platform, *staff])
    ]
    ws_p1, ws_p2, ws_s1, ws_s2 = sockets
    customer = await make_user("customer")
    order_id = await _routed(client, admin, customer, instant_service, engine_city, owner.id)
    strict = Engine(
        stores,
        live_app[1].state.tracking,
        match=engine.match,
        offer=OfferParams(ttl_s=5, max_attempts=2),
        engine=engine.params,  # merchant_overflow_s = 300: overflow here is by rounds, not time
    )
    now = datetime.now(UTC)
    assert (await strict.tick(engine_city.id, now)).offered == 1
    offer = await next_of(ws_s1, "offer")  # the nearer staff member, not the platform's
    r = await client.post(
        f"/v1/offers/{offer['offer_id']}/reject", headers=staff[0].auth, json={"reason": "busy"}
    )
    assert r.status_code == 204
    assert (await strict.tick(engine_city.id, now)).offered == 1
    assert (await next_of(ws_s2, "offer"))["order_id"] == order_id
    assert await _offered_to(stores, order_id) == {s.id for s in staff}

    # The second staff member never answers: the team's two rounds are used up.
    report = await strict.tick(engine_city.id, now + timedelta(seconds=6))
    assert (report.expired, report.failed, report.overflowed, report.offered) == (1, 0, 1, 1)
    current = await dispatch_store.get(stores.pool, order_id)
    assert current is not None
    assert (current.merchant_id, current.status) == (None, "offered")
    events = (await client.get(f"/v1/orders/{order_id}/events", headers=customer.auth)).json()
    (overflow,) = [e for e in events if e["action"] == "overflow"]
    assert str(owner.id) in overflow["reason"]
    assert "2 rounds" in overflow["reason"]
    offer = await next_of(ws_p1, "offer")
    assert offer["order_id"] == order_id

    # The platform's workers get two rounds of their own, then it fails.
    r = await client.post(
        f"/v1/offers/{offer['offer_id']}/reject", headers=platform[0].auth, json={"reason": "far"}
    )
    assert r.status_code == 204
    assert (await strict.tick(engine_city.id, now + timedelta(seconds=6))).offered == 1
    assert (await next_of(ws_p2, "offer"))["order_id"] == order_id
    report = await strict.tick(engine_city.id, now + timedelta(seconds=12))
    assert (report.expired, report.failed, report.overflowed) == (1, 1, 0)
    assert await status_of(stores, order_id) == "failed"
    events = (await client.get(f"/v1/orders/{order_id}/events", headers=customer.auth)).json()
    assert events[-1]["action"] == "fail"
    assert "2 rounds" in events[-1]["reason"]
    for ws in sockets:
        await ws.close()

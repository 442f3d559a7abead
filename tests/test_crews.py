"""Issue 20 §4, crews: a job that needs several workers is offered to a crew together,
assigned only when all accept, re-formed when one declines, its members arriving within
a window of each other; the order shows its crew, starts when the crew is there,
completes once; settlement splits the earnings between the members in whole fen."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from catalog.errors import InvalidCatalogInput
from catalog.service import check_crew_size
from dispatch import at_risk
from dispatch.engine import Engine
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from settlement.errors import InvalidMoneyInput
from settlement.rules import ShareFen, crew_shares, split_fen
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online, status_of
from tests.test_settlement import _paid_order, _svc, _worker

# ---- the catalog: a service's crew size ---------------------------------------------------


async def _crew_service(client: httpx.AsyncClient, admin: Account, size: int) -> str:
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"cat_{tag}", "name_zh": "搬家", "name_en": "Moving"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"crew_{tag}",
            "category": f"cat_{tag}",
            "name_zh": "深度保洁",
            "name_en": "Deep cleaning",
            "price_minor": 60000,
            "duration_min": 240,
            "instant": True,
            "scheduled": True,
            "crew_size": size,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["crew_size"] == size
    return f"crew_{tag}"


async def test_a_crew_size_out_of_range_is_a_4xx_naming_the_field(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """crew_size 0, 9 or not a number is refused (422, field crew_size); 1 to 8 is kept and read back."""
    code = await _crew_service(client, admin, 3)
    r = await client.get(f"/v1/services/{code}")
    assert r.json()["crew_size"] == 3
    base = r.json()
    for bad in (0, 9, "two", 2.5):
        body = {k: v for k, v in base.items() if k != "code"} | {"crew_size": bad}
        r = await client.put(f"/v1/services/{code}", headers=admin.auth, json=body)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["field"] == "crew_size", r.text
    body = {k: v for k, v in base.items() if k != "code"} | {"crew_size": 1}
    r = await client.put(f"/v1/services/{code}", headers=admin.auth, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["crew_size"] == 1
    with pytest.raises(InvalidCatalogInput, match="crew_size"):
        check_crew_size(0)


# ---- the engine: a crew offered and assigned together -------------------------------------


async def _crew_city(
    live_app: tuple[str, Any],
    stores: Stores,
    client: httpx.AsyncClient,
    city: EngineCity,
    spots: list[tuple[float, float]],
) -> tuple[list[Account], list[ClientConnection]]:
    """Workers online at ``spots`` (offsets in degrees from the city's centre)."""
    workers, sockets = [], []
    for dlat, dlng in spots:
        w = await make_worker(stores, client, city.id)
        ws = await online(live_app[0], w, (city.here[0] + dlat, city.here[1] + dlng))
        workers.append(w)
        sockets.append(ws)
    return workers, sockets


async def _offers(stores: Stores, order_id: int) -> dict[int, dict[str, Any]]:
    rows = await stores.pool.fetch(
        "SELECT id, worker_id, mode, status, eta_s FROM offers WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return {r["worker_id"]: dict(r) for r in rows}


async def test_a_crew_order_is_offered_to_the_crew_and_assigned_when_all_accept(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A crew of 2 is offered together (mode crew); after one accept the order waits, after both it is assigned to both, the lead first, and every party sees the crew."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(
        live_app, stores, client, engine_city, [(0.001, 0.0), (0.0, 0.001), (0.0045, 0.0045)]
    )
    customer = await make_user("customer")
    order = await book_here(client, customer, service, engine_city.here)
    assert order["crew_size"] == 2
    assert order["crew"] == []
    engine: Engine = live_app[1].state.engine
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    offered = await _offers(stores, order["id"])
    assert set(offered) == {workers[0].id, workers[1].id}  # the two near ones, not the far one
    assert {o["mode"] for o in offered.values()} == {"crew"}
    first, second = [await next_of(sockets[i], "offer") for i in (0, 1)]
    assert first["crew_size"] == second["crew_size"] == 2
    r = await client.post(f"/v1/offers/{first['offer_id']}/accept", headers=workers[0].auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "offered"  # waiting for the rest of the crew
    assert await status_of(stores, order["id"]) == "offered"
    # The one who accepted is not offered another job meanwhile.
    assert workers[0].id in (await engine._offer_holders(engine_city.id)).tolist()
    r = await client.post(f"/v1/offers/{second['offer_id']}/accept", headers=workers[1].auth)
    assert r.status_code == 200, r.text
    assigned = r.json()
    assert assigned["status"] == "assigned"
    lead = min(offered.values(), key=lambda o: (o["eta_s"], o["worker_id"]))["worker_id"]
    assert assigned["worker_id"] == lead
    assert assigned["crew"][0] == lead
    assert set(assigned["crew"]) == {workers[0].id, workers[1].id}
    # Each worker's app has the job with their crew-mate; the customer sees the crew.
    for w in workers[:2]:
        r = await client.get(f"/v1/orders/{order['id']}", headers=w.auth)
        assert r.status_code == 200, r.text
        assert set(r.json()["crew"]) == {workers[0].id, workers[1].id}
        r = await client.get("/v1/orders", headers=w.auth)
        assert order["id"] in [o["id"] for o in r.json()]
    r = await client.get(f"/v1/orders/{order['id']}/crew", headers=customer.auth)
    assert r.status_code == 200, r.text
    crew = r.json()
    assert next(m["worker_id"] for m in crew) == lead
    assert [m["seat"] for m in crew] == [0, 1]
    assert all(m["name"].endswith("师傅") for m in crew)
    r = await client.get(f"/v1/orders/{order['id']}", headers=workers[2].auth)
    assert r.status_code == 404  # not in the crew
    for ws in sockets:
        await ws.close()


async def test_one_decline_replaces_just_that_member(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """One member accepts, the other declines: the acceptor's offer stays, the decliner gets the cooldown, and the next tick offers the open seat to the third worker only; their accept assigns the crew."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(
        live_app, stores, client, engine_city, [(0.001, 0.0), (0.0, 0.001), (0.002, 0.002)]
    )
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    now = datetime.now(UTC)
    await engine.tick(engine_city.id, now)
    offered = await _offers(stores, order["id"])
    assert set(offered) == {workers[0].id, workers[1].id}
    a, b = [await next_of(sockets[i], "offer") for i in (0, 1)]
    r = await client.post(f"/v1/offers/{a['offer_id']}/accept", headers=workers[0].auth)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/offers/{b['offer_id']}/reject", headers=workers[1].auth, json={"reason": "too far"}
    )
    assert r.status_code == 204, r.text
    assert await status_of(stores, order["id"]) == "offered"  # the seat is open, the crew kept
    until = await stores.pool.fetchval(
        "SELECT until FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        order["id"],
        workers[1].id,
    )
    assert until is not None  # a cooldown, not for good
    report = await engine.tick(engine_city.id, now + timedelta(seconds=1))
    assert report.replaced == 1
    statuses = {o["worker_id"]: o["status"] for o in (await _offers(stores, order["id"])).values()}
    assert statuses == {
        workers[0].id: "accepted",  # kept: not offered again
        workers[1].id: "rejected",
        workers[2].id: "pending",
    }
    c = await next_of(sockets[2], "offer")
    assert c["crew_size"] == 2
    r = await client.post(f"/v1/offers/{c['offer_id']}/accept", headers=workers[2].auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "assigned"
    assert set(r.json()["crew"]) == {workers[0].id, workers[2].id}
    for ws in sockets:
        await ws.close()


async def test_a_decline_with_nobody_to_replace_them_re_forms_the_crew(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """With no third worker, a decline ends the round at the next tick: the acceptor's offer is withdrawn (told why), the order is dispatching again."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(
        live_app, stores, client, engine_city, [(0.001, 0.0), (0.0, 0.001)]
    )
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    now = datetime.now(UTC)
    await engine.tick(engine_city.id, now)
    a, b = [await next_of(sockets[i], "offer") for i in (0, 1)]
    r = await client.post(f"/v1/offers/{a['offer_id']}/accept", headers=workers[0].auth)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/offers/{b['offer_id']}/reject", headers=workers[1].auth, json={"reason": "busy"}
    )
    assert r.status_code == 204, r.text
    report = await engine.tick(engine_city.id, now + timedelta(seconds=1))
    assert report.reformed == 1
    gone = await next_of(sockets[0], "offer_withdrawn")
    assert gone["offer_id"] == a["offer_id"]
    assert "crew re-formed" in gone["reason"]
    assert await status_of(stores, order["id"]) == "dispatching"
    assert not await stores.pool.fetchval(
        "SELECT count(*) FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        order["id"],
        workers[0].id,
    )  # the one who accepted is not kept away
    for ws in sockets:
        await ws.close()


async def test_a_timed_out_member_re_forms_the_crew(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """One member accepts, the other lets the offer expire: the round ends at the expiry, only the silent one is kept away."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(
        live_app, stores, client, engine_city, [(0.001, 0.0), (0.0, 0.001)]
    )
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    now = datetime.now(UTC)
    await engine.tick(engine_city.id, now)
    a = await next_of(sockets[0], "offer")
    r = await client.post(f"/v1/offers/{a['offer_id']}/accept", headers=workers[0].auth)
    assert r.status_code == 200, r.text
    later = now + timedelta(seconds=engine.offer.ttl_s + 5)
    report = await engine.tick(engine_city.id, later)
    assert report.expired == 1
    statuses = {o["worker_id"]: o["status"] for o in (await _offers(stores, order["id"])).values()}
    assert statuses == {workers[0].id: "withdrawn", workers[1].id: "expired"}
    assert await status_of(stores, order["id"]) == "dispatching"
    kept_away = await stores.pool.fetch(
        "SELECT worker_id FROM order_exclusions WHERE order_id = $1", order["id"]
    )
    assert [r["worker_id"] for r in kept_away] == [workers[1].id]
    for ws in sockets:
        await ws.close()


async def test_the_chosen_crew_arrives_within_the_window(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """With a 20 s window, the lone worker next door is left out for the two who arrive together from farther away; the offers' ETAs are within the window."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(
        live_app,
        stores,
        client,
        engine_city,
        [(0.0003, 0.0), (-0.0045, -0.0045), (-0.0045, -0.00449)],
    )
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    app_engine: Engine = live_app[1].state.engine
    engine = Engine(
        stores,
        live_app[1].state.tracking,
        match=replace(app_engine.match, crew_window_s=20.0),
        offer=app_engine.offer,
        engine=app_engine.params,
    )
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    offered = await _offers(stores, order["id"])
    assert set(offered) == {workers[1].id, workers[2].id}
    etas = [o["eta_s"] for o in offered.values()]
    assert max(etas) - min(etas) <= 20.0
    decision = next(d for d in report.decisions if d.order_id == order["id"])
    near = next(c for c in decision.candidates if c.worker_id == workers[0].id)
    assert near.eta_s is not None
    assert near.eta_s < min(etas) - 20.0
    # No two arrive within 0 s of each other: no crew, and the decision says why.
    strict = Engine(
        stores,
        live_app[1].state.tracking,
        match=replace(app_engine.match, crew_window_s=0.0),
        offer=app_engine.offer,
        engine=app_engine.params,
    )
    other = await book_here(client, await make_user("customer"), service, engine_city.here)
    report = await strict.tick(engine_city.id, datetime.now(UTC))
    decision = next(d for d in report.decisions if d.order_id == other["id"])
    assert decision.worker_id is None
    assert decision.reason is not None
    assert "no crew of 2" in decision.reason
    for ws in sockets:
        await ws.close()


# ---- on site: the start waits for the crew, the job completes once ------------------------


async def test_the_job_starts_when_the_whole_crew_is_there_and_completes_once(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """The first arrival moves the order to arrived; the start code is refused (409 crew_not_here) until the mate arrives; either member completes, once."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(
        live_app, stores, client, engine_city, [(0.001, 0.0), (0.0, 0.001)]
    )
    customer = await make_user("customer")
    order = await book_here(client, customer, service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    await engine.tick(engine_city.id, datetime.now(UTC))
    for i in (0, 1):
        offer = await next_of(sockets[i], "offer")
        r = await client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=workers[i].auth)
        assert r.status_code == 200, r.text
    held = r.json()
    lead = next(w for w in workers if w.id == held["crew"][0])
    mate = next(w for w in workers if w.id == held["crew"][1])
    url = f"/v1/orders/{order['id']}"
    r = await client.post(f"{url}/depart", headers=mate.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "en_route"
    r = await client.post(f"{url}/depart", headers=lead.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "en_route"  # theirs: no change
    r = await client.post(f"{url}/arrive", headers=lead.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "arrived"
    code = (await client.get(url, headers=customer.auth)).json()["start_code"]
    r = await client.post(f"{url}/start", headers=lead.auth, json={"start_code": code})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "crew_not_here"
    assert str(mate.id) in r.json()["error"]["message"]
    r = await client.post(f"{url}/arrive", headers=mate.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "arrived"
    crew = (await client.get(f"{url}/crew", headers=customer.auth)).json()
    assert all(m["arrived_at"] is not None for m in crew)
    r = await client.post(f"{url}/start", headers=lead.auth, json={"start_code": code})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_service"
    r = await client.post(f"{url}/complete", headers=mate.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    r = await client.post(f"{url}/complete", headers=lead.auth, json={})
    assert r.status_code == 409, r.text  # completes once
    completions = await stores.pool.fetchval(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND action = 'complete'",
        order["id"],
    )
    assert completions == 1
    for ws in sockets:
        await ws.close()


async def test_a_dispatcher_cannot_assign_one_worker_to_a_crew_order(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """Forcing one worker onto a crew order of 2 is a 4xx naming worker_ids, not a half crew."""
    service = await _crew_service(client, admin, 2)
    worker = await make_worker(stores, client, engine_city.id)
    await make_worker(stores, client, engine_city.id)  # a crew of 2 on shift: bookable
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "try", "force": True},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "worker_ids"
    assert await status_of(stores, order["id"]) == "confirmed"


# ---- money: the crew's earnings split in whole fen ----------------------------------------


def test_split_fen_gives_the_remainder_to_the_first_seats() -> None:
    """12001 fen for 3: 4001, 4000, 4000 (sum exact, at most 1 fen apart); bad input names the field."""
    assert split_fen(12001, 3) == [4001, 4000, 4000]
    assert split_fen(12002, 3) == [4001, 4001, 4000]
    assert split_fen(2, 3) == [1, 1, 0]
    assert split_fen(0, 2) == [0, 0]
    for total in range(0, 50):
        for parts in range(1, 9):
            shares = split_fen(total, parts)
            assert sum(shares) == total
            assert max(shares) - min(shares) <= 1
    with pytest.raises(InvalidMoneyInput, match="parts"):
        split_fen(100, 0)
    with pytest.raises(InvalidMoneyInput, match="total_fen"):
        split_fen(-1, 2)


def test_crew_shares_split_the_earnings_and_the_commission_by_split_fen() -> None:
    """60010 fen less a 12002 commission for 3: nets 16003, 16003, 16002 (split_fen of 48008, what the ledger pays), commissions 4001, 4001, 4000; each adds up to the order's; a commission beyond the gross is refused."""
    got = crew_shares(60010, 12002, 3)
    assert got == [
        ShareFen(20004, 4001, 16003),
        ShareFen(20004, 4001, 16003),
        ShareFen(20002, 4000, 16002),
    ]
    for gross, fee, parts in ((0, 0, 2), (7, 3, 4), (12001, 0, 3), (150, 150, 2)):
        shares = crew_shares(gross, fee, parts)
        assert [s.net_fen for s in shares] == split_fen(gross - fee, parts)
        assert sum(s.commission_fen for s in shares) == fee
        assert sum(s.gross_fen for s in shares) == gross
    assert crew_shares(-5, 0, 2) == [ShareFen(0, 0, 0), ShareFen(0, 0, 0)]
    with pytest.raises(InvalidMoneyInput, match="commission_fen"):
        crew_shares(100, 101, 2)


async def test_a_crew_orders_earnings_are_split_between_the_members(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    live_city: str,
    instant_service: str,
    make_user: MakeUser,
) -> None:
    """A crew of 3 on a 150.01 order: one balanced settlement entry pays each member's wallet an equal share in fen, the odd fen to the lead."""
    svc = _svc(live_app)
    crew = [await _worker(stores, client, live_city) for _ in range(3)]
    customer = await make_user("customer")
    now = datetime.now(UTC)
    order = await _paid_order(
        stores, live_city, instant_service, customer.id, crew[0].id, 15001, completed_at=now
    )
    await stores.pool.executemany(
        "INSERT INTO order_crew (order_id, worker_id, seat) VALUES ($1, $2, $3)",
        [(order, w.id, seat) for seat, w in enumerate(crew)],
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=now)
    await svc.settle_due(now + timedelta(days=svc.params.after_sales_days))
    entry = await ledger.get(stores.pool, f"settle:order:{order}")
    assert entry is not None
    fee = int(entry.data["fee_fen"])
    shares = split_fen(15001 - fee, 3)
    assert shares[0] == shares[2] + ((15001 - fee) % 3 > 0)
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in entry.lines) == sorted(
        [
            (lr.order_funds(order), 15001, 0),
            *((lr.worker_payable(w.id), 0, fen) for w, fen in zip(crew, shares, strict=True)),
            (lr.COMMISSION_REVENUE, 0, fee),
        ]
    )
    assert sum(x.debit_fen for x in entry.lines) == sum(x.credit_fen for x in entry.lines)
    assert [s["fen"] for s in entry.data["crew_shares"]] == shares
    assert await ledger.balance(stores.pool, lr.order_funds(order)) == 0


# ---- after the job: ratings and risk checks see the whole crew ----------------------------


async def _assigned_crew(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    customer: Account,
    stores: Stores,
    admin: Account,
    spots: list[tuple[float, float]],
) -> tuple[dict[str, Any], list[Account], list[ClientConnection]]:
    """An instant crew order of 2 at the city's centre, assigned to workers at ``spots``."""
    service = await _crew_service(client, admin, 2)
    workers, sockets = await _crew_city(live_app, stores, client, engine_city, spots)
    await book_here(client, customer, service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    await engine.tick(engine_city.id, datetime.now(UTC))
    for i in (0, 1):
        offer = await next_of(sockets[i], "offer")
        r = await client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=workers[i].auth)
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "assigned"
    return r.json(), workers, sockets


async def test_a_crew_orders_rating_counts_for_every_member(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """One rating of a crew order adds to each member's rating; a member who is not the lead sees it, lists it and may reply; hiding it takes it back from both."""
    customer = await make_user("customer")
    order, workers, sockets = await _assigned_crew(
        live_app, engine_city, client, customer, stores, admin, [(0.001, 0.0), (0.0, 0.001)]
    )
    url = f"/v1/orders/{order['id']}"
    for w in workers:
        r = await client.post(f"{url}/arrive", headers=w.auth, json={})
        assert r.status_code == 200, r.text
    code = (await client.get(url, headers=customer.auth)).json()["start_code"]
    r = await client.post(f"{url}/start", headers=workers[0].auth, json={"start_code": code})
    assert r.status_code == 200, r.text
    r = await client.post(f"{url}/complete", headers=workers[1].auth, json={})
    assert r.status_code == 200, r.text
    ids = [w.id for w in workers]

    async def sums() -> dict[int, tuple[int, int]]:
        rows = await stores.pool.fetch(
            "SELECT user_id, rating_sum, rating_count FROM workers WHERE user_id = ANY($1)", ids
        )
        return {r["user_id"]: (r["rating_sum"], r["rating_count"]) for r in rows}

    r = await client.post(f"{url}/rating", headers=customer.auth, json={"stars": 4, "text": "好"})
    assert r.status_code == 201, r.text
    assert await sums() == {w: (4, 1) for w in ids}
    mate = next(w for w in workers if w.id != order["worker_id"])
    r = await client.get(f"{url}/rating", headers=mate.auth)
    assert r.status_code == 200, r.text
    assert r.json()["stars"] == 4
    r = await client.get("/v1/me/reviews", headers=mate.auth)
    assert r.status_code == 200, r.text
    assert order["id"] in [x["order_id"] for x in r.json()]
    r = await client.post(f"{url}/rating/reply", headers=mate.auth, json={"text": "谢谢"})
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/ratings/{order['id']}/hide", headers=admin.auth, json={"reason": "test"}
    )
    assert r.status_code == 200, r.text
    assert await sums() == {w: (0, 0) for w in ids}
    for ws in sockets:
        await ws.close()


async def test_a_late_crew_member_is_caught_though_the_lead_is_on_time(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """The lead is next door, the mate ~1 km away with a 90 s deadline: the risk check reassigns the crew naming the mate, who alone is kept away."""
    customer = await make_user("customer")
    order, workers, sockets = await _assigned_crew(
        live_app, engine_city, client, customer, stores, admin, [(0.0003, 0.0), (0.0, 0.009)]
    )
    mate = next(w for w in workers if w.id != order["worker_id"])
    params = at_risk.RiskParams(stale_s=3600.0, instant_sla_s=90, cooldown_s=60)
    created = datetime.fromisoformat(order["created_at"])
    done = await at_risk.check(stores, live_app[1].state.tracking, engine_city.id, created, params)
    assert done["reassign"] == 1
    assert await status_of(stores, order["id"]) in ("confirmed", "dispatching")
    reason = await stores.pool.fetchval(
        "SELECT reason FROM order_events WHERE order_id = $1 AND action = 'unassign'", order["id"]
    )
    assert f"crew member {mate.id}" in reason
    kept_away = await stores.pool.fetch(
        "SELECT worker_id FROM order_exclusions WHERE order_id = $1", order["id"]
    )
    assert [r["worker_id"] for r in kept_away] == [mate.id]
    for ws in sockets:
        await ws.close()

"""Issue 20 §4, crews after the job: an after-sales ticket on a crew order involves every
member — it lists the crew, every member is told when it opens and closes and finds it
among their tickets — and a redo goes back to the same crew (or keeps the whole crew
away from it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, make_worker, online
from tests.test_crew_booking import crew_service


async def _crew_job(
    stores: Stores, city: EngineCity, service: str, customer: int, crew: list[Account]
) -> int:
    """A completed crew order of the crew (the first the lead), as the crew finished it."""
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        order_id = await conn.fetchval(
            "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
            "duration_min, price_minor, currency, worker_id, start_code, completed_at, "
            "en_route_at, crew_size) VALUES ($1, $2, $3, 'instant', 'completed', $4, $5, 120, "
            "60000, 'CNY', $6, '123456', $7, $8, $9) RETURNING id",
            city.id,
            customer,
            service,
            city.here[0],
            city.here[1],
            crew[0].id,
            now,
            now - timedelta(hours=3),
            len(crew),
        )
        await conn.executemany(
            "INSERT INTO order_crew (order_id, worker_id, seat, arrived_at) VALUES ($1, $2, $3, $4)",
            [(order_id, w.id, seat, now - timedelta(hours=2)) for seat, w in enumerate(crew)],
        )
    return int(order_id)


async def _inbox(stores: Stores, user_id: int, kind: str) -> list[dict[str, Any]]:
    rows = await stores.pool.fetch(
        "SELECT key, order_id, title FROM notifications WHERE user_id = $1 AND kind = $2",
        user_id,
        kind,
    )
    return [dict(r) for r in rows]


async def test_a_ticket_on_a_crew_order_involves_every_member(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """The ticket lists the crew (lead first, worker_id the lead); each member is told it opened, finds it in their tickets, may write on it, and is told it closed; a worker outside the crew sees nothing."""
    service = await crew_service(client, admin, 3)
    crew = [await make_worker(stores, client, engine_city.id) for _ in range(3)]
    outsider = await make_worker(stores, client, engine_city.id)
    customer = await make_user("customer")
    order = await _crew_job(stores, engine_city, service, customer.id, crew)
    r = await client.post(
        f"/v1/orders/{order}/aftersales",
        headers=customer.auth,
        json={"kind": "complaint", "description": "三位师傅迟到"},
    )
    assert r.status_code == 201, r.text
    ticket = r.json()["ticket"]
    ids = [w.id for w in crew]
    assert ticket["crew"] == ids
    assert ticket["worker_id"] == ids[0]
    tid = ticket["id"]
    for w in crew:
        told = await _inbox(stores, w.id, "aftersales_opened")
        assert [(n["key"], n["order_id"]) for n in told] == [
            (f"aftersales:{tid}:opened:{w.id}", order)
        ]
        r = await client.get("/v1/me/aftersales", headers=w.auth)
        assert r.status_code == 200, r.text
        assert tid in [t["id"] for t in r.json()]
        r = await client.get(f"/v1/aftersales/tickets/{tid}", headers=w.auth)
        assert r.status_code == 200, r.text
        assert r.json()["ticket"]["crew"] == ids
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/messages",
        headers=crew[2].auth,
        json={"body": "路上堵车"},
    )
    assert r.status_code in (200, 201), r.text
    assert await _inbox(stores, outsider.id, "aftersales_opened") == []
    r = await client.get("/v1/me/aftersales", headers=outsider.auth)
    assert tid not in [t["id"] for t in r.json()]
    r = await client.get(f"/v1/aftersales/tickets/{tid}", headers=outsider.auth)
    assert r.status_code == 404
    dispatcher = await make_user("dispatcher")
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/reject",
        headers=dispatcher.auth,
        json={"reason": "师傅按时到达，有轨迹为证"},
    )
    assert r.status_code == 200, r.text
    for w in crew:
        closed = await _inbox(stores, w.id, "aftersales_closed")
        assert [n["key"] for n in closed] == [f"aftersales:{tid}:closed:{w.id}"]
        assert "未获支持" in closed[0]["title"]


async def test_a_redo_goes_back_to_the_same_crew_or_keeps_it_away(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """Redo "same" on a crew order: a free crew order of the same size assigned to the same crew, lead first, through the dispatcher's crew assignment; redo "other": every member kept away from it."""
    service = await crew_service(client, admin, 2)
    crew = [await make_worker(stores, client, engine_city.id) for _ in range(2)]
    sockets = [
        await online(live_app[0], w, (engine_city.here[0] + 0.001 * (i + 1), engine_city.here[1]))
        for i, w in enumerate(crew)
    ]
    customer = await make_user("customer")
    dispatcher = await make_user("dispatcher")
    ids = [w.id for w in crew]
    redos = {}
    for to in ("same", "other"):
        order = await _crew_job(stores, engine_city, service, customer.id, crew)
        r = await client.post(
            f"/v1/orders/{order}/aftersales",
            headers=customer.auth,
            json={"kind": "redo", "description": "窗户没擦干净"},
        )
        assert r.status_code == 201, r.text
        tid = r.json()["ticket"]["id"]
        r = await client.post(
            f"/v1/aftersales/tickets/{tid}/resolve",
            headers=dispatcher.auth,
            json={"redo": to, "note": "返工"},
        )
        assert r.status_code == 200, r.text
        (redo,) = [o for o in r.json()["outcomes"] if o["kind"] == "redo"]
        assert redo["detail"] == {"to": to, "original_worker_id": ids[0], "original_crew": ids}
        redos[to] = (redo["redo_order_id"], [n["body"] for n in r.json()["notes"]])
    same, notes = redos["same"]
    assert f"redo order {same} assigned to crew {ids[0]}, {ids[1]}" in notes
    row = await stores.pool.fetchrow(
        "SELECT status, price_minor, crew_size, worker_id FROM orders WHERE id = $1", same
    )
    assert row is not None
    assert (row["status"], row["price_minor"], row["crew_size"], row["worker_id"]) == (
        "assigned",
        0,
        2,
        ids[0],
    )
    held = await stores.pool.fetch(
        "SELECT worker_id FROM order_crew WHERE order_id = $1 AND released_at IS NULL "
        "ORDER BY seat",
        same,
    )
    assert [h["worker_id"] for h in held] == ids
    action = await stores.pool.fetchval("SELECT action FROM overrides WHERE order_id = $1", same)
    assert action == "assign_crew"
    other, _ = redos["other"]
    assert await stores.pool.fetchval("SELECT crew_size FROM orders WHERE id = $1", other) == 2
    kept_away = await stores.pool.fetch(
        "SELECT worker_id FROM order_exclusions WHERE order_id = $1 ORDER BY worker_id", other
    )
    assert [k["worker_id"] for k in kept_away] == sorted(ids)
    for ws in sockets:
        await ws.close()

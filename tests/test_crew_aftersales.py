"""Issue 20 §4, crews after the job: an after-sales ticket on a crew order involves every
member — it lists the crew, every member is told when it opens and closes and finds it
among their tickets and reads its evidence photos — a redo goes back to the same crew
(or keeps the whole crew away from it), and an upheld complaint counts against every
member who finished the job (not one replaced before it), with each member's trail in
the evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from doorstep.stores import Stores
from tests import files_samples as samples
from tests.crew_orders import crew_order
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, make_worker, online
from tests.test_crew_booking import crew_service


async def _crew_job(
    stores: Stores, city: EngineCity, service: str, customer: int, crew: list[Account]
) -> int:
    """A completed crew order of the crew (the first the lead), as the crew finished it."""
    return await crew_order(
        stores,
        city=city.id,
        service=service,
        customer=customer,
        crew=[w.id for w in crew],
        at=city.here,
        completed=True,
    )


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


async def test_an_upheld_complaint_counts_for_every_member_who_finished_the_job(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A crew of 2 finished the job (a third member was replaced before it): each member reads the customer's evidence photo, staff see each member's trail of the job; the complaint upheld with a warning gives both members a complaint and a warning (the outcome lists both), the replaced member and an outsider nothing."""
    service = await crew_service(client, admin, 2)
    lead, mate, gone, outsider = [
        await make_worker(stores, client, engine_city.id) for _ in range(4)
    ]
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await _crew_job(stores, engine_city, service, customer.id, [lead, mate])
    now = datetime.now(UTC)
    await stores.pool.execute(  # in mate's seat until replaced, before the job started
        "INSERT INTO order_crew (order_id, worker_id, seat, joined_at, released_at) "
        "VALUES ($1, $2, 1, $3, $4)",
        order,
        gone.id,
        now - timedelta(hours=5),
        now - timedelta(hours=4),
    )
    for n, w in enumerate((lead, mate, mate)):  # fixes of the job: the lead 1, the mate 2
        await stores.pool.execute(
            "INSERT INTO trail_points (worker_id, ts, lat, lng, accuracy_m, seq, received_at) "
            "VALUES ($1, $2, $3, $4, 5, $5, now())",
            w.id,
            now - timedelta(hours=2, minutes=n),
            engine_city.here[0],
            engine_city.here[1],
            n,
        )
    r = await client.post(
        "/v1/files?purpose=aftersales_evidence",
        content=samples.jpeg(),
        headers=customer.auth | {"content-type": "image/jpeg"},
    )
    assert r.status_code in (200, 201), r.text
    pic = r.json()["id"]
    r = await client.post(
        f"/v1/orders/{order}/aftersales",
        headers=customer.auth,
        json={"kind": "complaint", "description": "两位师傅态度差", "photos": [pic]},
    )
    assert r.status_code == 201, r.text
    tid = r.json()["ticket"]["id"]
    for w in (lead, mate):
        assert (await client.get(f"/v1/files/{pic}", headers=w.auth)).status_code == 200
    for w in (gone, outsider):
        assert (await client.get(f"/v1/files/{pic}", headers=w.auth)).status_code in (403, 404)
    r = await client.get(f"/v1/aftersales/tickets/{tid}/evidence", headers=dispatcher.auth)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert [(m["worker_id"], len(m["trail"])) for m in ev["crew_trails"]] == [
        (lead.id, 1),
        (mate.id, 2),
    ]
    assert ev["trail"] == ev["crew_trails"][0]["trail"]  # the lead's, as for one worker
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/resolve",
        headers=dispatcher.auth,
        json={"worker_at_fault": True, "warning": True, "note": "投诉属实"},
    )
    assert r.status_code == 200, r.text
    (quality,) = [o for o in r.json()["outcomes"] if o["kind"] == "quality"]
    members = quality["detail"]["crew"]
    assert [m["worker_id"] for m in members] == [lead.id, mate.id]
    assert quality["detail"]["quality_event_id"] == members[0]["quality_event_id"]
    everyone = [lead.id, mate.id, gone.id, outsider.id]
    complaints = await stores.pool.fetch(
        "SELECT id, worker_id FROM quality_events WHERE order_id = $1 AND kind = 'complaint' "
        "AND worker_id = ANY($2) ORDER BY worker_id",
        order,
        everyone,
    )
    assert {c["worker_id"]: c["id"] for c in complaints} == {
        m["worker_id"]: m["quality_event_id"] for m in members
    }
    warnings = await stores.pool.fetch(
        "SELECT id, worker_id FROM discipline_actions WHERE kind = 'warning' "
        "AND worker_id = ANY($1)",
        everyone,
    )
    assert {w["worker_id"]: w["id"] for w in warnings} == {
        m["worker_id"]: m["warning_action_id"] for m in members
    }

"""Issue 20 §4, crews by hand: a dispatcher assigns a crew order to a whole crew (each
member checked as a single assignment's worker, audited like it) and puts another worker
in one member's seat of an assigned crew; bad input is a 4xx naming the field."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from dispatch.engine import Engine
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online, status_of
from tests.test_crew_booking import crew_service


async def _crew(
    live_app: tuple[str, Any],
    stores: Stores,
    client: httpx.AsyncClient,
    city: EngineCity,
    n: int,
) -> tuple[list[Account], list[ClientConnection]]:
    """``n`` workers of the city online near its centre."""
    workers, sockets = [], []
    for i in range(n):
        w = await make_worker(stores, client, city.id)
        at = (city.here[0] + 0.001 * (i + 1), city.here[1])
        sockets.append(await online(live_app[0], w, at))
        workers.append(w)
    return workers, sockets


async def _assign(
    client: httpx.AsyncClient, who: Account, order_id: int, ids: list[Any], **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order_id}/crew/assign",
        headers=who.auth,
        json={"worker_ids": ids, "reason": "顾客指定班组", **extra},
    )


async def _replace(
    client: httpx.AsyncClient, who: Account, order_id: int, out: int, into: int, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order_id}/crew/replace",
        headers=who.auth,
        json={"out_worker_id": out, "in_worker_id": into, "reason": "师傅生病", **extra},
    )


async def _job_until(ws: ClientConnection, action: str) -> dict[str, Any]:
    """The next ``job`` message of this action (earlier ones skipped)."""
    while True:
        job = await next_of(ws, "job")
        if job["action"] == action:
            return job


async def _seats(stores: Stores, order_id: int) -> list[tuple[int, int, bool]]:
    rows = await stores.pool.fetch(
        "SELECT worker_id, seat, released_at IS NULL AS held FROM order_crew "
        "WHERE order_id = $1 ORDER BY seat, worker_id",
        order_id,
    )
    return [(r["worker_id"], r["seat"], r["held"]) for r in rows]


async def test_a_dispatcher_assigns_a_crew_order_to_a_whole_crew(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """Three workers named for a crew of 3 hold the order, the first given the lead; order_crew, the history, the override audit and each member's socket say so."""
    service = await crew_service(client, admin, 3)
    workers, sockets = await _crew(live_app, stores, client, engine_city, 3)
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    ids = [workers[2].id, workers[0].id, workers[1].id]
    r = await _assign(client, dispatcher, order["id"], ids)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["order"]["status"] == "assigned"
    assert done["order"]["worker_id"] == ids[0]
    assert done["order"]["crew"] == ids
    audit = done["override"]
    assert (audit["action"], audit["worker_id"], audit["forced"]) == ("assign_crew", ids[0], False)
    assert audit["before"]["crew"] == []
    assert audit["after"]["crew"] == ids
    assert audit["reason"] == "顾客指定班组"
    assert await _seats(stores, order["id"]) == [(w, i, True) for i, w in enumerate(ids)]
    data = await stores.pool.fetchval(
        "SELECT data FROM order_events WHERE order_id = $1 AND action = 'assign'", order["id"]
    )
    assert data["override"] is True
    assert data["crew"] == ids
    chained = await stores.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'override.assign_crew' AND subject = $1",
        f"order:{order['id']}",
    )
    assert chained == 1
    for ws in sockets:
        job = await next_of(ws, "job")
        assert (job["order_id"], job["status"]) == (order["id"], "assigned")
    r = await client.get(f"/v1/orders/{order['id']}/crew", headers=workers[0].auth)
    assert [m["worker_id"] for m in r.json()] == ids
    for ws in sockets:
        await ws.close()


async def test_bad_crews_are_refused_naming_the_field(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
    live_city: str,
) -> None:
    """Wrong count, a duplicate, an unknown worker, another city's worker, a busy one, a one-worker order: 4xx naming worker_ids or worker_ids[i]; the order stays unassigned."""
    service = await crew_service(client, admin, 2)
    (a, b, c), sockets = await _crew(live_app, stores, client, engine_city, 3)
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    stranger = await make_worker(stores, client, live_city)
    cases: list[tuple[list[Any], int, str, str]] = [
        ([a.id], 422, "worker_ids", "crew of 2 different workers, not 1"),
        ([a.id, b.id, c.id], 422, "worker_ids", "not 3"),
        ([a.id, a.id], 422, "worker_ids[1]", "named twice"),
        ([a.id, 2**40], 422, "worker_ids[1]", f"no worker {2**40}"),
        ([stranger.id, a.id], 422, "worker_ids[0]", f"works in {live_city}"),
        ([a.id, "b"], 422, "worker_ids[1]", ""),
        ([], 422, "worker_ids", ""),
    ]
    for ids, status, field, words in cases:
        r = await _assign(client, dispatcher, order["id"], ids)
        assert r.status_code == status, (ids, r.text)
        assert r.json()["error"]["field"] == field, (ids, r.text)
        assert words in r.json()["error"]["message"], (ids, r.text)
    # A member holding another job is busy: 409 naming them.
    single = await book_here(client, await make_user("customer"), instant_service, engine_city.here)
    r = await client.post(
        f"/v1/orders/{single['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": c.id, "reason": "先做这单", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await _assign(client, dispatcher, order["id"], [a.id, c.id])
    assert r.status_code == 409, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (
        "worker_busy",
        "worker_ids[1]",
    )
    assert f"already holds order {single['id']}" in r.json()["error"]["message"]
    # A one-worker order takes no crew.
    r = await _assign(client, dispatcher, single["id"], [a.id, b.id])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "worker_ids"
    assert "needs one worker" in r.json()["error"]["message"]
    assert await status_of(stores, order["id"]) == "confirmed"
    assert await _seats(stores, order["id"]) == []
    for ws in sockets:
        await ws.close()


async def test_a_member_the_matcher_objects_to_needs_force(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A member offline (no position): 409 infeasible_assignment naming their seat and why; with force the crew is assigned and the audit is marked forced with the warning."""
    service = await crew_service(client, admin, 2)
    (a,), sockets = await _crew(live_app, stores, client, engine_city, 1)
    offline = await make_worker(stores, client, engine_city.id)
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    r = await _assign(client, dispatcher, order["id"], [a.id, offline.id])
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("infeasible_assignment", "worker_ids[1]")
    assert f"worker {offline.id}: no known position" in error["message"]
    assert await status_of(stores, order["id"]) == "confirmed"
    r = await _assign(client, dispatcher, order["id"], [a.id, offline.id], force=True)
    assert r.status_code == 200, r.text
    audit = r.json()["override"]
    assert audit["forced"] is True
    assert any(w.startswith(f"worker {offline.id}:") for w in audit["warnings"])
    assert r.json()["order"]["crew"] == [a.id, offline.id]
    for ws in sockets:
        await ws.close()


async def test_a_crew_assigned_by_hand_ends_the_round_and_replaces_the_crew_holding_it(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """On offer to a crew (one accepted): the dispatcher's crew takes it, every offer of the round withdrawn; assigning another crew then releases the first."""
    service = await crew_service(client, admin, 2)
    workers, sockets = await _crew(live_app, stores, client, engine_city, 4)
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    await engine.tick(engine_city.id, datetime.now(UTC))
    offered = await stores.pool.fetch(
        "SELECT id, worker_id FROM offers WHERE order_id = $1 AND status = 'pending'", order["id"]
    )
    assert len(offered) == 2
    first = offered[0]
    acceptor = next(w for w in workers if w.id == first["worker_id"])
    r = await client.post(f"/v1/offers/{first['id']}/accept", headers=acceptor.auth)
    assert r.status_code == 200, r.text
    others = [w.id for w in workers if w.id not in {o["worker_id"] for o in offered}]
    dispatcher = await make_user("dispatcher")
    r = await _assign(client, dispatcher, order["id"], others)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["crew"] == others
    statuses = await stores.pool.fetch("SELECT status FROM offers WHERE order_id = $1", order["id"])
    assert {s["status"] for s in statuses} == {"withdrawn"}
    # Another crew by hand: the first is released (rows kept as history).
    again = [offered[0]["worker_id"], offered[1]["worker_id"]]
    r = await _assign(client, dispatcher, order["id"], again)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["crew"] == again
    assert r.json()["override"]["before"]["crew"] == others
    held = {w for w, _, h in await _seats(stores, order["id"]) if h}
    assert held == set(again)
    for ws in sockets:
        await ws.close()


async def test_a_dispatcher_replaces_one_member_of_an_assigned_crew(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """The lead arrived, the mate did not: the mate's seat goes to another worker in one change (still arrived, the lead's arrival kept, the mate kept away and told); the start waits for the newcomer; replacing the lead makes the newcomer the lead."""
    service = await crew_service(client, admin, 2)
    (lead, mate, sub, sub2), sockets = await _crew(live_app, stores, client, engine_city, 4)
    customer = await make_user("customer")
    order = await book_here(client, customer, service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    r = await _assign(client, dispatcher, order["id"], [lead.id, mate.id])
    assert r.status_code == 200, r.text
    for ws in sockets[:2]:
        await next_of(ws, "job")
    url = f"/v1/orders/{order['id']}"
    r = await client.post(f"{url}/arrive", headers=lead.auth, json={})
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    r = await _replace(client, dispatcher, order["id"], mate.id, sub.id)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["order"]["status"] == "arrived"
    assert done["order"]["crew"] == [lead.id, sub.id]
    assert done["order"]["worker_id"] == lead.id
    assert done["order"]["version"] == version + 1
    audit = done["override"]
    assert (audit["action"], audit["worker_id"]) == ("replace_member", sub.id)
    assert audit["before"]["crew"] == [lead.id, mate.id]
    assert audit["after"]["crew"] == [lead.id, sub.id]
    gone = await _job_until(sockets[1], "crew_change")
    assert (gone["order_id"], gone["status"]) == (order["id"], "withdrawn")
    joined = await _job_until(sockets[2], "crew_change")
    assert (joined["order_id"], joined["status"], joined["action"]) == (
        order["id"],
        "arrived",
        "crew_change",
    )
    crew = (await client.get(f"{url}/crew", headers=customer.auth)).json()
    assert [(m["worker_id"], m["arrived_at"] is not None) for m in crew] == [
        (lead.id, True),
        (sub.id, False),
    ]
    kept_away = await stores.pool.fetch(
        "SELECT worker_id FROM order_exclusions WHERE order_id = $1", order["id"]
    )
    assert [k["worker_id"] for k in kept_away] == [mate.id]
    r = await client.get(url, headers=mate.auth)
    assert r.status_code == 404  # no longer theirs
    event = await stores.pool.fetchrow(
        "SELECT from_status, to_status, data FROM order_events WHERE order_id = $1 "
        "AND action = 'crew_change'",
        order["id"],
    )
    assert event is not None
    assert (event["from_status"], event["to_status"]) == ("arrived", "arrived")
    assert (event["data"]["out"], event["data"]["in"], event["data"]["seat"]) == (
        mate.id,
        sub.id,
        1,
    )
    code = (await client.get(url, headers=customer.auth)).json()["start_code"]
    r = await client.post(f"{url}/start", headers=lead.auth, json={"start_code": code})
    assert r.status_code == 409, r.text
    assert str(sub.id) in r.json()["error"]["message"]
    # The lead's seat: the newcomer becomes the lead (orders.worker_id).
    r = await _replace(client, dispatcher, order["id"], lead.id, sub2.id)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["worker_id"] == sub2.id
    assert r.json()["order"]["crew"] == [sub2.id, sub.id]
    for w in (sub, sub2):
        r = await client.post(f"{url}/arrive", headers=w.auth, json={})
        assert r.status_code == 200, r.text
    r = await client.post(f"{url}/start", headers=sub2.auth, json={"start_code": code})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_service"
    for ws in sockets:
        await ws.close()


async def test_a_bad_replacement_is_refused_naming_the_field(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
) -> None:
    """Leaving worker not in the crew (out_worker_id), newcomer in it already or unknown (in_worker_id), a crew not holding the order (status), a one-worker order: 422; the crew unchanged."""
    service = await crew_service(client, admin, 2)
    (a, b, c), sockets = await _crew(live_app, stores, client, engine_city, 3)
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    r = await _replace(client, dispatcher, order["id"], a.id, c.id)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "status"  # not assigned yet
    r = await _assign(client, dispatcher, order["id"], [a.id, b.id])
    assert r.status_code == 200, r.text
    for out, into, field in (
        (c.id, a.id, "out_worker_id"),
        (a.id, b.id, "in_worker_id"),
        (a.id, 2**40, "in_worker_id"),
    ):
        r = await _replace(client, dispatcher, order["id"], out, into)
        assert r.status_code == 422, (out, into, r.text)
        assert r.json()["error"]["field"] == field, r.text
    single = await book_here(client, await make_user("customer"), instant_service, engine_city.here)
    r = await _replace(client, dispatcher, single["id"], a.id, c.id)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "out_worker_id"
    assert "needs one worker" in r.json()["error"]["message"]
    assert await _seats(stores, order["id"]) == [(a.id, 0, True), (b.id, 1, True)]
    for ws in sockets:
        await ws.close()


FAR_DEG = 0.08  # north of the city's centre: some 9 km, far more than 600 s from the others


async def test_a_crew_arriving_too_far_apart_needs_force(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """Two members next door and one some 9 km away (ETAs more than crew_window_s = 600 s apart): 409 infeasible_assignment naming worker_ids and the rule, nothing changed; with force the crew is assigned and the audit is forced with that warning."""
    service = await crew_service(client, admin, 3)
    (a, b), sockets = await _crew(live_app, stores, client, engine_city, 2)
    far = await make_worker(stores, client, engine_city.id)
    at = (engine_city.here[0] + FAR_DEG, engine_city.here[1])
    sockets.append(await online(live_app[0], far, at))
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    ids = [a.id, b.id, far.id]
    r = await _assign(client, dispatcher, order["id"], ids)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("infeasible_assignment", "worker_ids")
    assert "crew_window_s = 600 s" in error["message"], error
    assert f"worker {far.id} in " in error["message"], error
    assert await status_of(stores, order["id"]) == "confirmed"
    assert await _seats(stores, order["id"]) == []
    r = await _assign(client, dispatcher, order["id"], ids, force=True)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["crew"] == ids
    audit = r.json()["override"]
    assert audit["forced"] is True
    assert [w for w in audit["warnings"] if "crew_window_s" in w], audit
    for ws in sockets:
        await ws.close()


async def test_a_newcomer_arriving_outside_the_window_needs_force(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """The lead on site: a newcomer some 9 km away for the mate's seat is 409 infeasible_assignment naming in_worker_id and crew_window_s (the crew unchanged); one next door takes the seat unforced; the far one then needs force, and the audit says forced."""
    service = await crew_service(client, admin, 2)
    (lead, mate, near), sockets = await _crew(live_app, stores, client, engine_city, 3)
    far = await make_worker(stores, client, engine_city.id)
    at = (engine_city.here[0] + FAR_DEG, engine_city.here[1])
    sockets.append(await online(live_app[0], far, at))
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    r = await _assign(client, dispatcher, order["id"], [lead.id, mate.id])
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=lead.auth, json={})
    assert r.status_code == 200, r.text
    r = await _replace(client, dispatcher, order["id"], mate.id, far.id)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("infeasible_assignment", "in_worker_id")
    assert "crew_window_s = 600 s" in error["message"], error
    assert f"worker {lead.id} in 0 s" in error["message"], error  # on site: there now
    assert await _seats(stores, order["id"]) == [(lead.id, 0, True), (mate.id, 1, True)]
    r = await _replace(client, dispatcher, order["id"], mate.id, near.id)
    assert r.status_code == 200, r.text
    assert r.json()["override"]["forced"] is False
    r = await _replace(client, dispatcher, order["id"], near.id, far.id, force=True)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["crew"] == [lead.id, far.id]
    audit = r.json()["override"]
    assert audit["forced"] is True
    assert [w for w in audit["warnings"] if "crew_window_s" in w], audit
    for ws in sockets:
        await ws.close()


async def test_hand_assignments_are_judged_by_the_servers_matching_params(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A worker whose fix the server's [matching] fresh_fix_s calls stale (stricter than the default) is a matcher objection for a crew assignment by hand (409 naming the seat) — the overrides judge with the configured params, not the defaults."""
    service = await crew_service(client, admin, 2)
    workers, sockets = await _crew(live_app, stores, client, engine_city, 2)
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    dispatcher = await make_user("dispatcher")
    engine: Engine = live_app[1].state.engine
    configured = engine.match
    await asyncio.sleep(1.2)  # the fixes are over a second old
    engine.match = replace(configured, fresh_fix_s=0.5)  # too old for this server
    try:
        r = await _assign(client, dispatcher, order["id"], [w.id for w in workers])
    finally:
        engine.match = configured
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("infeasible_assignment", "worker_ids[0]")
    assert await status_of(stores, order["id"]) == "confirmed"
    # With the default params the same crew is fine.
    r = await _assign(client, dispatcher, order["id"], [w.id for w in workers])
    assert r.status_code == 200, r.text
    for ws in sockets:
        await ws.close()

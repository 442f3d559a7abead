"""The whole job over real sockets: book → offer → accept → fixes → arrived → start code →
complete → rate; and rescheduling a booked window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from doorstep.stores import Stores
from tests.helpers import MakeUser
from tests.live import (
    EngineCity,
    book_here,
    make_generalist,
    make_worker,
    next_of,
    online,
    recv,
    send_acked,
)
from tests.planning import tomorrow_at


async def test_book_offer_accept_track_arrive_start_complete_rate(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """One order's whole life through the public API and sockets, as the apps would drive it."""
    address, engine = live_app[0], live_app[1].state.engine
    worker = await make_worker(stores, client, engine_city.id)
    start = (engine_city.here[0] + 0.004, engine_city.here[1])  # ~450 m north
    ws = await online(address, worker, start)
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    watcher = await connect(
        f"ws://{address}/v1/ws/orders/{order['id']}", additional_headers=customer.auth
    )
    assert (await recv(watcher))["order"]["status"] == "confirmed"

    await engine.tick(engine_city.id, datetime.now(UTC))
    offer = await next_of(ws, "offer")
    assert "address_detail" not in offer  # the door is revealed on acceptance only
    await ws.send(
        orjson.dumps(
            {"type": "offer_reply", "offer_id": offer["offer_id"], "accept": True}
        ).decode()
    )
    assert (await next_of(ws, "offer_result"))["ok"] is True
    # Every change, in version order: the engine's pick, the offer, the accept.
    assert (await next_of(watcher, "status"))["status"] == "dispatching"
    assert (await next_of(watcher, "status"))["status"] == "offered"
    assert (await next_of(watcher, "status"))["status"] == "assigned"

    r = await client.post(f"/v1/orders/{order['id']}/depart", headers=worker.auth, json={})
    assert r.status_code == 200
    now = int(datetime.now(UTC).timestamp() * 1000)
    seq = int(datetime.now(UTC).timestamp() * 1000) + 1000  # after the fix online() sent
    for i in range(1, 13):  # walk to the door, a fix every 2 s
        f = i / 12
        seq += 1
        await send_acked(  # resent if a busy server sheds it, as the app does
            ws,
            {
                "type": "fix",
                "seq": seq,
                "ts_ms": now + i * 2000,
                "accuracy_m": 5.0,
                "lat": start[0] + (engine_city.here[0] - start[0]) * f,
                "lng": engine_city.here[1],
            },
        )
    statuses: list[str] = []
    while "arrived" not in statuses:
        frame = orjson.loads(await asyncio.wait_for(watcher.recv(), 5))
        if frame["type"] == "position":
            assert frame["eta"] is None or frame["eta"]["p50_s"] <= frame["eta"]["p90_s"]
        if frame["type"] == "status":
            statuses.append(frame["status"])
    assert statuses[-1] == "arrived"

    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker.auth,
        json={"start_code": order["start_code"]},
    )
    assert r.json()["status"] == "in_service"
    r = await client.post(f"/v1/orders/{order['id']}/complete", headers=worker.auth, json={})
    assert r.json()["status"] == "completed"
    r = await client.post(
        f"/v1/orders/{order['id']}/rating",
        headers=customer.auth,
        json={"stars": 5, "text": "准时，干净"},
    )
    assert r.status_code == 201
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=customer.auth)).json()
    assert [e["action"] for e in events] == [
        "book",
        "confirm",
        "dispatch",
        "offer",
        "assign",
        "depart",
        "arrive",
        "start",
        "complete",
    ]
    await watcher.close()
    await ws.close()


async def test_a_scheduled_order_can_move_to_another_window(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    engine_city: EngineCity,
) -> None:
    """Rescheduling moves the window (checked like a booking); an instant order cannot be rescheduled."""
    customer = await make_user("customer")
    await make_generalist(stores, engine_city.id)  # somebody to plan the scheduled order for
    soon = tomorrow_at("10:00")  # a window that never runs into local midnight
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": engine_city.here[0],
            "lng": engine_city.here[1],
            "window_start": soon.isoformat(),
            "window_end": (soon + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    later = soon + timedelta(days=2)
    r = await client.post(
        f"/v1/orders/{order['id']}/reschedule",
        headers=customer.auth,
        json={
            "window_start": later.isoformat(),
            "window_end": (later + timedelta(hours=3)).isoformat(),
            "reason": "travelling",
        },
    )
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["window_start"]) == later
    r = await client.post(
        f"/v1/orders/{order['id']}/reschedule",
        headers=customer.auth,
        json={
            "window_start": (soon - timedelta(days=3)).isoformat(),
            "window_end": soon.isoformat(),
        },
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "window_start")
    instant = await book_here(client, customer, instant_service, engine_city.here)
    r = await client.post(
        f"/v1/orders/{instant['id']}/reschedule",
        headers=customer.auth,
        json={
            "window_start": later.isoformat(),
            "window_end": (later + timedelta(hours=3)).isoformat(),
        },
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "window_start")

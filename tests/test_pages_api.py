"""What the live pages need from the server: the order snapshot's extra fields, the share
page link, the dispatcher feed's board and order messages, a candidates preview, and the
pages themselves (served with a strict policy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import connect

from doorstep.stores import Stores
from tests.helpers import MakeUser
from tests.live import EngineCity, book, book_here, make_worker, next_of, online, recv, watch


async def test_order_snapshot_carries_city_clock_service_and_timeline(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    worker_account: Any,
    instant_service: str,
) -> None:
    """The order snapshot names the city, server clock, service and status history, and share viewers never see who/why or the start code."""
    # Share viewers still get the status history, only without who/why.
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker_account.id, "reason": "nearest", "force": True},
    )
    assert r.status_code == 200, r.text
    share = (await client.post(f"/v1/orders/{order['id']}/share", headers=customer.auth)).json()
    before = int(datetime.now(UTC).timestamp() * 1000)
    ws, snap = await watch(live_app[0], order["id"], share=share["token"])
    assert snap["order"]["city_id"] == order["city_id"]
    assert before - 5000 <= snap["now_ms"] <= before + 60_000
    assert snap["order"]["service_name"] == {"zh": "日常保洁", "en": "Cleaning"}
    assert snap["order"]["created_at"].startswith(order["created_at"][:19])
    assert [e["status"] for e in snap["timeline"]] == ["created", "confirmed", "assigned"]
    assert set(snap["timeline"][0]) == {"status", "action", "at"}
    assert snap["order"]["start_code"] is None
    await ws.close()
    ws, mine = await watch(live_app[0], order["id"], headers=customer.auth)
    assert mine["order"]["start_code"] == order["start_code"]
    assert mine["timeline"] == snap["timeline"]
    await ws.close()


async def test_share_link_gives_the_tracking_page(
    client: httpx.AsyncClient, make_user: MakeUser, instant_service: str
) -> None:
    """The share response holds the page's path and its full URL on the host asked."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    share = (await client.post(f"/v1/orders/{order['id']}/share", headers=customer.auth)).json()
    assert share["page_path"] == f"/track/{order['id']}?share={share['token']}"
    assert share["page_url"] == f"{client.base_url}{share['page_path']}"
    page = await client.get(share["page_path"])
    assert page.status_code == 200
    assert "/static/track.js" in page.text


async def test_feed_board_and_live_order_messages(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """The feed's snapshot holds the whole board, and a booking, an offer and each status change reach the feed as they happen."""
    # The board is every worker, the orders in play with their deadlines, and open offers.
    address, engine = live_app[0], live_app[1].state.engine
    dispatcher, customer = await make_user("dispatcher"), await make_user("customer")
    worker = await make_worker(stores, client, engine_city.id, rating=(45, 10))
    idle = await make_worker(stores, client, engine_city.id)  # never connects: offline
    ws = await online(address, worker, (engine_city.here[0] + 0.001, engine_city.here[1]))
    feed = await connect(
        f"ws://{address}/v1/ws/cities/{engine_city.id}/feed", additional_headers=dispatcher.auth
    )
    snap = await recv(feed)
    roster = {w["id"]: w for w in snap["roster"]}
    assert roster[worker.id]["state"] == "available"
    assert roster[worker.id]["rating"] == 4.5
    assert roster[worker.id]["lat"] is not None
    assert roster[idle.id]["state"] == "offline"
    assert roster[idle.id]["lat"] is None
    assert snap["instant_sla_s"] == 3600
    assert snap["orders"] == []

    order = await book_here(client, customer, instant_service, engine_city.here)
    # A booking reaches the feed as its two changes (booked, confirmed by the system).
    booked = await next_of(feed, "order")
    assert (booked["order_id"], booked["status"], booked["action"]) == (
        order["id"],
        "created",
        "book",
    )
    confirmed = await next_of(feed, "order")
    assert (confirmed["status"], confirmed["action"], confirmed["previous"]) == (
        "confirmed",
        "confirm",
        "created",
    )
    await engine.tick(engine_city.id, datetime.now(UTC))
    # The offers go out at once; the status changes follow from their events.
    seen: dict[str, Any] = {}
    while "offers" not in seen or seen.get("status") != "offered":
        message = await recv(feed)
        if message["type"] == "offers":
            seen["offers"] = message
        elif message["type"] == "order" and message["order_id"] == order["id"]:
            seen["status"] = message["status"]
    assert seen["offers"]["order_id"] == order["id"]
    assert seen["offers"]["worker_ids"] == [worker.id]

    again = await connect(
        f"ws://{address}/v1/ws/cities/{engine_city.id}/feed", additional_headers=dispatcher.auth
    )
    snap = await recv(again)
    [in_play] = snap["orders"]
    assert (in_play["id"], in_play["status"]) == (order["id"], "offered")
    assert in_play["service_name"]["zh"] == "日常保洁"
    deadline = datetime.fromisoformat(in_play["deadline"])
    created = datetime.fromisoformat(in_play["created_at"])
    assert (deadline - created).total_seconds() == 3600
    assert [(f["order_id"], f["worker_id"]) for f in snap["offers"]] == [(order["id"], worker.id)]
    for sock in (feed, again, ws):
        await sock.close()


async def test_candidates_preview_scores_without_deciding(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Staff see the nearby workers ranked with every score term; nothing is recorded or offered."""
    address = live_app[0]
    await stores.pool.execute(
        "UPDATE cities SET dispatch_paused = true WHERE id = $1", engine_city.id
    )
    near = await make_worker(stores, client, engine_city.id)
    far = await make_worker(stores, client, engine_city.id)
    ws_near = await online(address, near, (engine_city.here[0] + 0.0005, engine_city.here[1]))
    ws_far = await online(address, far, (engine_city.here[0] + 0.004, engine_city.here[1]))
    dispatcher, customer = await make_user("dispatcher"), await make_user("customer")
    order = await book_here(client, customer, instant_service, engine_city.here)
    r = await client.get(f"/v1/orders/{order['id']}/candidates", headers=dispatcher.auth)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["order_id"] == order["id"]
    assert preview["worker_id"] == near.id
    decision = preview["decision"]
    ranked = [c["candidate"]["worker_id"] for c in decision["candidates"]]
    assert ranked == [near.id, far.id]
    assert decision["terms"] == [
        "eta",
        "rating",
        "fairness",
        "schedule",
        "affinity",
        "team",
        "priority",
        "rotation",
    ]
    best, second = decision["candidates"]
    assert best["breakdown"]["total"] < second["breakdown"]["total"]
    assert len(best["breakdown"]["weighted"]) == 8
    assert (
        await stores.pool.fetchval(
            "SELECT count(*) FROM dispatch_decisions WHERE order_id = $1", order["id"]
        )
        == 0
    )
    assert (
        await stores.pool.fetchval("SELECT count(*) FROM offers WHERE order_id = $1", order["id"])
        == 0
    )
    assert (await client.get(f"/v1/orders/{order['id']}", headers=customer.auth)).json()[
        "status"
    ] == "confirmed"
    missing = await client.get("/v1/orders/999999999/candidates", headers=dispatcher.auth)
    assert missing.status_code == 404
    for sock in (ws_near, ws_far):
        await sock.close()


async def test_pages_are_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    """Both pages and their assets come from this server; the pages forbid other origins and referrers."""
    for path in ("/track/12", "/console?city=x"):
        r = await client.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "http" not in r.text  # nothing from another host
    r = await client.get("/track/abc")
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "order_id"
    for asset in ("track.js", "console.js", "common.js", "vendor/leaflet/leaflet.js"):
        r = await client.get(f"/static/{asset}")
        assert r.status_code == 200, asset
    missing = await client.get("/static/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "no_such_route"

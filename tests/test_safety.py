"""Safety alerts end to end on the live server: SOS from the worker's socket, the
worker's app and the customer's order page reaches the dispatcher feed; acknowledging
and resolving; escalation; emergency contacts and their live link; trail anomalies
from the live fixes; bad input as clear 4xx."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from doorstep.stores import Stores
from privacy.crypto import reveal
from safety import store as safety_store
from safety.service import SafetyDesk
from tests.helpers import Account, MakeUser, new_phone
from tests.live import DEST, book, next_of, online, recv, send_acked, worker_profile


async def _feed(address: str, city: str, staff: Account) -> ClientConnection:
    ws = await connect(f"ws://{address}/v1/ws/cities/{city}/feed", additional_headers=staff.auth)
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return ws


async def _safety_alert(ws: ClientConnection, event: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        frame = await next_of(ws, "safety_alert", max(0.1, deadline - time.monotonic()))
        if frame["event"] == event:
            return frame


async def test_an_sos_over_the_worker_socket_reaches_the_console_at_once(
    live_app: tuple[str, Any], make_user: MakeUser, stores: Stores, live_city: str
) -> None:
    """A worker's fix then an `sos` frame: the socket answers sos_result, and the city's feed gets a safety_alert with the live position and trail."""
    address = live_app[0]
    dispatcher = await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    feed = await _feed(address, live_city, dispatcher)
    ws = await online(address, worker, DEST)
    await ws.send(orjson.dumps({"type": "sos", "note": "有危险"}).decode())
    result = await next_of(ws, "sos_result")
    assert result["ok"] is True, result
    assert result["repeat"] is False
    frame = await _safety_alert(feed, "raised")
    alert = frame["alert"]
    assert (alert["id"], alert["kind"], alert["subject_id"]) == (
        result["alert_id"],
        "sos",
        worker.id,
    )
    assert (round(alert["lat"], 4), round(alert["lng"], 4)) == DEST
    assert alert["source"] == "worker_socket"
    assert alert["message"] == "有危险"
    assert frame["trail"], "the trail comes with the alert"
    await ws.close()
    await feed.close()


async def test_an_sos_flood_is_one_alert_and_never_dropped(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
) -> None:
    """Sixty SOS frames at once (over the socket's 50 frames/s) are all answered, as repeats of one alert; the HTTP SOS then repeats the same alert."""
    address = live_app[0]
    worker = await worker_profile(stores, make_user, live_city)
    ws = await online(address, worker, DEST)
    for _ in range(60):
        await ws.send(orjson.dumps({"type": "sos"}).decode())
    results = [await next_of(ws, "sos_result", 20) for _ in range(60)]
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:1]
    assert len({r["alert_id"] for r in results}) == 1
    assert [r["repeat"] for r in results].count(False) == 1
    r = await client.post("/v1/sos", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    assert (r.json()["alert_id"], r.json()["repeat"], r.json()["repeats"]) == (
        results[0]["alert_id"],
        True,
        60,
    )
    await ws.close()


async def test_only_dispatchers_and_admins_acknowledge_and_resolve(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, live_city: str
) -> None:
    """A worker's or customer's acknowledgement is 403; a dispatcher's is 200 once, then 409; resolving closes it, a second resolve is 409; an unknown alert is 404."""
    worker = await worker_profile(stores, make_user, live_city)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await client.post("/v1/sos", headers=worker.auth, json={"lat": 22.53, "lng": 114.01})
    alert_id = r.json()["alert_id"]
    for who in (worker, customer):
        r = await client.post(f"/v1/safety/alerts/{alert_id}/ack", headers=who.auth)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    r = await client.get(
        "/v1/safety/alerts", headers=dispatcher.auth, params={"city_id": live_city}
    )
    assert alert_id in [a["id"] for a in r.json()]
    r = await client.post(f"/v1/safety/alerts/{alert_id}/ack", headers=dispatcher.auth)
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == dispatcher.id
    r = await client.post(f"/v1/safety/alerts/{alert_id}/ack", headers=dispatcher.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_handled")
    r = await client.post(
        f"/v1/safety/alerts/{alert_id}/resolve",
        headers=dispatcher.auth,
        json={"resolution": "called the worker: safe"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "called the worker: safe"
    r = await client.post(
        f"/v1/safety/alerts/{alert_id}/resolve", headers=dispatcher.auth, json={"resolution": "x"}
    )
    assert r.status_code == 409
    r = await client.post("/v1/safety/alerts/999999999/ack", headers=dispatcher.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (404, "alert_id")
    # A new SOS after the resolution is a new alert.
    r = await client.post("/v1/sos", headers=worker.auth, json={})
    assert r.json()["alert_id"] != alert_id


async def test_bad_sos_input_is_a_clear_4xx(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """An SOS for someone else's order is 404 naming order_id; a customer's without an order is 422 naming it; lat without lng is 422 naming lng; a dispatcher may not raise one."""
    owner, other = await make_user("customer"), await make_user("customer")
    order = await book(client, owner, instant_service)
    r = await client.post("/v1/sos", headers=other.auth, json={"order_id": order["id"]})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["field"]) == (
        404,
        "order_not_found",
        "order_id",
    )
    r = await client.post("/v1/sos", headers=other.auth, json={})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "order_id")
    r = await client.post(
        "/v1/sos", headers=owner.auth, json={"order_id": order["id"], "lat": 22.5}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "lng")
    r = await client.post(
        "/v1/sos", headers=owner.auth, json={"order_id": order["id"], "lat": 99.0, "lng": 114.0}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "lat")
    dispatcher = await make_user("dispatcher")
    r = await client.post("/v1/sos", headers=dispatcher.auth, json={})
    assert r.status_code == 403


async def test_a_customer_sos_tells_the_emergency_contacts_with_a_live_link(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """The customer's contacts get an SMS with a live link; the link shows the alert's position; a forged or other alert's token is 401; bad contacts are 422 naming the field."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await client.put(
        "/v1/me/emergency-contacts",
        headers=customer.auth,
        json={"contacts": [{"name": "妈妈", "phone": "12345"}]},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "contacts[0].phone")
    mum, dad = new_phone(), new_phone()
    r = await client.put(
        "/v1/me/emergency-contacts",
        headers=customer.auth,
        json={"contacts": [{"name": "妈妈", "phone": mum}, {"name": "爸爸", "phone": dad}]},
    )
    assert r.status_code == 200, r.text
    r = await client.get("/v1/me/emergency-contacts", headers=customer.auth)
    assert [c["name"] for c in r.json()] == ["妈妈", "爸爸"]
    order = await book(client, customer, instant_service)
    feed = await _feed(live_app[0], live_city, dispatcher)
    r = await client.post(
        "/v1/sos", headers=customer.auth, json={"order_id": order["id"], "note": "师傅行为异常"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contacts_told"] == 2
    frame = await _safety_alert(feed, "raised")
    assert frame["alert"]["subject_role"] == "customer"
    assert frame["alert"]["order_id"] == order["id"]
    await feed.close()
    rows = await stores.pool.fetch(
        "SELECT phone, template_code, params FROM sms_messages WHERE key LIKE $1 ORDER BY phone",
        f"sos:{body['alert_id']}:contact:%",
    )
    assert sorted(reveal("sms_messages.phone", r["phone"]) for r in rows) == sorted([mum, dad])
    assert {r["template_code"] for r in rows} == {"DS_SOS_CONTACT_ZH"}
    link = rows[0]["params"]["link"]
    parts = urlsplit(link)
    assert parts.path == f"/sos/{body['alert_id']}"
    token = parse_qs(parts.query)["t"][0]
    r = await client.get(f"/v1/safety/alerts/{body['alert_id']}/live", params={"t": token})
    assert r.status_code == 200, r.text
    assert r.json()["open"] is True
    assert round(r.json()["position"]["lat"], 4) == round(order["lat"], 4)
    r = await client.get(f"/v1/safety/alerts/{body['alert_id'] + 1}/live", params={"t": token})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_sos_link")
    r = await client.get(f"/v1/safety/alerts/{body['alert_id']}/live", params={"t": "forged"})
    assert r.status_code == 401
    r = await client.get(f"/sos/{body['alert_id']}", params={"t": token})
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]


async def test_an_unacknowledged_sos_escalates_until_acknowledged(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
) -> None:
    """An SOS defers its escalation job; run unacknowledged, it tells a dispatcher by inbox and SMS and plans the next round; after the acknowledgement it does nothing and the waiting job is gone."""
    worker = await worker_profile(stores, make_user, live_city)
    dispatcher = await make_user("dispatcher")
    r = await client.post("/v1/sos", headers=worker.auth, json={"lat": 22.53, "lng": 114.01})
    alert_id = r.json()["alert_id"]
    lock = f"sos-escalate:{alert_id}"

    async def waiting() -> int:
        return int(
            await stores.pool.fetchval(
                "SELECT count(*) FROM procrastinate_jobs WHERE queueing_lock = $1 "
                "AND status = 'todo' AND task_name = 'safety:escalate'",
                lock,
            )
        )

    assert await waiting() == 1
    desk: SafetyDesk = live_app[1].state.safety
    later = datetime.now(UTC) + timedelta(seconds=61)
    # The job's own run would also find it due; here it is run by hand, as the job does.
    await stores.pool.execute(
        "DELETE FROM procrastinate_jobs WHERE queueing_lock = $1 AND status = 'todo'", lock
    )
    escalated = await desk.escalate(alert_id, now=later)
    assert escalated is not None
    assert escalated.escalations == 1
    inbox = await stores.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'sos_escalated'",
        dispatcher.id,
    )
    sms = await stores.pool.fetchval(
        "SELECT template_code FROM sms_messages WHERE key = $1",
        f"sos:{alert_id}:esc:1:{dispatcher.id}:sms",
    )
    if inbox == 0:  # more than 20 staff in this run's database: the first 20 are told
        told = await safety_store.staff_to_tell(stores.pool)
        assert len(told) == 20
        assert dispatcher.id not in told
    else:
        assert sms == "DS_SOS_ESCALATED_ZH"
    assert await waiting() == 1  # the next round
    r = await client.post(f"/v1/safety/alerts/{alert_id}/ack", headers=dispatcher.auth)
    assert r.status_code == 200
    assert await waiting() == 0
    assert await desk.escalate(alert_id, now=later + timedelta(seconds=120)) is None


async def test_leaving_the_job_address_raises_an_alert_from_the_live_fixes(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A worker on site whose fixes move 1 km from the address: a left_site alert on the console (the detector's delay set to 0 for the test)."""
    app = live_app[1]
    address = live_app[0]
    watch = app.state.trail_watch
    params = watch.params
    watch.params = replace(params, leave_after_s=0.0)
    try:
        customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
        worker = await worker_profile(stores, make_user, live_city)
        feed = await _feed(address, live_city, dispatcher)
        ws = await online(address, worker, DEST)
        order = await book(client, customer, instant_service)
        r = await client.post(
            f"/v1/orders/{order['id']}/assign",
            headers=dispatcher.auth,
            json={"worker_id": worker.id, "reason": "test", "force": True},
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
        assert r.status_code == 200, r.text
        tracking = app.state.tracking
        for _ in range(200):  # the order's event reaches tracking through the relay
            job = tracking.active_job(worker.id)
            if job is not None and job.info.status == "arrived":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("tracking never saw the order arrived")
        now = int(time.time() * 1000)
        away = (DEST[0] + 0.009, DEST[1])  # 1 km north, 25 s later (40 m/s: not a GPS jump)
        fixes = [
            {"seq": now, "ts_ms": now, "lat": DEST[0], "lng": DEST[1]},
            {"seq": now + 1, "ts_ms": now + 25_000, "lat": away[0], "lng": away[1]},
        ]
        for f in fixes:
            ack = await send_acked(ws, {"type": "fix", "accuracy_m": 8.0, "ack": True, **f})
            assert ack["rejected"] == [], ack
        frame = await _safety_alert(feed, "raised")
        assert (frame["alert"]["kind"], frame["alert"]["order_id"]) == ("left_site", order["id"])
        r = await client.get(
            "/v1/safety/alerts", headers=dispatcher.auth, params={"city_id": live_city}
        )
        assert frame["alert"]["id"] in [a["id"] for a in r.json()]
        await ws.close()
        await feed.close()
    finally:
        watch.params = params


async def test_admins_read_the_address_reveals_and_verify_the_audit_chain(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """A worker reading their job's address is a reveal an admin lists (by order, by worker) and an audit entry; the chain verifies; a dispatcher may not read reveals (403); a bad filter is 422 naming it."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/orders/{order['id']}", headers=worker.auth)
    assert r.status_code == 200, r.text
    r = await client.get("/v1/admin/reveals", headers=admin.auth, params={"order_id": order["id"]})
    assert r.status_code == 200, r.text
    [reveal] = r.json()
    assert (reveal["worker_id"], reveal["customer_id"], reveal["what"]) == (
        worker.id,
        customer.id,
        "address,phone",
    )
    r = await client.get("/v1/admin/reveals", headers=admin.auth, params={"worker_id": worker.id})
    assert [x["id"] for x in r.json()] == [reveal["id"]]
    r = await client.get(
        "/v1/admin/audit", headers=admin.auth, params={"subject": f"order:{order['id']}"}
    )
    assert [e["action"] for e in r.json()] == ["reveal.contact", "override.assign"]
    r = await client.get("/v1/admin/audit/verify", headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    assert r.json()["checked"] >= 2
    r = await client.get("/v1/admin/reveals", headers=dispatcher.auth)
    assert r.status_code == 403
    r = await client.get("/v1/admin/reveals", headers=admin.auth, params={"order_id": "x"})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "order_id")


async def test_the_sweep_restores_the_follow_ups_of_an_sos(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
) -> None:
    """An SOS whose escalation job and contacts' SMS were lost (as if the process died right after the alert's commit) gets both from the periodic sweep, once."""
    worker = await worker_profile(stores, make_user, live_city)
    contact = new_phone()
    r = await client.put(
        "/v1/me/emergency-contacts",
        headers=worker.auth,
        json={"contacts": [{"name": "老婆", "phone": contact}]},
    )
    assert r.status_code == 200, r.text
    r = await client.post("/v1/sos", headers=worker.auth, json={"lat": 22.53, "lng": 114.01})
    alert_id = r.json()["alert_id"]
    lock = f"sos-escalate:{alert_id}"
    # The follow-ups lost: no job, no SMS.
    await stores.pool.execute("DELETE FROM procrastinate_jobs WHERE queueing_lock = $1", lock)
    await stores.pool.execute("DELETE FROM sms_messages WHERE key LIKE $1", f"sos:{alert_id}:%")
    desk: SafetyDesk = live_app[1].state.safety
    raised = await stores.pool.fetchval(
        "SELECT raised_at FROM safety_alerts WHERE id = $1", alert_id
    )
    assert await desk.sweep(raised + timedelta(seconds=30)) == 0  # not due yet
    later = raised + timedelta(seconds=desk.params.ack_within_s + 61)
    assert await desk.sweep(later) >= 1
    await desk.sweep(later)  # again: nothing twice

    jobs = await stores.pool.fetchval(
        "SELECT count(*) FROM procrastinate_jobs WHERE queueing_lock = $1 AND status = 'todo'",
        lock,
    )
    sms = await stores.pool.fetch(
        "SELECT phone FROM sms_messages WHERE key LIKE $1", f"sos:{alert_id}:contact:%"
    )
    assert (jobs, [reveal("sms_messages.phone", r["phone"]) for r in sms]) == (1, [contact])

"""Notifications: the inbox and SMS driven by order and account events, preferences,
quiet hours, redelivery, offers to offline workers, reminders, the sandbox gateway and
its receipts (real PostgreSQL, Redis, job worker and a real local gateway server)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from dispatch import store as dispatch_store
from dispatch.offers import OfferParams, make_offers
from doorstep.stores import Stores
from events import store as events_store
from notifications import store as notifications_store
from notifications.service import Notifier
from notifications.signing import receipt_signature
from notifications.sms import AliyunLikeSms, GatewayConfig, SmsFailed
from privacy.crypto import blind, reveal
from tests.helpers import Account, MakeUser
from tests.live import DEST, book, online, recv, worker_profile
from tests.planning import book_window, planned_worker, tomorrow_at
from tests.test_crew_booking import crew_service

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def _settle(app: Any) -> None:
    """Every event committed so far handed to every consumer."""
    await app.state.relay.drain(timeout_s=30)


async def _until(check: Any, timeout_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (the job worker runs beside us)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def _kinds(stores: Stores, user_id: int) -> list[str]:
    rows = await stores.pool.fetch(
        "SELECT kind FROM notifications WHERE user_id = $1 ORDER BY id", user_id
    )
    return [r["kind"] for r in rows]


async def _outbox(stores: Stores, phone: str) -> list[dict[str, Any]]:
    rows = await stores.pool.fetch(
        "SELECT template_code, params, text FROM sms_sandbox_outbox WHERE phone = $1 "
        "ORDER BY received_at",
        phone,
    )
    return [dict(r) for r in rows]


async def _assign(
    client: httpx.AsyncClient, dispatcher: Account, order_id: int, worker_id: int
) -> None:
    r = await client.post(
        f"/v1/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker_id, "reason": "nearest", "force": True},
    )
    assert r.status_code == 200, r.text


async def _act(
    client: httpx.AsyncClient,
    who: Account,
    order_id: int,
    action: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    r = await client.post(f"/v1/orders/{order_id}/{action}", headers=who.auth, json=body or {})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _settings(
    client: httpx.AsyncClient, who: Account, body: dict[str, Any]
) -> dict[str, Any]:
    r = await client.put("/v1/me/notification-settings", headers=who.auth, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_an_orders_life_reaches_the_customers_inbox_and_phone(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """Booking to completion fills the customer's inbox in Chinese, and the assigned, departed and arrived SMS reach the sandbox gateway and come back delivered."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    oid = order["id"]
    await _assign(client, dispatcher, oid, worker.id)
    await _act(client, worker, oid, "depart")
    await _act(client, worker, oid, "arrive")
    await _act(client, worker, oid, "start", {"start_code": order["start_code"]})
    await _act(client, worker, oid, "complete")
    await _settle(live_app[1])
    kinds = await _kinds(stores, customer.id)
    assert [k for k in kinds if k.startswith("order_")] == [
        "order_booked",
        "order_assigned",
        "order_departed",
        "order_arrived",
        "order_started",
        "order_completed",
    ]
    assert "job_assigned" in await _kinds(stores, worker.id)
    r = await client.get("/v1/me/inbox", headers=customer.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["items"][0]["title"] == "服务已完成"
    assert body["unread"] == len(kinds)

    async def delivered() -> list[dict[str, Any]]:
        rows = await stores.pool.fetch(
            "SELECT template_code, status FROM sms_messages WHERE phone_bidx = $1 ORDER BY id",
            blind("phone", customer.phone),
        )
        return [dict(r) for r in rows] if all(r["status"] == "delivered" for r in rows) else []

    sms = await _until(delivered)
    assert [s["template_code"] for s in sms] == [
        "DS_ORDER_ASSIGNED_ZH",
        "DS_ORDER_DEPARTED_ZH",
        "DS_ORDER_ARRIVED_ZH",
    ]
    sent = await _outbox(stores, customer.phone)
    assert [s["template_code"] for s in sent] == [s["template_code"] for s in sms]
    assert sent[0]["text"].startswith("【到家服务】张师傅将于")
    assert sent[0]["params"]["order_id"] == str(oid)


async def test_english_preference_and_sms_off(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """A user who chose English gets English texts and English templates; one who turned order SMS off gets the inbox item and no SMS."""
    english, quiet = await make_user("customer"), await make_user("customer")
    dispatcher = await make_user("dispatcher")
    got = await _settings(client, english, {"language": "en"})
    assert got["language"] == "en"
    assert got["sms"]["order"] is True
    got = await _settings(client, quiet, {"sms": {"order": False}})
    assert got["sms"]["order"] is False
    assert got["language"] == "zh"
    for who in (english, quiet):
        order = await book(client, who, instant_service)
        worker = await worker_profile(stores, make_user, live_city)
        await _assign(client, dispatcher, order["id"], worker.id)
    await _settle(live_app[1])
    r = await client.get("/v1/me/inbox", headers=english.auth)
    assert r.json()["items"][0]["title"] == "Your pro is assigned"
    codes = await stores.pool.fetch(
        "SELECT phone, template_code FROM sms_messages WHERE phone_bidx = ANY($1::bytea[])",
        [blind("phone", english.phone), blind("phone", quiet.phone)],
    )
    assert [(reveal("sms_messages.phone", c["phone"]), c["template_code"]) for c in codes] == [
        (english.phone, "DS_ORDER_ASSIGNED_EN")
    ]
    assert "order_assigned" in await _kinds(stores, quiet.id)


async def test_quiet_hours_hold_an_sms_until_they_end(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """During the user's quiet hours the inbox gets the item at once and the SMS waits as a job due when the quiet hours end."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    local = datetime.now(SHANGHAI)
    start = (local - timedelta(hours=1)).strftime("%H:%M")
    end_at = (local + timedelta(hours=2)).replace(second=0, microsecond=0)
    await _settings(
        client, customer, {"quiet_hours": {"start": start, "end": end_at.strftime("%H:%M")}}
    )
    order = await book(client, customer, instant_service)
    await _assign(client, dispatcher, order["id"], worker.id)
    await _settle(live_app[1])
    assert "order_assigned" in await _kinds(stores, customer.id)
    row = await stores.pool.fetchrow(
        "SELECT m.status, m.not_before, j.status::text AS job, j.scheduled_at FROM sms_messages m "
        "JOIN procrastinate_jobs j ON j.queueing_lock = 'sms:' || m.id WHERE m.phone_bidx = $1",
        blind("phone", customer.phone),
    )
    assert row is not None
    assert row["not_before"] == end_at.astimezone(UTC)
    assert (row["status"], row["job"], row["scheduled_at"]) == ("queued", "todo", end_at)
    assert await _outbox(stores, customer.phone) == []


async def test_a_redelivered_event_adds_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """Handing the same order.assigned event to the notifications consumer three more times (as a redelivery after a crash would) leaves one inbox item per recipient, one SMS sent once and no new job."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    await _assign(client, dispatcher, order["id"], worker.id)
    app = live_app[1]
    await _settle(app)
    event_id = await stores.pool.fetchval(
        "SELECT id FROM events WHERE aggregate = $1 AND type = 'order.assigned'",
        f"order:{order['id']}",
    )
    event = (await events_store.by_ids(stores.pool, [event_id]))[event_id]

    async def counts() -> tuple[int, int, int, int]:
        notes = await stores.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE event_id = $1", event_id
        )
        sms = await stores.pool.fetchval(
            "SELECT count(*) FROM sms_messages WHERE key LIKE $1", f"ev:{event_id}:%"
        )
        waiting = await stores.pool.fetchval(
            "SELECT count(*) FROM procrastinate_jobs j JOIN sms_messages m "
            "ON j.args->>'message_id' = m.id::text WHERE m.key LIKE $1 AND j.status = 'todo'",
            f"ev:{event_id}:%",
        )
        sent = await stores.pool.fetchval(
            "SELECT count(*) FROM sms_sandbox_outbox o JOIN sms_messages m "
            "ON o.out_id = m.id::text WHERE m.key LIKE $1",
            f"ev:{event_id}:%",
        )
        return int(notes), int(sms), int(waiting), int(sent)

    async def delivered() -> bool:
        return bool(
            await stores.pool.fetchval(
                "SELECT bool_and(status = 'delivered') FROM sms_messages WHERE key LIKE $1",
                f"ev:{event_id}:%",
            )
        )

    assert await _until(delivered)
    before = await counts()
    assert before == (2, 1, 0, 1)  # customer + worker in the inbox; the customer's SMS, sent
    notifier: Notifier = app.state.notifier
    for _ in range(3):
        async with stores.pool.acquire() as conn, conn.transaction():
            await notifier.handle(conn, event)
    assert await counts() == before


async def test_the_inbox_api_and_the_live_socket(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    instant_service: str,
) -> None:
    """/v1/ws/me starts with the unread count and pushes a new item; the inbox pages, counts unread, marks one and all read, and hides other users' items."""
    customer, other = await make_user("customer"), await make_user("customer")
    await _settle(live_app[1])
    async with connect(f"ws://{live_app[0]}/v1/ws/me", additional_headers=customer.auth) as ws:
        first = await recv(ws)
        assert first["type"] == "inbox"
        order = await book(client, customer, instant_service)
        pushed = await recv(ws)
        assert pushed["type"] == "notification"
        assert pushed["notification"]["kind"] == "order_booked"
        assert pushed["notification"]["order_id"] == order["id"]
        assert pushed["notification"]["title"] == "预约已提交"
    r = await client.get("/v1/me/inbox/unread", headers=customer.auth)
    unread = r.json()["unread"]
    assert unread == first["unread"] + 1
    note_id = pushed["notification"]["id"]
    r = await client.post(f"/v1/me/inbox/{note_id}/read", headers=other.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "notification_not_found")
    r = await client.post(f"/v1/me/inbox/{note_id}/read", headers=customer.auth)
    assert r.status_code == 200
    assert r.json()["read_at"] is not None
    page = (await client.get("/v1/me/inbox", headers=customer.auth, params={"limit": 1})).json()
    assert page["unread"] == unread - 1
    assert len(page["items"]) == 1
    older = (
        await client.get(
            "/v1/me/inbox", headers=customer.auth, params={"before_id": page["items"][0]["id"]}
        )
    ).json()
    assert all(i["id"] < page["items"][0]["id"] for i in older["items"])
    r = await client.post("/v1/me/inbox/read-all", headers=customer.auth)
    assert r.json() == {"unread": 0}
    assert (await client.get("/v1/me/inbox", headers=other.auth)).json()["items"] == [
        i
        for i in (await client.get("/v1/me/inbox", headers=other.auth)).json()["items"]
        if i["kind"] == "welcome"
    ]


async def test_a_new_account_is_welcomed(
    make_user: MakeUser, stores: Stores, live_app: tuple[str, Any]
) -> None:
    """account.created, written with the account, puts a welcome in the new user's inbox."""
    customer = await make_user("customer")
    await _settle(live_app[1])
    assert await _kinds(stores, customer.id) == ["welcome"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"language": "fr"}, "language"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours"),
        ({"sms": {"marketing": True}}, "sms.marketing"),
    ],
)
async def test_bad_settings_are_refused_by_field(
    client: httpx.AsyncClient, make_user: MakeUser, body: dict[str, Any], field: str
) -> None:
    """A bad language, time zone, quiet hour or SMS category is a 4xx naming the field."""
    customer = await make_user("customer")
    r = await client.put("/v1/me/notification-settings", headers=customer.auth, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["field"] == field


async def test_an_offer_reaches_an_offline_worker_by_sms_only(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """An offer to a worker whose socket is closed goes out by SMS (once per offer); a worker with an open socket gets none."""
    customer = await make_user("customer")
    away = await worker_profile(stores, make_user, live_city)
    here = await worker_profile(stores, make_user, live_city)
    app = live_app[1]
    ws = await online(live_app[0], here, DEST)
    try:
        order = await book(client, customer, instant_service)
        current = await dispatch_store.get(stores.pool, order["id"])
        assert current is not None
        made = await make_offers(
            stores,
            app.state.tracking,
            current,
            [(away.id, None, None), (here.id, None, None)],
            mode="grab",
            params=OfferParams(),
            now=datetime.now(UTC),
        )
        assert len(made) == 2
        await _settle(app)
    finally:
        await ws.close()
    rows = await stores.pool.fetch(
        "SELECT user_id, template_code, key FROM sms_messages WHERE key LIKE 'offer:%' "
        "AND user_id = ANY($1::bigint[])",
        [away.id, here.id],
    )
    assert [(r["user_id"], r["template_code"]) for r in rows] == [(away.id, "DS_OFFER_ZH")]
    assert rows[0]["key"] == f"offer:{next(o.id for o in made if o.worker_id == away.id)}:sms"
    sent = await _until(lambda: _outbox(stores, away.phone))
    assert sent[0]["template_code"] == "DS_OFFER_ZH"


async def _reminder_jobs(stores: Stores, order_id: int) -> list[tuple[str, str, datetime]]:
    rows = await stores.pool.fetch(
        "SELECT args->>'which' AS which, status::text AS status, scheduled_at "
        "FROM procrastinate_jobs WHERE task_name = 'notifications:remind' "
        "AND (args->>'order_id')::bigint = $1 ORDER BY id",
        order_id,
    )
    return [(r["which"], r["status"], r["scheduled_at"]) for r in rows]


async def test_reminders_are_placed_moved_and_removed(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """A scheduled booking defers the evening-before and hour-before reminders; a reschedule cancels them and defers new ones; a cancel removes them."""
    customer = await make_user("customer")
    day = (datetime.now(SHANGHAI) + timedelta(days=3)).date()
    start = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI)
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": DEST[0],
            "lng": DEST[1],
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    await _settle(live_app[1])
    eve = datetime(day.year, day.month, day.day, 20, 0, tzinfo=SHANGHAI) - timedelta(days=1)
    assert await _reminder_jobs(stores, order["id"]) == [
        ("eve", "todo", eve),
        ("hour", "todo", start - timedelta(hours=1)),
    ]
    later = start + timedelta(days=1)
    r = await client.post(
        f"/v1/orders/{order['id']}/reschedule",
        headers=customer.auth,
        json={
            "window_start": later.isoformat(),
            "window_end": (later + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    await _settle(live_app[1])
    assert await _reminder_jobs(stores, order["id"]) == [
        ("eve", "cancelled", eve),
        ("hour", "cancelled", start - timedelta(hours=1)),
        ("eve", "todo", eve + timedelta(days=1)),
        ("hour", "todo", later - timedelta(hours=1)),
    ]
    r = await client.post(
        f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={"reason": "away"}
    )
    assert r.status_code == 200, r.text
    await _settle(live_app[1])
    assert [s for _, s, _ in await _reminder_jobs(stores, order["id"])] == ["cancelled"] * 4


async def test_a_reminder_tells_the_customer_once_and_not_after_a_move(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    instant_service: str,
) -> None:
    """The reminder job puts a reminder in the inbox and queues its SMS, once however often it runs; a job for a window the order left does nothing."""
    customer = await make_user("customer")
    day = (datetime.now(SHANGHAI) + timedelta(days=2)).date()
    start = datetime(day.year, day.month, day.day, 15, 0, tzinfo=SHANGHAI)
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": DEST[0],
            "lng": DEST[1],
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    order = r.json()
    notifier: Notifier = live_app[1].state.notifier
    now = datetime.now(UTC)
    assert await notifier.remind(order["id"], "hour", start, now=now) == 1
    assert await notifier.remind(order["id"], "hour", start, now=now) == 0
    assert await notifier.remind(order["id"], "eve", start + timedelta(hours=1), now=now) == 0
    await _settle(live_app[1])
    assert (await _kinds(stores, customer.id)).count("reminder_hour") == 1
    code = await stores.pool.fetchval(
        "SELECT template_code FROM sms_messages WHERE phone_bidx = $1 AND key LIKE 'rem:%'",
        blind("phone", customer.phone),
    )
    assert code == "DS_REMINDER_ZH"
    page = (await client.get("/v1/me/inbox", headers=customer.auth)).json()
    reminder = next(i for i in page["items"] if i["kind"] == "reminder_hour")
    assert "15:00" in reminder["body"]


async def test_every_crew_member_is_told_and_a_replaced_one_is_told_they_left(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    admin: Account,
) -> None:
    """A crew assignment tells every member job_assigned; replacing one tells the newcomer crew_joined and the one leaving crew_left (inbox and SMS), not the customer; a reminder reaches the customer and the crew holding the order."""
    service = await crew_service(client, admin, 2)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    crew = [await planned_worker(stores, client, live_city, DEST) for _ in "abc"]
    lead, second, newcomer = crew
    start = tomorrow_at("10:00")
    r = await book_window(client, customer, service, DEST, start.date(), "10:00", "12:00")
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    r = await client.post(
        f"/v1/orders/{oid}/crew/assign",
        headers=dispatcher.auth,
        json={"worker_ids": [lead.id, second.id], "reason": "顾客指定班组", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/orders/{oid}/crew/replace",
        headers=dispatcher.auth,
        json={
            "out_worker_id": second.id,
            "in_worker_id": newcomer.id,
            "reason": "师傅生病",
            "force": True,
        },
    )
    assert r.status_code == 200, r.text
    await _settle(live_app[1])

    async def told(who: Account) -> list[str]:
        return [k for k in await _kinds(stores, who.id) if k != "welcome"]

    assert await told(lead) == ["job_assigned"]
    assert await told(second) == ["job_assigned", "crew_left"]
    assert await told(newcomer) == ["crew_joined"]
    assert await told(customer) == ["order_booked", "order_assigned"]
    left = await stores.pool.fetchval(
        "SELECT template_code FROM sms_messages WHERE phone_bidx = $1 AND key LIKE 'ev:%'",
        blind("phone", second.phone),
    )
    assert left == "DS_CREW_LEFT_ZH"
    notifier: Notifier = live_app[1].state.notifier
    assert await notifier.remind(oid, "hour", start, now=datetime.now(UTC)) == 3
    for who in (customer, lead, newcomer):
        assert (await _kinds(stores, who.id)).count("reminder_hour") == 1
    assert "reminder_hour" not in await _kinds(stores, second.id)


# ---- the sandbox gateway ------------------------------------------------------------------


def _gateway(app: Any) -> GatewayConfig:
    config: GatewayConfig = app.state.sms.config
    return config


async def test_the_sandbox_checks_signatures_nonces_and_templates(
    live_app: tuple[str, Any],
) -> None:
    """The sandbox refuses a wrong signature, a reused nonce, an unknown template and bad parameters, with the gateway's error codes."""
    config = _gateway(live_app[1])
    sms = AliyunLikeSms(config)
    try:
        fields = sms.signed("14700000001", "DS_LOGIN_CODE_ZH", {"code": "123456"}, "t-1")
        async with httpx.AsyncClient() as http:
            forged = dict(fields, Signature="AAAA")
            r = await http.post(config.url, data=forged)
            assert r.json()["Code"] == "SignatureDoesNotMatch"
            r = await http.post(config.url, data=fields)
            assert r.json()["Code"] == "OK"
            r = await http.post(config.url, data=fields)
            assert r.json()["Code"] == "SignatureNonceUsed"
        for template, params, code in [
            ("NO_SUCH", {"code": "1"}, "isv.SMS_TEMPLATE_ILLEGAL"),
            ("DS_LOGIN_CODE_ZH", {"pin": "1"}, "isv.TEMPLATE_PARAMS_ILLEGAL"),
        ]:
            with pytest.raises(SmsFailed) as info:
                await sms.send(
                    phone="14700000001", template_code=template, params=params, out_id="t-2"
                )
            assert (info.value.code, info.value.retryable) == (code, False)
        wrong_key = AliyunLikeSms(GatewayConfig(config.url, config.key_id, "not-the-secret", "x"))
        with pytest.raises(SmsFailed) as info:
            await wrong_key.send(
                phone="14700000001",
                template_code="DS_LOGIN_CODE_ZH",
                params={"code": "1"},
                out_id="t-3",
            )
        assert info.value.code == "SignatureDoesNotMatch"
        await wrong_key.close()
    finally:
        await sms.close()


async def test_the_sandbox_is_idempotent_by_out_id_and_limits_each_phone(
    live_app: tuple[str, Any], stores: Stores
) -> None:
    """A retried request (same OutId) is sent once with the same BizId; past the per-phone limit the gateway answers BUSINESS_LIMIT_CONTROL, which is worth retrying."""
    config = _gateway(live_app[1])
    limit = live_app[1].state.sms_sandbox.gateway.config.per_minute
    sms = AliyunLikeSms(config)
    phone = f"1470{int(time.time() * 1000) % 10**7:07d}"
    try:
        first = await sms.send(
            phone=phone,
            template_code="DS_LOGIN_CODE_ZH",
            params={"code": "111111"},
            out_id=f"{phone}-0",
        )
        again = await sms.send(
            phone=phone,
            template_code="DS_LOGIN_CODE_ZH",
            params={"code": "111111"},
            out_id=f"{phone}-0",
        )
        assert first == again
        for i in range(1, limit):
            await sms.send(
                phone=phone,
                template_code="DS_LOGIN_CODE_ZH",
                params={"code": "1"},
                out_id=f"{phone}-{i}",
            )
        with pytest.raises(SmsFailed) as info:
            await sms.send(
                phone=phone,
                template_code="DS_LOGIN_CODE_ZH",
                params={"code": "1"},
                out_id=f"{phone}-x",
            )
        assert (info.value.code, info.value.retryable) == ("isv.BUSINESS_LIMIT_CONTROL", True)
    finally:
        await sms.close()
    assert len(await _outbox(stores, phone)) == limit


async def test_a_limited_sms_is_retried_by_its_job(
    live_app: tuple[str, Any], stores: Stores, make_user: MakeUser
) -> None:
    """When the gateway refuses for the per-phone limit, the sending job records the attempt and raises to be retried with backoff; the message stays queued."""
    customer = await make_user("customer")
    app = live_app[1]
    notifier: Notifier = app.state.notifier
    limit = app.state.sms_sandbox.gateway.config.per_minute
    sms = AliyunLikeSms(_gateway(app))
    try:
        for i in range(limit):
            await sms.send(
                phone=customer.phone,
                template_code="DS_LOGIN_CODE_ZH",
                params={"code": "1"},
                out_id=f"fill-{customer.id}-{i}",
            )
    finally:
        await sms.close()
    async with stores.pool.acquire() as conn, conn.transaction():
        message_id = await notifications_store.queue_sms(
            conn,
            key=f"test-limited:{customer.id}",
            user_id=customer.id,
            phone=customer.phone,
            template_code="DS_LOGIN_CODE_ZH",
            params={"code": "222222"},
            not_before=datetime.now(UTC) + timedelta(days=1),  # no job: the test runs it
        )
    assert message_id is not None
    with pytest.raises(SmsFailed):
        await notifier.send_sms(message_id, attempt=0, now=datetime.now(UTC))
    row = await stores.pool.fetchrow(
        "SELECT status, attempts, last_error FROM sms_messages WHERE id = $1", message_id
    )
    assert row is not None
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert row["last_error"].startswith("isv.BUSINESS_LIMIT_CONTROL")
    assert await notifier.send_sms(message_id, attempt=7, now=datetime.now(UTC)) == "failed"


async def test_receipts_are_verified_and_idempotent(
    client: httpx.AsyncClient, live_app: tuple[str, Any], stores: Stores, make_user: MakeUser
) -> None:
    """A receipt with a bad signature or an old timestamp is 401, one for no message of ours 409; a genuine one marks the message, and again changes nothing; a switched-off phone's SMS ends undelivered."""
    app = live_app[1]
    secret = _gateway(app).secret
    customer = await make_user("customer")
    phone = "1470000" + f"{customer.id % 10}" + "0000"[: 11 - 8]
    phone = phone[:7] + "0000"
    async with stores.pool.acquire() as conn, conn.transaction():
        message_id = await app.state.notifier.queue_sms(
            conn,
            key=f"test-receipt:{customer.id}",
            user_id=customer.id,
            phone=phone,
            template_code="DS_LOGIN_CODE_ZH",
            params={"code": "333333"},
            not_before=datetime.now(UTC),
        )

    async def status() -> str | None:
        value = await stores.pool.fetchval(
            "SELECT status FROM sms_messages WHERE id = $1", message_id
        )
        return value if value not in ("queued", "sent") else None

    assert await _until(status) == "undelivered"
    biz_id = await stores.pool.fetchval("SELECT biz_id FROM sms_messages WHERE id = $1", message_id)
    body = orjson.dumps([{"biz_id": biz_id, "out_id": str(message_id), "success": True}])
    now = int(time.time())

    async def post(data: bytes, ts: int, sig: str) -> httpx.Response:
        return await client.post(
            "/v1/sms/receipts",
            content=data,
            headers={
                "content-type": "application/json",
                "x-sms-timestamp": str(ts),
                "x-sms-signature": sig,
            },
        )

    r = await post(body, now, "0" * 64)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "bad_receipt_signature")
    r = await post(body, now - 3600, receipt_signature(secret, now - 3600, body))
    assert r.status_code == 401
    stranger = orjson.dumps([{"biz_id": "x", "out_id": "999999999999", "success": True}])
    r = await post(stranger, now, receipt_signature(secret, now, stranger))
    assert (r.status_code, r.json()["error"]["code"]) == (409, "unknown_receipt")
    r = await post(body, now, receipt_signature(secret, now, body))  # a late "delivered"
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert (
        await stores.pool.fetchval("SELECT status FROM sms_messages WHERE id = $1", message_id)
        == "undelivered"
    )


async def test_the_cli_lists_the_sandbox_outbox(
    live_app: tuple[str, Any], stores: Stores, make_user: MakeUser, tmp_path: Path
) -> None:
    """`doorstep sms-outbox` reads the running sandbox (its address from the data dir) and prints a line per message it sent to the phone."""
    import os
    import subprocess
    import sys

    customer = await make_user("customer")
    sms = AliyunLikeSms(_gateway(live_app[1]))
    try:
        await sms.send(
            phone=customer.phone,
            template_code="DS_LOGIN_CODE_ZH",
            params={"code": "424242"},
            out_id=f"cli-{customer.id}",
        )
    finally:
        await sms.close()
    # A data dir of its own holding this sandbox's address (other tests' apps share the
    # session's data dir and write theirs there).
    data = tmp_path / "data"
    data.mkdir()
    (data / "sms-sandbox.url").write_text(_gateway(live_app[1]).url + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DOORSTEP_DATA_DIR"] = str(data)
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "doorstep", "sms-outbox", "--phone", customer.phone],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if customer.phone in line]
    assert len(lines) == 1
    assert "DS_LOGIN_CODE_ZH" in lines[0]
    assert "您的登录验证码为424242" in lines[0]

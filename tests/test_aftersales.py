"""After-sales on real stores through the live server: tickets within the window, evidence,
the settlement hold, outcomes that move money (refunds through payments, compensation and
claims through the ledger) and book a redo, quality, disputes and their one audited ruling,
SLA escalation, spot checks, insurance, and bad input."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aftersales import rules
from aftersales.service import Aftersales
from audit import store as audit_store
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from payments.wechat_sandbox import WeChatSandbox
from quality import service as quality_service
from settlement import store as settlement_store
from settlement.service import Settlement
from tests import files_samples as s
from tests.helpers import Account, MakeUser
from tests.live import book, make_worker

NOW = datetime.now(UTC)


def _desk(live_app: tuple[str, Any]) -> Aftersales:
    found: Aftersales = live_app[1].state.aftersales
    return found


def _settlement(live_app: tuple[str, Any]) -> Settlement:
    found: Settlement = live_app[1].state.settlement
    return found


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Wait until ``check`` holds (notifications and jobs run beside the test)."""
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition never met")


async def _order(
    stores: Stores,
    city: str,
    service: str,
    customer: int,
    worker: int,
    *,
    price: int = 15000,
    completed_at: datetime | None = None,
    paid: bool = True,
) -> int:
    """A completed order (paid ``price`` as a ledger entry, as payments posts it)."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order_id = await conn.fetchval(
            "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
            "duration_min, price_minor, currency, worker_id, start_code, completed_at, "
            "en_route_at) VALUES ($1, $2, $3, 'instant', 'completed', 22.53, 114.01, 120, $4, "
            "'CNY', $5, '123456', $6, $7) RETURNING id",
            city,
            customer,
            service,
            price,
            worker,
            completed_at or NOW,
            (completed_at or NOW) - timedelta(hours=3),
        )
        if paid:
            await ledger.post(
                conn,
                Entry(
                    key=f"wechat:pay:AS{order_id}-{secrets.token_hex(3)}",
                    kind="payment.captured",
                    order_id=order_id,
                    lines=(
                        debit(lr.gateway("wechat"), price),
                        credit(lr.order_funds(order_id), price),
                    ),
                ),
            )
    return int(order_id)


async def _photo(
    client: httpx.AsyncClient, who: Account, purpose: str = "aftersales_evidence"
) -> int:
    data, kind = (
        (s.pdf(), "application/pdf") if purpose == "certificate" else (s.jpeg(), "image/jpeg")
    )
    r = await client.post(
        f"/v1/files?purpose={purpose}", content=data, headers=who.auth | {"content-type": kind}
    )
    assert r.status_code in (200, 201), r.text
    return int(r.json()["id"])


async def _open(
    client: httpx.AsyncClient, who: Account, order_id: int, kind: str = "refund", **more: Any
) -> dict[str, Any]:
    r = await client.post(
        f"/v1/orders/{order_id}/aftersales",
        headers=who.auth,
        json={"kind": kind, "description": "柜子背面没有擦", **more},
    )
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


def _items(found: Any) -> list[dict[str, Any]]:
    """The inbox's items (a list, or a page with ``items``)."""
    items: list[dict[str, Any]] = found if isinstance(found, list) else found.get("items", [])
    return items


async def _funds(stores: Stores, order_id: int) -> int:
    account = lr.order_funds(order_id)
    return lr.normal_balance(account, await ledger.balance(stores.pool, account))


@pytest.fixture
async def job(
    stores: Stores,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> dict[str, Any]:
    """A customer, a worker and a paid order completed now between them."""
    customer = await make_user("customer")
    worker = await make_worker(stores, client, live_city)
    order = await _order(stores, live_city, instant_service, customer.id, worker.id)
    return {"customer": customer, "worker": worker, "order": order, "city": live_city}


@pytest.fixture(scope="module")
async def dispatcher(make_user: MakeUser) -> Account:
    """Customer service, as the dispatcher base role."""
    return await make_user("dispatcher", name="客服")


async def test_an_open_ticket_holds_the_settlement_until_it_closes(
    client: httpx.AsyncClient,
    stores: Stores,
    live_app: tuple[str, Any],
    job: dict[str, Any],
    dispatcher: Account,
) -> None:
    """With a ticket open at T+N the order is not settled; rejecting it releases the hold and the next run settles."""
    svc = _settlement(live_app)
    order = job["order"]
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=NOW)
    pic = await _photo(client, job["customer"])
    t = await _open(client, job["customer"], order, photos=[pic], asked_fen=3000)
    tid = t["ticket"]["id"]
    assert t["settlement_held"] is True
    assert t["notes"][0]["photos"] == [pic]
    assert await stores.pool.fetchval("SELECT attached_to FROM files WHERE id = $1", pic) == (
        f"aftersales:{tid}"
    )
    due = NOW + timedelta(days=svc.params.after_sales_days)
    await svc.settle_due(due)
    status = await stores.pool.fetchval("SELECT status FROM settlements WHERE order_id = $1", order)
    assert status == "pending"
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/reject",
        headers=dispatcher.auth,
        json={"reason": "照片显示已清洁"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["ticket"]["status"], r.json()["settlement_held"]) == ("rejected", False)
    assert await settlement_store.holds(stores.pool, order) == []
    inbox = await client.get("/v1/me/inbox", headers=job["customer"].auth)
    assert any(f"#{tid}" in (m.get("title") or "") for m in _items(inbox.json()))
    await svc.settle_due(due)
    status = await stores.pool.fetchval("SELECT status FROM settlements WHERE order_id = $1", order)
    assert status == "settled"
    # The evidence photo is read by the ticket's worker, not by a stranger.
    assert (await client.get(f"/v1/files/{pic}", headers=job["worker"].auth)).status_code == 200


async def test_compensation_redo_and_quality_flow_on_in_one_transaction(
    client: httpx.AsyncClient,
    stores: Stores,
    job: dict[str, Any],
    dispatcher: Account,
) -> None:
    """Compensation is a balanced ledger entry to the customer; the redo is a free confirmed order the original worker is excluded from; the worker gets a complaint and a warning; all audited."""
    order, customer, worker = job["order"], job["customer"], job["worker"]
    t = await _open(client, customer, order, kind="redo")
    tid = t["ticket"]["id"]
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/resolve",
        headers=dispatcher.auth,
        json={
            "compensation_fen": 3000,
            "redo": "other",
            "worker_at_fault": True,
            "warning": True,
            "note": "返工并补偿",
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["ticket"]["status"] == "resolved"
    kinds = {o["kind"]: o for o in got["outcomes"]}
    assert set(kinds) == {"compensation", "redo", "quality"}
    entry = await ledger.get(stores.pool, kinds["compensation"]["ledger_key"])
    assert entry is not None
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in entry.lines) == sorted(
        [(lr.COMPENSATION_EXPENSE, 3000, 0), (lr.customer_payable(customer.id), 0, 3000)]
    )
    redo = await stores.pool.fetchrow(
        "SELECT status, price_minor, customer_id FROM orders WHERE id = $1",
        kinds["redo"]["redo_order_id"],
    )
    assert redo is not None
    assert (redo["price_minor"], redo["customer_id"]) == (0, customer.id)
    assert redo["status"] in ("confirmed", "dispatching", "offered", "assigned", "failed")
    assert await stores.pool.fetchval(
        "SELECT 1 FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        kinds["redo"]["redo_order_id"],
        worker.id,
    )
    assert (
        await stores.pool.fetchval(
            "SELECT count(*) FROM quality_events WHERE worker_id = $1 AND kind = 'complaint'",
            worker.id,
        )
        == 1
    )
    assert (
        await stores.pool.fetchval(
            "SELECT count(*) FROM discipline_actions WHERE worker_id = $1 AND kind = 'warning'",
            worker.id,
        )
        == 1
    )
    actions = [e.action for e in await audit_store.of_subject(stores.pool, f"aftersales:{tid}")]
    assert "aftersales.resolve" in actions
    assert "aftersales.compensation" in actions
    assert await ledger.check(stores.pool) == []
    again = await client.post(
        f"/v1/aftersales/tickets/{tid}/resolve", headers=dispatcher.auth, json={"note": "再次"}
    )
    assert again.status_code == 409


async def test_a_dispute_takes_both_statements_and_one_audited_ruling(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    dispatcher: Account,
    job: dict[str, Any],
) -> None:
    """The worker's statement makes a dispute; each side states once; staff cannot resolve it; only an admin rules, once, audited."""
    order, customer, worker = job["order"], job["customer"], job["worker"]
    t = await _open(client, customer, order, kind="complaint")
    tid = t["ticket"]["id"]
    url = f"/v1/aftersales/tickets/{tid}"
    pic = await _photo(client, worker)
    r = await client.post(
        f"{url}/statements", headers=worker.auth, json={"text": "我按标准完成了", "photos": [pic]}
    )
    assert r.status_code == 201, r.text
    assert r.json()["ticket"]["status"] == "disputed"
    r = await client.post(f"{url}/statements", headers=worker.auth, json={"text": "再说一次"})
    assert (r.status_code, r.json()["error"]["field"]) == (409, "text")
    r = await client.post(f"{url}/statements", headers=customer.auth, json={"text": "师傅态度差"})
    assert r.status_code == 201, r.text
    r = await client.post(f"{url}/resolve", headers=dispatcher.auth, json={"note": "客服处理"})
    assert r.status_code == 409
    r = await client.post(
        f"{url}/ruling", headers=dispatcher.auth, json={"in_favour": "customer", "reason": "x"}
    )
    assert r.status_code == 403
    r = await client.post(
        f"{url}/ruling",
        headers=admin.auth,
        json={"in_favour": "worker", "reason": "证据不足", "compensation_fen": 100},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "in_favour")
    r = await client.post(
        f"{url}/ruling",
        headers=admin.auth,
        json={
            "in_favour": "customer",
            "reason": "录音证实态度问题",
            "compensation_fen": 2000,
            "worker_at_fault": True,
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["ruling"]["in_favour"] == "customer"
    assert got["ticket"]["status"] == "resolved"
    sides = [n["side"] for n in got["notes"] if n["kind"] == "statement"]
    assert sorted(sides) == ["customer", "worker"]
    r = await client.post(
        f"{url}/ruling", headers=admin.auth, json={"in_favour": "worker", "reason": "改判"}
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "already_ruled"
    entries = await audit_store.of_subject(stores.pool, f"aftersales:{tid}")
    ruling = [e for e in entries if e.action == "aftersales.ruling"]
    assert len(ruling) == 1
    assert ruling[0].actor_id == admin.id
    assert ruling[0].detail["in_favour"] == "customer"
    assert "aftersales.dispute" in [e.action for e in entries]
    assert (await audit_store.check(stores.pool)).ok


async def test_sla_escalation_raises_levels_once_and_tells_staff(
    client: httpx.AsyncClient,
    stores: Stores,
    live_app: tuple[str, Any],
    admin: Account,
    dispatcher: Account,
    job: dict[str, Any],
) -> None:
    """Past the first-response deadline: level 1 and an inbox item for admins; again: nothing; past the resolution deadline: level 2; staff's message is the first response."""
    desk = _desk(live_app)
    t = await _open(client, job["customer"], job["order"])
    tid = t["ticket"]["id"]
    created = datetime.fromisoformat(t["ticket"]["created_at"])
    first = created + timedelta(seconds=desk.params.first_response_s)
    await desk.escalate_due(first - timedelta(seconds=1))
    level = "SELECT escalation_level FROM aftersales_tickets WHERE id = $1"
    assert await stores.pool.fetchval(level, tid) == 0
    await desk.escalate_due(first + timedelta(seconds=1))
    assert await stores.pool.fetchval(level, tid) == 1
    await desk.escalate_due(first + timedelta(seconds=2))
    assert await stores.pool.fetchval(level, tid) == 1
    inbox = await stores.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND key = $2",
        admin.id,
        f"aftersales:{tid}:esc:1:{admin.id}",
    )
    assert inbox == 1
    r = await client.get("/v1/aftersales/queue", headers=dispatcher.auth)
    assert r.status_code == 200, r.text
    mine = next(x for x in r.json() if x["id"] == tid)
    assert mine["first_response_left_s"] is not None
    assert mine["escalation_level"] == 1
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/messages",
        headers=dispatcher.auth,
        json={"body": "您好，我们已收到，正在处理"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["ticket"]["status"] == "in_progress"
    assert r.json()["ticket"]["first_response_at"] is not None
    await desk.escalate_due(created + timedelta(seconds=desk.params.resolution_s + 1))
    assert await stores.pool.fetchval(level, tid) == 2
    r = await client.get(f"/v1/aftersales/tickets/{tid}", headers=job["customer"].auth)
    assert [n["kind"] for n in r.json()["notes"]].count("escalation") == 2


async def test_the_evidence_has_the_timeline_and_the_workers_trail(
    client: httpx.AsyncClient, stores: Stores, dispatcher: Account, job: dict[str, Any]
) -> None:
    """Staff see the order's history and the worker's archived fixes of the job; the customer may not (403)."""
    order, worker = job["order"], job["worker"]
    for i in range(3):
        await stores.pool.execute(
            "INSERT INTO trail_points (worker_id, ts, lat, lng, accuracy_m, seq, received_at) "
            "VALUES ($1, $2, $3, 114.01, 5, $4, now())",
            worker.id,
            NOW - timedelta(hours=2) + timedelta(minutes=i),
            22.53 + i * 0.001,
            i,
        )
    await stores.pool.execute(  # a fix from the day before: not this job's
        "INSERT INTO trail_points (worker_id, ts, lat, lng, accuracy_m, seq, received_at) "
        "VALUES ($1, $2, 22.6, 114.1, 5, 99, now())",
        worker.id,
        NOW - timedelta(days=1),
    )
    t = await _open(client, job["customer"], order, kind="damage")
    tid = t["ticket"]["id"]
    r = await client.get(f"/v1/aftersales/tickets/{tid}/evidence", headers=dispatcher.auth)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert len(ev["trail"]) == 3
    assert ev["trail"][0]["lat"] == pytest.approx(22.53)
    r = await client.get(f"/v1/aftersales/tickets/{tid}/evidence", headers=job["customer"].auth)
    assert r.status_code == 403


async def test_bad_tickets_name_the_field_and_rule(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    dispatcher: Account,
    job: dict[str, Any],
    live_city: str,
    instant_service: str,
) -> None:
    """Outside the window 422, not completed 422, someone else's order 404, a PDF as evidence 422, an unknown kind 422, a second open ticket of a kind 409, compensation over the cap 422, unknown query 422."""
    customer, order = job["customer"], job["order"]
    old = await _order(
        stores,
        live_city,
        instant_service,
        customer.id,
        job["worker"].id,
        completed_at=NOW - timedelta(days=8),
    )
    url = "/v1/orders/{}/aftersales"
    body = {"kind": "refund", "description": "没有做完"}
    r = await client.post(url.format(old), headers=customer.auth, json=body)
    assert r.status_code == 422
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("outside_window", "order_id")
    assert "window" in r.json()["error"]["message"]
    await stores.pool.execute("UPDATE orders SET status = 'in_service' WHERE id = $1", old)
    r = await client.post(url.format(old), headers=customer.auth, json=body)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "order_id")
    stranger = await make_user("customer")
    r = await client.post(url.format(order), headers=stranger.auth, json=body)
    assert (r.status_code, r.json()["error"]["field"]) == (404, "order_id")
    pdf = await _photo(client, customer, "certificate")
    r = await client.post(url.format(order), headers=customer.auth, json=body | {"photos": [pdf]})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "photos[0]")
    r = await client.post(url.format(order), headers=customer.auth, json=body | {"kind": "magic"})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "kind")
    r = await client.post(url.format(order), headers=customer.auth, json=body | {"asked_fen": 1.5})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "asked_fen")
    tid = (await _open(client, customer, order))["ticket"]["id"]
    r = await client.post(url.format(order), headers=customer.auth, json=body)
    assert (r.status_code, r.json()["error"]["field"]) == (409, "kind")
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/resolve",
        headers=dispatcher.auth,
        json={"compensation_fen": 10**8},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "compensation_fen")
    r = await client.get(f"/v1/aftersales/tickets/{tid}", headers=stranger.auth)
    assert r.status_code == 404
    r = await client.get("/v1/aftersales/queue?sort=x", headers=dispatcher.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "sort")
    r = await client.get("/v1/aftersales/queue", headers=customer.auth)
    assert r.status_code == 403


async def test_a_refund_goes_through_payments_and_never_above_what_was_paid(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    dispatcher: Account,
    make_user: MakeUser,
    live_app: tuple[str, Any],
    live_city: str,
) -> None:
    """A paid order (WeChat sandbox): a refund above what was paid is 422 refund_fen and changes nothing; a partial refund is one refund (number AS…R), in the ticket's transaction, succeeded at the provider; the ledger stays balanced."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"ascat_{tag}", "name_zh": "家电清洗", "name_en": "Appliances"},
    )
    assert r.status_code == 201, r.text
    code = f"asvc_{tag}"
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": code,
            "category": f"ascat_{tag}",
            "name_zh": "空调清洗",
            "name_en": "AC cleaning",
            "price_minor": 15000,
            "duration_min": 90,
            "instant": True,
            "scheduled": True,
        },
    )
    assert r.status_code == 201, r.text
    r = await client.put(
        f"/v1/admin/services/{code}/payment", headers=admin.auth, json={"pay_mode": "prepaid"}
    )
    assert r.status_code == 200, r.text
    customer = await make_user("customer")
    order = (await book(client, customer, code))["id"]
    r = await client.post(
        f"/v1/orders/{order}/pay",
        headers=customer.auth,
        json={"provider": "wechat", "channel": "native"},
    )
    assert r.status_code == 200, r.text
    sandbox: WeChatSandbox = live_app[1].state.wechat_sandbox.sandbox
    status, _ = await sandbox.complete_payment(r.json()["out_trade_no"], "success")
    assert status == 200

    async def paid() -> bool:
        return await _funds(stores, order) == 15000

    await until(paid)
    worker = await make_worker(stores, client, live_city)
    await stores.pool.execute(
        "UPDATE orders SET status = 'completed', worker_id = $2, completed_at = now(), "
        "version = version + 1 WHERE id = $1",
        order,
        worker.id,
    )
    tid = (await _open(client, customer, order, asked_fen=5000))["ticket"]["id"]
    url = f"/v1/aftersales/tickets/{tid}/resolve"
    r = await client.post(url, headers=dispatcher.auth, json={"refund_fen": 15001})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "refund_fen")
    assert "never more than what was paid" in r.json()["error"]["message"]
    assert (
        await stores.pool.fetchval("SELECT count(*) FROM refunds WHERE order_id = $1", order) == 0
    )
    assert (
        await stores.pool.fetchval("SELECT status FROM aftersales_tickets WHERE id = $1", tid)
        == "open"
    )
    r = await client.post(
        url, headers=dispatcher.auth, json={"refund_fen": 5000, "note": "部分退款"}
    )
    assert r.status_code == 200, r.text
    (refund,) = [o for o in r.json()["outcomes"] if o["kind"] == "refund"]
    assert refund["out_refund_no"] == f"AS{tid:08d}R"
    assert await _funds(stores, order) == 10000

    async def succeeded() -> bool:
        got = await stores.pool.fetchval(
            "SELECT status FROM refunds WHERE out_refund_no = $1", refund["out_refund_no"]
        )
        return bool(got == "succeeded")

    await until(succeeded)
    assert await ledger.check(stores.pool) == []


async def test_spot_checks_sample_each_worker_reproducibly_and_feed_quality(
    client: httpx.AsyncClient,
    stores: Stores,
    live_app: tuple[str, Any],
    admin: Account,
    dispatcher: Account,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """One order per worker of the last period becomes a call-back; a rerun adds none; a passed and a failed call-back become spot-check quality events; an unreached customer none."""
    desk = _desk(live_app)
    start, _ = rules.period_of(NOW, desk.params.spot_period_days)
    customer = await make_user("customer")
    workers = [await make_worker(stores, client, live_city) for _ in range(2)]
    for w in workers:
        for i in range(3):
            await _order(
                stores,
                live_city,
                instant_service,
                customer.id,
                w.id,
                completed_at=start + timedelta(hours=10 + i),
                paid=False,
            )
    r = await client.post("/v1/aftersales/spot-checks/run", headers=admin.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["seed"] == rules.seed_of(start)
    r = await client.post("/v1/aftersales/spot-checks/run", headers=admin.auth, json={})
    assert r.json()["created"] == 0
    r = await client.get(
        "/v1/aftersales/spot-checks?status=pending&limit=500", headers=dispatcher.auth
    )
    assert r.status_code == 200, r.text
    ours = {x["worker_id"]: x for x in r.json() if x["worker_id"] in {w.id for w in workers}}
    assert sorted(ours) == sorted(w.id for w in workers)
    r = await client.get("/v1/aftersales/questionnaire", headers=dispatcher.auth)
    assert next(q["key"] for q in r.json()) == "on_time"
    good = {
        "on_time": True,
        "as_described": True,
        "polite": True,
        "extra_charges": False,
        "satisfaction": 5,
    }
    a, b = workers
    url = "/v1/aftersales/spot-checks/{}"
    r = await client.post(
        url.format(ours[a.id]["id"]),
        headers=dispatcher.auth,
        json={"answers": good | {"satisfaction": 9}},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "answers.satisfaction")
    r = await client.post(
        url.format(ours[a.id]["id"]), headers=dispatcher.auth, json={"answers": good}
    )
    assert (r.status_code, r.json()["passed"]) == (200, True)
    r = await client.post(
        url.format(ours[b.id]["id"]),
        headers=dispatcher.auth,
        json={"answers": good | {"extra_charges": True}, "note": "多收了50元"},
    )
    assert (r.status_code, r.json()["passed"]) == (200, False)
    r = await client.post(
        url.format(ours[b.id]["id"]), headers=dispatcher.auth, json={"answers": good}
    )
    assert r.status_code == 409
    q = "SELECT passed FROM quality_events WHERE worker_id = $1 AND kind = 'spot_check'"
    assert [x["passed"] for x in await stores.pool.fetch(q, a.id)] == [True]
    assert [x["passed"] for x in await stores.pool.fetch(q, b.id)] == [False]
    score_a = await quality_service.score_of(stores, a.id, NOW)
    score_b = await quality_service.score_of(stores, b.id, NOW)
    assert (score_a.facts.spot_passed, score_b.facts.spot_failed) == (1, 1)
    assert score_a.reliability > score_b.reliability


async def test_an_insured_booking_prices_the_premium_and_a_damage_claim_is_paid_from_the_fund(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    dispatcher: Account,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """The premium is a fee line of the breakdown; a damage ticket opens a claim; an assessment above the cover is 422; paying posts insurance_fund → customer_payable and resolves the ticket; paying twice is 409."""
    r = await client.put(
        f"/v1/admin/services/{instant_service}/insurance",
        headers=admin.auth,
        json={"premium_fen": 500, "coverage_fen": 50000},
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/services/{instant_service}/insurance")
    assert r.json()["premium_fen"] == 500
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": instant_service, "lat": 22.53, "lng": 114.01, "insured": True},
    )
    assert r.status_code == 201, r.text
    order = r.json()["id"]
    lines = await stores.pool.fetchval("SELECT lines FROM order_prices WHERE order_id = $1", order)
    assert {
        "code": "fee:insurance",
        "label": "服务保险 service insurance",
        "amount_fen": 500,
    } in lines
    assert (
        await stores.pool.fetchval("SELECT total_fen FROM order_prices WHERE order_id = $1", order)
        == 15500
    )
    worker = await make_worker(stores, client, live_city)
    await stores.pool.execute(
        "UPDATE orders SET status = 'completed', worker_id = $2, completed_at = now(), "
        "version = version + 1 WHERE id = $1",
        order,
        worker.id,
    )
    t = await _open(client, customer, order, kind="damage", asked_fen=20000)
    tid = t["ticket"]["id"]
    assert (t["ticket"]["insured"], t["claim"]["status"]) == (True, "claimed")
    url = f"/v1/aftersales/tickets/{tid}/claim"
    r = await client.post(f"{url}/decide", headers=admin.auth, json={"pay": True})
    assert r.status_code == 409
    r = await client.post(f"{url}/assess", headers=dispatcher.auth, json={"assessed_fen": 60000})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "assessed_fen")
    r = await client.post(f"{url}/assess", headers=dispatcher.auth, json={"assessed_fen": 18000})
    assert (r.status_code, r.json()["claim"]["status"]) == (200, "assessed")
    r = await client.post(f"{url}/decide", headers=admin.auth, json={"pay": False})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "reason")
    r = await client.post(f"{url}/decide", headers=admin.auth, json={"pay": True})
    assert r.status_code == 200, r.text
    assert (r.json()["claim"]["status"], r.json()["ticket"]["status"]) == ("paid", "resolved")
    account = lr.customer_payable(customer.id)
    assert lr.normal_balance(account, await ledger.balance(stores.pool, account)) == 18000
    r = await client.post(f"{url}/decide", headers=admin.auth, json={"pay": True})
    assert r.status_code == 409
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": "no_such_service_x", "lat": 22.53, "lng": 114.01, "insured": True},
    )
    assert r.status_code in (404, 422)


async def test_two_resolutions_at_once_move_the_money_once(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    dispatcher: Account,
    job: dict[str, Any],
) -> None:
    """Two staff resolve the same ticket at the same moment: one wins (200), the other is 409; one compensation entry, one close."""
    other = await make_user("dispatcher", name="客服二")
    tid = (await _open(client, job["customer"], job["order"], kind="compensation"))["ticket"]["id"]
    url = f"/v1/aftersales/tickets/{tid}/resolve"
    body = {"compensation_fen": 1500, "note": "同时处理"}
    a, b = await asyncio.gather(
        client.post(url, headers=dispatcher.auth, json=body),
        client.post(url, headers=other.auth, json=body),
    )
    assert sorted((a.status_code, b.status_code)) == [200, 409]
    entries = await stores.pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE key = $1", f"aftersales:{tid}:compensation"
    )
    assert entries == 1
    closes = await stores.pool.fetchval(
        "SELECT count(*) FROM aftersales_notes WHERE ticket_id = $1 AND kind = 'status'", tid
    )
    assert closes == 1


async def test_a_redo_for_the_same_worker_goes_through_the_dispatchers_assignment(
    client: httpx.AsyncClient,
    stores: Stores,
    dispatcher: Account,
    job: dict[str, Any],
) -> None:
    """The redo order is free and confirmed; the same worker is asked through the assignment's checks, and the ticket says what came of it."""
    tid = (await _open(client, job["customer"], job["order"], kind="redo"))["ticket"]["id"]
    r = await client.post(
        f"/v1/aftersales/tickets/{tid}/resolve",
        headers=dispatcher.auth,
        json={"redo": "same", "note": "原师傅返工"},
    )
    assert r.status_code == 200, r.text
    (redo,) = [o for o in r.json()["outcomes"] if o["kind"] == "redo"]
    assert redo["detail"] == {"to": "same", "original_worker_id": job["worker"].id}
    notes = [n["body"] for n in r.json()["notes"] if n["kind"] == "outcome"]
    assert len(notes) == 1
    assert f"redo order {redo['redo_order_id']}" in notes[0]
    row = await stores.pool.fetchrow(
        "SELECT price_minor, worker_id FROM orders WHERE id = $1", redo["redo_order_id"]
    )
    assert row is not None
    assert row["price_minor"] == 0
    if "assigned to worker" in notes[0]:
        assert row["worker_id"] == job["worker"].id
    assert not await stores.pool.fetchval(
        "SELECT 1 FROM order_exclusions WHERE order_id = $1", redo["redo_order_id"]
    )


async def test_settlement_sends_an_insured_orders_premium_to_the_insurance_fund(
    stores: Stores, live_app: tuple[str, Any], job: dict[str, Any]
) -> None:
    """At T+N the premium leaves the order's funds for insurance_fund; the worker's share is taken from the rest."""
    svc = _settlement(live_app)
    order = job["order"]
    await stores.pool.execute(
        "INSERT INTO order_insurance (order_id, premium_fen, coverage_fen) VALUES ($1, 500, 50000)",
        order,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=NOW)
    before = lr.normal_balance(
        lr.INSURANCE_FUND, await ledger.balance(stores.pool, lr.INSURANCE_FUND)
    )
    await svc.settle_due(NOW + timedelta(days=svc.params.after_sales_days))
    after = lr.normal_balance(
        lr.INSURANCE_FUND, await ledger.balance(stores.pool, lr.INSURANCE_FUND)
    )
    assert after - before == 500
    gross = await stores.pool.fetchval(
        "SELECT gross_fen FROM settlements WHERE order_id = $1", order
    )
    assert gross == 15000 - 500
    assert await _funds(stores, order) == 0

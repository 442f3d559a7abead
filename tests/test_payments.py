"""Paying for orders on the real WeChat Pay sandbox: 待支付 → paid → confirmed, notifications
verified before anything changes, duplicates and replays idempotent, forged or wrong ones
refused, missing ones found by the query, refunds idempotent and bounded, cancellations
refunded less the fee, unpaid orders closed, late payments refunded; every movement in
the ledger, whose invariants hold."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from dispatch import service as dispatch_service
from dispatch.service import Caller
from doorstep.stores import Stores
from ledger import rules as ledger_rules
from ledger import store as ledger_store
from payments.service import Payments
from payments.wechat_sandbox import WeChatSandbox
from tests.helpers import Account, MakeUser
from tests.live import book


@pytest.fixture(scope="session")
async def prepaid_service(client: httpx.AsyncClient, admin: Account, live_city: str) -> str:
    """A service paid before dispatch (一口价, 150.00 yuan), bookable in the live city."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"pcat_{tag}", "name_zh": "家电维修", "name_en": "Repairs"},
    )
    assert r.status_code == 201, r.text
    code = f"paid_{tag}"
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": code,
            "category": f"pcat_{tag}",
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
    return code


@pytest.fixture(scope="session")
def payments(live_app: tuple[str, Any]) -> Payments:
    """The app's payments."""
    found: Payments = live_app[1].state.payments
    return found


@pytest.fixture(scope="session")
def sandbox(live_app: tuple[str, Any]) -> WeChatSandbox:
    """The WeChat Pay sandbox the app started."""
    found: WeChatSandbox = live_app[1].state.wechat_sandbox.sandbox
    return found


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Wait until ``check`` holds (the notifications and jobs run beside the test)."""
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition never met")


async def _order(client: httpx.AsyncClient, who: Account, order_id: int) -> dict[str, Any]:
    r = await client.get(f"/v1/orders/{order_id}", headers=who.auth)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def _money(client: httpx.AsyncClient, who: Account, order_id: int) -> dict[str, Any]:
    r = await client.get(f"/v1/orders/{order_id}/payment", headers=who.auth)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def _pay(
    client: httpx.AsyncClient, who: Account, order_id: int, channel: str = "native"
) -> dict[str, Any]:
    body: dict[str, Any] = {"provider": "wechat", "channel": channel}
    if channel == "jsapi":
        body["openid"] = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    r = await client.post(f"/v1/orders/{order_id}/pay", headers=who.auth, json=body)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def _fault(sandbox: WeChatSandbox, out_trade_no: str, **faults: Any) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{sandbox.base_url}/sandbox/faults", json={"out_trade_no": out_trade_no, **faults}
        )
        assert r.status_code == 200


async def _funds(stores: Stores, order_id: int) -> int:
    """What the platform holds for the order (fen)."""
    account = ledger_rules.order_funds(order_id)
    return ledger_rules.normal_balance(account, await ledger_store.balance(stores.pool, account))


async def _outcomes(stores: Stores, out_trade_no: str) -> list[str]:
    rows = await stores.pool.fetch(
        "SELECT outcome FROM payment_notifications WHERE out_trade_no = $1 ORDER BY id",
        out_trade_no,
    )
    return [r["outcome"] for r in rows]


async def _paid_order(
    client: httpx.AsyncClient,
    customer: Account,
    service: str,
    sandbox: WeChatSandbox,
    **faults: Any,
) -> tuple[int, dict[str, Any]]:
    order = await book(client, customer, service)
    trade = await _pay(client, customer, order["id"])
    if faults:
        await _fault(sandbox, trade["out_trade_no"], **faults)
    status, _ = await sandbox.complete_payment(trade["out_trade_no"], "success")
    assert status == 200
    return order["id"], trade


async def test_a_prepaid_order_waits_is_paid_and_confirmed_with_its_ledger_entry(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """Booking a prepaid service gives 待支付 with the breakdown and a close job 15 min
    out; paying by Native (code_url) brings a verified notification: the order is
    confirmed, the trade paid, the ledger holds 150.00 for the order, the close job is
    cancelled (by the events consumer)."""
    customer = await make_user("customer")
    order = await book(client, customer, prepaid_service)
    assert order["status"] == "awaiting_payment"
    money = await _money(client, customer, order["id"])
    assert money["due_fen"] == 15000
    assert money["breakdown"]["lines"] == [
        {"code": "base", "label": "基础价格 base price", "amount_fen": 15000}
    ]
    job = await stores.pool.fetchrow(
        "SELECT status, scheduled_at FROM procrastinate_jobs WHERE task_name = 'payments:close_unpaid' "
        "AND (args->>'order_id')::bigint = $1",
        order["id"],
    )
    assert job is not None
    assert job["status"] == "todo"
    created = datetime.fromisoformat(order["created_at"])
    assert abs((job["scheduled_at"] - created).total_seconds() - 900) < 1
    trade = await _pay(client, customer, order["id"])
    assert trade["prepay"]["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    again = await _pay(client, customer, order["id"])
    assert again["out_trade_no"] == trade["out_trade_no"]  # the same pending trade
    await sandbox.complete_payment(trade["out_trade_no"], "success")

    async def confirmed() -> bool:
        return bool((await _order(client, customer, order["id"]))["status"] == "confirmed")

    await until(confirmed)
    money = await _money(client, customer, order["id"])
    assert money["paid_fen"] == 15000
    assert money["payments"][0]["status"] == "paid"
    assert await _funds(stores, order["id"]) == 15000
    assert await _outcomes(stores, trade["out_trade_no"]) == ["applied"]

    async def close_job_cancelled() -> bool:  # by the payments consumer of order.paid
        status = await stores.pool.fetchval(
            "SELECT status FROM procrastinate_jobs WHERE task_name = 'payments:close_unpaid' "
            "AND (args->>'order_id')::bigint = $1",
            order["id"],
        )
        return bool(status == "cancelled")

    await until(close_job_cancelled)
    assert await ledger_store.check(stores.pool) == []


async def test_a_duplicate_notification_changes_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """The same notification delivered twice captures once: one ledger entry, the second logged duplicate."""
    customer = await make_user("customer")
    order_id, trade = await _paid_order(
        client, customer, prepaid_service, sandbox, notify="duplicate"
    )

    async def both() -> bool:
        return len(await _outcomes(stores, trade["out_trade_no"])) == 2

    await until(both)
    assert sorted(await _outcomes(stores, trade["out_trade_no"])) == ["applied", "duplicate"]
    assert await _funds(stores, order_id) == 15000
    assert len(await ledger_store.for_order(stores.pool, order_id)) == 1


async def test_forged_tampered_and_mismatched_notifications_change_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """A notification with a wrong signature, a tampered body, a wrong amount, another
    currency, or for an unknown trade is answered 4xx {"code": "FAIL"} and logged; the
    order still waits and the ledger has nothing for it."""
    customer = await make_user("customer")
    order = await book(client, customer, prepaid_service)
    trade = await _pay(client, customer, order["id"])
    no = trade["out_trade_no"]

    def resource(**over: Any) -> dict[str, Any]:
        base = {
            "mchid": sandbox.keys.mchid,
            "appid": sandbox.keys.appid,
            "out_trade_no": no,
            "transaction_id": f"4200{secrets.randbelow(10**20):020d}",
            "trade_state": "SUCCESS",
            "success_time": "2026-01-01T10:00:00+08:00",
            "amount": {"total": 15000, "payer_total": 15000, "currency": "CNY"},
        }
        return {**base, **over}

    cases: list[tuple[str, bytes, dict[str, str], int]] = []
    body = sandbox.notification_body("TRANSACTION.SUCCESS", "transaction", "支付成功", resource())
    headers = sandbox.notification_headers(body)
    cases.append(
        (
            "wrong signature",
            body,
            {**headers, "Wechatpay-Signature": "AAAA" + headers["Wechatpay-Signature"][4:]},
            401,
        )
    )
    cases.append(("tampered body", body.replace(b"TRANSACTION", b"TRANSACTIoN"), headers, 401))
    for name, res, status in [
        ("wrong amount", resource(amount={"total": 1, "payer_total": 1, "currency": "CNY"}), 422),
        ("unknown currency", resource(amount={"total": 15000, "currency": "USD"}), 422),
        ("unknown trade", resource(out_trade_no="DS0NOSUCHTRADE"), 422),
        ("another merchant", resource(mchid="1999999999"), 401),
    ]:
        b = sandbox.notification_body("TRANSACTION.SUCCESS", "transaction", "支付成功", res)
        cases.append((name, b, sandbox.notification_headers(b), status))
    for name, b, h, status in cases:
        r = await client.post("/v1/payments/wechat/notify", content=b, headers=h)
        assert r.status_code == status, name
        assert r.json()["code"] == "FAIL", name
    assert (await _order(client, customer, order["id"]))["status"] == "awaiting_payment"
    assert await ledger_store.for_order(stores.pool, order["id"]) == []
    rejected = await stores.pool.fetchval(
        "SELECT count(*) FROM payment_notifications WHERE outcome = 'rejected' AND received_at > now() - interval '1 minute'"
    )
    assert rejected >= len(cases)


async def test_a_replayed_genuine_notification_is_idempotent(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """Posting a genuine notification again (a replay) is acknowledged and changes nothing."""
    customer = await make_user("customer")
    order_id, trade = await _paid_order(client, customer, prepaid_service, sandbox)

    async def paid() -> bool:
        return await _funds(stores, order_id) == 15000

    await until(paid)
    delivery = next(d for d in sandbox.deliveries if d.out_trade_no == trade["out_trade_no"])
    r = await client.post(
        "/v1/payments/wechat/notify",
        content=delivery.body,
        headers=sandbox.notification_headers(delivery.body),
    )
    assert r.status_code == 204
    assert await _funds(stores, order_id) == 15000
    assert (await _outcomes(stores, trade["out_trade_no"]))[-1] == "duplicate"


async def test_a_paid_trades_redelivery_is_one_duplicate_and_a_mismatch_is_rejected(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """Once a trade is paid, a genuine redelivery is logged once as duplicate (by the read), and a signed report of it for another amount or currency is refused 422 and logged once as rejected."""
    customer = await make_user("customer")
    order_id, trade = await _paid_order(client, customer, prepaid_service, sandbox)
    no = trade["out_trade_no"]

    async def paid() -> bool:
        return await _funds(stores, order_id) == 15000

    await until(paid)
    await until(lambda: _logged_once(stores, no))
    delivery = next(d for d in sandbox.deliveries if d.out_trade_no == no)
    r = await client.post(
        "/v1/payments/wechat/notify",
        content=delivery.body,
        headers=sandbox.notification_headers(delivery.body),
    )
    assert r.status_code == 204
    assert await _outcomes(stores, no) == ["applied", "duplicate"]
    paid_trade = sandbox._transaction(sandbox.trades[no])
    for amount in (
        {"total": 1, "payer_total": 1, "currency": "CNY"},
        {"total": 15000, "currency": "USD"},
    ):
        body = sandbox.notification_body(
            "TRANSACTION.SUCCESS", "transaction", "支付成功", {**paid_trade, "amount": amount}
        )
        r = await client.post(
            "/v1/payments/wechat/notify", content=body, headers=sandbox.notification_headers(body)
        )
        assert r.status_code == 422, amount
    assert await _outcomes(stores, no) == ["applied", "duplicate", "rejected", "rejected"]
    assert await _funds(stores, order_id) == 15000
    assert len(await ledger_store.for_order(stores.pool, order_id)) == 1


async def _logged_once(stores: Stores, out_trade_no: str) -> bool:
    return len(await _outcomes(stores, out_trade_no)) == 1


async def test_a_notification_that_never_comes_is_found_by_the_query(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    payments: Payments,
    stores: Stores,
) -> None:
    """With no notification, the sweep (the periodic job's work) queries the trade and
    captures it: the order is confirmed."""
    customer = await make_user("customer")
    order_id, _ = await _paid_order(client, customer, prepaid_service, sandbox, notify="never")
    await asyncio.sleep(0.3)
    assert (await _order(client, customer, order_id))["status"] == "awaiting_payment"
    await payments.sweep(datetime.now(UTC) + timedelta(minutes=5))
    assert (await _order(client, customer, order_id))["status"] == "confirmed"
    assert await _funds(stores, order_id) == 15000


async def test_a_close_job_that_comes_due_after_the_payment_changes_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    payments: Payments,
    stores: Stores,
) -> None:
    """The close job of an order paid before its job was cancelled (the consumer runs
    after the capture) finds the order confirmed and leaves it and its money alone."""
    customer = await make_user("customer")
    order = await book(client, customer, prepaid_service)
    trade = await _pay(client, customer, order["id"])
    await sandbox.complete_payment(trade["out_trade_no"], "success")

    async def confirmed() -> bool:
        return bool((await _order(client, customer, order["id"]))["status"] == "confirmed")

    await until(confirmed)
    assert not await payments.close_unpaid(order["id"])
    assert (await _order(client, customer, order["id"]))["status"] == "confirmed"
    assert (await _money(client, customer, order["id"]))["payments"][0]["status"] == "paid"
    assert await _funds(stores, order["id"]) == 15000


async def test_an_unpaid_order_closes_and_a_late_payment_is_refunded(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    payments: Payments,
    stores: Stores,
) -> None:
    """The close job closes the trade at WeChat Pay and cancels the order; a payment that
    lands anyway (the 'late' fault) is captured and refunded in full automatically."""
    customer = await make_user("customer")
    plain = await book(client, customer, prepaid_service)
    trade = await _pay(client, customer, plain["id"])
    assert await payments.close_unpaid(plain["id"])
    assert (await _order(client, customer, plain["id"]))["status"] == "cancelled"
    assert (await payments.provider("wechat").query(trade["out_trade_no"])).status == "closed"
    assert (await _money(client, customer, plain["id"]))["payments"][0]["status"] == "closed"

    late = await book(client, customer, prepaid_service)
    trade = await _pay(client, customer, late["id"])
    await _fault(sandbox, trade["out_trade_no"], notify="late")
    assert await payments.close_unpaid(late["id"])

    async def refunded() -> bool:
        m = await _money(client, customer, late["id"])
        return bool(m["refunds"]) and m["refunds"][0]["status"] == "succeeded"

    await until(refunded)
    m = await _money(client, customer, late["id"])
    assert m["status"] == "cancelled"
    assert m["refunds"][0]["cause"] == "closed_order"
    assert m["refunded_fen"] == 15000
    assert await _funds(stores, late["id"]) == 0
    assert await ledger_store.check(stores.pool) == []


async def test_cancelling_a_paid_order_keeps_the_fee_and_refunds_the_rest(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """Once a worker is assigned a customer's cancellation costs 20%: 30.00 stays with
    the order (for settlement), 120.00 goes back through a refund that follows WeChat's
    refund notification."""
    customer = await make_user("customer")
    order_id, _ = await _paid_order(client, customer, prepaid_service, sandbox)

    async def confirmed() -> bool:
        return bool((await _order(client, customer, order_id))["status"] == "confirmed")

    await until(confirmed)
    await dispatch_service.act(
        stores,
        live_app[1].state.tracking,
        order_id,
        "assign",
        Caller("admin", None),
        worker_id=worker_account.id,
    )
    r = await client.post(f"/v1/orders/{order_id}/cancel", headers=customer.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["cancel_fee_minor"] == 3000

    async def refunded() -> bool:
        m = await _money(client, customer, order_id)
        return bool(m["refunds"]) and m["refunds"][0]["status"] == "succeeded"

    await until(refunded)
    m = await _money(client, customer, order_id)
    assert m["refunds"][0]["amount_fen"] == 12000
    assert m["refunds"][0]["cause"] == "cancellation"
    assert await _funds(stores, order_id) == 3000
    assert await ledger_store.check(stores.pool) == []


async def test_refunds_are_idempotent_bounded_and_refuse_bad_input(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """Finance refunds part of a payment twice; the same number again is the same
    refund; the same number for another amount is 409; more than what is left, floats,
    negatives, other currencies are 422 naming the field; a customer may not refund (403)."""
    customer, finance = await make_user("customer"), await make_user("finance")
    order_id, _ = await _paid_order(client, customer, prepaid_service, sandbox)

    async def paid() -> bool:
        return await _funds(stores, order_id) == 15000

    await until(paid)
    url = f"/v1/orders/{order_id}/refunds"
    no = f"AS{order_id}x{secrets.token_hex(3)}"
    first = await client.post(
        url, headers=finance.auth, json={"out_refund_no": no, "amount_fen": 5000, "reason": "售后"}
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        url, headers=finance.auth, json={"out_refund_no": no, "amount_fen": 5000}
    )
    assert again.status_code == 201
    assert again.json()["created_at"] == first.json()["created_at"]
    other = await client.post(
        url, headers=finance.auth, json={"out_refund_no": no, "amount_fen": 5001}
    )
    assert other.status_code == 409
    assert other.json()["error"]["field"] == "out_refund_no"
    for bad, field in [
        ({"out_refund_no": f"{no}b", "amount_fen": 10001}, "amount_fen"),
        ({"out_refund_no": f"{no}c", "amount_fen": 50.5}, "amount_fen"),
        ({"out_refund_no": f"{no}d", "amount_fen": -5}, "amount_fen"),
        ({"out_refund_no": f"{no}e", "amount_fen": 5, "currency": "USD"}, "currency"),
        ({"out_refund_no": "x", "amount_fen": 5}, "out_refund_no"),
    ]:
        r = await client.post(url, headers=finance.auth, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["field"] == field, (bad, r.text)
    r = await client.post(
        url, headers=customer.auth, json={"out_refund_no": f"{no}f", "amount_fen": 5}
    )
    assert r.status_code == 403
    r = await client.post(
        url, headers=finance.auth, json={"out_refund_no": f"{no}g", "amount_fen": 10000}
    )
    assert r.status_code == 201

    async def settled() -> bool:
        m = await _money(client, finance, order_id)
        return [x["status"] for x in m["refunds"]] == ["succeeded", "succeeded"]

    await until(settled)
    assert await _funds(stores, order_id) == 0
    r = await client.post(
        url, headers=finance.auth, json={"out_refund_no": f"{no}h", "amount_fen": 1}
    )
    assert r.status_code == 422
    assert await ledger_store.check(stores.pool) == []


async def test_out_of_order_notifications_end_consistent(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    payments: Payments,
    stores: Stores,
) -> None:
    """The payment's notification held back until after the refund's: the query captured
    it, the refund notification came first, the late payment notification is a duplicate."""
    customer, finance = await make_user("customer"), await make_user("finance")
    order_id, trade = await _paid_order(
        client, customer, prepaid_service, sandbox, notify="out_of_order", hold_s=5.0
    )
    await payments.sync(trade["out_trade_no"])
    r = await client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"ORDER{order_id}r1", "amount_fen": 15000},
    )
    assert r.status_code == 201, r.text

    async def both() -> bool:
        return len(await _outcomes(stores, trade["out_trade_no"])) >= 2

    await until(both)
    outcomes = await _outcomes(stores, trade["out_trade_no"])
    assert outcomes[-1] == "duplicate"  # the payment's, after the refund's
    assert await _funds(stores, order_id) == 0
    assert await ledger_store.check(stores.pool) == []


async def test_a_customer_never_sees_anothers_payment_and_bad_pay_input_is_422(
    client: httpx.AsyncClient, make_user: MakeUser, prepaid_service: str
) -> None:
    """Another customer's order money is 404; an unknown provider or channel, and JSAPI
    without an openid, are 422 naming the field; paying a non-waiting order is 409."""
    customer, other = await make_user("customer"), await make_user("customer")
    order = await book(client, customer, prepaid_service)
    r = await client.get(f"/v1/orders/{order['id']}/payment", headers=other.auth)
    assert r.status_code == 404
    r = await client.post(
        f"/v1/orders/{order['id']}/pay",
        headers=other.auth,
        json={"provider": "wechat", "channel": "native"},
    )
    assert r.status_code == 404
    for body, field in [
        ({"provider": "paypal", "channel": "native"}, "provider"),
        ({"provider": "wechat", "channel": "wap"}, "channel"),
        ({"provider": "wechat", "channel": "jsapi"}, "openid"),
    ]:
        r = await client.post(f"/v1/orders/{order['id']}/pay", headers=customer.auth, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
    r = await client.post(f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={})
    assert r.status_code == 200
    assert r.json()["cancel_fee_minor"] == 0
    r = await client.post(
        f"/v1/orders/{order['id']}/pay",
        headers=customer.auth,
        json={"provider": "wechat", "channel": "native"},
    )
    assert r.status_code == 409


async def test_redelivery_reaches_the_server_until_it_acknowledges(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """The sandbox posts to the server's notify URL; a 5xx from the path (simulated by
    an unknown provider URL) is retried; the real URL answers 204 and stops it."""
    customer = await make_user("customer")
    _, trade = await _paid_order(client, customer, prepaid_service, sandbox)

    async def acked() -> bool:
        ds = [d for d in sandbox.deliveries if d.out_trade_no == trade["out_trade_no"]]
        return bool(ds) and ds[0].acked

    await until(acked)
    d = next(d for d in sandbox.deliveries if d.out_trade_no == trade["out_trade_no"])
    assert d.attempts[-1][1] == 204
    assert orjson.loads(d.body)["event_type"] == "TRANSACTION.SUCCESS"


async def _service(
    client: httpx.AsyncClient, admin: Account, price: int, mode: dict[str, Any] | None
) -> str:
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"xcat_{tag}", "name_zh": "维修", "name_en": "Repairs"},
    )
    assert r.status_code == 201, r.text
    code = f"x_{tag}"
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": code,
            "category": f"xcat_{tag}",
            "name_zh": "空调维修",
            "name_en": "AC repair",
            "price_minor": price,
            "duration_min": 60,
            "instant": True,
            "scheduled": True,
        },
    )
    assert r.status_code == 201, r.text
    if mode is not None:
        r = await client.put(f"/v1/admin/services/{code}/payment", headers=admin.auth, json=mode)
        assert r.status_code == 200, r.text
    return code


async def _pay_due(
    client: httpx.AsyncClient,
    customer: Account,
    sandbox: WeChatSandbox,
    order_id: int,
    purpose: str,
    fen: int,
) -> None:
    m = await _money(client, customer, order_id)
    assert (m["due_purpose"], m["due_fen"]) == (purpose, fen)
    trade = await _pay(client, customer, order_id)
    assert trade["amount_fen"] == fen
    await sandbox.complete_payment(trade["out_trade_no"], "success")

    async def paid() -> bool:
        m = await _money(client, customer, order_id)
        return any(
            p["out_trade_no"] == trade["out_trade_no"] and p["status"] == "paid"
            for p in m["payments"]
        )

    await until(paid)


async def _on_site(
    live_app: tuple[str, Any], stores: Stores, order_id: int, worker: Account
) -> None:
    await dispatch_service.act(
        stores,
        live_app[1].state.tracking,
        order_id,
        "assign",
        Caller("admin", None),
        worker_id=worker.id,
    )
    await dispatch_service.act(
        stores, live_app[1].state.tracking, order_id, "arrive", Caller("admin", None)
    )


@pytest.mark.parametrize("approve", [True, False])
async def test_a_deposit_service_takes_a_quote_on_site(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
    approve: bool,
) -> None:
    """定金 + 尾款: the deposit is paid before dispatch; on site the worker quotes; approved,
    the quote less the deposit is due and paid (the order holds the quote); declined, the
    deposit less the inspection fee is refunded (the order holds the fee)."""
    service = await _service(
        client,
        admin,
        15000,
        {"pay_mode": "deposit", "deposit_fen": 5000, "inspection_fee_fen": 2000},
    )
    customer = await make_user("customer")
    order = await book(client, customer, service)
    assert order["status"] == "awaiting_payment"
    await _pay_due(client, customer, sandbox, order["id"], "deposit", 5000)
    assert (await _order(client, customer, order["id"]))["status"] == "confirmed"
    await _on_site(live_app, stores, order["id"], worker_account)
    r = await client.post(
        f"/v1/orders/{order['id']}/extras",
        headers=worker_account.auth,
        json={
            "kind": "quote",
            "items": [
                {"name": "更换压缩机", "amount_fen": 20000},
                {"name": "人工", "amount_fen": 8000},
            ],
        },
    )
    assert r.status_code == 201, r.text
    quote = r.json()
    assert quote["total_fen"] == 28000
    r = await client.post(
        f"/v1/orders/{order['id']}/extras/{quote['id']}/{'approve' if approve else 'decline'}",
        headers=customer.auth,
    )
    assert r.status_code == 200, r.text
    if approve:
        await _pay_due(client, customer, sandbox, order["id"], "balance", 23000)
        assert await _funds(stores, order["id"]) == 28000
    else:

        async def refunded() -> bool:
            m = await _money(client, customer, order["id"])
            return bool(m["refunds"]) and m["refunds"][0]["status"] == "succeeded"

        await until(refunded)
        m = await _money(client, customer, order["id"])
        assert m["refunds"][0]["amount_fen"] == 3000
        assert m["refunds"][0]["cause"] == "quote_declined"
        assert m["due_fen"] == 0
        assert await _funds(stores, order["id"]) == 2000
    r = await client.post(
        f"/v1/orders/{order['id']}/extras/{quote['id']}/approve", headers=customer.auth
    )
    assert r.status_code == 409
    assert await ledger_store.check(stores.pool) == []


async def test_add_ons_and_paying_after_the_service(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """A service paid afterwards is confirmed at once; add-on items approved during the
    service are due and paid then; the price is due once completed; a customer may not
    propose items and a float amount is 422."""
    service = await _service(client, admin, 9900, None)
    customer = await make_user("customer")
    order = await book(client, customer, service)
    assert order["status"] == "confirmed"
    assert (await _money(client, customer, order["id"]))["due_fen"] == 0
    await _on_site(live_app, stores, order["id"], worker_account)
    code = (await _order(client, customer, order["id"]))["start_code"]
    await dispatch_service.act(
        stores,
        live_app[1].state.tracking,
        order["id"],
        "start",
        Caller("worker", worker_account.id),
        start_code=code,
    )
    url = f"/v1/orders/{order['id']}/extras"
    r = await client.post(
        url,
        headers=worker_account.auth,
        json={"kind": "addon", "items": [{"name": "加氟", "amount_fen": 60.5}]},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "items[0].amount_fen"
    r = await client.post(
        url,
        headers=customer.auth,
        json={"kind": "addon", "items": [{"name": "加氟", "amount_fen": 6000}]},
    )
    assert r.status_code == 403
    r = await client.post(
        url,
        headers=worker_account.auth,
        json={"kind": "quote", "items": [{"name": "x", "amount_fen": 1}]},
    )
    assert r.status_code == 409
    r = await client.post(
        url,
        headers=worker_account.auth,
        json={"kind": "addon", "items": [{"name": "加氟", "amount_fen": 6000}]},
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"{url}/{r.json()['id']}/approve", headers=customer.auth)
    assert r.status_code == 200
    await _pay_due(client, customer, sandbox, order["id"], "addon", 6000)
    await dispatch_service.act(
        stores,
        live_app[1].state.tracking,
        order["id"],
        "complete",
        Caller("worker", worker_account.id),
    )
    await _pay_due(client, customer, sandbox, order["id"], "final", 9900)
    m = await _money(client, customer, order["id"])
    assert m["due_fen"] == 0
    assert m["paid_fen"] == 15900
    assert await _funds(stores, order["id"]) == 15900


async def test_a_closed_refund_gives_the_money_back_to_the_order(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    stores: Stores,
) -> None:
    """WeChat closes a refund (REFUND.CLOSED): the refund is closed, refund.failed puts the
    money back in the order's funds, and the amount may be refunded again."""
    customer, finance = await make_user("customer"), await make_user("finance")
    order_id, trade = await _paid_order(client, customer, prepaid_service, sandbox, refund="closed")

    async def paid() -> bool:
        return await _funds(stores, order_id) == 15000

    await until(paid)
    r = await client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"CLOSED{order_id}r1", "amount_fen": 15000},
    )
    assert r.status_code == 201, r.text

    async def closed() -> bool:
        m = await _money(client, finance, order_id)
        return bool(m["refunds"][0]["status"] == "closed")

    await until(closed)
    assert await _funds(stores, order_id) == 15000
    kinds = [e.kind for e in await ledger_store.for_order(stores.pool, order_id)]
    assert kinds == ["payment.captured", "refund.requested", "refund.failed"]
    await _fault(sandbox, trade["out_trade_no"], refund="success")
    r = await client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"CLOSED{order_id}r2", "amount_fen": 15000},
    )
    assert r.status_code == 201, r.text
    assert await ledger_store.check(stores.pool) == []


async def test_a_prepay_that_times_out_is_503_and_the_retry_reuses_the_trade(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,
    sandbox: WeChatSandbox,
    payments: Payments,
) -> None:
    """WeChat Pay answers too late: the customer gets 503 (the outcome is unknown), and
    paying again reuses the same out_trade_no, which the provider already holds."""
    customer = await make_user("customer")
    order = await book(client, customer, prepaid_service)
    wechat = payments.provider("wechat")
    old_timeout = wechat._http.timeout  # type: ignore[attr-defined]
    old_hold = sandbox.timeout_hold_s
    wechat._http.timeout = httpx.Timeout(0.5)  # type: ignore[attr-defined]
    sandbox.timeout_hold_s = 1.5
    sandbox.timeouts_next = 1
    try:
        r = await client.post(
            f"/v1/orders/{order['id']}/pay",
            headers=customer.auth,
            json={"provider": "wechat", "channel": "native"},
        )
    finally:
        wechat._http.timeout = old_timeout  # type: ignore[attr-defined]
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "provider_unavailable"
    await asyncio.sleep(1.5)
    sandbox.timeout_hold_s = old_hold
    first = (await _money(client, customer, order["id"]))["payments"][0]["out_trade_no"]
    assert first in sandbox.trades
    again = await _pay(client, customer, order["id"])
    assert again["out_trade_no"] == first
    assert again["prepay"]["code_url"].startswith("weixin://")

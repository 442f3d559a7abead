"""The server starts the Alipay sandbox with its stores, and another process of the same
install (a job worker) finds it through the data dir and talks to it with the same keys."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from doorstep.settings import Settings
from doorstep.stores import Stores
from payments import alipay_gateway
from payments.alipay_sign import sign_notification
from payments.providers import PrepayRequest
from tests.helpers import Account, MakeUser


async def test_the_server_starts_the_sandbox_and_a_worker_process_finds_it(
    live_app: tuple[str, Any], settings: Settings, tmp_path: Path
) -> None:
    """With no DOORSTEP_ALIPAY_GATEWAY the app runs the sandbox and writes its address to the data dir; a second provider built from a data dir holding that address and the install's keys (as `doorstep worker` does) pays and queries a trade."""
    app = live_app[1]
    server = app.state.alipay_sandbox
    assert server is not None
    url_file = settings.data_dir / alipay_gateway.URL_FILE
    assert url_file.read_text().startswith("http://127.0.0.1:")  # the last server started
    # A data dir of its own holding this sandbox's address (other tests' apps share the
    # session's data dir, and the last one started wrote its own address there).
    shutil.copytree(settings.data_dir / "alipay-sandbox", tmp_path / "alipay-sandbox")
    (tmp_path / alipay_gateway.URL_FILE).write_text(server.url + "\n")
    worker_settings = replace(settings, data_dir=tmp_path)
    provider, started = await alipay_gateway.open_provider(worker_settings, start=False)
    assert provider is not None
    assert started is None
    out = f"DS{secrets.token_hex(8)}"
    prepay = await provider.prepay(
        PrepayRequest(
            out_trade_no=out,
            description="家电清洗",
            amount_fen=15000,
            channel="precreate",
            notify_url=f"http://{live_app[0]}/nowhere",
        )
    )
    assert prepay.code_url is not None
    async with httpx.AsyncClient() as http:
        paid = await http.post(f"{server.url}sandbox/pay", json={"out_trade_no": out})
    assert paid.status_code == 200
    trade = await app.state.payments.provider("alipay").query(out)
    assert (trade.status, trade.amount_fen) == ("paid", 15000)
    keys_dir = settings.data_dir / "alipay-sandbox"  # made by the first server, kept
    assert oct((keys_dir / "app_private_key.pem").stat().st_mode & 0o777) == "0o600"
    await provider.aclose()


async def test_no_sandbox_and_no_gateway_means_no_provider(
    settings: Settings, tmp_path: Any
) -> None:
    """A process that may not start the sandbox, with none running and no gateway configured, has no Alipay provider (it says so rather than guessing)."""
    provider, server = await alipay_gateway.open_provider(
        replace(settings, data_dir=tmp_path), start=False
    )
    assert (provider, server) == (None, None)


# ---- orders paid through Alipay, end to end --------------------------------------------------

CENTER = (22.53, 114.01)  # inside tests.helpers.SQUARE (the live city)


@pytest.fixture(scope="module")
async def prepaid_service(client: httpx.AsyncClient, admin: Account) -> str:
    """A service of this module's own, bookable now, paid before dispatch (一口价, 128.00)."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"acat_{tag}", "name_zh": "家电清洗", "name_en": "Appliance cleaning"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"asvc_{tag}",
            "category": f"acat_{tag}",
            "name_zh": "空调清洗",
            "name_en": "Air conditioner cleaning",
            "price_minor": 12800,
            "duration_min": 90,
            "instant": True,
            "scheduled": True,
        },
    )
    assert r.status_code == 201, r.text
    r = await client.put(
        f"/v1/admin/services/asvc_{tag}/payment", headers=admin.auth, json={"pay_mode": "prepaid"}
    )
    assert r.status_code == 200, r.text
    return f"asvc_{tag}"


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0) -> None:
    """Wait (polling) until ``check`` holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _status(stores: Stores, order_id: int) -> str:
    return str(await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id))


async def _ordered_and_prepaid(
    client: httpx.AsyncClient, customer: Account, service: str
) -> tuple[int, dict[str, Any]]:
    """A new order of ``service`` waiting for its payment, and its Alipay trade (a QR code)."""
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": service, "lat": CENTER[0], "lng": CENTER[1]},
    )
    assert r.status_code == 201, r.text
    order_id = int(r.json()["id"])
    assert r.json()["status"] == "awaiting_payment"
    r = await client.post(
        f"/v1/orders/{order_id}/pay",
        headers=customer.auth,
        json={"provider": "alipay", "channel": "precreate"},
    )
    assert r.status_code == 200, r.text
    payment: dict[str, Any] = r.json()
    return order_id, payment


async def _notifications(stores: Stores, out_trade_no: str) -> list[str]:
    rows = await stores.pool.fetch(
        "SELECT outcome FROM payment_notifications WHERE provider = 'alipay' "
        "AND out_trade_no = $1 ORDER BY id",
        out_trade_no,
    )
    return [r["outcome"] for r in rows]


async def test_an_order_is_paid_through_alipay_once_and_refunded_by_number(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,
) -> None:
    """Booked (awaiting payment) → Alipay QR code → the buyer pays with every notification sent twice → the order is confirmed once, one capture in the ledger; a forged notification changes nothing; finance refunds part, twice with one number: refunded once."""
    app = live_app[1]
    sandbox = app.state.alipay_sandbox.sandbox
    customer = await make_user("customer")
    order_id, payment = await _ordered_and_prepaid(client, customer, prepaid_service)
    out = payment["out_trade_no"]
    assert (payment["provider"], payment["amount_fen"], payment["status"]) == (
        "alipay",
        12800,
        "pending",
    )
    assert payment["prepay"]["code_url"].startswith(sandbox.url + "qr/")
    sandbox.set_faults(out, {"duplicate"})
    async with httpx.AsyncClient() as http:
        paid = await http.post(f"{sandbox.url}sandbox/pay", json={"out_trade_no": out})
    assert paid.status_code == 200

    async def confirmed() -> bool:
        return (
            await _status(stores, order_id) == "confirmed"
            and len(await _notifications(stores, out)) >= 2
        )

    await _until(confirmed, "the order confirmed by both copies of the notification")
    assert sorted(await _notifications(stores, out)) == ["applied", "duplicate"]
    trade_no = sandbox.book.trades[out].trade_no
    captures = await stores.pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE key = $1", f"alipay:pay:{trade_no}"
    )
    assert captures == 1
    money = (await client.get(f"/v1/orders/{order_id}/payment", headers=customer.auth)).json()
    assert (money["paid_fen"], money["payments"][0]["status"]) == (12800, "paid")

    # A forged notification (signed with another key) for the same trade: refused, logged.
    forged = sign_notification(
        {
            "notify_id": secrets.token_hex(8),
            "sign_type": "RSA2",
            "app_id": alipay_gateway.SANDBOX_APP_ID,
            "seller_id": alipay_gateway.SANDBOX_SELLER_ID,
            "out_trade_no": out,
            "trade_no": trade_no,
            "trade_status": "TRADE_CLOSED",
            "total_amount": "128.00",
        },
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )
    r = await client.post(
        "/v1/payments/alipay/notify",
        content=urlencode(forged),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.text) == (200, "fail")
    assert await _status(stores, order_id) == "confirmed"
    rejected = await stores.pool.fetchval(
        "SELECT count(*) FROM payment_notifications WHERE provider = 'alipay' AND outcome = 'rejected' "
        "AND reason LIKE '%signature%'"
    )
    assert rejected >= 1

    # Finance refunds 50.00, then asks again with the same number: one refund at Alipay.
    finance = await make_user("finance")
    number = f"RF{secrets.token_hex(6)}"
    for _ in range(2):
        r = await client.post(
            f"/v1/orders/{order_id}/refunds",
            headers=finance.auth,
            json={"out_refund_no": number, "amount_fen": 5000, "reason": "少做了一台"},
        )
        assert r.status_code == 201, r.text

    async def refunded() -> bool:
        status = await stores.pool.fetchval(
            "SELECT status FROM refunds WHERE out_refund_no = $1", number
        )
        return bool(status == "succeeded")

    await _until(refunded, "the refund succeeded at Alipay")
    assert sandbox.book.trades[out].refunded_fen == 5000
    assert list(sandbox.book.trades[out].refunds) == [number]
    r = await client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=finance.auth,
        json={"out_refund_no": number, "amount_fen": 4000},
    )
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "out_refund_no"

    # The refund's notification is the trade's report (still paid): a duplicate, acknowledged.
    async def refund_notified() -> bool:
        return any(
            d.kind == "refund" and d.acked for d in sandbox.deliveries if d.out_trade_no == out
        )

    await _until(refund_notified, "the refund's notification acknowledged")
    assert sorted(await _notifications(stores, out)).count("applied") == 1


async def test_a_payment_never_notified_is_found_by_the_active_query(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,
) -> None:
    """With `never_notify`, the paid order stays awaiting payment until the active query (payments.sync, what the sweep job runs) asks Alipay and confirms it."""
    app = live_app[1]
    sandbox = app.state.alipay_sandbox.sandbox
    customer = await make_user("customer")
    order_id, payment = await _ordered_and_prepaid(client, customer, prepaid_service)
    out = payment["out_trade_no"]
    sandbox.set_faults(out, {"never_notify"})
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{sandbox.url}sandbox/pay", json={"out_trade_no": out})
        ).status_code == 200
    await asyncio.sleep(0.5)
    assert await _status(stores, order_id) == "awaiting_payment"
    applied = await app.state.payments.sync(out)
    assert applied.outcome == "applied"
    assert await _status(stores, order_id) == "confirmed"
    assert (await app.state.payments.sync(out)).outcome == "duplicate"


async def test_a_payment_that_lands_as_the_order_is_cancelled_is_refunded_in_full(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,
) -> None:
    """With `late_after_close`: the buyer pays, the customer cancels before the notification comes; closing the trade is refused (paid), the query finds the payment, it is refunded in full at Alipay, and the late notification changes nothing."""
    app = live_app[1]
    sandbox = app.state.alipay_sandbox.sandbox
    customer = await make_user("customer")
    order_id, payment = await _ordered_and_prepaid(client, customer, prepaid_service)
    out = payment["out_trade_no"]
    sandbox.set_faults(out, {"late_after_close"})
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{sandbox.url}sandbox/pay", json={"out_trade_no": out})
        ).status_code == 200
    r = await client.post(
        f"/v1/orders/{order_id}/cancel", headers=customer.auth, json={"reason": "不需要了"}
    )
    assert r.status_code == 200, r.text

    async def refunded_in_full() -> bool:
        return bool(sandbox.book.trades[out].refunded_fen == 12800)

    await _until(refunded_in_full, "the whole payment refunded at Alipay")
    assert await _status(stores, order_id) == "cancelled"

    async def late_one_seen() -> bool:
        return any(d.kind == "pay" and d.acked for d in sandbox.deliveries if d.out_trade_no == out)

    await _until(late_one_seen, "the late payment notification acknowledged")

    async def refunds() -> list[tuple[str, int]]:
        rows = await stores.pool.fetch(
            "SELECT r.status, r.amount_fen FROM refunds r JOIN payments p ON p.id = r.payment_id "
            "WHERE p.out_trade_no = $1",
            out,
        )
        return [(r["status"], r["amount_fen"]) for r in rows]

    async def recorded() -> bool:  # the refund's answer is applied after Alipay made it
        return await refunds() == [("succeeded", 12800)]

    await _until(recorded, "the refund recorded as succeeded")
    captures = await stores.pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE key = $1",
        f"alipay:pay:{sandbox.book.trades[out].trade_no}",
    )
    assert captures == 1


async def test_genuine_but_wrong_notifications_get_fail_and_change_nothing(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    settings: Settings,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,
) -> None:
    """Notifications signed with the sandbox's real key but for another amount or an unknown trade are answered `fail` and change nothing; the real one is `success`, and its replay (same notify_id) is `success` and changes nothing."""
    app = live_app[1]
    sandbox = app.state.alipay_sandbox.sandbox
    _, alipay_key = alipay_gateway.sandbox_keys(settings.data_dir)
    customer = await make_user("customer")
    order_id, payment = await _ordered_and_prepaid(client, customer, prepaid_service)
    out = payment["out_trade_no"]
    base = {
        "notify_time": "2026-12-06 15:00:00",
        "notify_type": "trade_status_sync",
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "app_id": alipay_gateway.SANDBOX_APP_ID,
        "seller_id": alipay_gateway.SANDBOX_SELLER_ID,
        "trade_no": "2026120622001000000000000042",
        "trade_status": "TRADE_SUCCESS",
        "gmt_payment": "2026-12-06 15:00:00",
    }

    async def post(params: dict[str, str]) -> str:
        r = await client.post(
            "/v1/payments/alipay/notify",
            content=urlencode(sign_notification(params, alipay_key)),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        return r.text

    wrong_amount = base | {
        "notify_id": secrets.token_hex(8),
        "out_trade_no": out,
        "total_amount": "0.01",
    }
    assert await post(wrong_amount) == "fail"
    unknown = base | {
        "notify_id": secrets.token_hex(8),
        "out_trade_no": "DS0P0000000000",
        "total_amount": "128.00",
    }
    assert await post(unknown) == "fail"
    assert await _status(stores, order_id) == "awaiting_payment"
    assert await _notifications(stores, out) == ["rejected"]

    # The genuine one, as the sandbox sends it, and then its replay.
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{sandbox.url}sandbox/pay", json={"out_trade_no": out})
        ).status_code == 200

    async def acked() -> bool:
        return any(d.acked for d in sandbox.deliveries if d.out_trade_no == out)

    await _until(acked, "the payment's notification acknowledged")
    delivery = next(d for d in sandbox.deliveries if d.out_trade_no == out)
    r = await client.post(
        "/v1/payments/alipay/notify",
        content=urlencode(delivery.params),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.text) == (200, "success")
    assert await _status(stores, order_id) == "confirmed"
    assert await _notifications(stores, out) == ["rejected", "applied", "duplicate"]

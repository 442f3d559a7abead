"""The Alipay adapter (python-alipay-sdk) against the sandbox gateway, both real HTTP servers:
each API, notifications and their redelivery until `success`, every fault switch, bad input."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from payments.alipay import AlipayConfig, read_notification
from payments.alipay_sign import private_pem, public_pem, sign_notification, sign_params
from payments.errors import (
    InvalidPayment,
    NotificationRejected,
    ProviderRefused,
    ProviderUnavailable,
)
from payments.providers import PaymentNotice, PrepayRequest, RefundRequest
from tests.alipay_live import APP_ID, FAST_SCHEDULE, SELLER_ID, Keys, Live, live_alipay, make_keys

KEYS = make_keys()


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """The sandbox and the merchant's notification endpoint for this module."""
    async with live_alipay(KEYS) as running:
        yield running


def _no() -> str:
    return f"DS{secrets.token_hex(8)}"


async def _precreate(live: Live, amount_fen: int = 1234, out: str | None = None) -> str:
    out = out or _no()
    prepay = await live.provider.prepay(
        PrepayRequest(
            out_trade_no=out,
            description="深度保洁 3 小时",
            amount_fen=amount_fen,
            channel="precreate",
            notify_url=live.notify_url,
        )
    )
    assert prepay.code_url is not None
    assert prepay.code_url.startswith(live.sandbox.url)
    return out


async def _buyer_pays(live: Live, out: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{live.sandbox.url}sandbox/pay", json={"out_trade_no": out})


def _refund(out: str, number: str, fen: int, total: int = 1234) -> RefundRequest:
    return RefundRequest(
        out_trade_no=out,
        out_refund_no=number,
        refund_fen=fen,
        total_fen=total,
        reason="取消订单",
        notify_url="",
    )


# ---- each API ------------------------------------------------------------------------------


async def test_precreate_pay_notify_and_query(live: Live) -> None:
    """A precreated trade is pending; once the buyer pays, a verified notification says paid with the exact amount, and a query agrees."""
    out = await _precreate(live, 1999)
    trade = await live.provider.query(out)
    assert (trade.status, trade.provider_state, trade.amount_fen) == (
        "pending",
        "WAIT_BUYER_PAY",
        1999,
    )
    assert (await _buyer_pays(live, out)).status_code == 200
    await live.merchant.wait_for(out, 1)
    notice = next(
        n
        for n in live.merchant.notices
        if isinstance(n, PaymentNotice) and n.trade.out_trade_no == out
    )
    assert notice.trade.status == "paid"
    assert (notice.trade.amount_fen, notice.trade.payer_paid_fen) == (1999, 1999)
    assert (notice.trade.merchant_id, notice.trade.app_id) == (SELLER_ID, APP_ID)
    assert notice.trade.paid_at is not None
    trade = await live.provider.query(out)
    assert (trade.status, trade.amount_fen) == ("paid", 1999)
    assert trade.provider_trade_no == notice.trade.provider_trade_no
    delivery = live.sandbox.deliveries[-1]
    assert delivery.acked
    assert len(delivery.attempts) == 1


async def test_precreate_again_is_the_same_trade_and_other_content_is_refused(live: Live) -> None:
    """The same out_trade_no with the same content answers the same QR code; another amount is CONTEXT_INCONSISTENT, and a paid one TRADE_HAS_SUCCESS."""
    out = await _precreate(live)
    first = live.sandbox.book.trades[out].token
    await _precreate(live, out=out)
    assert live.sandbox.book.trades[out].token == first
    with pytest.raises(ProviderRefused) as e:
        await _precreate(live, 1235, out=out)
    assert e.value.provider_code == "CONTEXT_INCONSISTENT"
    await _buyer_pays(live, out)
    with pytest.raises(ProviderRefused) as e:
        await _precreate(live, out=out)
    assert e.value.provider_code == "TRADE_HAS_SUCCESS"


async def test_wap_pay_opens_the_pay_page_where_the_buyer_confirms(live: Live) -> None:
    """The wap pay URL (the SDK's signed query on the gateway) leads to the pay page; confirming there pays the trade and the notification follows."""
    out = _no()
    prepay = await live.provider.prepay(
        PrepayRequest(
            out_trade_no=out,
            description="空调清洗",
            amount_fen=8800,
            channel="wap",
            notify_url=live.notify_url,
        )
    )
    assert prepay.pay_url is not None
    assert prepay.pay_url.startswith(live.sandbox.gateway_url + "?")
    async with httpx.AsyncClient(follow_redirects=True) as http:
        page = await http.get(prepay.pay_url)
        assert page.status_code == 200
        assert "¥88.00" in page.text
        assert "确认付款" in page.text
        assert "空调清洗" in page.text
        done = await http.post(str(page.url), data={"action": "confirm"})
        assert "支付成功" in done.text
        # A tampered pay URL (another amount) is refused by the signature check.
        bad = await http.get(prepay.pay_url.replace("88.00", "0.01"))
        assert bad.status_code == 400
        assert "isv.invalid-signature" in bad.text
    await live.merchant.wait_for(out, 1)
    assert (await live.provider.query(out)).status == "paid"


async def test_close_an_unpaid_trade_and_it_can_no_longer_be_paid(live: Live) -> None:
    """Closing an unpaid trade makes it closed (and notified TRADE_CLOSED); the buyer can no longer pay it; a paid trade refuses to close."""
    out = await _precreate(live)
    await live.provider.close(out)
    assert (await live.provider.query(out)).status == "closed"
    paying = await _buyer_pays(live, out)
    assert paying.status_code == 409
    assert paying.json()["error"] == "ACQ.TRADE_HAS_CLOSE"
    await live.merchant.wait_for(out, 1)
    assert live.merchant.for_trade(out)[0]["trade_status"] == "TRADE_CLOSED"
    paid = await _precreate(live)
    await _buyer_pays(live, paid)
    with pytest.raises(ProviderRefused) as e:
        await live.provider.close(paid)
    assert e.value.provider_code == "TRADE_STATUS_ERROR"
    with pytest.raises(ProviderRefused) as e:
        await live.provider.query(_no())
    assert e.value.provider_code == "TRADE_NOT_EXIST"


async def test_refunds_are_idempotent_by_number_and_never_exceed_the_payment(live: Live) -> None:
    """A partial refund, its repeat (the same number: no second refund), a different amount under that number (refused), too much (refused), then the rest closes the trade."""
    out = await _precreate(live, 1000)
    await _buyer_pays(live, out)
    first = await live.provider.refund(_refund(out, "R1", 300, 1000))
    assert (first.status, first.refund_fen, first.out_refund_no) == ("succeeded", 300, "R1")
    again = await live.provider.refund(_refund(out, "R1", 300, 1000))
    assert (again.status, again.refund_fen) == ("succeeded", 300)
    assert live.sandbox.book.trades[out].refunded_fen == 300
    with pytest.raises(ProviderRefused) as e:
        await live.provider.refund(_refund(out, "R1", 200, 1000))
    assert e.value.provider_code == "REFUND_AMT_NOT_EQUAL_TOTAL"
    with pytest.raises(ProviderRefused) as e:
        await live.provider.refund(_refund(out, "R2", 701, 1000))
    assert e.value.provider_code == "REFUND_FEE_ERROR"
    rest = await live.provider.refund(_refund(out, "R2", 700, 1000))
    assert rest.refund_fen == 700
    queried = await live.provider.query_refund(out, "R2")
    assert (queried.status, queried.refund_fen, queried.total_fen) == ("succeeded", 700, 1000)
    with pytest.raises(ProviderRefused) as e:
        await live.provider.query_refund(out, "R3")
    assert e.value.provider_code == "REFUND_NOT_EXIST"
    trade = await live.provider.query(out)
    assert (trade.provider_state, trade.status) == ("TRADE_CLOSED", "paid")  # closed by refunds
    # Notifications: paid, then R1 (TRADE_SUCCESS, refunded 3.00), then R2 (TRADE_CLOSED, 10.00);
    # each is the trade's report (still paid), the refund's number and the refunded total on it.
    await live.merchant.wait_for(out, 3)
    posts = live.merchant.for_trade(out)
    assert sorted(
        (p["trade_status"], p.get("out_biz_no", ""), p.get("refund_fee", "")) for p in posts
    ) == [
        ("TRADE_CLOSED", "R2", "10.00"),
        ("TRADE_SUCCESS", "", ""),
        ("TRADE_SUCCESS", "R1", "3.00"),
    ]
    notices = [
        n
        for n in live.merchant.notices
        if isinstance(n, PaymentNotice) and n.trade.out_trade_no == out
    ]
    assert len(notices) == 3
    assert {(n.trade.status, n.trade.amount_fen) for n in notices} == {("paid", 1000)}


async def test_a_refund_of_an_unpaid_trade_is_refused(live: Live) -> None:
    """Refunding a trade nobody paid is TRADE_STATUS_ERROR; a refund above the total is refused before any call."""
    out = await _precreate(live, 500)
    with pytest.raises(ProviderRefused) as e:
        await live.provider.refund(_refund(out, "R1", 100, 500))
    assert e.value.provider_code == "TRADE_STATUS_ERROR"
    with pytest.raises(InvalidPayment) as bad:
        await live.provider.refund(_refund(out, "R1", 501, 500))
    assert bad.value.field == "refund_fen"


# ---- notifications and their redelivery ---------------------------------------------------


async def test_a_notification_is_sent_again_with_the_same_notify_id_until_success(
    live: Live,
) -> None:
    """Answers other than the literal `success` (fail, a 500, SUCCESS, success with a newline) bring the same notification back on schedule; `success` stops it."""
    out = await _precreate(live)
    live.merchant.answers[out] = ["fail", "500", "SUCCESS", "success\n"]
    await _buyer_pays(live, out)
    await live.merchant.wait_for(out, 5)
    await asyncio.sleep(sum(FAST_SCHEDULE[4:]) + 0.3)  # past the rest of the schedule
    posts = live.merchant.for_trade(out)
    assert len(posts) == 5
    assert len({p["notify_id"] for p in posts}) == 1
    assert len({p["sign"] for p in posts}) == 1
    delivery = next(d for d in live.sandbox.deliveries if d.out_trade_no == out)
    assert delivery.acked
    assert [a.status for a in delivery.attempts] == [200, 500, 200, 200, 200]


async def test_a_notification_never_acknowledged_is_tried_eight_times_then_given_up(
    live: Live,
) -> None:
    """Alipay's schedule: the first try and seven more (4m, 10m, 10m, 1h, 2h, 6h, 15h, scaled), then no more."""
    out = await _precreate(live)
    live.merchant.answers[out] = ["fail"] * 20
    await _buyer_pays(live, out)
    await live.merchant.wait_for(out, 8)
    await asyncio.sleep(0.5)
    assert len(live.merchant.for_trade(out)) == 8
    delivery = next(d for d in live.sandbox.deliveries if d.out_trade_no == out)
    assert delivery.gave_up
    assert not delivery.acked


# ---- fault switches ---------------------------------------------------------------------


async def test_declined_leaves_the_trade_unpaid_and_unnotified(live: Live) -> None:
    """With `declined`, the buyer's payment is refused: the trade stays WAIT_BUYER_PAY and nothing is notified."""
    out = await _precreate(live)
    live.sandbox.set_faults(out, {"declined"})
    answer = await _buyer_pays(live, out)
    assert answer.status_code == 409
    assert answer.json()["error"] == "declined"
    assert (await live.provider.query(out)).status == "pending"
    live.sandbox.set_faults(out, set())
    assert (await _buyer_pays(live, out)).status_code == 200


async def test_timeout_then_the_same_refund_number_refunds_once(live: Live) -> None:
    """With `timeout`, the refund is carried out but its answer comes too late (ProviderUnavailable); the retry with the same number answers the refund, and the money moved once."""
    out = await _precreate(live, 1000)
    await _buyer_pays(live, out)
    live.sandbox.set_faults(out, {"timeout"})
    with pytest.raises(ProviderUnavailable):
        await live.provider.refund(_refund(out, "RT", 400, 1000))
    again = await live.provider.refund(_refund(out, "RT", 400, 1000))
    assert (again.status, again.refund_fen) == ("succeeded", 400)
    assert live.sandbox.book.trades[out].refunded_fen == 400


async def test_duplicate_sends_each_notification_twice(live: Live) -> None:
    """With `duplicate`, each try is posted twice at once with the same notify_id."""
    out = await _precreate(live)
    live.sandbox.set_faults(out, {"duplicate"})
    await _buyer_pays(live, out)
    await live.merchant.wait_for(out, 2)
    posts = live.merchant.for_trade(out)
    assert len(posts) == 2
    assert posts[0]["notify_id"] == posts[1]["notify_id"]
    notices = [
        n
        for n in live.merchant.notices
        if isinstance(n, PaymentNotice) and n.trade.out_trade_no == out
    ]
    assert len(notices) == 2
    assert notices[0] == notices[1]


async def test_out_of_order_delivers_the_refund_before_the_payment(live: Live) -> None:
    """With `out_of_order`, a trade's notifications are held and sent newest first: the refund's before the payment's."""
    out = await _precreate(live, 1000)
    live.sandbox.set_faults(out, {"out_of_order"})
    await _buyer_pays(live, out)
    await live.provider.refund(_refund(out, "RO", 100, 1000))
    await live.merchant.wait_for(out, 2)
    posts = live.merchant.for_trade(out)
    assert [p.get("out_biz_no", "") for p in posts] == ["RO", ""]


async def test_late_after_close_sends_the_payment_after_the_merchant_tried_to_close(
    live: Live,
) -> None:
    """With `late_after_close`, the payment's notification waits until the merchant's close (refused: paid), then arrives."""
    out = await _precreate(live)
    live.sandbox.set_faults(out, {"late_after_close"})
    await _buyer_pays(live, out)
    await asyncio.sleep(0.3)
    assert live.merchant.for_trade(out) == []
    with pytest.raises(ProviderRefused) as e:
        await live.provider.close(out)
    assert e.value.provider_code == "TRADE_STATUS_ERROR"
    await live.merchant.wait_for(out, 1)
    assert live.merchant.for_trade(out)[0]["trade_status"] == "TRADE_SUCCESS"


async def test_never_notify_leaves_the_payment_to_be_found_by_a_query(live: Live) -> None:
    """With `never_notify`, no notification comes; only a query finds the payment."""
    out = await _precreate(live)
    live.sandbox.set_faults(out, {"never_notify"})
    await _buyer_pays(live, out)
    await asyncio.sleep(0.4)
    assert live.merchant.for_trade(out) == []
    assert (await live.provider.query(out)).status == "paid"


async def test_faults_are_switched_over_http_and_unknown_ones_refused(live: Live) -> None:
    """POST /sandbox/faults switches a trade's faults; an unknown fault is a 400 listing the known ones."""
    async with httpx.AsyncClient(base_url=live.sandbox.url) as http:
        ok = await http.post(
            "/sandbox/faults", json={"out_trade_no": "X1", "faults": ["duplicate"]}
        )
        assert ok.status_code == 200
        bad = await http.post("/sandbox/faults", json={"out_trade_no": "X1", "faults": ["nope"]})
        assert bad.status_code == 400
        assert "never_notify" in bad.json()["known"]
        listed = await http.get("/sandbox/notifications")
        assert listed.status_code == 200
        assert isinstance(listed.json(), list)
    live.sandbox.set_faults("X1", set())


# ---- verification of notifications ----------------------------------------------------------


def _notification(keys: Keys, **change: str) -> dict[str, str]:
    params = {
        "notify_time": "2026-12-06 15:00:00",
        "notify_type": "trade_status_sync",
        "notify_id": secrets.token_hex(12),
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "app_id": APP_ID,
        "seller_id": SELLER_ID,
        "trade_no": "2026120622001000000000000001",
        "out_trade_no": "DS-verify",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "12.34",
        "buyer_pay_amount": "12.34",
        "gmt_payment": "2026-12-06 15:00:00",
    } | change
    return sign_notification(params, keys.alipay)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", "signature"),
        ("tampered", "signature"),
        ("unsigned", "signature"),
        ("rsa1", "sign_type"),
        ("other_app", "app_id"),
        ("other_seller", "seller_id"),
        ("float_amount", "total_amount"),
        ("three_decimals", "total_amount"),
        ("no_trade", "out_trade_no"),
        ("twice", "twice"),
        ("not_utf8", "UTF-8"),
        ("odd_status", "trade_status"),
    ],
)
def test_a_bad_notification_is_rejected_and_logged(
    case: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Forged, tampered, unsigned, RSA1, another app or seller, a non-yuan amount, no trade number, a repeated field, bad bytes or an unknown status: rejected, saying why, logged."""
    keys = KEYS
    params = _notification(keys)
    if case == "forged":
        params = sign_notification(params, keys.app)  # the wrong private key
    elif case == "tampered":
        params["total_amount"] = "0.01"
    elif case == "unsigned":
        del params["sign"]
    elif case == "rsa1":
        params["sign_type"] = "RSA"
    elif case == "other_app":
        params = _notification(keys, app_id="2021000000009999")
    elif case == "other_seller":
        params = _notification(keys, seller_id="2088000000009999")
    elif case == "float_amount":
        params = _notification(keys, total_amount="12.3")
    elif case == "three_decimals":
        params = _notification(keys, total_amount="12.340")
    elif case == "no_trade":
        params = _notification(keys, out_trade_no="")
    elif case == "odd_status":
        params = _notification(keys, trade_status="TRADE_PENDING")
    body = urlencode(params).encode()
    if case == "twice":
        body += b"&total_amount=0.01"
    elif case == "not_utf8":
        body = b"body=%FF%FE&" + body
    with (
        caplog.at_level(logging.WARNING, logger="doorstep.payments.alipay"),
        pytest.raises(NotificationRejected) as e,
    ):
        read_notification(body, app_id=APP_ID, seller_id=SELLER_ID, key=keys.alipay.public_key())
    assert reason in str(e.value)
    assert any("notification rejected" in r.getMessage() for r in caplog.records)


def test_a_genuine_notification_reads_exactly_and_a_replay_is_the_same_notice() -> None:
    """A genuine notification becomes a paid PaymentNotice with fen exact; the same bytes again give an equal notice with the same notify_id (the caller's state decides it changes nothing)."""
    params = _notification(KEYS, total_amount="19.99", buyer_pay_amount="19.99")
    body = urlencode(params).encode()
    key = KEYS.alipay.public_key()
    first = read_notification(body, app_id=APP_ID, seller_id=SELLER_ID, key=key)
    again = read_notification(body, app_id=APP_ID, seller_id=SELLER_ID, key=key)
    assert isinstance(first, PaymentNotice)
    assert (first.trade.amount_fen, first.trade.status, first.notify_id) == (
        1999,
        "paid",
        params["notify_id"],
    )
    assert first == again


# ---- the gateway's checks of requests ---------------------------------------------------------


async def test_the_gateway_refuses_bad_requests_with_alipays_codes(live: Live) -> None:
    """A wrong signature, another app, no method, an unknown method, a bad timestamp, and a float amount each get Alipay's code naming the problem."""
    base = {
        "app_id": APP_ID,
        "method": "alipay.trade.precreate",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-12-06 15:00:00",
        "version": "1.0",
        "biz_content": '{"out_trade_no":"DSbad1","total_amount":"1.00","subject":"x"}',
    }
    cases = [
        (sign_params(base, KEYS.alipay), "isv.invalid-signature"),  # not the app's key
        (sign_params(base | {"app_id": "2021000000009999"}, KEYS.app), "isv.invalid-app-id"),
        (
            sign_params({k: v for k, v in base.items() if k != "method"}, KEYS.app),
            "isv.missing-method",
        ),
        (
            sign_params(base | {"method": "alipay.trade.pay.everything"}, KEYS.app),
            "isv.invalid-method",
        ),
        (sign_params(base | {"timestamp": "06/12/2026"}, KEYS.app), "isv.invalid-timestamp"),
        (
            sign_params(
                base
                | {"biz_content": '{"out_trade_no":"DSbad2","total_amount":12.5,"subject":"x"}'},
                KEYS.app,
            ),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            sign_params(
                base
                | {"biz_content": '{"out_trade_no":"DSbad3","total_amount":"12.5","subject":"x"}'},
                KEYS.app,
            ),
            "ACQ.INVALID_PARAMETER",
        ),
    ]
    async with httpx.AsyncClient() as http:
        for params, sub_code in cases:
            r = await http.post(live.sandbox.gateway_url, data=params)
            assert r.status_code == 200
            assert f'"sub_code":"{sub_code}"' in r.text, (sub_code, r.text)
            assert '"sign":"' in r.text


async def test_prepay_refuses_bad_amounts_currency_and_channel_before_calling(live: Live) -> None:
    """Zero, negative or float fen, a currency other than CNY, and a WeChat channel are InvalidPayment naming the field."""
    changes: list[tuple[dict[str, object], str]] = [
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": -5}, "amount_fen"),
        ({"amount_fen": 12.5}, "amount_fen"),
        ({"channel": "native"}, "channel"),
    ]
    for change, field in changes:
        request: dict[str, object] = {
            "out_trade_no": _no(),
            "description": "x",
            "amount_fen": 100,
            "channel": "precreate",
            "notify_url": live.notify_url,
        } | change
        with pytest.raises(InvalidPayment) as e:
            await live.provider.prepay(PrepayRequest(**request))  # type: ignore[arg-type]
        assert e.value.field == field
    with pytest.raises(InvalidPayment) as e:
        await live.provider.prepay(
            PrepayRequest(
                out_trade_no=_no(),
                description="x",
                amount_fen=100,
                channel="precreate",
                notify_url=live.notify_url,
                currency="USD",  # type: ignore[arg-type]
            )
        )
    assert e.value.field == "currency"


async def test_an_unreachable_gateway_is_unavailable_not_refused() -> None:
    """With nobody listening at the gateway's address, a call is ProviderUnavailable (outcome unknown)."""
    from doorstep.embedded import free_port
    from payments.alipay import AlipayProvider

    provider = AlipayProvider(
        AlipayConfig(
            gateway_url=f"http://127.0.0.1:{free_port()}/gateway.do",
            app_id=APP_ID,
            seller_id=SELLER_ID,
            app_private_key=private_pem(KEYS.app),
            alipay_public_key=public_pem(KEYS.alipay.public_key()),
            timeout_s=1.0,
        )
    )
    with pytest.raises(ProviderUnavailable):
        await provider.query("DSnobody")
    await provider.aclose()


def test_keys_never_appear_in_reprs_or_settings() -> None:
    """The adapter's configuration and the settings leave the private key out of their repr."""
    from doorstep.settings import from_env

    pem = private_pem(KEYS.app)
    config = AlipayConfig(
        "http://x/gateway.do", APP_ID, SELLER_ID, pem, public_pem(KEYS.alipay.public_key())
    )
    assert "PRIVATE" not in repr(config)
    settings = from_env(
        {
            "DOORSTEP_ALIPAY_GATEWAY": "https://openapi.alipay.com/gateway.do",
            "DOORSTEP_ALIPAY_APP_ID": APP_ID,
            "DOORSTEP_ALIPAY_SELLER_ID": SELLER_ID,
            "DOORSTEP_ALIPAY_APP_PRIVATE_KEY": pem,
            "DOORSTEP_ALIPAY_PUBLIC_KEY": public_pem(KEYS.alipay.public_key()),
        }
    )
    assert settings.alipay_app_private_key == pem
    assert "PRIVATE" not in repr(settings)


def test_a_gateway_without_its_keys_is_refused_at_start() -> None:
    """DOORSTEP_ALIPAY_GATEWAY without the app id, seller id and keys is an error naming the variable."""
    from doorstep.errors import InvalidInput
    from doorstep.settings import from_env

    with pytest.raises(InvalidInput) as e:
        from_env({"DOORSTEP_ALIPAY_GATEWAY": "https://openapi.alipay.com/gateway.do"})
    assert e.value.field == "DOORSTEP_ALIPAY_GATEWAY"


async def test_an_unpaid_trade_closes_itself_at_its_expiry(live: Live) -> None:
    """A trade precreated with expire_at closes unpaid when that time passes: TRADE_CLOSED is notified and the buyer can no longer pay."""
    from datetime import UTC, datetime, timedelta

    out = _no()
    await live.provider.prepay(
        PrepayRequest(
            out_trade_no=out,
            description="上门维修",
            amount_fen=500,
            channel="precreate",
            notify_url=live.notify_url,
            expire_at=datetime.now(UTC) + timedelta(seconds=5),
        )
    )
    assert (await live.provider.query(out)).status == "pending"
    await live.merchant.wait_for(out, 1)
    assert live.merchant.for_trade(out)[0]["trade_status"] == "TRADE_CLOSED"
    assert (await live.provider.query(out)).status == "closed"
    assert (await _buyer_pays(live, out)).json()["error"] == "ACQ.TRADE_HAS_CLOSE"


async def test_the_wechat_sandboxs_fault_words_work_here_too(live: Live) -> None:
    """POST /sandbox/faults takes {"notify": "never"} and {"timeouts_next": n} as the WeChat sandbox does, and /sandbox/pay takes outcome declined."""
    out = await _precreate(live)
    async with httpx.AsyncClient(base_url=live.sandbox.url) as http:
        r = await http.post("/sandbox/faults", json={"out_trade_no": out, "notify": "never"})
        assert r.json()["faults"] == ["never_notify"]
        declined = await http.post(
            "/sandbox/pay", json={"out_trade_no": out, "outcome": "declined"}
        )
        assert declined.status_code == 409
        assert (await live.provider.query(out)).status == "pending"
        assert (await http.post("/sandbox/pay", json={"out_trade_no": out})).status_code == 200
        await http.post("/sandbox/faults", json={"out_trade_no": "-", "timeouts_next": 1})
    with pytest.raises(ProviderUnavailable):
        await live.provider.query(out)
    assert (await live.provider.query(out)).status == "paid"
    await asyncio.sleep(0.3)
    assert live.merchant.for_trade(out) == []


async def test_no_key_reaches_the_logs_through_a_whole_trade(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """Precreate, pay, notify, refund and query with every logger at DEBUG: no line holds a piece of either private key or a signature."""
    app_key = "".join(private_pem(live.keys.app).splitlines()[1:-1])
    alipay_key = "".join(private_pem(live.keys.alipay).splitlines()[1:-1])
    with caplog.at_level(logging.DEBUG):
        out = await _precreate(live, 1000)
        await _buyer_pays(live, out)
        await live.merchant.wait_for(out, 1)
        await live.provider.refund(_refund(out, "RK", 100, 1000))
        await live.provider.query(out)
    signatures = {p["sign"] for p in live.merchant.for_trade(out)}
    text = "\n".join(r.getMessage() for r in caplog.records)
    for key in (app_key, alipay_key):
        for i in range(0, len(key) - 24, 24):
            assert key[i : i + 24] not in text
    assert not any(s[:24] in text for s in signatures)


@pytest.mark.parametrize(
    ("signer", "amount", "code"),
    [("alipay", "12.3", "BAD_ANSWER"), ("app", "12.30", "BAD_SIGNATURE")],
)
async def test_an_answer_with_a_bad_amount_or_signature_is_unavailable(
    signer: str, amount: str, code: str
) -> None:
    """A gateway answering a malformed amount, or an answer signed by another key, is ProviderUnavailable (the outcome unknown), never trusted nor a 4xx."""
    import contextlib

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from doorstep.embedded import free_port
    from payments.alipay import AlipayProvider
    from payments.alipay_sign import encode_response

    key = KEYS.alipay if signer == "alipay" else KEYS.app

    async def gateway(request: Request) -> Response:
        payload = {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": "DSodd",
            "trade_no": "1",
            "trade_status": "TRADE_SUCCESS",
            "total_amount": amount,
        }
        return Response(encode_response("alipay_trade_query_response", payload, key))

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    port = free_port()
    server = Quiet(
        uvicorn.Config(
            Starlette(routes=[Route("/gateway.do", gateway)]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    provider = AlipayProvider(
        AlipayConfig(
            gateway_url=f"http://127.0.0.1:{port}/gateway.do",
            app_id=APP_ID,
            seller_id=SELLER_ID,
            app_private_key=private_pem(KEYS.app),
            alipay_public_key=public_pem(KEYS.alipay.public_key()),
            timeout_s=4.0,
        )
    )
    try:
        with pytest.raises(ProviderUnavailable) as e:
            await provider.query("DSodd")
        assert e.value.provider_code == code
    finally:
        await provider.aclose()
        server.should_exit = True
        await task

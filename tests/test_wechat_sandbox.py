"""The WeChat Pay sandbox speaks API v3, and our client (and the wechatpayv3 SDK) talk to it:
signed requests and answers, prepay for JSAPI/H5/Native, query, close, refunds,
encrypted and signed notifications redelivered until acknowledged, and the faults."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from doorstep.embedded import free_port
from payments import wechat_wire as wire
from payments.errors import NotificationRejected, ProviderRefused, ProviderUnavailable
from payments.providers import PaymentNotice, PrepayRequest, RefundNotice, RefundRequest
from payments.wechat import WeChatPay, sandbox_config
from payments.wechat_sandbox import SandboxKeys, WeChatSandbox, WeChatSandboxServer

FAST = (0.1, 0.1, 0.2)  # the redelivery schedule, scaled down


class Receiver:
    """A notify URL that verifies with our client and answers as told."""

    def __init__(self, client: WeChatPay) -> None:
        self.client = client
        self.notices: list[Any] = []
        self.rejected: list[str] = []
        self.answer_status = 204
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self.app = Starlette(routes=[Route("/notify", self.notify, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )

    async def notify(self, request: Request) -> Response:
        body = await request.body()
        try:
            notice = self.client.parse_notification(dict(request.headers), body)
        except NotificationRejected as e:
            self.rejected.append(e.message)
            ack = self.client.acknowledge(False, e.message)
            return Response(ack.body, ack.status, media_type=ack.content_type)
        self.notices.append(notice)
        if self.answer_status != 204:
            return Response(b'{"code":"FAIL","message":"busy"}', self.answer_status)
        ack = self.client.acknowledge(True)
        return Response(ack.body, ack.status)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[WeChatSandbox, WeChatPay, Receiver]]:
    """A sandbox on a real port, our client configured for it, and a notify receiver."""
    sandbox = WeChatSandbox(
        SandboxKeys.generate(), redelivery_s=FAST, refund_delay_s=0.05, timeout_hold_s=1.0
    )
    server = WeChatSandboxServer(sandbox, free_port())
    await server.start()
    client = WeChatPay(sandbox_config(sandbox.keys, server.url))
    receiver = Receiver(client)
    task = asyncio.create_task(receiver.server.serve())
    while not receiver.server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    yield sandbox, client, receiver
    receiver.server.should_exit = True
    with contextlib.suppress(Exception):
        await task
    await client.aclose()
    await server.stop()


def _no() -> str:
    return f"T{secrets.token_hex(8)}"


def _prepay(no: str, url: str, channel: str = "native", fen: int = 1999) -> PrepayRequest:
    return PrepayRequest(
        out_trade_no=no,
        description="深度保洁 3 小时",
        amount_fen=fen,
        channel=channel,  # type: ignore[arg-type]
        notify_url=url,
        payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        client_ip="1.2.3.4",
    )


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never met")


def test_signatures_and_aes_gcm_round_trip_and_detect_tampering() -> None:
    """A signed message verifies, a changed byte does not; a tampered ciphertext does not decrypt."""
    key = wire.new_key_pair()
    message = wire.response_message("1700000000", "abc", b'{"a":1}')
    sig = wire.sign(key, message)
    assert wire.verify(key.public_key(), message, sig)
    assert not wire.verify(key.public_key(), message.replace(b"1", b"2"), sig)
    apiv3 = wire.new_nonce(32)
    ct = wire.encrypt_resource(
        apiv3, b"secret", associated_data="transaction", nonce="123456789012"
    )
    assert (
        wire.decrypt_resource(apiv3, ct, associated_data="transaction", nonce="123456789012")
        == b"secret"
    )
    with pytest.raises(ValueError, match="does not decrypt"):
        wire.decrypt_resource(apiv3, ct, associated_data="refund", nonce="123456789012")


async def test_native_payment_notifies_and_query_agrees(gateway: Any) -> None:
    """Native prepay gives a code_url; paying it sends a signed, encrypted TRANSACTION.SUCCESS
    that our client verifies; the query says SUCCESS with the same transaction id."""
    sandbox, client, receiver = gateway
    no = _no()
    prepay = await client.prepay(_prepay(no, receiver.url))
    assert prepay.code_url is not None
    assert prepay.code_url.startswith("weixin://wxpay/bizpayurl?pr=")
    assert (await client.query(no)).status == "pending"
    status, _ = await sandbox.complete_payment(no, "success")
    assert status == 200
    await _until(lambda: receiver.notices)
    notice = receiver.notices[0]
    assert isinstance(notice, PaymentNotice)
    assert notice.trade.amount_fen == 1999
    assert notice.trade.currency == "CNY"
    trade = await client.query(no)
    assert trade.status == "paid"
    assert trade.provider_trade_no == notice.trade.provider_trade_no


async def test_jsapi_and_h5_prepay_answer_their_own_shapes(gateway: Any) -> None:
    """JSAPI gives a prepay_id and signed wx.requestPayment parameters; H5 gives an h5_url."""
    sandbox, client, receiver = gateway
    js = await client.prepay(_prepay(_no(), receiver.url, "jsapi"))
    assert js.prepay_id is not None
    assert js.pay_params["package"] == f"prepay_id={js.prepay_id}"
    p = js.pay_params
    message = f"{p['appId']}\n{p['timeStamp']}\n{p['nonceStr']}\n{p['package']}\n".encode()
    assert wire.verify(sandbox.keys.merchant_key.public_key(), message, p["paySign"])
    h5 = await client.prepay(_prepay(_no(), receiver.url, "h5"))
    assert h5.pay_url is not None
    assert "/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=" in h5.pay_url


async def test_a_request_signed_by_another_key_is_refused_401(gateway: Any) -> None:
    """The sandbox refuses a request whose signature is not the merchant's (SIGN_ERROR)."""
    sandbox, _, _ = gateway
    forged = WeChatPay(sandbox_config(SandboxKeys.generate(sandbox.keys.mchid), sandbox.base_url))
    forged.config.__dict__["merchant_serial"] = sandbox.keys.merchant_serial
    with pytest.raises(ProviderRefused) as e:
        await forged.query("T123456")
    assert e.value.provider_code == "SIGN_ERROR"
    await forged.aclose()


async def test_bad_prepay_input_is_param_error(gateway: Any) -> None:
    """A zero amount or a bad out_trade_no is PARAM_ERROR; the same number for another
    amount is OUT_TRADE_NO_USED; the same request again is the same prepay."""
    _, client, receiver = gateway
    with pytest.raises(ProviderRefused) as e:
        await client.prepay(_prepay(_no(), receiver.url, fen=0))
    assert e.value.provider_code == "PARAM_ERROR"
    no = _no()
    first = await client.prepay(_prepay(no, receiver.url))
    again = await client.prepay(_prepay(no, receiver.url))
    assert first.code_url == again.code_url
    with pytest.raises(ProviderRefused) as e:
        await client.prepay(_prepay(no, receiver.url, fen=2000))
    assert e.value.provider_code == "OUT_TRADE_NO_USED"


async def test_close_then_pay_is_refused_and_close_after_pay_is_orderpaid(gateway: Any) -> None:
    """A closed trade cannot be paid; closing a paid trade answers ORDERPAID."""
    sandbox, client, receiver = gateway
    no = _no()
    await client.prepay(_prepay(no, receiver.url))
    await client.close(no)
    assert (await client.query(no)).status == "closed"
    status, _ = await sandbox.complete_payment(no, "success")
    assert status == 409
    paid = _no()
    await client.prepay(_prepay(paid, receiver.url))
    await sandbox.complete_payment(paid, "success")
    with pytest.raises(ProviderRefused) as e:
        await client.close(paid)
    assert e.value.provider_code == "ORDERPAID"


async def test_refunds_partial_idempotent_never_above_the_total(gateway: Any) -> None:
    """Two partial refunds up to the total succeed and notify; the same number again is the
    same refund; a different amount under it is refused; more than what is left is NOT_ENOUGH."""
    sandbox, client, receiver = gateway
    no = _no()
    await client.prepay(_prepay(no, receiver.url, fen=1000))
    await sandbox.complete_payment(no, "success")

    def req(rno: str, fen: int) -> RefundRequest:
        return RefundRequest(
            out_trade_no=no,
            out_refund_no=rno,
            refund_fen=fen,
            total_fen=1000,
            reason="取消",
            notify_url=receiver.url,
        )

    r1 = await client.refund(req(f"{no}R1", 300))
    assert r1.status == "processing"
    assert (await client.refund(req(f"{no}R1", 300))).provider_refund_no == r1.provider_refund_no
    with pytest.raises(ProviderRefused) as e:
        await client.refund(req(f"{no}R1", 301))
    assert e.value.provider_code == "INVALID_REQUEST"
    with pytest.raises(ProviderRefused) as e:
        await client.refund(req(f"{no}R2", 701))
    assert e.value.provider_code == "NOT_ENOUGH"
    await client.refund(req(f"{no}R2", 700))
    await _until(lambda: len([n for n in receiver.notices if isinstance(n, RefundNotice)]) == 2)
    assert (await client.query_refund(no, f"{no}R2")).status == "succeeded"


async def test_unacknowledged_notifications_are_redelivered_on_the_schedule(gateway: Any) -> None:
    """A notify URL answering 500 gets the same notification again on every step of the
    schedule; once it answers 204 the redelivery stops."""
    sandbox, client, receiver = gateway
    receiver.answer_status = 500
    no = _no()
    await client.prepay(_prepay(no, receiver.url))
    await sandbox.complete_payment(no, "success")
    await _until(lambda: len(receiver.notices) >= 3)
    receiver.answer_status = 204
    await _until(lambda: sandbox.deliveries[-1].acked)
    d = sandbox.deliveries[-1]
    assert d.attempts[-1][1] == 204
    assert {n.notify_id for n in receiver.notices} == {d.id}
    assert len(d.attempts) <= 1 + len(FAST)


async def test_a_tampered_notification_is_rejected(gateway: Any) -> None:
    """A body changed after signing, or signed by another key, is rejected naming why."""
    sandbox, client, _ = gateway
    body = sandbox.notification_body(
        "TRANSACTION.SUCCESS", "transaction", "支付成功", {"mchid": sandbox.keys.mchid}
    )
    headers = sandbox.notification_headers(body)
    with pytest.raises(NotificationRejected, match="does not verify"):
        client.parse_notification(headers, body.replace(b"encrypt", b"Encrypt"))
    other = SandboxKeys.generate()
    forged = wire.signed_headers(
        other.platform_key,
        sandbox.keys.platform_key_id,
        body,
        timestamp=int(headers["Wechatpay-Timestamp"]),
        nonce="n1",
    )
    with pytest.raises(NotificationRejected, match="does not verify"):
        client.parse_notification(forged, body)
    stranger = sandbox.notification_body(
        "TRANSACTION.SUCCESS",
        "transaction",
        "x",
        {"mchid": "1234567890", "appid": sandbox.keys.appid},
    )
    with pytest.raises(NotificationRejected, match="mchid"):
        client.parse_notification(sandbox.notification_headers(stranger), stranger)


async def test_faults_never_duplicate_and_timeout(gateway: Any) -> None:
    """'never' sends no notification (the query still says paid); 'duplicate' sends one
    twice; 'timeouts_next' makes the client time out while the work is done."""
    sandbox, client, receiver = gateway
    silent, twice = _no(), _no()
    async with httpx.AsyncClient() as http:
        await http.post(
            f"{sandbox.base_url}/sandbox/faults", json={"out_trade_no": silent, "notify": "never"}
        )
        await http.post(
            f"{sandbox.base_url}/sandbox/faults",
            json={"out_trade_no": twice, "notify": "duplicate"},
        )
    for no in (silent, twice):
        await client.prepay(_prepay(no, receiver.url))
        await sandbox.complete_payment(no, "success")
    await _until(lambda: len(receiver.notices) == 2)
    assert {n.trade.out_trade_no for n in receiver.notices} == {twice}
    assert (await client.query(silent)).status == "paid"
    sandbox.timeouts_next = 1
    client.config.__dict__["timeout_s"] = 0.3
    slow = WeChatPay(client.config, http=httpx.AsyncClient(timeout=0.3))
    no = _no()
    with pytest.raises(ProviderUnavailable):
        await slow.prepay(_prepay(no, receiver.url))
    await asyncio.sleep(1.0)
    assert (await client.query(no)).status == "pending"  # the trade exists all the same
    await slow.aclose()


async def test_the_pay_page_confirms_and_declines(gateway: Any) -> None:
    """The page shows the amount; its decline button makes the trade PAYERROR, confirm pays it."""
    sandbox, client, receiver = gateway
    no = _no()
    prepay = await client.prepay(_prepay(no, receiver.url))
    async with httpx.AsyncClient() as http:
        page = await http.get(prepay.pay_url)
        assert "¥19.99" in page.text
        await http.post(
            f"{sandbox.base_url}/sandbox/pay", data={"out_trade_no": no, "outcome": "declined"}
        )
        assert (await client.query(no)).provider_state == "PAYERROR"
        await http.post(
            f"{sandbox.base_url}/sandbox/pay", data={"out_trade_no": no, "outcome": "success"}
        )
    assert (await client.query(no)).status == "paid"


async def test_the_wechatpayv3_sdk_works_against_the_sandbox(gateway: Any) -> None:
    """The wechatpayv3 SDK, its host set to the sandbox, prepays, queries and verifies a
    notification with its own code: the sandbox speaks what the SDK speaks."""
    from wechatpayv3 import WeChatPay as Sdk
    from wechatpayv3 import WeChatPayType

    sandbox, _, receiver = gateway
    keys = sandbox.keys
    sdk = Sdk(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=keys.mchid,
        private_key=wire.private_pem(keys.merchant_key),
        cert_serial_no=keys.merchant_serial,
        appid=keys.appid,
        apiv3_key=keys.apiv3_key,
        notify_url=receiver.url,
        public_key=wire.public_pem(keys.platform_key.public_key()),
        public_key_id=keys.platform_key_id,
    )
    sdk._core._gate_way = sandbox.base_url  # the SDK's host (no public setting)
    no = _no()
    code, message = await asyncio.to_thread(
        sdk.pay, description="开荒保洁", out_trade_no=no, amount={"total": 100}
    )
    assert code == 200, message
    assert orjson.loads(message)["code_url"].startswith("weixin://")
    await sandbox.complete_payment(no, "success")
    code, message = await asyncio.to_thread(sdk.query, out_trade_no=no)
    assert orjson.loads(message)["trade_state"] == "SUCCESS"
    body = sandbox.notification_body(
        "TRANSACTION.SUCCESS", "transaction", "支付成功", {"mchid": keys.mchid, "out_trade_no": no}
    )
    result = sdk.callback(sandbox.notification_headers(body), body)
    assert result["resource"]["out_trade_no"] == no

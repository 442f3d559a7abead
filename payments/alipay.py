"""The Alipay adapter: :class:`payments.providers.PaymentProvider` over Alipay's OpenAPI.

Outgoing calls go through ``python-alipay-sdk`` (PyPI, module ``alipay``; it builds and
signs the request, sends it, and checks the answer's signature). That SDK has no
parameter for the gateway's address (it picks Alipay's production or sandbox host from
``debug``), but keeps it in one attribute, ``_gateway``, that every call reads: we set
it to the configured gateway (Alipay's own, or our sandbox's ``…/gateway.do``), so
production and the tests run the same code. Two more things the SDK does that we undo:

- it is blocking (``urllib``): each call runs in a small thread pool of its own;
- it stamps requests with the machine's local time; Alipay reads ``timestamp`` as
  Beijing time, so the body is re-stamped in UTC+8 before it is signed.

Its module configures the whole process's logging when imported (``dictConfig``: every
handler flushed and closed, a DEBUG console handler of its own); :func:`_sdk` imports it
without that, and it never runs with ``verbose`` (which would log the signed strings).

Incoming notifications are verified by our own code (:mod:`payments.alipay_sign`,
exactly Alipay's rule: ``sign`` and ``sign_type`` left out, empty values left out),
then the app id, the seller id, the amount (a yuan string with two decimals, nothing
else) and the trade number are checked before anything is returned. Keys come from
settings and are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import sys
import threading
import urllib.error
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric import rsa

from doorstep.errors import InvalidInput
from payments.alipay_book import BEIJING, beijing
from payments.alipay_money import fen_to_yuan, yuan_to_fen
from payments.alipay_sign import load_private_key, load_public_key, notification_ok
from payments.errors import (
    InvalidPayment,
    NotificationRejected,
    ProviderRefused,
    ProviderUnavailable,
)
from payments.providers import (
    Ack,
    Notice,
    PaymentNotice,
    Prepay,
    PrepayRequest,
    ProviderName,
    Refund,
    RefundRequest,
    Trade,
    TradeStatus,
)

log = logging.getLogger("doorstep.payments.alipay")

# Answers that say "not now" rather than "no": the outcome is unknown, query later.
_SDK_IMPORT = threading.Lock()
_UNAVAILABLE = frozenset({"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR", "isp.unknow-error"})


@dataclass(frozen=True)
class AlipayConfig:
    """Where the gateway is and who we are to it. The keys never appear in a repr."""

    gateway_url: str  # https://openapi.alipay.com/gateway.do, or the sandbox's
    app_id: str
    seller_id: str  # our Alipay user id (2088…): notifications must name it
    app_private_key: str = field(repr=False)  # PEM or bare base64 (PKCS#8 / PKCS#1)
    alipay_public_key: str = field(repr=False)  # Alipay's, PEM or bare base64
    timeout_s: float = 15.0


def _sdk() -> tuple[Any, Any]:
    """python-alipay-sdk's ``AliPay`` and ``AliPayConfig``, imported without its logging set-up.

    Its ``alipay/loggers.py`` calls ``logging.config.dictConfig`` when imported, which
    flushes and closes every handler the process has and adds a DEBUG console handler of
    its own. That call is skipped while the SDK is first imported; its logger then has no
    handler and propagates (it logs only with ``verbose``, which we never set).
    """
    with _SDK_IMPORT:
        if "alipay.loggers" not in sys.modules:
            real = logging.config.dictConfig
            logging.config.dictConfig = lambda config: None
            try:
                import alipay.loggers  # noqa: F401
            finally:
                logging.config.dictConfig = real
        from alipay import AliPay
        from alipay.utils import AliPayConfig
    return AliPay, AliPayConfig


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    except ValueError:
        return None


def _answer_fen(answer: Mapping[str, Any], name: str) -> int:
    """An amount of a (signature-checked) answer in fen; a malformed one is the provider's
    fault, not the caller's: ProviderUnavailable, never a 4xx."""
    try:
        return yuan_to_fen(answer.get(name), field=name)
    except InvalidInput as e:
        log.error("Alipay answered a malformed %s: %s", name, e.message)
        raise ProviderUnavailable(
            f"Alipay's answer has a malformed {name}", provider_code="BAD_ANSWER"
        ) from None


def _code(sub_code: str) -> str:
    """``ACQ.TRADE_NOT_EXIST`` → ``TRADE_NOT_EXIST`` (as providers.py names them)."""
    return sub_code.removeprefix("aop.").removeprefix("ACQ.")


class AlipayProvider:
    """Alipay behind :class:`payments.providers.PaymentProvider` (live or sandbox)."""

    def __init__(self, config: AlipayConfig, *, max_threads: int = 8) -> None:
        AliPay, AliPayConfig = _sdk()

        self.config = config
        try:
            load_private_key(config.app_private_key)
            self._alipay_key = load_public_key(config.alipay_public_key)
        except ValueError as e:
            raise InvalidInput(str(e), field="alipay keys") from None
        self._sdk: Any = AliPay(
            appid=config.app_id,
            app_notify_url=None,
            app_private_key_string=config.app_private_key,
            alipay_public_key_string=config.alipay_public_key,
            sign_type="RSA2",
            verbose=False,
            config=AliPayConfig(timeout=config.timeout_s),
        )
        # The SDK's only handle on its host (see the module's docstring).
        self._sdk._gateway = config.gateway_url
        build_body: Callable[..., dict[str, Any]] = self._sdk.build_body

        def beijing_body(*args: Any, **kwargs: Any) -> dict[str, Any]:
            data = build_body(*args, **kwargs)
            data["timestamp"] = beijing(datetime.now(BEIJING))
            return data

        self._sdk.build_body = beijing_body
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="alipay")

    @property
    def name(self) -> ProviderName:
        """``"alipay"``."""
        return "alipay"

    @property
    def merchant_id(self) -> str:
        """Our seller id (the ``seller_id`` of every notification)."""
        return self.config.seller_id

    async def aclose(self) -> None:
        """Stop the thread pool (calls in flight finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- calls ---------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., Any], /, **kwargs: Any) -> dict[str, Any]:
        """Run one SDK call in the pool; its verified answer, or ProviderUnavailable."""
        from alipay.exceptions import AliPayException, AliPayValidationError

        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(self._pool, lambda: fn(**kwargs))
        except AliPayValidationError:
            log.error("Alipay %s: the answer's signature does not check out", what)
            raise ProviderUnavailable(
                f"Alipay {what}: the answer's signature does not check out",
                provider_code="BAD_SIGNATURE",
            ) from None
        except AliPayException as e:  # an unsigned gateway error (bad app id, method, sign)
            log.error("Alipay %s refused by the gateway: %s", what, e)
            raise ProviderRefused(
                f"Alipay {what}: the gateway refused the request ({e.code})",
                provider_code=str(e.code),
            ) from None
        except (TimeoutError, urllib.error.URLError, OSError, ValueError) as e:
            log.warning("Alipay %s: no answer (%s)", what, type(e).__name__)
            raise ProviderUnavailable(
                f"Alipay {what}: no answer ({type(e).__name__})", provider_code="NO_ANSWER"
            ) from None
        if not isinstance(answer, dict):
            raise ProviderUnavailable(f"Alipay {what}: the answer is not an object")
        code = str(answer.get("code", ""))
        if code == "10000":
            return answer
        sub_code = str(answer.get("sub_code") or code)
        message = f"Alipay {what}: {sub_code} {answer.get('sub_msg') or answer.get('msg') or ''}"
        if code == "20000" or sub_code in _UNAVAILABLE:
            raise ProviderUnavailable(message.strip(), provider_code=_code(sub_code))
        raise ProviderRefused(message.strip(), provider_code=_code(sub_code))

    async def call(self, method: str, biz_content: Mapping[str, Any]) -> dict[str, Any]:
        """Any other OpenAPI method through the SDK (``server_api``): the signed, checked
        answer, or ProviderRefused / ProviderUnavailable as for the trade calls. Settlement
        asks ``alipay.data.dataservice.bill.downloadurl.query`` this way."""
        return await self._call(
            method, self._sdk.server_api, api_name=method, biz_content=dict(biz_content)
        )

    async def prepay(self, request: PrepayRequest) -> Prepay:
        """``alipay.trade.precreate`` (a QR code) or ``alipay.trade.wap.pay`` (a URL)."""
        if request.currency != "CNY":
            raise InvalidPayment("must be CNY", field="currency")
        try:
            amount = fen_to_yuan(request.amount_fen, field="amount_fen")
        except InvalidInput as e:
            raise InvalidPayment(e.message, field="amount_fen") from None
        extra: dict[str, str] = {}
        if request.expire_at is not None:
            extra["time_expire"] = beijing(request.expire_at)
        if request.channel == "precreate":
            answer = await self._call(
                "precreate",
                self._sdk.api_alipay_trade_precreate,
                subject=request.description,
                out_trade_no=request.out_trade_no,
                total_amount=amount,
                notify_url=request.notify_url,
                **extra,
            )
            return Prepay(
                provider="alipay",
                out_trade_no=request.out_trade_no,
                channel="precreate",
                code_url=str(answer["qr_code"]),
            )
        if request.channel == "wap":
            query = self._sdk.api_alipay_trade_wap_pay(
                subject=request.description,
                out_trade_no=request.out_trade_no,
                total_amount=amount,
                notify_url=request.notify_url,
                **extra,
            )
            return Prepay(
                provider="alipay",
                out_trade_no=request.out_trade_no,
                channel="wap",
                pay_url=f"{self.config.gateway_url}?{query}",
            )
        raise InvalidPayment("Alipay takes precreate or wap", field="channel")

    async def query(self, out_trade_no: str) -> Trade:
        """``alipay.trade.query``."""
        a = await self._call("query", self._sdk.api_alipay_trade_query, out_trade_no=out_trade_no)
        state = str(a.get("trade_status", ""))
        paid_at = _parse_time(a.get("send_pay_date"))
        return Trade(
            provider="alipay",
            out_trade_no=str(a.get("out_trade_no") or out_trade_no),
            status=_status(state, paid=paid_at is not None),
            provider_state=state,
            amount_fen=_answer_fen(a, "total_amount"),
            currency="CNY",
            merchant_id=self.config.seller_id,
            app_id=self.config.app_id,
            provider_trade_no=a.get("trade_no"),
            payer_paid_fen=(
                _answer_fen(a, "buyer_pay_amount")
                if a.get("buyer_pay_amount") not in (None, "", "0.00")
                else None
            ),
            paid_at=paid_at,
        )

    async def close(self, out_trade_no: str) -> None:
        """``alipay.trade.close`` (refused ``TRADE_STATUS_ERROR`` once paid)."""
        await self._call("close", self._sdk.api_alipay_trade_close, out_trade_no=out_trade_no)

    async def refund(self, request: RefundRequest) -> Refund:
        """``alipay.trade.refund`` with ``out_request_no`` = our refund number (idempotent).

        Alipay refunds synchronously: ``code 10000`` is the refund done. A repeat answers
        ``fund_change: N``, which also means "no money moved now"; the refund is then
        confirmed by ``alipay.trade.fastpay.refund.query``.
        """
        if request.currency != "CNY":
            raise InvalidPayment("must be CNY", field="currency")
        try:
            amount = fen_to_yuan(request.refund_fen, field="refund_fen")
        except InvalidInput as e:
            raise InvalidPayment(e.message, field="refund_fen") from None
        if request.refund_fen > request.total_fen:
            raise InvalidPayment("must not exceed total_fen", field="refund_fen")
        a = await self._call(
            "refund",
            self._sdk.api_alipay_trade_refund,
            refund_amount=amount,
            out_trade_no=request.out_trade_no,
            out_request_no=request.out_refund_no,
            refund_reason=request.reason,
        )
        if a.get("fund_change") != "Y":
            return await self.query_refund(request.out_trade_no, request.out_refund_no)
        return Refund(
            provider="alipay",
            out_trade_no=request.out_trade_no,
            out_refund_no=request.out_refund_no,
            status="succeeded",
            provider_state="REFUND_SUCCESS",
            refund_fen=request.refund_fen,
            total_fen=request.total_fen,
            currency="CNY",
            merchant_id=self.config.seller_id,
            provider_refund_no=a.get("trade_no"),
            succeeded_at=_parse_time(a.get("gmt_refund_pay")),
        )

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> Refund:
        """``alipay.trade.fastpay.refund.query``; ProviderRefused ``REFUND_NOT_EXIST`` if none."""
        a = await self._call(
            "refund query",
            self._sdk.api_alipay_trade_fastpay_refund_query,
            out_request_no=out_refund_no,
            out_trade_no=out_trade_no,
        )
        if not a.get("refund_amount"):
            # Alipay's documented answer for a refund it does not hold: success, no amounts.
            raise ProviderRefused(
                f"Alipay holds no refund {out_refund_no} of {out_trade_no}",
                provider_code="REFUND_NOT_EXIST",
            )
        state = str(a.get("refund_status") or "REFUND_SUCCESS")
        return Refund(
            provider="alipay",
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            status="succeeded" if state == "REFUND_SUCCESS" else "processing",
            provider_state=state,
            refund_fen=_answer_fen(a, "refund_amount"),
            total_fen=_answer_fen(a, "total_amount"),
            currency="CNY",
            merchant_id=self.config.seller_id,
            provider_refund_no=a.get("trade_no"),
            succeeded_at=_parse_time(a.get("gmt_refund_pay")),
        )

    # ---- notifications --------------------------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        """Verify and read an asynchronous notification (a form POST); see
        :func:`read_notification`."""
        return read_notification(
            body, app_id=self.config.app_id, seller_id=self.config.seller_id, key=self._alipay_key
        )

    def acknowledge(self, ok: bool, message: str = "") -> Ack:
        """``success`` stops Alipay's redelivery; anything else (``fail``) keeps it."""
        return Ack(status=200, body=b"success" if ok else b"fail")


def _status(state: str, *, paid: bool) -> TradeStatus:
    if state in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        return "paid"
    if state == "TRADE_CLOSED":
        return "paid" if paid else "closed"
    return "pending"


def _reject(reason: str, params: Mapping[str, str]) -> NotificationRejected:
    log.warning(
        "Alipay notification rejected: %s (notify_id=%s out_trade_no=%s)",
        reason,
        params.get("notify_id", "?")[:64],
        params.get("out_trade_no", "?")[:64],
    )
    return NotificationRejected(f"Alipay notification rejected: {reason}")


def read_notification(body: bytes, *, app_id: str, seller_id: str, key: rsa.RSAPublicKey) -> Notice:
    """A verified notice from a notification's raw form body, or NotificationRejected.

    Checked before anything is read as true: the RSA2 signature over the parameters as
    received (``sign_type`` must be RSA2), ``app_id`` and ``seller_id`` ours, a
    ``notify_id``, an ``out_trade_no``, a known ``trade_status``, and ``total_amount``
    (and ``refund_fee``) as yuan with two decimals. The caller then compares the trade
    number and the amount with its own order under a row lock.

    Every notification becomes a :class:`PaymentNotice`: Alipay's notifications are
    trade status syncs. A refund's (it carries ``out_biz_no``, our refund number, and
    ``refund_fee``) reports the trade, still paid (``TRADE_SUCCESS``, or
    ``TRADE_CLOSED`` after a full refund, with its ``gmt_payment``): its ``refund_fee``
    is the trade's refunded *total* so far, not that refund's amount, so it cannot stand
    for one refund (a :class:`RefundNotice` would carry a wrong amount after a second
    partial refund). Alipay refunds are final when the refund call answers ``10000``
    (:meth:`AlipayProvider.refund`), and ``query_refund`` gives one refund's exact amount.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _reject("the body is not a UTF-8 form", {}) from None
    params: dict[str, str] = {}
    for k, v in pairs:
        if k in params:
            raise _reject(f"{k} appears twice", params)
        params[k] = v
    if params.get("sign_type") != "RSA2":
        raise _reject("sign_type must be RSA2", params)
    if not params.get("sign") or not notification_ok(params, key):
        raise _reject("the signature does not check out (forged or tampered)", params)
    if params.get("app_id") != app_id:
        raise _reject("app_id is not ours", params)
    if params.get("seller_id") != seller_id:
        raise _reject("seller_id is not ours", params)
    notify_id = params.get("notify_id", "")
    out_trade_no = params.get("out_trade_no", "")
    if not notify_id or not out_trade_no:
        raise _reject("notify_id and out_trade_no are required", params)
    state = params.get("trade_status", "")
    if state not in ("WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED", "TRADE_FINISHED"):
        raise _reject(f"unknown trade_status {state[:32]!r}", params)
    try:
        total = yuan_to_fen(params.get("total_amount"), field="total_amount")
        paid = (
            yuan_to_fen(params["buyer_pay_amount"], field="buyer_pay_amount")
            if params.get("buyer_pay_amount") not in (None, "", "0.00")
            else None
        )
        refunded = (
            yuan_to_fen(params["refund_fee"], field="refund_fee")
            if params.get("out_biz_no")
            else None
        )
    except InvalidInput as e:
        raise _reject(str(e), params) from None
    if refunded is not None and refunded > total:
        raise _reject("refund_fee exceeds total_amount", params)
    paid_at = _parse_time(params.get("gmt_payment"))
    return PaymentNotice(
        notify_id=notify_id,
        trade=Trade(
            provider="alipay",
            out_trade_no=out_trade_no,
            status=_status(state, paid=paid_at is not None),
            provider_state=state,
            amount_fen=total,
            currency="CNY",
            merchant_id=seller_id,
            app_id=app_id,
            provider_trade_no=params.get("trade_no"),
            payer_paid_fen=paid,
            paid_at=paid_at,
        ),
    )

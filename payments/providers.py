"""What Doorstep needs of a payment provider (WeChat Pay, Alipay), as a Protocol.

Amounts are integer fen (分), the currency is ``"CNY"``. Every call names the trade by
*our* number (``out_trade_no``) and a refund by *our* refund number
(``out_refund_no``), so a retried call after a timeout is the same request to the
provider (both providers deduplicate on these numbers).

The adapters turn the provider's wire answers into the typed results below, with the
provider's state normalised into a few statuses, and the raw state kept
(``provider_state``) for the logs and the finance pages. A failure answer raises
:class:`payments.errors.ProviderRefused` (a business refusal: closed, already paid,
balance too low …) or :class:`payments.errors.ProviderUnavailable` (no answer, a 5xx: the
outcome is unknown, query before deciding).

Incoming notifications: the HTTP route hands the raw headers and the raw body bytes to
:meth:`PaymentProvider.parse_notification`; it verifies the signature over the bytes
exactly as received, decrypts, checks the merchant (and app) id, and returns a
:data:`Notice`, or raises :class:`payments.errors.NotificationRejected` (nothing changes;
the caller answers :meth:`PaymentProvider.acknowledge` with ``ok=False``). The caller
then checks the notice against its own records (order, amount, currency) under a row
lock, and answers ``acknowledge(True)`` only after its transaction committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, Protocol

import msgspec

ProviderName = Literal["wechat", "alipay"]
PROVIDERS: tuple[ProviderName, ...] = ("wechat", "alipay")
Currency = Literal["CNY"]
# How the customer pays: WeChat JSAPI (in WeChat / a mini program), H5 (a mobile browser),
# Native (scan a QR code); Alipay precreate (scan a QR code), wap (a mobile browser).
Channel = Literal["jsapi", "h5", "native", "precreate", "wap"]
CHANNELS: dict[ProviderName, frozenset[Channel]] = {
    "wechat": frozenset({"jsapi", "h5", "native"}),
    "alipay": frozenset({"precreate", "wap"}),
}

# A trade as we see it: waiting for the payer, paid, closed unpaid, or failed.
# (WeChat NOTPAY/USERPAYING → pending; SUCCESS/REFUND → paid; CLOSED/REVOKED → closed;
#  PAYERROR → failed. Alipay WAIT_BUYER_PAY → pending; TRADE_SUCCESS/TRADE_FINISHED →
#  paid; TRADE_CLOSED → closed, or paid when it closed by a full refund.)
TradeStatus = Literal["pending", "paid", "closed", "failed"]
# A refund: accepted and in progress, done, closed (failed for good), or abnormal
# (WeChat ABNORMAL: the payer's card was closed; needs a person).
RefundStatus = Literal["processing", "succeeded", "closed", "abnormal"]


class PrepayRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Create a trade at the provider for the customer to pay."""

    out_trade_no: str  # ours, 6..32 chars [0-9A-Za-z_-|*]
    description: str
    amount_fen: int
    channel: Channel
    notify_url: str
    expire_at: datetime | None = None  # the provider closes it unpaid after this
    currency: Currency = "CNY"
    payer_openid: str | None = None  # WeChat JSAPI: the payer's openid under our appid
    client_ip: str | None = None  # WeChat H5: the payer's IP


class Prepay(msgspec.Struct, frozen=True, kw_only=True):
    """What the customer's app needs to pay: a QR code's content, a URL to open, or the
    signed parameters for the WeChat JS bridge (``wx.requestPayment``)."""

    provider: ProviderName
    out_trade_no: str
    channel: Channel
    prepay_id: str | None = None  # WeChat JSAPI (and what the pay page takes)
    code_url: str | None = None  # WeChat Native / Alipay precreate: the QR code's content
    pay_url: str | None = None  # WeChat H5 h5_url / Alipay wap: open this in the browser
    pay_params: dict[str, str] = msgspec.field(default_factory=dict)  # JSAPI: appId, timeStamp, …


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """A trade as the provider holds it (a query answer or a payment notification)."""

    provider: ProviderName
    out_trade_no: str
    status: TradeStatus
    provider_state: str  # the provider's own word: SUCCESS, NOTPAY, TRADE_SUCCESS …
    amount_fen: int  # the order's total
    currency: str  # as the provider said it (checked against CNY by the caller)
    merchant_id: str  # mchid / seller_id: checked against ours
    app_id: str = ""
    provider_trade_no: str | None = None  # transaction_id / trade_no
    payer_paid_fen: int | None = None  # what the payer paid (the total less the provider's coupons)
    paid_at: datetime | None = None


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Give ``refund_fen`` of a paid trade back (a part or all of it)."""

    out_trade_no: str
    out_refund_no: str  # ours: the same number is the same refund (idempotent)
    refund_fen: int
    total_fen: int  # the trade's total, as the provider wants it repeated
    reason: str
    notify_url: str
    currency: Currency = "CNY"


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    """A refund as the provider holds it (the refund answer, a query, a notification)."""

    provider: ProviderName
    out_trade_no: str
    out_refund_no: str
    status: RefundStatus
    provider_state: str  # PROCESSING, SUCCESS, CLOSED, ABNORMAL …
    refund_fen: int
    total_fen: int
    currency: str
    merchant_id: str = ""
    provider_refund_no: str | None = None
    succeeded_at: datetime | None = None


class PaymentNotice(msgspec.Struct, frozen=True, kw_only=True, tag="payment"):
    """A verified payment notification (TRANSACTION.SUCCESS / trade_status_sync)."""

    notify_id: str  # the provider's id of this notification (the same on redelivery)
    trade: Trade


class RefundNotice(msgspec.Struct, frozen=True, kw_only=True, tag="refund"):
    """A verified refund notification (REFUND.SUCCESS / REFUND.CLOSED / REFUND.ABNORMAL)."""

    notify_id: str
    refund: Refund


Notice = PaymentNotice | RefundNotice


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP answer to a notification, in the provider's documented format: WeChat
    204 (or 4xx/5xx with ``{"code": "FAIL", "message": …}``), Alipay ``success``/``fail``."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"


class PaymentProvider(Protocol):
    """One payment provider, live or sandbox: the adapters in this package implement it."""

    @property
    def name(self) -> ProviderName:
        """``"wechat"`` or ``"alipay"``."""

    @property
    def merchant_id(self) -> str:
        """Our merchant id at the provider (WeChat mchid, Alipay seller/app id)."""

    async def prepay(self, request: PrepayRequest) -> Prepay:
        """Create the trade (WeChat ``/v3/pay/transactions/{jsapi,h5,native}``, Alipay
        ``alipay.trade.precreate`` / ``alipay.trade.wap.pay``). The same out_trade_no with
        the same content answers the same trade again."""
        ...

    async def query(self, out_trade_no: str) -> Trade:
        """The trade as the provider holds it (raises ProviderRefused ``ORDER_NOT_EXIST``/
        ``TRADE_NOT_EXIST`` if it has none)."""
        ...

    async def close(self, out_trade_no: str) -> None:
        """Close an unpaid trade so it can no longer be paid (raises ProviderRefused
        ``ORDERPAID``/``TRADE_STATUS_ERROR`` if it was paid meanwhile: query it)."""
        ...

    async def refund(self, request: RefundRequest) -> Refund:
        """Ask for a refund; usually ``processing`` at first, then a refund notification."""
        ...

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> Refund:
        """A refund as the provider holds it (Alipay needs the trade number too)."""
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        """Verify (signature over the raw bytes, decryption, merchant id) and parse an
        incoming notification; raises NotificationRejected saying why."""
        ...

    def acknowledge(self, ok: bool, message: str = "") -> Ack:
        """The answer that stops (``ok``) or keeps (not ``ok``) the provider's redelivery."""
        ...

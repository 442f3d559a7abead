"""Payments: the customer pays an order and sees its money; the providers' notifications;
refunds by finance; how a service is paid (docs/payments.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from starlette.responses import Response

from api.bodies import Input
from api.errors import BodyTooLarge
from api.routing import PUBLIC, Ctx, Router
from catalog.errors import CatalogNotFound
from dispatch import store as dispatch_store
from dispatch.errors import OrderNotFound
from payments import store as payments_store
from payments.rules import PAY_MODES, breakdown
from payments.service import Payments, payment_view, refund_view

router = Router("payments")
CUSTOMER = frozenset({"customer"})
FINANCE = frozenset({"admin", "finance"})
READERS = frozenset({"customer", "admin", "finance", "dispatcher"})


class PayIn(Input):
    """How the customer pays: the provider and its channel (WeChat: jsapi, h5, native)."""

    provider: Literal["wechat", "alipay"]
    channel: Literal["jsapi", "h5", "native", "precreate", "wap"]
    openid: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


class PaymentOut(msgspec.Struct, kw_only=True):
    """One trade of an order at a provider, with what the app needs to pay it."""

    id: int
    purpose: str
    provider: str
    channel: str
    out_trade_no: str
    amount_fen: int
    currency: str
    status: str
    provider_trade_no: str | None
    prepay: dict[str, Any]
    refunded_or_pending_fen: int
    created_at: datetime
    expires_at: datetime | None
    paid_at: datetime | None
    closed_at: datetime | None


class RefundOut(msgspec.Struct, kw_only=True):
    """A refund and its state (requested, processing, succeeded, closed, abnormal)."""

    out_refund_no: str
    amount_fen: int
    cause: str
    reason: str
    status: str
    created_at: datetime
    succeeded_at: datetime | None


class PriceLineOut(msgspec.Struct, kw_only=True):
    """One line of the price (negative for a discount)."""

    code: str
    label: str
    amount_fen: int


class BreakdownOut(msgspec.Struct, kw_only=True):
    """The order's price, line by line, and how it is paid."""

    pay_mode: str
    lines: list[PriceLineOut]
    total_fen: int
    deposit_fen: int
    inspection_fee_fen: int
    currency: str


class ItemIn(Input):
    """One item of a quote or an add-on."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    amount_fen: Annotated[int, msgspec.Meta(ge=1)]


class ExtraIn(Input):
    """A quote (a deposit service, on site) or add-on items (during the service)."""

    kind: Literal["quote", "addon"]
    items: Annotated[list[ItemIn], msgspec.Meta(min_length=1, max_length=20)]


class ItemOut(msgspec.Struct, kw_only=True):
    """One item."""

    name: str
    amount_fen: int


class ExtraOut(msgspec.Struct, kw_only=True):
    """A quote or add-on and the customer's decision."""

    id: int
    order_id: int
    kind: str
    items: list[ItemOut]
    total_fen: int
    status: str
    worker_id: int
    created_at: datetime
    decided_at: datetime | None


class OrderMoneyOut(msgspec.Struct, kw_only=True):
    """An order's money: breakdown, what is due, paid and refunded, trades and refunds."""

    order_id: int
    status: str
    breakdown: BreakdownOut | None
    due_purpose: str | None
    extras: list[ExtraOut]
    due_fen: int
    paid_fen: int
    refunded_fen: int
    cancel_fee_fen: int
    payments: list[PaymentOut]
    refunds: list[RefundOut]


class RefundIn(Input):
    """A refund of (part of) an order's payment; the number makes it idempotent."""

    out_refund_no: Annotated[
        str, msgspec.Meta(min_length=6, max_length=64, pattern=r"^[0-9A-Za-z_\-|*@]+$")
    ]
    amount_fen: Annotated[int, msgspec.Meta(ge=1)]
    reason: Annotated[str, msgspec.Meta(max_length=80)] = ""
    currency: Literal["CNY"] = "CNY"


class PayModeIn(Input):
    """How a service is paid: prepaid (一口价), deposit (定金 + 尾款) or after the service."""

    pay_mode: Literal["prepaid", "deposit", "after_service"]
    deposit_fen: Annotated[int, msgspec.Meta(ge=0)] = 0
    inspection_fee_fen: Annotated[int, msgspec.Meta(ge=0)] = 0


class PayModeOut(msgspec.Struct, kw_only=True):
    """A service's pay mode."""

    service_code: str
    pay_mode: str
    deposit_fen: int
    inspection_fee_fen: int


def _payments(ctx: Ctx) -> Payments:
    found: Payments = ctx.request.app.state.payments
    return found


async def _visible_order(ctx: Ctx, order_id: int) -> Any:
    """The order if the caller may see its money: its customer, staff and finance, or a
    grant (finance, customer service, a city's operator) whose scope reaches the order."""
    order = await dispatch_store.get(ctx.stores.pool, order_id)
    staff = ctx.has_role("admin", "finance", "dispatcher") or (
        order is not None and ctx.reaches(order.city_id, order.merchant_id)
    )
    if order is None or (not staff and order.customer_id != ctx.user.user_id):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    return order


@router.post(
    "/v1/orders/{order_id}/pay",
    perm="payments.write",
    roles=CUSTOMER,
    body=PayIn,
    returns=PaymentOut,
    errors={
        404: "no such order of yours",
        409: "nothing to pay now (not awaiting payment, or paid)",
        422: "an unknown provider or channel, or a JSAPI payment without openid",
        503: "the payment provider did not answer",
    },
    summary="Pay an order waiting for its payment: the trade and what the app needs (prepay_id and wx.requestPayment parameters, code_url, or a URL to open)",
)
async def pay(ctx: Ctx, body: PayIn) -> PaymentOut:
    order_id = ctx.path_int("order_id")
    p = await _payments(ctx).start(
        ctx.user.user_id,
        order_id,
        provider=body.provider,
        channel=body.channel,
        payer_openid=body.openid,
        client_ip=ctx.request.client.host if ctx.request.client else None,
    )
    return msgspec.convert(payment_view(p), PaymentOut)


@router.get(
    "/v1/orders/{order_id}/payment",
    perm="payments.read",
    roles=READERS,
    returns=OrderMoneyOut,
    errors={404: "no such order of yours"},
    summary="An order's money: price breakdown, due, paid, refunded, its trades and refunds (the receipt)",
)
async def money(ctx: Ctx) -> OrderMoneyOut:
    order = await _visible_order(ctx, ctx.path_int("order_id"))
    return msgspec.convert(await _payments(ctx).summary(order), OrderMoneyOut)


@router.post(
    "/v1/orders/{order_id}/refunds",
    perm="payments.refund",
    roles=FINANCE,
    body=RefundIn,
    returns=RefundOut,
    status=201,
    errors={
        404: "no such order",
        409: "the refund number was used for another amount or order",
        422: "the amount is more than what is left to refund",
    },
    summary="Refund (part of) an order's payment (after-sales; finance); idempotent by out_refund_no",
)
async def refund(ctx: Ctx, body: RefundIn) -> RefundOut:
    order_id = ctx.path_int("order_id")
    if not await ctx.reaches_order(order_id):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    r = await _payments(ctx).refund(
        order_id,
        out_refund_no=body.out_refund_no,
        amount_fen=body.amount_fen,
        reason=body.reason,
        by=ctx.user.user_id,
    )
    return msgspec.convert(refund_view(r), RefundOut)


@router.post(
    "/v1/payments/{provider}/notify",
    roles=PUBLIC,
    summary="A payment provider's notifications (WeChat Pay v3: signed, AES-GCM; answered 204, or 4xx/5xx with {code: FAIL}. Alipay: RSA2-signed form parameters; answered 200 success or fail)",
    errors={
        200: "Alipay's answer, text/plain: `success` (taken), or `fail` (refused or failed: Alipay sends the same notify_id again)",
        401: "the notification fails verification (signature, decryption, merchant): {code: FAIL}, the provider redelivers",
        404: "no such provider",
        422: "an unknown trade, or an amount or currency other than the trade's: {code: FAIL}",
    },
)
async def notify(ctx: Ctx) -> Response:
    body = await ctx.request.body()
    if len(body) > ctx.settings.max_body_bytes:
        raise BodyTooLarge(f"body is larger than {ctx.settings.max_body_bytes} bytes")
    ack, applied = await _payments(ctx).notification(
        ctx.path_str("provider"), dict(ctx.request.headers), body
    )
    content = ack.body
    if ack.status >= 400 and ack.content_type == "application/json":
        # The provider's failure body ({"code": "FAIL", "message"}) with our error
        # envelope beside it: the provider reads its fields, our clients theirs.
        failure = orjson.loads(ack.body)
        failure["error"] = {
            "code": "notification_rejected",
            "message": applied.reason,
            "field": None,
        }
        content = orjson.dumps(failure)
    return Response(
        content, status_code=ack.status, media_type=ack.content_type if content else None
    )


@router.put(
    "/v1/admin/services/{service_code}/payment",
    perm="payments.write",
    roles=frozenset({"admin"}),
    body=PayModeIn,
    returns=PayModeOut,
    errors={
        404: "no such service",
        422: "a deposit mode without a deposit, or an inspection fee above it",
    },
    summary="How a service is paid: prepaid, deposit (with the inspection fee kept if the quote is declined), or after the service",
)
async def set_pay_mode(ctx: Ctx, body: PayModeIn) -> PayModeOut:
    code = ctx.path_str("service_code")
    if not await ctx.stores.pool.fetchval("SELECT 1 FROM services WHERE code = $1", code):
        raise CatalogNotFound(f"no service {code!r}", field="service_code")
    assert body.pay_mode in PAY_MODES
    breakdown(
        0,
        pay_mode=body.pay_mode,
        deposit_fen=body.deposit_fen,
        inspection_fee_fen=body.inspection_fee_fen,
    )  # the rules of a deposit, as errors naming the field
    await payments_store.set_service_mode(
        ctx.stores.pool, code, body.pay_mode, body.deposit_fen, body.inspection_fee_fen
    )
    return PayModeOut(
        service_code=code,
        pay_mode=body.pay_mode,
        deposit_fen=body.deposit_fen,
        inspection_fee_fen=body.inspection_fee_fen,
    )


@router.post(
    "/v1/orders/{order_id}/extras",
    perm="payments.write",
    roles=frozenset({"worker"}),
    body=ExtraIn,
    returns=ExtraOut,
    status=201,
    errors={
        404: "no such order of yours",
        409: "a quote for a service not paid by deposit, off site, a second quote; add-ons outside the service",
    },
    summary="The worker proposes a quote (定金 service, on site) or add-on items (during the service) for the customer to approve",
)
async def propose(ctx: Ctx, body: ExtraIn) -> ExtraOut:
    row = await _payments(ctx).propose(
        ctx.user.user_id,
        ctx.path_int("order_id"),
        body.kind,
        [(i.name, i.amount_fen) for i in body.items],
    )
    return msgspec.convert(row, ExtraOut)


async def _decide(ctx: Ctx, approve: bool) -> ExtraOut:
    row = await _payments(ctx).decide(
        ctx.user.user_id, ctx.path_int("order_id"), ctx.path_int("extra_id"), approve=approve
    )
    return msgspec.convert(row, ExtraOut)


@router.post(
    "/v1/orders/{order_id}/extras/{extra_id}/approve",
    perm="payments.write",
    roles=CUSTOMER,
    returns=ExtraOut,
    errors={404: "no such order or proposal", 409: "decided already"},
    summary="The customer approves a quote or add-on: the difference becomes due (POST …/pay)",
)
async def approve(ctx: Ctx) -> ExtraOut:
    return await _decide(ctx, True)


@router.post(
    "/v1/orders/{order_id}/extras/{extra_id}/decline",
    perm="payments.write",
    roles=CUSTOMER,
    returns=ExtraOut,
    errors={404: "no such order or proposal", 409: "decided already"},
    summary="The customer declines: a declined quote refunds the deposit less the inspection fee",
)
async def decline(ctx: Ctx) -> ExtraOut:
    return await _decide(ctx, False)

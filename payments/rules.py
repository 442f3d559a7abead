"""The pure rules of paying for an order: price lines, pay modes, what is due, what a
refund may be, what a notification must match, and the ledger entries money moves by.

No I/O: ``payments.service`` applies these with the stores and the providers.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ledger import rules as ledger
from ledger.rules import Entry, credit, debit
from payments.errors import InvalidPayment
from payments.providers import CHANNELS, Channel, ProviderName, Trade

PayMode = Literal["prepaid", "deposit", "after_service"]
PAY_MODES: tuple[PayMode, ...] = ("prepaid", "deposit", "after_service")
Purpose = Literal["prepay", "deposit", "balance", "addon", "final"]
PaymentStatus = Literal["pending", "paid", "closed", "failed"]
CURRENCY = "CNY"
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,64}$")


@dataclass(frozen=True, slots=True)
class PaymentParams:
    """Section ``[payments]`` of the params file."""

    # An order waiting for its payment closes itself after this long (15 min).
    close_after_s: float = 900.0
    # A trade still pending this long after it was made is queried at the provider (a
    # notification that never came), and every query_every_s after.
    query_after_s: float = 60.0
    # Refunds still processing this long are queried at the provider.
    refund_query_after_s: float = 60.0
    # The sandbox's redelivery schedule, scaled (tests run WeChat's 15 s … 6 h at 0.01).
    sandbox_redelivery_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 30 <= self.close_after_s <= 2 * 3600:
            raise ValueError("close_after_s must be between 30 and 7200")
        if not 1 <= self.query_after_s <= 3600:
            raise ValueError("query_after_s must be between 1 and 3600")
        if not 1 <= self.refund_query_after_s <= 24 * 3600:
            raise ValueError("refund_query_after_s must be between 1 and 86400")
        if not 0 < self.sandbox_redelivery_scale <= 1:
            raise ValueError("sandbox_redelivery_scale must be > 0 and <= 1")


@dataclass(frozen=True, slots=True)
class PriceLine:
    """One line of an order's price: base, a surcharge (> 0), a discount (< 0), a fee."""

    code: str  # base, surcharge:<why>, discount:<why>, fee:<why>
    label: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Breakdown:
    """An order's price, line by line, and how it is paid."""

    lines: tuple[PriceLine, ...]
    total_fen: int
    pay_mode: PayMode
    deposit_fen: int = 0
    inspection_fee_fen: int = 0

    def to_json(self) -> dict[str, Any]:
        """The shape stored and shown."""
        return {
            "lines": [
                {"code": x.code, "label": x.label, "amount_fen": x.amount_fen} for x in self.lines
            ],
            "total_fen": self.total_fen,
            "pay_mode": self.pay_mode,
            "deposit_fen": self.deposit_fen,
            "inspection_fee_fen": self.inspection_fee_fen,
            "currency": CURRENCY,
        }


def fen(value: object, field: str, *, positive: bool = True) -> int:
    """An amount in fen, or InvalidPayment naming the field (floats and bools are refused)."""
    if type(value) is not int:
        raise InvalidPayment(
            f"must be an integer number of fen (1 yuan = 100), not {value!r}", field=field
        )
    if value < (1 if positive else 0):
        raise InvalidPayment(f"must be {'> 0' if positive else '>= 0'} fen", field=field)
    if value > ledger.MAX_FEN:
        raise InvalidPayment(f"must be at most {ledger.MAX_FEN} fen", field=field)
    return value


def currency(value: str, field: str = "currency") -> str:
    """The currency, which must be CNY."""
    if value != CURRENCY:
        raise InvalidPayment(f"only {CURRENCY} is accepted, not {value!r}", field=field)
    return value


def breakdown(
    base_fen: int,
    *,
    pay_mode: PayMode,
    surcharges: tuple[tuple[str, str, int], ...] = (),
    discounts: tuple[tuple[str, str, int], ...] = (),
    fees: tuple[tuple[str, str, int], ...] = (),
    deposit_fen: int = 0,
    inspection_fee_fen: int = 0,
) -> Breakdown:
    """The price lines and their total. Surcharges and fees add, discounts subtract (a
    discount never takes the total below zero); (code, label, fen) each, fen > 0."""
    lines = [PriceLine("base", "基础价格 base price", fen(base_fen, "base_fen", positive=False))]
    lines += [
        PriceLine(f"surcharge:{c}", lab, fen(v, f"surcharges.{c}")) for c, lab, v in surcharges
    ]
    lines += [PriceLine(f"fee:{c}", lab, fen(v, f"fees.{c}")) for c, lab, v in fees]
    gross = sum(x.amount_fen for x in lines)
    for c, lab, v in discounts:
        take = min(fen(v, f"discounts.{c}"), gross)
        gross -= take
        lines.append(PriceLine(f"discount:{c}", lab, -take))
    total = sum(x.amount_fen for x in lines)
    if pay_mode == "deposit":
        fen(deposit_fen, "deposit_fen")
        fen(inspection_fee_fen, "inspection_fee_fen", positive=False)
        if inspection_fee_fen > deposit_fen:
            raise InvalidPayment(
                "the inspection fee is kept from the deposit: it cannot exceed it",
                field="inspection_fee_fen",
            )
    return Breakdown(tuple(lines), total, pay_mode, deposit_fen, inspection_fee_fen)


def due_before_dispatch(b: Breakdown) -> tuple[Purpose, int] | None:
    """What must be paid before the order is dispatched (None: nothing, as for a free
    order or one paid after the service)."""
    if b.pay_mode == "prepaid" and b.total_fen > 0:
        return "prepay", b.total_fen
    if b.pay_mode == "deposit":
        return "deposit", b.deposit_fen
    return None


@dataclass(frozen=True, slots=True)
class Extra:
    """A quote (a deposit service, on site) or add-on items, and the customer's decision."""

    id: int
    kind: Literal["quote", "addon"]
    total_fen: int
    status: Literal["proposed", "approved", "declined"]


def check_items(items: list[tuple[str, object]]) -> int:
    """Quote or add-on items: 1..20 of (name 1..40 characters, fen > 0); their total."""
    if not 1 <= len(items) <= 20:
        raise InvalidPayment("give 1 to 20 items", field="items")
    total = 0
    for i, (name, amount) in enumerate(items):
        if not 1 <= len(name.strip()) <= 40:
            raise InvalidPayment("an item's name is 1 to 40 characters", field=f"items[{i}].name")
        total += fen(amount, f"items[{i}].amount_fen")
    return fen(total, "items")


def due_now(
    status: str,
    b: Breakdown,
    extras: list[Extra],
    paid_fen: dict[str, int],
) -> tuple[Purpose, int] | None:
    """What the customer must pay now, if anything, and for what:

    - waiting for payment: the price (prepaid) or the deposit;
    - a deposit service whose quote was approved: the quote less the deposit (尾款);
    - approved add-on items not paid yet;
    - a service paid after it is done, once completed: the price.
    """
    if status == "awaiting_payment":
        return due_before_dispatch(b)
    if status in ("cancelled", "failed"):
        return None
    quote = next((e for e in extras if e.kind == "quote" and e.status == "approved"), None)
    if quote is not None and not paid_fen.get("balance"):
        balance = quote.total_fen - b.deposit_fen
        if balance > 0:
            return "balance", balance
    addons = sum(e.total_fen for e in extras if e.kind == "addon" and e.status == "approved")
    if addons - paid_fen.get("addon", 0) > 0:
        return "addon", addons - paid_fen.get("addon", 0)
    if (
        b.pay_mode == "after_service"
        and status == "completed"
        and b.total_fen > 0
        and not paid_fen.get("final")
    ):
        return "final", b.total_fen
    return None


def check_channel(provider: str, channel: str) -> tuple[ProviderName, Channel]:
    """The provider and channel if the provider offers it."""
    if provider not in CHANNELS:
        raise InvalidPayment(
            f"unknown provider {provider!r}; known: {', '.join(sorted(CHANNELS))}",
            field="provider",
        )
    offered = CHANNELS[provider]
    if channel not in offered:
        raise InvalidPayment(
            f"{provider} offers {', '.join(sorted(offered))}, not {channel!r}", field="channel"
        )
    return provider, channel


def new_out_trade_no(order_id: int, purpose: Purpose) -> str:
    """Our number for a new trade (6..32 of [0-9A-Za-z_-]): the order, the purpose, random."""
    return f"DS{order_id}{purpose[0].upper()}{secrets.token_hex(5)}"


def check_out_refund_no(value: str) -> str:
    """A refund number the providers accept (6..64 of [0-9A-Za-z_-|*@])."""
    if not _OUT_REFUND_NO.match(value):
        raise InvalidPayment("must be 6 to 64 letters, digits or _-|*@", field="out_refund_no")
    return value


def refundable(amount_fen: int, reserved_fen: int) -> int:
    """What is left to refund of a payment."""
    return amount_fen - reserved_fen


def check_refund(refund_fen: object, *, amount_fen: int, reserved_fen: int) -> int:
    """A refund amount: integer fen > 0, at most what is left of the payment."""
    value = fen(refund_fen, "amount_fen")
    left = refundable(amount_fen, reserved_fen)
    if value > left:
        raise InvalidPayment(
            f"{value} fen is more than the {left} fen left to refund of this payment "
            f"({amount_fen} paid, {reserved_fen} refunded or being refunded)",
            field="amount_fen",
        )
    return value


def cancellation_split(paid_fen: int, fee_fen: int) -> tuple[int, int]:
    """(kept, refunded) of a cancelled order's payment: the fee is kept, the rest refunded."""
    kept = max(0, min(fee_fen, paid_fen))
    return kept, paid_fen - kept


def notice_problem(trade: Trade, *, amount_fen: int, merchant_id: str, provider: str) -> str | None:
    """Why a payment notice does not match our trade (None: it does)."""
    if trade.provider != provider:
        return "provider mismatch"
    if trade.merchant_id != merchant_id:
        return "merchant id is not ours"
    if trade.currency != CURRENCY:
        return f"currency {trade.currency!r} is not CNY"
    if trade.amount_fen != amount_fen:
        return f"amount {trade.amount_fen} fen differs from the trade's {amount_fen} fen"
    return None


# --- ledger entries ------------------------------------------------------------------


def captured(provider: str, provider_trade_no: str, order_id: int, fen_: int) -> Entry:
    """The provider received the customer's money for the order."""
    return Entry(
        key=f"{provider}:pay:{provider_trade_no}",
        kind="payment.captured",
        order_id=order_id,
        lines=(debit(ledger.gateway(provider), fen_), credit(ledger.order_funds(order_id), fen_)),
        memo=f"{provider} {provider_trade_no}",
    )


def refund_requested(provider: str, out_refund_no: str, order_id: int, fen_: int) -> Entry:
    """A refund asked of the provider: the order's money is set aside for it."""
    return Entry(
        key=f"refund:{out_refund_no}:requested",
        kind="refund.requested",
        order_id=order_id,
        lines=(
            debit(ledger.order_funds(order_id), fen_),
            credit(ledger.refunds_pending(provider), fen_),
        ),
        memo=out_refund_no,
    )


def refund_succeeded(provider: str, out_refund_no: str, order_id: int, fen_: int) -> Entry:
    """The provider paid the refund back out of what it held for us."""
    return Entry(
        key=f"refund:{out_refund_no}:succeeded",
        kind="refund.succeeded",
        order_id=order_id,
        lines=(
            debit(ledger.refunds_pending(provider), fen_),
            credit(ledger.gateway(provider), fen_),
        ),
        memo=out_refund_no,
    )


def refund_failed(provider: str, out_refund_no: str, order_id: int, fen_: int) -> Entry:
    """The provider closed the refund: the money is the order's again."""
    return Entry(
        key=f"refund:{out_refund_no}:failed",
        kind="refund.failed",
        order_id=order_id,
        lines=(
            debit(ledger.refunds_pending(provider), fen_),
            credit(ledger.order_funds(order_id), fen_),
        ),
        memo=out_refund_no,
    )


def trade_expires_at(
    purpose: Purpose, *, created: datetime, now: datetime, params: PaymentParams
) -> datetime | None:
    """When a new trade expires at the provider: a prepayment or deposit when its order
    closes unpaid (``created`` + ``close_after_s``); the final payment of a service paid
    afterwards ``close_after_s`` after the trade is made (so a discount applied to it is
    not held by a trade left open forever; paying later makes a new trade); others never."""
    if purpose in ("prepay", "deposit"):
        return created + timedelta(seconds=params.close_after_s)
    if purpose == "final":
        return now + timedelta(seconds=params.close_after_s)
    return None


def expires_at(created: datetime, params: PaymentParams) -> datetime:
    """When an unpaid order closes."""
    from datetime import timedelta

    return created + timedelta(seconds=params.close_after_s)

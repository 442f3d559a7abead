"""The sandbox Alipay gateway's trades and refunds, pure (no I/O; ``now`` and ids come in).

What the real gateway decides, as data: a trade is created by ``alipay.trade.precreate``
(or when a buyer opens a ``alipay.trade.wap.pay`` page), is paid by the buyer
(``WAIT_BUYER_PAY`` → ``TRADE_SUCCESS``), closed unpaid (→ ``TRADE_CLOSED``), and
refunded in parts (each ``out_request_no`` once; the whole amount → ``TRADE_CLOSED``).
Each change that Alipay notifies returns a :class:`Notice` (the unsigned parameters of
the asynchronous notification); :mod:`payments.alipay_sandbox` signs and delivers it.
Refusals are :class:`ApiError` with Alipay's codes (``40004`` + ``ACQ.*`` sub-codes).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from doorstep.errors import InvalidInput
from payments.alipay_money import fen_to_yuan, yuan_to_fen

WAIT: Literal["WAIT_BUYER_PAY"] = "WAIT_BUYER_PAY"
SUCCESS: Literal["TRADE_SUCCESS"] = "TRADE_SUCCESS"
CLOSED: Literal["TRADE_CLOSED"] = "TRADE_CLOSED"
TradeStatus = Literal["WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED"]

BEIJING = timezone(timedelta(hours=8))
_OUT_NO = re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII)
_OUT_REQUEST_NO = re.compile(r"[A-Za-z0-9_\-|*@.]{1,64}", re.ASCII)


def beijing(now: datetime) -> str:
    """Alipay's time format: ``yyyy-MM-dd HH:mm:ss`` in Beijing time."""
    return now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class ApiError(Exception):
    """A refusal as the gateway words it: ``code``/``msg`` and ``sub_code``/``sub_msg``."""

    def __init__(
        self, sub_code: str, sub_msg: str, *, code: str = "40004", msg: str = "Business Failed"
    ) -> None:
        super().__init__(f"{code} {sub_code}: {sub_msg}")
        self.code = code
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg

    def answer(self) -> dict[str, str]:
        """The ``..._response`` object of this refusal."""
        return {
            "code": self.code,
            "msg": self.msg,
            "sub_code": self.sub_code,
            "sub_msg": self.sub_msg,
        }


def invalid(field_name: str, rule: str) -> ApiError:
    """A parameter that breaks a rule (``ACQ.INVALID_PARAMETER`` naming it)."""
    return ApiError("ACQ.INVALID_PARAMETER", f"参数无效 {field_name}: {rule}")


_EXPRESS = re.compile(r"([1-9][0-9]{0,4})([mhd])", re.ASCII)
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def _expiry(biz: dict[str, Any], now: datetime) -> datetime | None:
    """When an unpaid trade closes: ``time_expire`` (Beijing) or ``timeout_express``."""
    time_expire = biz.get("time_expire")
    if time_expire:
        try:
            return datetime.strptime(str(time_expire), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            raise invalid("time_expire", "yyyy-MM-dd HH:mm:ss") from None
    express = biz.get("timeout_express")
    if express:
        match = _EXPRESS.fullmatch(str(express))
        if match is None:
            raise invalid("timeout_express", "1m-15d, as 90m, 2h or 1d")
        return now + timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    return None


@dataclass
class Refund:
    """One refund request of a trade, known by its ``out_request_no``."""

    out_request_no: str
    amount_fen: int
    reason: str
    at: datetime


@dataclass
class Trade:
    """A trade as the gateway holds it."""

    trade_no: str
    out_trade_no: str
    total_fen: int
    subject: str
    product_code: str
    notify_url: str
    return_url: str
    token: str  # names its pay page (the qr_code's last part)
    created_at: datetime
    expire_at: datetime | None = None  # closed unpaid at this time
    status: TradeStatus = WAIT
    buyer_id: str = ""
    buyer_logon_id: str = ""
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunds: dict[str, Refund] = field(default_factory=dict)

    @property
    def refunded_fen(self) -> int:
        """What has been refunded so far."""
        return sum(r.amount_fen for r in self.refunds.values())


@dataclass(frozen=True)
class Notice:
    """An asynchronous notification to send: where, and its parameters (unsigned)."""

    out_trade_no: str
    notify_url: str
    params: dict[str, str]
    kind: Literal["pay", "refund", "close"]


class Book:
    """All trades of one sandbox merchant (``app_id`` and ``seller_id``)."""

    def __init__(self, app_id: str, seller_id: str, *, seed: int | None = None) -> None:
        self.app_id = app_id
        self.seller_id = seller_id
        self.trades: dict[str, Trade] = {}
        self._by_trade_no: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        self._rng = random.Random(seed)

    def _digits(self, n: int) -> str:
        return "".join(self._rng.choice("0123456789") for _ in range(n))

    # ---- creating and finding ----------------------------------------------------------

    def create(
        self,
        biz: dict[str, Any],
        *,
        product_code: str,
        notify_url: str,
        return_url: str,
        now: datetime,
    ) -> Trade:
        """The trade ``biz`` describes (precreate, wap pay); an unpaid repeat is the same trade."""
        out_trade_no = biz.get("out_trade_no")
        if not isinstance(out_trade_no, str) or not _OUT_NO.fullmatch(out_trade_no):
            raise invalid("out_trade_no", "1-64 letters, digits, _ or -")
        try:
            total_fen = yuan_to_fen(biz.get("total_amount"), field="total_amount")
        except InvalidInput as e:
            raise invalid("total_amount", e.message) from None
        subject = biz.get("subject")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 256:
            raise invalid("subject", "a non-empty string of at most 256 characters")
        expire_at = _expiry(biz, now)
        known = self.trades.get(out_trade_no)
        if known is not None:
            if known.status == SUCCESS:
                raise ApiError("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if known.status == CLOSED:
                raise ApiError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            if known.total_fen != total_fen or known.subject != subject:
                raise ApiError("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            return known
        trade = Trade(
            trade_no=f"{now.astimezone(BEIJING):%Y%m%d}22001{self._digits(15)}",
            out_trade_no=out_trade_no,
            total_fen=total_fen,
            subject=subject,
            product_code=product_code,
            notify_url=notify_url,
            return_url=return_url,
            token=f"bax{self._digits(8)}{self._rng.getrandbits(64):016x}",
            created_at=now,
            expire_at=expire_at,
        )
        self.trades[out_trade_no] = trade
        self._by_trade_no[trade.trade_no] = out_trade_no
        self._by_token[trade.token] = out_trade_no
        return trade

    def find(self, biz: dict[str, Any]) -> Trade:
        """The trade named by ``trade_no`` or ``out_trade_no``."""
        trade_no, out_trade_no = biz.get("trade_no"), biz.get("out_trade_no")
        if not trade_no and not out_trade_no:
            raise invalid("out_trade_no", "out_trade_no or trade_no is required")
        if trade_no:
            out = self._by_trade_no.get(str(trade_no))
            if out is None or (out_trade_no and out != out_trade_no):
                raise ApiError("ACQ.TRADE_NOT_EXIST", "交易不存在")
            return self.trades[out]
        trade = self.trades.get(str(out_trade_no))
        if trade is None:
            raise ApiError("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return trade

    def out_trade_no_of(self, trade_no: str) -> str:
        """The merchant's number of the trade Alipay numbers ``trade_no`` ("" if none)."""
        return self._by_trade_no.get(trade_no, "")

    def by_token(self, token: str) -> Trade | None:
        """The trade whose pay page ``token`` names."""
        out = self._by_token.get(token)
        return None if out is None else self.trades[out]

    def expire(self, trade: Trade, *, now: datetime) -> Notice | None:
        """Close the trade if it is unpaid past its expiry (``time_expire`` /
        ``timeout_express``); the ``TRADE_CLOSED`` notification, or None."""
        if trade.status != WAIT or trade.expire_at is None or now < trade.expire_at:
            return None
        trade.status = CLOSED
        trade.closed_at = now
        return self._notice(trade, "close", now=now)

    # ---- the buyer ----------------------------------------------------------------------

    def pay(self, trade: Trade, *, now: datetime) -> Notice:
        """The buyer pays: ``TRADE_SUCCESS``, and its notification."""
        if trade.status == SUCCESS:
            raise ApiError("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
        if trade.status == CLOSED:
            raise ApiError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        trade.status = SUCCESS
        trade.paid_at = now
        trade.buyer_id = f"2088{self._digits(12)}"
        trade.buyer_logon_id = f"138******{self._digits(2)}"
        return self._notice(trade, "pay", now=now)

    # ---- the merchant's calls -------------------------------------------------------------

    def query(self, biz: dict[str, Any]) -> dict[str, str]:
        """``alipay.trade.query``'s answer."""
        trade = self.find(biz)
        out = {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade.status,
            "total_amount": fen_to_yuan(trade.total_fen),
        }
        if trade.paid_at is not None:
            paid = fen_to_yuan(trade.total_fen)
            out |= {
                "buyer_logon_id": trade.buyer_logon_id,
                "buyer_user_id": trade.buyer_id,
                "buyer_pay_amount": paid,
                "receipt_amount": paid,
                "invoice_amount": paid,
                "point_amount": "0.00",
                "send_pay_date": beijing(trade.paid_at),
            }
        return out

    def close(self, biz: dict[str, Any], *, now: datetime) -> tuple[dict[str, str], Notice]:
        """``alipay.trade.close``: only an unpaid trade closes."""
        trade = self.find(biz)
        if trade.status != WAIT:
            raise ApiError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.status = CLOSED
        trade.closed_at = now
        answer = {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
        }
        return answer, self._notice(trade, "close", now=now)

    def refund(self, biz: dict[str, Any], *, now: datetime) -> tuple[dict[str, str], Notice | None]:
        """``alipay.trade.refund``: idempotent by ``out_request_no``, never past what was paid."""
        trade = self.find(biz)
        try:
            amount = yuan_to_fen(biz.get("refund_amount"), field="refund_amount")
        except InvalidInput as e:
            raise invalid("refund_amount", e.message) from None
        out_request_no = biz.get("out_request_no") or trade.out_trade_no
        if not isinstance(out_request_no, str) or not _OUT_REQUEST_NO.fullmatch(out_request_no):
            raise invalid("out_request_no", "1-64 letters, digits or _-|*@.")
        known = trade.refunds.get(out_request_no)
        if known is not None:
            if known.amount_fen != amount:
                raise ApiError(
                    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额与该退款请求号之前的金额不一致"
                )
            return self._refund_answer(trade, known, fund_change="N"), None
        if trade.paid_at is None:
            raise ApiError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if trade.status == CLOSED:
            raise ApiError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        if amount > trade.total_fen - trade.refunded_fen:
            raise ApiError("ACQ.REFUND_FEE_ERROR", "退款金额超限")
        reason = biz.get("refund_reason")
        refund = Refund(out_request_no, amount, reason if isinstance(reason, str) else "", now)
        trade.refunds[out_request_no] = refund
        if trade.refunded_fen == trade.total_fen:
            trade.status = CLOSED
            trade.closed_at = now
        notice = self._notice(trade, "refund", now=now, refund=refund)
        return self._refund_answer(trade, refund, fund_change="Y"), notice

    def refund_query(self, biz: dict[str, Any]) -> dict[str, str]:
        """``alipay.trade.fastpay.refund.query``: a refund that is not there has no amounts."""
        trade = self.find(biz)
        out_request_no = biz.get("out_request_no")
        if not isinstance(out_request_no, str) or not out_request_no:
            raise invalid("out_request_no", "required")
        out = {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": out_request_no,
        }
        refund = trade.refunds.get(out_request_no)
        if refund is not None:
            out |= {
                "total_amount": fen_to_yuan(trade.total_fen),
                "refund_amount": fen_to_yuan(refund.amount_fen),
                "refund_status": "REFUND_SUCCESS",
                "gmt_refund_pay": beijing(refund.at),
            }
        return out

    # ---- answers and notifications ------------------------------------------------------

    def _refund_answer(self, trade: Trade, refund: Refund, *, fund_change: str) -> dict[str, str]:
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": trade.buyer_logon_id,
            "buyer_user_id": trade.buyer_id,
            "fund_change": fund_change,
            "refund_fee": fen_to_yuan(trade.refunded_fen),
            "gmt_refund_pay": beijing(refund.at),
        }

    def _notice(
        self,
        trade: Trade,
        kind: Literal["pay", "refund", "close"],
        *,
        now: datetime,
        refund: Refund | None = None,
    ) -> Notice:
        params = {
            "notify_time": beijing(now),
            "notify_type": "trade_status_sync",
            "notify_id": f"{now.astimezone(BEIJING):%Y%m%d}{self._rng.getrandbits(96):024x}",
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "app_id": self.app_id,
            "seller_id": self.seller_id,
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade.status,
            "total_amount": fen_to_yuan(trade.total_fen),
            "subject": trade.subject,
            "gmt_create": beijing(trade.created_at),
        }
        if trade.paid_at is not None:
            paid = fen_to_yuan(trade.total_fen)
            params |= {
                "buyer_id": trade.buyer_id,
                "buyer_logon_id": trade.buyer_logon_id,
                "receipt_amount": paid,
                "invoice_amount": paid,
                "buyer_pay_amount": paid,
                "point_amount": "0.00",
                "gmt_payment": beijing(trade.paid_at),
                "fund_bill_list": '[{"amount":"' + paid + '","fundChannel":"ALIPAYACCOUNT"}]',
            }
        if refund is not None:
            params |= {
                "out_biz_no": refund.out_request_no,
                "refund_fee": fen_to_yuan(trade.refunded_fen),
                "gmt_refund": beijing(refund.at) + ".000",
            }
        if trade.closed_at is not None:
            params["gmt_close"] = beijing(trade.closed_at)
        return Notice(trade.out_trade_no, trade.notify_url, params, kind)

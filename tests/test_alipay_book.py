"""The sandbox Alipay gateway's trade rules, pure: data in, answers and notices out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payments.alipay_book import CLOSED, SUCCESS, WAIT, ApiError, Book

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def _book() -> Book:
    return Book("2021000000000077", "2088000000000077", seed=7)


def _create(book: Book, **biz: Any) -> Any:
    fields = {"out_trade_no": "DS1", "total_amount": "10.00", "subject": "保洁"} | biz
    return book.create(
        fields, product_code="FACE_TO_FACE_PAYMENT", notify_url="http://n", return_url="", now=NOW
    )


def test_a_paid_trades_notice_has_alipays_fields_in_beijing_time() -> None:
    """Paying gives TRADE_SUCCESS and a notice with app_id, seller_id, the yuan amount and gmt_payment in UTC+8."""
    book = _book()
    trade = _create(book)
    notice = book.pay(trade, now=NOW)
    p = notice.params
    assert (trade.status, p["trade_status"], p["total_amount"]) == (
        SUCCESS,
        "TRADE_SUCCESS",
        "10.00",
    )
    assert (p["app_id"], p["seller_id"], p["out_trade_no"]) == (
        "2021000000000077",
        "2088000000000077",
        "DS1",
    )
    assert p["gmt_payment"] == "2026-12-06 15:00:00"
    assert p["notify_type"] == "trade_status_sync"
    assert "sign" not in p


@pytest.mark.parametrize(
    ("biz", "field"),
    [
        ({"total_amount": "10"}, "total_amount"),
        ({"total_amount": 10.0}, "total_amount"),
        ({"total_amount": "0.00"}, "total_amount"),
        ({"out_trade_no": "has space"}, "out_trade_no"),
        ({"out_trade_no": "x" * 65}, "out_trade_no"),
        ({"subject": ""}, "subject"),
        ({"time_expire": "tomorrow"}, "time_expire"),
        ({"timeout_express": "15x"}, "timeout_express"),
    ],
)
def test_bad_trade_fields_are_invalid_parameter_naming_the_field(
    biz: dict[str, Any], field: str
) -> None:
    """A bad amount, trade number, subject or expiry is ACQ.INVALID_PARAMETER whose message names the field."""
    with pytest.raises(ApiError) as e:
        _create(_book(), **biz)
    assert e.value.sub_code == "ACQ.INVALID_PARAMETER"
    assert field in e.value.sub_msg


def test_an_unpaid_trade_expires_and_then_cannot_be_paid() -> None:
    """timeout_express 15m: before it nothing happens; after it, TRADE_CLOSED with a notice, and paying is TRADE_HAS_CLOSE."""
    book = _book()
    trade = _create(book, timeout_express="15m")
    assert book.expire(trade, now=NOW + timedelta(minutes=14)) is None
    notice = book.expire(trade, now=NOW + timedelta(minutes=15))
    assert notice is not None
    assert (trade.status, notice.params["trade_status"]) == (CLOSED, "TRADE_CLOSED")
    with pytest.raises(ApiError, match="TRADE_HAS_CLOSE"):
        book.pay(trade, now=NOW + timedelta(minutes=16))


def test_refunds_sum_up_and_the_last_one_closes_the_trade() -> None:
    """Two refunds with their own numbers add up; a repeat moves nothing; the whole amount closes the trade; more is refused."""
    book = _book()
    trade = _create(book)
    book.pay(trade, now=NOW)
    answer, notice = book.refund(
        {"out_trade_no": "DS1", "refund_amount": "4.00", "out_request_no": "R|1"}, now=NOW
    )
    assert (answer["fund_change"], answer["refund_fee"]) == ("Y", "4.00")
    assert notice is not None
    assert notice.params["trade_status"] == "TRADE_SUCCESS"
    again, none = book.refund(
        {"out_trade_no": "DS1", "refund_amount": "4.00", "out_request_no": "R|1"}, now=NOW
    )
    assert (again["fund_change"], none) == ("N", None)
    with pytest.raises(ApiError, match="REFUND_FEE_ERROR"):
        book.refund(
            {"out_trade_no": "DS1", "refund_amount": "6.01", "out_request_no": "R2"}, now=NOW
        )
    _, last = book.refund(
        {"out_trade_no": "DS1", "refund_amount": "6.00", "out_request_no": "R2"}, now=NOW
    )
    assert last is not None
    assert (trade.status, last.params["trade_status"], last.params["refund_fee"]) == (
        CLOSED,
        "TRADE_CLOSED",
        "10.00",
    )
    with pytest.raises(ApiError, match="TRADE_HAS_CLOSE"):
        book.refund(
            {"out_trade_no": "DS1", "refund_amount": "0.01", "out_request_no": "R3"}, now=NOW
        )
    assert (
        book.refund_query({"out_trade_no": "DS1", "out_request_no": "R2"})["refund_amount"]
        == "6.00"
    )
    assert "refund_amount" not in book.refund_query({"out_trade_no": "DS1", "out_request_no": "R9"})


def test_close_only_while_unpaid_and_find_by_either_number() -> None:
    """close works on WAIT_BUYER_PAY only; a trade is found by trade_no or out_trade_no, and a mismatched pair is TRADE_NOT_EXIST."""
    book = _book()
    trade = _create(book)
    assert book.find({"trade_no": trade.trade_no}) is trade
    with pytest.raises(ApiError, match="TRADE_NOT_EXIST"):
        book.find({"trade_no": trade.trade_no, "out_trade_no": "DS2"})
    assert trade.status == WAIT
    book.pay(trade, now=NOW)
    with pytest.raises(ApiError, match="TRADE_STATUS_ERROR"):
        book.close({"out_trade_no": "DS1"}, now=NOW)

"""The settlement package's pure rules: commission, T+N, withdrawals, the trade bill,
reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from settlement import reconcile, tradebill
from settlement.commission import CommissionRule, OrderTerms, amount, commission, pick
from settlement.errors import BelowMinimum, DailyLimit, InsufficientBalance, InvalidMoneyInput
from settlement.reconcile import Item
from settlement.rules import (
    DayUse,
    SettlementParams,
    check_withdrawal,
    day_bounds,
    due_at,
    is_due,
    local_day,
)

DEFAULT = CommissionRule(id=None, rate_bps=2000)
ORDER = OrderTerms("sz", "cleaning", "daily_2h", 77, 15000)


def test_most_specific_rule_wins() -> None:
    """A merchant rule beats a service rule, which beats a category rule, which beats a city rule."""
    city = CommissionRule(id=1, rate_bps=1000, city_id="sz")
    cat = CommissionRule(id=2, rate_bps=1100, category="cleaning")
    svc = CommissionRule(id=3, rate_bps=1200, service_code="daily_2h")
    merchant = CommissionRule(id=4, rate_bps=1300, merchant_id=77)
    assert pick([city], ORDER, DEFAULT) is city
    assert pick([city, cat], ORDER, DEFAULT) is cat
    assert pick([svc, city, cat], ORDER, DEFAULT) is svc
    assert pick([merchant, svc, city, cat], ORDER, DEFAULT) is merchant
    # a city+category rule (3) does not beat a service rule (4)
    both = CommissionRule(id=5, rate_bps=900, city_id="sz", category="cleaning")
    assert pick([both, svc], ORDER, DEFAULT) is svc
    assert pick([both, cat, city], ORDER, DEFAULT) is both


def test_rules_that_do_not_match_are_ignored_and_the_newest_wins_a_tie() -> None:
    """Another city's or merchant's rule never applies; among equals the highest id wins; none: the default."""
    other_city = CommissionRule(id=1, rate_bps=1000, city_id="bj")
    other_merchant = CommissionRule(id=2, rate_bps=1000, merchant_id=78)
    assert pick([other_city, other_merchant], ORDER, DEFAULT) is DEFAULT
    old = CommissionRule(id=3, rate_bps=1000, city_id="sz")
    new = CommissionRule(id=9, rate_bps=1500, city_id="sz")
    assert pick([new, old], ORDER, DEFAULT) is new
    assert pick([old, new], ORDER, DEFAULT) is new


@pytest.mark.parametrize(
    ("rule", "base", "fee"),
    [
        (CommissionRule(None, 1500), 15000, 2250),
        (CommissionRule(None, 1500), 3, 0),  # 0.45 fen rounds down
        (CommissionRule(None, 1500), 10, 2),  # 1.5 fen rounds half up
        (CommissionRule(None, 1000, fixed_fen=200), 15000, 1700),
        (CommissionRule(None, 100, min_fen=500), 15000, 500),
        (CommissionRule(None, 5000, max_fen=3000), 15000, 3000),
        (CommissionRule(None, 0, fixed_fen=900, min_fen=1000), 800, 800),  # never above the base
        (CommissionRule(None, 10000), 15000, 15000),
        (CommissionRule(None, 2000), 0, 0),
    ],
)
def test_commission_amount(rule: CommissionRule, base: int, fee: int) -> None:
    """bps of the base, half up, plus the fixed part, then min and max, never above the base."""
    assert amount(rule, base) == fee


def test_commission_split_adds_up() -> None:
    """The commission and the payee's part add up to the base."""
    c = commission(
        [CommissionRule(id=7, rate_bps=1234, fixed_fen=99, city_id="sz")], ORDER, DEFAULT
    )
    assert c.rule_id == 7
    assert c.commission_fen + c.payee_fen == ORDER.base_fen
    assert c.commission_fen == (15000 * 1234 + 5000) // 10000 + 99


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate_bps": 10001}, "rate_bps"),
        ({"rate_bps": -1}, "rate_bps"),
        ({"rate_bps": 1.5}, "rate_bps"),
        ({"rate_bps": 100, "fixed_fen": -1}, "fixed_fen"),
        ({"rate_bps": 100, "min_fen": -5}, "min_fen"),
        ({"rate_bps": 100, "min_fen": 500, "max_fen": 400}, "max_fen"),
    ],
)
def test_impossible_rules_name_the_field(kwargs: dict[str, object], field: str) -> None:
    """A rule with an impossible number is refused naming the field."""
    with pytest.raises(InvalidMoneyInput) as e:
        CommissionRule(id=None, **kwargs)  # type: ignore[arg-type]
    assert e.value.field == field


def test_settlement_is_due_after_the_after_sales_window() -> None:
    """T+7: an order completed at t is frozen until t + 7 days, then due."""
    params = SettlementParams(after_sales_days=7)
    done = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    assert due_at(done, params) == done + timedelta(days=7)
    assert not is_due(done, done + timedelta(days=7) - timedelta(seconds=1), params)
    assert is_due(done, done + timedelta(days=7), params)
    assert is_due(done, done, SettlementParams(after_sales_days=0))


def test_local_day_is_chinas() -> None:
    """The withdrawal day runs midnight to midnight in Asia/Shanghai."""
    params = SettlementParams()
    at = datetime(2026, 12, 5, 16, 30, tzinfo=UTC)  # 00:30 on the 6th in Beijing
    assert str(local_day(at, params)) == "2026-12-06"
    start, end = day_bounds(local_day(at, params), params)
    assert start == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1)


def test_withdrawal_rules() -> None:
    """Minimum, daily count, daily amount and the available balance, each named."""
    p = SettlementParams(
        withdrawal_min_fen=1000, withdrawal_daily_limit_fen=5000, withdrawal_daily_count=2
    )
    check_withdrawal(1000, available_fen=1000, today=DayUse(0, 0), params=p)
    with pytest.raises(BelowMinimum):
        check_withdrawal(999, available_fen=10**6, today=DayUse(0, 0), params=p)
    with pytest.raises(DailyLimit):
        check_withdrawal(1000, available_fen=10**6, today=DayUse(2000, 2), params=p)
    with pytest.raises(DailyLimit) as e:
        check_withdrawal(3001, available_fen=10**6, today=DayUse(2000, 1), params=p)
    assert "3000 fen of it is left" in str(e.value)
    with pytest.raises(InsufficientBalance):
        check_withdrawal(3000, available_fen=2999, today=DayUse(0, 0), params=p)
    with pytest.raises(InvalidMoneyInput):
        check_withdrawal(1000.0, available_fen=10**6, today=DayUse(0, 0), params=p)  # type: ignore[arg-type]


def test_params_refuse_impossible_values() -> None:
    """A minimum above the daily limit, or an unknown zone, is refused at start-up."""
    with pytest.raises(ValueError, match="withdrawal_min_fen"):
        SettlementParams(withdrawal_min_fen=10, withdrawal_daily_limit_fen=5)
    with pytest.raises(ValueError, match="timezone"):
        SettlementParams(timezone="Mars/Olympus")


def _row(no: str, fen: int, *, refund: str = "", refund_fen: int = 0) -> tradebill.BillRow:
    return tradebill.BillRow(
        trade_time=datetime(2026, 12, 5, 10, 0, 0),
        appid="wxd678efh567hg6787",
        mchid="1900000109",
        transaction_id="4200001234" + no,
        out_trade_no=no,
        openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        trade_type="JSAPI",
        trade_state="REFUND" if refund else "SUCCESS",
        bank_type="OTHERS",
        currency="CNY",
        settlement_fen=0 if refund else fen,
        coupon_fen=0,
        refund_id="5030000" + refund if refund else "",
        out_refund_no=refund,
        refund_fen=refund_fen,
        refund_status="SUCCESS" if refund else "",
        description="日常保洁",
        attach="",
        fee_mfen=fen * 6,  # 0.6 %: fen × 0.006 × 1000
        rate="0.60%",
        total_fen=fen,
        requested_refund_fen=refund_fen,
    )


def test_trade_bill_in_wechats_format_reads_back() -> None:
    """The bill has WeChat's header, backticked values, yuan with two decimals and a summary; it reads back exactly."""
    rows = [_row("P1", 15000), _row("P2", 1), _row("P1", 15000, refund="R1", refund_fen=5000)]
    data = tradebill.write(rows)
    text = data.decode()
    lines = text.splitlines()
    assert lines[0].startswith("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号")
    assert lines[1].startswith("`2026-12-05 10:00:00,`wxd678efh567hg6787,`1900000109,")
    assert ",`150.00," in lines[1]
    assert ",`0.01," in lines[2]
    assert (
        lines[-2]
        == "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    )
    assert lines[-1] == "`3,`150.01,`50.00,`0.00,`1.80006,`300.01,`50.00"
    back, summary = tradebill.read(data)
    assert back == rows
    assert summary.count == 3


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda t: t.replace("交易时间", "时间", 1), "header"),
        (lambda t: t.replace("`150.00", "`150.0", 1), "two decimals"),
        (lambda t: t.replace("`150.00", "150.00", 1), "backtick"),
        (lambda t: t.replace("`2,`150.01", "`2,`150.02"), "add up"),
        (lambda t: t.rsplit("\r\n总交易单数", 1)[0], "summary"),
    ],
)
def test_a_bill_that_is_not_wechats_format_is_refused(mutate: object, why: str) -> None:
    """A wrong header, a float-ish amount, a value without its backtick, or a summary that does not add up is refused."""
    text = tradebill.write([_row("P1", 15000), _row("P2", 1)]).decode()
    with pytest.raises(tradebill.BadBill, match=why):
        tradebill.read(mutate(text).encode())  # type: ignore[operator]


def test_reconciliation_finds_each_kind_of_difference() -> None:
    """Missing in the ledger, missing in the bill, a different amount, a duplicate: each listed once; agreement lists nothing."""
    bill = [
        Item("payment", "A", 100),
        Item("payment", "B", 200),
        Item("payment", "C", 300),
        Item("refund", "R1", 50),
        Item("payment", "E", 10),
        Item("payment", "E", 10),
    ]
    ledger = [
        Item("payment", "A", 100),
        Item("payment", "C", 299),
        Item("payment", "D", 400),
        Item("refund", "R1", 50),
        Item("payment", "E", 20),
    ]
    got = {
        (d.kind, d.ref, d.problem, d.bill_fen, d.ledger_fen)
        for d in reconcile.compare(bill, ledger)
    }
    assert got == {
        ("payment", "B", "missing_in_ledger", 200, None),
        ("payment", "C", "amount_mismatch", 300, 299),
        ("payment", "D", "missing_in_bill", None, 400),
        ("payment", "E", "duplicate_in_bill", 20, 20),
    }
    assert reconcile.compare(ledger[:2], ledger[:2]) == []


def test_bill_items_take_successful_payments_and_refunds() -> None:
    """A SUCCESS row is a payment of what the payer paid; a REFUND row with SUCCESS a refund."""
    items = reconcile.bill_items(
        [_row("P1", 15000), _row("P1", 15000, refund="R1", refund_fen=5000)]
    )
    assert items == [Item("payment", "P1", 15000), Item("refund", "R1", 5000)]

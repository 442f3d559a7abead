"""The pure rules of coupons and points (growth/rules.py): templates, validity,
eligibility, discounts in whole fen, the best coupon, points, and refund shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from growth import entries
from growth import rules as gr
from growth.errors import InvalidGrowth
from growth.rules import Candidate, GrowthParams, OrderFacts, TemplateSpec, Terms
from ledger.rules import validate

NOW = datetime(2030, 3, 1, 10, 0, tzinfo=UTC)
P = GrowthParams()


def terms(**kw: object) -> Terms:
    base: dict[str, object] = {
        "kind": "amount",
        "amount_fen": 1000,
        "percent_off": 0,
        "cap_fen": None,
        "min_spend_fen": 0,
        "categories": (),
        "services": (),
        "cities": (),
    }
    base.update(kw)
    return Terms(**base)  # type: ignore[arg-type]


ORDER = OrderFacts(price_fen=15000, category="clean", service_code="deep", city_id="shenzhen")


def test_amount_and_percent_discounts_in_whole_fen() -> None:
    """An amount coupon takes its amount; a percent one rounds down to fen and obeys its cap."""
    assert gr.discount_fen(terms(), 15000) == 1000
    assert gr.discount_fen(terms(kind="percent", amount_fen=0, percent_off=15), 9999) == 1499
    capped = terms(kind="percent", amount_fen=0, percent_off=50, cap_fen=2000)
    assert gr.discount_fen(capped, 15000) == 2000


def test_a_discount_never_takes_the_whole_price() -> None:
    """A coupon larger than the price leaves min_payable_fen to pay."""
    assert gr.discount_fen(terms(amount_fen=5000), 3000, min_payable_fen=1) == 2999
    assert gr.discount_fen(terms(amount_fen=5000), 1, min_payable_fen=1) == 0


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"cities": ("chengdu",)}, "city"),
        ({"categories": ("repair",)}, "category"),
        ({"services": ("ac",)}, "service"),
        ({"min_spend_fen": 20000}, "min_spend"),
        ({"cities": ("shenzhen",), "categories": ("clean",), "services": ("deep",)}, None),
    ],
)
def test_eligibility_names_the_rule_broken(kw: dict[str, object], reason: str | None) -> None:
    """City, category, service and minimum spend each refuse with their own reason."""
    got = gr.why_not(
        terms(**kw), ORDER, valid_from=NOW, valid_until=NOW + timedelta(days=1), now=NOW
    )
    assert got == reason


def test_validity_window_is_half_open_and_takes_now() -> None:
    """Before valid_from: not yet; at valid_until: expired; between: valid."""
    start, end = NOW, NOW + timedelta(hours=1)
    t = terms()
    assert (
        gr.why_not(t, ORDER, valid_from=start, valid_until=end, now=start - timedelta(seconds=1))
        == "not_yet_valid"
    )
    assert gr.why_not(t, ORDER, valid_from=start, valid_until=end, now=start) is None
    assert gr.why_not(t, ORDER, valid_from=start, valid_until=end, now=end) == "expired"


def test_validity_by_days_after_issue_or_the_template_window() -> None:
    """valid_days counts from issue; a window is the template's own."""
    assert gr.validity(issued_at=NOW, valid_from=None, valid_until=None, valid_days=7) == (
        NOW,
        NOW + timedelta(days=7),
    )
    until = NOW + timedelta(days=30)
    assert gr.validity(issued_at=NOW, valid_from=None, valid_until=until, valid_days=None) == (
        NOW,
        until,
    )


def test_the_best_coupon_is_the_largest_applicable_discount_then_the_soonest_to_expire() -> None:
    """Applicable coupons come first, by discount then expiry; one per order is suggested."""
    soon, later = NOW + timedelta(days=1), NOW + timedelta(days=9)
    found = gr.options(
        [
            Candidate(1, terms(amount_fen=500), NOW, later),
            Candidate(2, terms(amount_fen=2000, min_spend_fen=20000), NOW, later),
            Candidate(3, terms(kind="percent", amount_fen=0, percent_off=10), NOW, later),
            Candidate(4, terms(amount_fen=1500), NOW, soon),
        ],
        ORDER,
        now=NOW,
        params=P,
    )
    assert [(o.coupon_id, o.discount_fen, o.reason) for o in found] == [
        (4, 1500, None),
        (3, 1500, None),
        (1, 500, None),
        (2, 0, "min_spend"),
    ]
    best = gr.best(found)
    assert best is not None
    assert best.coupon_id == 4
    assert gr.best([o for o in found if o.reason]) is None


def test_points_earned_per_whole_yuan_paid() -> None:
    """1 point per whole yuan paid (the default); nothing for a free order."""
    assert gr.points_earned(14999, P) == 149
    assert gr.points_earned(0, P) == 0
    assert gr.points_earned(5000, GrowthParams(points_per_yuan=2)) == 100


def test_points_spendable_are_capped_at_a_share_of_the_price() -> None:
    """At most 30 % of the price after the coupon, what the customer has, leaving 1 fen."""
    assert gr.max_points(10_000, 14000, P) == 4200
    assert gr.max_points(300, 14000, P) == 300
    assert gr.max_points(10_000, 1, P) == 0
    assert gr.points_value_fen(4200, P) == 4200
    assert gr.max_points(10_000, 14000, GrowthParams(fen_per_100_points=50)) == 8400


def test_points_asked_for_are_checked_naming_the_field() -> None:
    """More than held, more than the cap, negative or a float: 422 on points."""
    for bad, avail, allowed in ((-1, 10, 10), (11, 10, 10), (6, 10, 5), (1.5, 10, 10)):
        with pytest.raises(InvalidGrowth) as e:
            gr.check_points(bad, available=avail, allowed=allowed)
        assert e.value.field == "points"
    assert gr.check_points(5, available=10, allowed=5) == 5


def test_refund_shares_add_up_to_the_whole_when_everything_is_refunded() -> None:
    """Proportional shares counted on the running total: partial refunds sum to the total."""
    parts = [
        gr.share_back(777, paid_fen=9500, refunded_before=before, refunded_now=now_)
        for before, now_ in ((0, 3000), (3000, 3000), (6000, 3500))
    ]
    assert sum(parts) == 777
    assert gr.share_back(500, paid_fen=9500, refunded_before=0, refunded_now=7500) == 394
    assert gr.share_back(0, paid_fen=9500, refunded_before=0, refunded_now=9500) == 0


def spec(**kw: object) -> TemplateSpec:
    base: dict[str, object] = {
        "name_zh": "新人券",
        "name_en": "Welcome",
        "kind": "amount",
        "amount_fen": 1000,
        "valid_days": 30,
        "total_stock": 100,
    }
    base.update(kw)
    return TemplateSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name_zh": " "}, "name_zh"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": 10.5}, "amount_fen"),
        ({"kind": "percent", "amount_fen": 0, "percent_off": 100}, "percent_off"),
        ({"kind": "percent", "amount_fen": 0, "percent_off": 10, "cap_fen": 0}, "cap_fen"),
        ({"min_spend_fen": 500}, "min_spend_fen"),
        ({"valid_days": None}, "valid_until"),
        ({"valid_until": NOW + timedelta(days=1)}, "valid_until"),
        ({"valid_days": None, "valid_until": NOW - timedelta(days=1)}, "valid_until"),
        ({"valid_days": None, "valid_until": datetime(2031, 1, 1)}, "valid_until"),
        ({"total_stock": -1}, "total_stock"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"auto_event": "order.paid"}, "auto_event"),
        ({"cities": ("",)}, "cities[0]"),
    ],
)
def test_a_bad_template_is_refused_naming_the_field(kw: dict[str, object], field: str) -> None:
    """Each broken template rule raises InvalidGrowth on its own field."""
    with pytest.raises(InvalidGrowth) as e:
        gr.check_template(spec(**kw), now=NOW)
    assert e.value.field == field


def test_issuable_says_why_not() -> None:
    """Stock, the end of the window, the per-user limit and the switch each refuse."""
    ok = {
        "active": True,
        "issued": 1,
        "total_stock": 2,
        "valid_until": None,
        "held_by_user": 0,
        "per_user_limit": 1,
        "now": NOW,
    }
    assert gr.issuable(**ok) is None  # type: ignore[arg-type]
    assert gr.issuable(**{**ok, "issued": 2}) == "out_of_stock"  # type: ignore[arg-type]
    assert gr.issuable(**{**ok, "held_by_user": 1}) == "limit_reached"  # type: ignore[arg-type]
    assert gr.issuable(**{**ok, "active": False}) == "inactive"  # type: ignore[arg-type]
    assert gr.issuable(**{**ok, "valid_until": NOW}) == "ended"  # type: ignore[arg-type]


def test_the_discount_entries_balance() -> None:
    """The capture's discount entry and a refund's share back are balanced ledger entries."""
    paid = entries.discount_paid(42, 7, coupon_fen=500, points_fen=300, payment="T1")
    assert paid is not None
    validate(paid)
    back = entries.discount_back(42, 7, "R1", coupon_fen=394, points_fen=0)
    assert back is not None
    validate(back)
    assert entries.discount_paid(42, 7, coupon_fen=0, points_fen=0, payment="T") is None
    validate(entries.points_earned(42, 7, 95))
    validate(entries.points_taken_back(42, 7, "R1", 95))

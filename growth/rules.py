"""The pure rules of growth: coupon templates, a coupon's validity, whether it applies to
an order and what it takes off, the best one, points earned and spendable, and how a
refund shares out what the platform paid. No I/O; time is an argument (``now``).

Money is integer fen. One coupon per order (no stacking); points may be spent beside it
(100 points = 1 yuan, so a point is worth one fen), up to a share of the price. A discount
never takes the payable amount below ``min_payable_fen``: an order paid before dispatch
must have something to pay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from growth.errors import InvalidGrowth

CouponKind = Literal["amount", "percent"]
COUPON_KINDS: tuple[CouponKind, ...] = ("amount", "percent")
AUTO_EVENTS: tuple[str, ...] = ("account.created",)
MAX_FEN = 10**9  # 1,000 万 yuan: far above any coupon; catches unit mistakes
MAX_STOCK = 10_000_000
MAX_CODES = 50  # categories, services or cities one template names


@dataclass(frozen=True, slots=True)
class GrowthParams:
    """Section ``[growth]`` of the params file."""

    # Points earned per whole yuan the customer paid in cash for a completed order.
    points_per_yuan: int = 1
    # What 100 points are worth, in fen, when spent (100: 100 points = 1 yuan).
    fen_per_100_points: int = 100
    # Points may pay at most this share of the price after the coupon (basis points).
    points_max_share_bps: int = 3000
    # A discount leaves at least this much to pay (fen).
    min_payable_fen: int = 1
    # An applied discount that no trade holds (none made yet, or the one it had replaced)
    # is released this long after (15 min: as long as a trade of it would live).
    hold_s: float = 900.0

    def __post_init__(self) -> None:
        if not 0 <= self.points_per_yuan <= 100:
            raise ValueError("points_per_yuan must be between 0 and 100")
        if not 1 <= self.fen_per_100_points <= 10_000:
            raise ValueError("fen_per_100_points must be between 1 and 10000")
        if not 0 <= self.points_max_share_bps <= 10_000:
            raise ValueError("points_max_share_bps must be between 0 and 10000")
        if not 1 <= self.min_payable_fen <= 10_000:
            raise ValueError("min_payable_fen must be between 1 and 10000")
        if not 30 <= self.hold_s <= 24 * 3600:
            raise ValueError("hold_s must be between 30 and 86400")


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """A coupon template as an operator describes it (checked by :func:`check_template`)."""

    name_zh: str
    name_en: str
    kind: CouponKind
    amount_fen: int = 0
    percent_off: int = 0
    cap_fen: int | None = None
    min_spend_fen: int = 0
    categories: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = None
    total_stock: int = 0
    per_user_limit: int = 1
    claimable: bool = True
    auto_event: str | None = None


def _fen(value: object, field: str, *, positive: bool) -> int:
    if type(value) is not int:
        raise InvalidGrowth(f"must be an integer number of fen, not {value!r}", field=field)
    if value < (1 if positive else 0) or value > MAX_FEN:
        low = 1 if positive else 0
        raise InvalidGrowth(f"must be between {low} and {MAX_FEN} fen", field=field)
    return value


def _codes(values: Sequence[str], field: str) -> tuple[str, ...]:
    if len(values) > MAX_CODES:
        raise InvalidGrowth(f"name at most {MAX_CODES}", field=field)
    for i, v in enumerate(values):
        if not 1 <= len(v) <= 64:
            raise InvalidGrowth("each is 1 to 64 characters", field=f"{field}[{i}]")
    return tuple(dict.fromkeys(values))


def check_template(spec: TemplateSpec, *, now: datetime) -> TemplateSpec:
    """``spec`` if an operator may save it; else InvalidGrowth naming the field and rule.

    An amount coupon takes ``amount_fen`` (> 0) off; a percent coupon ``percent_off``
    (1..99) % off, at most ``cap_fen`` if given. The minimum spend must be at least the
    amount off. Validity is a window (``valid_until``, optional ``valid_from``) or
    ``valid_days`` after issue, not both. Stock ≥ 0, 1..100 per user.
    """
    for name in ("name_zh", "name_en"):
        value: str = getattr(spec, name)
        if not 1 <= len(value.strip()) <= 40:
            raise InvalidGrowth("must be 1 to 40 characters", field=name)
    if spec.kind not in COUPON_KINDS:
        raise InvalidGrowth("must be 'amount' or 'percent'", field="kind")
    if spec.kind == "amount":
        _fen(spec.amount_fen, "amount_fen", positive=True)
        if spec.percent_off or spec.cap_fen is not None:
            raise InvalidGrowth(
                "an amount coupon has no percent_off or cap_fen", field="percent_off"
            )
    else:
        if type(spec.percent_off) is not int or not 1 <= spec.percent_off <= 99:
            raise InvalidGrowth("must be between 1 and 99 (% off)", field="percent_off")
        if spec.amount_fen:
            raise InvalidGrowth("a percent coupon takes no amount_fen", field="amount_fen")
        if spec.cap_fen is not None:
            _fen(spec.cap_fen, "cap_fen", positive=True)
    _fen(spec.min_spend_fen, "min_spend_fen", positive=False)
    if spec.kind == "amount" and spec.min_spend_fen and spec.min_spend_fen < spec.amount_fen:
        raise InvalidGrowth(
            "must be 0 or at least amount_fen (a coupon never pays the whole order)",
            field="min_spend_fen",
        )
    if (spec.valid_days is None) == (spec.valid_until is None):
        raise InvalidGrowth(
            "give either valid_until (a window) or valid_days (days after issue)",
            field="valid_until",
        )
    for name in ("valid_from", "valid_until"):
        at: datetime | None = getattr(spec, name)
        if at is not None and at.tzinfo is None:
            raise InvalidGrowth("must carry a time zone offset", field=name)
    if spec.valid_until is not None:
        if spec.valid_until <= now:
            raise InvalidGrowth("must be in the future", field="valid_until")
        if spec.valid_from is not None and spec.valid_from >= spec.valid_until:
            raise InvalidGrowth("must be before valid_until", field="valid_from")
    if spec.valid_days is not None and (
        type(spec.valid_days) is not int or not 1 <= spec.valid_days <= 366
    ):
        raise InvalidGrowth("must be between 1 and 366 days", field="valid_days")
    if type(spec.total_stock) is not int or not 0 <= spec.total_stock <= MAX_STOCK:
        raise InvalidGrowth(f"must be between 0 and {MAX_STOCK}", field="total_stock")
    if type(spec.per_user_limit) is not int or not 1 <= spec.per_user_limit <= 100:
        raise InvalidGrowth("must be between 1 and 100", field="per_user_limit")
    if spec.auto_event is not None and spec.auto_event not in AUTO_EVENTS:
        raise InvalidGrowth(f"must be one of {', '.join(AUTO_EVENTS)}", field="auto_event")
    return TemplateSpec(
        name_zh=spec.name_zh.strip(),
        name_en=spec.name_en.strip(),
        kind=spec.kind,
        amount_fen=spec.amount_fen,
        percent_off=spec.percent_off,
        cap_fen=spec.cap_fen,
        min_spend_fen=spec.min_spend_fen,
        categories=_codes(spec.categories, "categories"),
        services=_codes(spec.services, "services"),
        cities=_codes(spec.cities, "cities"),
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        valid_days=spec.valid_days,
        total_stock=spec.total_stock,
        per_user_limit=spec.per_user_limit,
        claimable=spec.claimable,
        auto_event=spec.auto_event,
    )


@dataclass(frozen=True, slots=True)
class Terms:
    """What a coupon takes off and where it applies (a template's, copied to its coupons)."""

    kind: CouponKind
    amount_fen: int
    percent_off: int
    cap_fen: int | None
    min_spend_fen: int
    categories: tuple[str, ...]
    services: tuple[str, ...]
    cities: tuple[str, ...]


def validity(
    *,
    issued_at: datetime,
    valid_from: datetime | None,
    valid_until: datetime | None,
    valid_days: int | None,
) -> tuple[datetime, datetime]:
    """When a coupon issued at ``issued_at`` may be used: the template's window, or
    ``valid_days`` from issue."""
    if valid_days is not None:
        return issued_at, issued_at + timedelta(days=valid_days)
    assert valid_until is not None
    return valid_from or issued_at, valid_until


def issuable(
    *,
    active: bool,
    issued: int,
    total_stock: int,
    valid_until: datetime | None,
    held_by_user: int,
    per_user_limit: int,
    now: datetime,
) -> str | None:
    """Why a template cannot issue one more coupon to a customer now (None: it can)."""
    if not active:
        return "inactive"
    if issued >= total_stock:
        return "out_of_stock"
    if valid_until is not None and valid_until <= now:
        return "ended"
    if held_by_user >= per_user_limit:
        return "limit_reached"
    return None


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What a coupon's eligibility looks at: the price before discounts and the order."""

    price_fen: int
    category: str
    service_code: str
    city_id: str


def why_not(
    terms: Terms, order: OrderFacts, *, valid_from: datetime, valid_until: datetime, now: datetime
) -> str | None:
    """Why a coupon does not apply to the order now (None: it does): the rule broken."""
    if now < valid_from:
        return "not_yet_valid"
    if now >= valid_until:
        return "expired"
    if terms.cities and order.city_id not in terms.cities:
        return "city"
    if terms.categories and order.category not in terms.categories:
        return "category"
    if terms.services and order.service_code not in terms.services:
        return "service"
    if order.price_fen < terms.min_spend_fen:
        return "min_spend"
    return None


def discount_fen(terms: Terms, price_fen: int, *, min_payable_fen: int = 1) -> int:
    """What the coupon takes off ``price_fen``: the amount, or the percentage rounded down
    to whole fen and capped; never more than leaves ``min_payable_fen`` to pay."""
    if terms.kind == "amount":
        off = terms.amount_fen
    else:
        off = price_fen * terms.percent_off // 100
        if terms.cap_fen is not None:
            off = min(off, terms.cap_fen)
    return max(0, min(off, price_fen - min_payable_fen))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A customer's coupon as checkout sees it."""

    coupon_id: int
    terms: Terms
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class Option:
    """A coupon against an order: whether it applies (``reason`` None) and what it takes."""

    coupon_id: int
    discount_fen: int
    reason: str | None
    valid_until: datetime


def options(
    coupons: Iterable[Candidate], order: OrderFacts, *, now: datetime, params: GrowthParams
) -> list[Option]:
    """Every coupon against the order, the applicable ones first, best first: the largest
    discount, then the one expiring first, then the oldest."""
    out = []
    for c in coupons:
        reason = why_not(
            c.terms, order, valid_from=c.valid_from, valid_until=c.valid_until, now=now
        )
        off = (
            0
            if reason
            else discount_fen(c.terms, order.price_fen, min_payable_fen=params.min_payable_fen)
        )
        out.append(Option(c.coupon_id, off, reason, c.valid_until))
    return sorted(
        out, key=lambda o: (o.reason is not None, -o.discount_fen, o.valid_until, o.coupon_id)
    )


def best(found: Sequence[Option]) -> Option | None:
    """The coupon to suggest: the best applicable one (``options`` sorts them)."""
    return next((o for o in found if o.reason is None and o.discount_fen > 0), None)


# --- points ---------------------------------------------------------------------------


def points_earned(paid_fen: int, params: GrowthParams) -> int:
    """Points for a completed order: ``points_per_yuan`` per whole yuan paid in cash."""
    return max(0, paid_fen) // 100 * params.points_per_yuan


def earn_rate_bps(params: GrowthParams, multiplier_bps: int = 10_000) -> int:
    """Points per yuan × 10000 for an order completed now: ``points_per_yuan`` times the
    customer's level multiplier (10000: ×1)."""
    return params.points_per_yuan * multiplier_bps


def points_owed(net_paid_fen: int, rate_bps: int) -> int:
    """The points a completed order carries: ``rate_bps`` / 10000 per whole yuan of cash
    paid for it net of refunds, rounded down."""
    return max(0, net_paid_fen) // 100 * rate_bps // 10_000


def points_value_fen(points: int, params: GrowthParams) -> int:
    """What ``points`` are worth when spent, in fen (rounded down)."""
    return points * params.fen_per_100_points // 100


def max_points(available: int, price_after_coupon_fen: int, params: GrowthParams) -> int:
    """The most points one order may take: what the customer has, at most the share of
    the price after the coupon, and leaving ``min_payable_fen`` to pay."""
    cap_fen = min(
        price_after_coupon_fen * params.points_max_share_bps // 10_000,
        price_after_coupon_fen - params.min_payable_fen,
    )
    if cap_fen <= 0 or available <= 0:
        return 0
    by_value = cap_fen * 100 // params.fen_per_100_points
    return max(0, min(available, by_value))


def check_points(points: object, *, available: int, allowed: int) -> int:
    """Points a customer asks to spend: an integer ≥ 0, within what they have and the cap."""
    if type(points) is not int or points < 0:
        raise InvalidGrowth("must be an integer number of points >= 0", field="points")
    if points > available:
        raise InvalidGrowth(f"you have {available} points to spend", field="points")
    if points > allowed:
        raise InvalidGrowth(
            f"this order takes at most {allowed} points (a share of its price)", field="points"
        )
    return points


def share_back(total: int, *, paid_fen: int, refunded_before: int, refunded_now: int) -> int:
    """What a refund of ``refunded_now`` fen gives back of ``total`` (a subsidy, points)
    that stood beside a payment of ``paid_fen``, after ``refunded_before`` fen refunded:
    proportional, counted on the running total so the parts add up to ``total`` exactly
    when the whole payment is refunded."""
    if paid_fen <= 0 or total <= 0:
        return 0
    after = min(paid_fen, refunded_before + refunded_now)
    before = min(paid_fen, refunded_before)
    return total * after // paid_fen - total * before // paid_fen

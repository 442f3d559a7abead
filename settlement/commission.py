"""Commission rules: which rule applies to an order, and what it takes. Pure, no I/O.

A rule may name a city, a category, a service and a merchant; a dimension left out
matches every order. Of the rules that match, the most specific wins: a merchant
outweighs a service, a service a category, a category a city (weights 8, 4, 2, 1, so
that any rule naming the merchant beats every rule that does not). Among rules equally
specific, the newest (highest id) wins. No rule at all: the platform's default
(``[settlement] default_rate_bps``).

The commission is ``round_half_up(base × rate_bps / 10 000) + fixed_fen``, then raised to
``min_fen`` and lowered to ``max_fen`` (if set), and never more than the base: the payee
is never asked to pay the platform. Everything is integer fen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from settlement.errors import InvalidMoneyInput

BPS = 10_000  # basis points in one


@dataclass(frozen=True, slots=True)
class CommissionRule:
    """A commission rule; ``id`` None is the platform's default."""

    id: int | None
    rate_bps: int
    fixed_fen: int = 0
    min_fen: int = 0
    max_fen: int | None = None
    city_id: str | None = None
    category: str | None = None
    service_code: str | None = None
    merchant_id: int | None = None

    def __post_init__(self) -> None:
        check_terms(self.rate_bps, self.fixed_fen, self.min_fen, self.max_fen)

    @property
    def specificity(self) -> int:
        """How specific the rule is: merchant 8, service 4, category 2, city 1."""
        return (
            8 * (self.merchant_id is not None)
            + 4 * (self.service_code is not None)
            + 2 * (self.category is not None)
            + (self.city_id is not None)
        )

    def matches(self, order: OrderTerms) -> bool:
        """True if every dimension the rule names is the order's."""
        return (
            (self.city_id is None or self.city_id == order.city_id)
            and (self.category is None or self.category == order.category)
            and (self.service_code is None or self.service_code == order.service_code)
            and (self.merchant_id is None or self.merchant_id == order.merchant_id)
        )


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What of an order the rules look at, and the base the commission is taken from."""

    city_id: str
    category: str
    service_code: str
    merchant_id: int | None
    base_fen: int


@dataclass(frozen=True, slots=True)
class Commission:
    """A commission as computed (and snapshotted on the order at payment)."""

    rule_id: int | None
    rate_bps: int
    fixed_fen: int
    min_fen: int
    max_fen: int | None
    base_fen: int
    commission_fen: int
    payee_fen: int  # what the worker or merchant earns: base − commission


def check_terms(rate_bps: int, fixed_fen: int, min_fen: int, max_fen: int | None) -> None:
    """The rule's numbers are possible; each failure names the field and the rule."""
    for name, value in (("rate_bps", rate_bps), ("fixed_fen", fixed_fen), ("min_fen", min_fen)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidMoneyInput("must be an integer", field=name)
    if not 0 <= rate_bps <= BPS:
        raise InvalidMoneyInput(
            "must be between 0 and 10000 basis points (0–100 %)", field="rate_bps"
        )
    if fixed_fen < 0:
        raise InvalidMoneyInput("must be at least 0 fen", field="fixed_fen")
    if min_fen < 0:
        raise InvalidMoneyInput("must be at least 0 fen", field="min_fen")
    if max_fen is not None:
        if isinstance(max_fen, bool) or not isinstance(max_fen, int):
            raise InvalidMoneyInput("must be an integer", field="max_fen")
        if max_fen < min_fen:
            raise InvalidMoneyInput("must be at least min_fen", field="max_fen")


def pick(
    rules: Iterable[CommissionRule], order: OrderTerms, default: CommissionRule
) -> CommissionRule:
    """The most specific matching rule (newest among equals), else ``default``."""
    best: CommissionRule | None = None
    for rule in rules:
        if not rule.matches(order):
            continue
        if best is None or (rule.specificity, rule.id or 0) > (best.specificity, best.id or 0):
            best = rule
    return best if best is not None else default


def amount(rule: CommissionRule, base_fen: int) -> int:
    """The commission ``rule`` takes from ``base_fen`` (integer fen, half up)."""
    if isinstance(base_fen, bool) or not isinstance(base_fen, int) or base_fen < 0:
        raise InvalidMoneyInput("must be a non-negative integer of fen", field="base_fen")
    fee = (base_fen * rule.rate_bps + BPS // 2) // BPS + rule.fixed_fen
    fee = max(fee, rule.min_fen)
    if rule.max_fen is not None:
        fee = min(fee, rule.max_fen)
    return min(fee, base_fen)


def commission(
    rules: Iterable[CommissionRule], order: OrderTerms, default: CommissionRule
) -> Commission:
    """The commission of ``order``: the rule that applies, and the split."""
    rule = pick(rules, order, default)
    fee = amount(rule, order.base_fen)
    return Commission(
        rule_id=rule.id,
        rate_bps=rule.rate_bps,
        fixed_fen=rule.fixed_fen,
        min_fen=rule.min_fen,
        max_fen=rule.max_fen,
        base_fen=order.base_fen,
        commission_fen=fee,
        payee_fen=order.base_fen - fee,
    )

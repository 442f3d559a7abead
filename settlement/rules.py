"""Settlement and withdrawal rules: when an order's earnings become available, what a
withdrawal may be. Pure, no I/O; time is an argument.

- An order's earnings are *frozen* from its completion until its after-sales window has
  passed (T+N: ``completed_at + after_sales_days``), then *available*.
- A withdrawal takes at least ``withdrawal_min_fen``; the withdrawals of one local day
  (``timezone``) that were not rejected or returned add up to at most
  ``withdrawal_daily_limit_fen`` and number at most ``withdrawal_daily_count``; and never
  more than the available balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from settlement.errors import BelowMinimum, DailyLimit, InsufficientBalance, InvalidMoneyInput

Period = Literal["order", "day", "week", "month"]
PERIODS: tuple[str, ...] = ("order", "day", "week", "month")

WithdrawalStatus = Literal["requested", "rejected", "paying", "paid", "failed"]
# Withdrawals that count towards the day's limit: all but those whose money came back.
COUNTED: tuple[str, ...] = ("requested", "paying", "paid")


@dataclass(frozen=True, slots=True)
class SettlementParams:
    """Section ``[settlement]`` of the params file."""

    # Days after completion an order's earnings stay frozen (the after-sales window, T+N).
    after_sales_days: int = 7
    # The platform's commission where no rule applies (basis points: 2000 = 20 %).
    default_rate_bps: int = 2000
    # The smallest withdrawal (fen).
    withdrawal_min_fen: int = 1000
    # What one wallet may withdraw in one local day (fen), and how many times.
    withdrawal_daily_limit_fen: int = 500_000
    withdrawal_daily_count: int = 3
    # The local day of the limits and of the earnings views.
    timezone: str = "Asia/Shanghai"
    # How often a payout in flight is asked for its state (seconds).
    payout_poll_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.after_sales_days <= 90:
            raise ValueError("after_sales_days must be between 0 and 90")
        if not 0 <= self.default_rate_bps <= 10_000:
            raise ValueError("default_rate_bps must be between 0 and 10000")
        if not 1 <= self.withdrawal_min_fen <= self.withdrawal_daily_limit_fen:
            raise ValueError("withdrawal_min_fen must be >= 1 and <= withdrawal_daily_limit_fen")
        if not 1 <= self.withdrawal_daily_count <= 100:
            raise ValueError("withdrawal_daily_count must be between 1 and 100")
        if not 0 < self.payout_poll_s <= 3600:
            raise ValueError("payout_poll_s must be > 0 and <= 3600")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA zone") from None

    @property
    def zone(self) -> ZoneInfo:
        """The local time zone."""
        return ZoneInfo(self.timezone)


def due_at(completed_at: datetime, params: SettlementParams) -> datetime:
    """When an order completed at ``completed_at`` is settled (its earnings available)."""
    if completed_at.tzinfo is None:
        raise ValueError("completed_at must be timezone-aware")
    return completed_at + timedelta(days=params.after_sales_days)


def is_due(completed_at: datetime, now: datetime, params: SettlementParams) -> bool:
    """True once the after-sales window of an order completed at ``completed_at`` is over."""
    return now >= due_at(completed_at, params)


def local_day(at: datetime, params: SettlementParams) -> date:
    """The local calendar day of ``at``."""
    return at.astimezone(params.zone).date()


def day_bounds(day: date, params: SettlementParams) -> tuple[datetime, datetime]:
    """The instants a local day starts and ends (end exclusive)."""
    start = datetime(day.year, day.month, day.day, tzinfo=params.zone)
    return start, datetime.combine(day + timedelta(days=1), start.timetz())


@dataclass(frozen=True, slots=True)
class DayUse:
    """What a wallet has already withdrawn today (counted withdrawals only)."""

    total_fen: int
    count: int


def split_fen(total_fen: int, parts: int) -> list[int]:
    """A crew's share of an order, split between ``parts`` members in whole fen: each gets
    ``total_fen // parts``, and the remainder's fen go one each to the first members (the
    lead first, then by seat), so the shares add up to ``total_fen`` exactly and differ
    by at most 1 fen."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise InvalidMoneyInput("must be a whole number >= 1", field="parts")
    if isinstance(total_fen, bool) or not isinstance(total_fen, int) or total_fen < 0:
        raise InvalidMoneyInput("must be a whole number of fen >= 0", field="total_fen")
    base, extra = divmod(total_fen, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@dataclass(frozen=True, slots=True)
class ShareFen:
    """One crew member's part of a crew order's settlement: ``net_fen`` is what their
    wallet gets; ``commission_fen`` their part of the order's one commission, for their
    view (``gross_fen`` = the two)."""

    gross_fen: int
    commission_fen: int
    net_fen: int


def crew_shares(gross_fen: int, commission_fen: int, parts: int) -> list[ShareFen]:
    """A crew order's ``gross_fen`` less its ``commission_fen``, split between ``parts``
    members by :func:`split_fen` (what the ledger pays each), and the commission split
    the same way, so the members' gross, commission and net each add up to the order's
    (a gross below zero counts as none)."""
    if isinstance(commission_fen, bool) or not isinstance(commission_fen, int):
        raise InvalidMoneyInput("must be a whole number of fen", field="commission_fen")
    gross = max(gross_fen, 0)
    if not 0 <= commission_fen <= gross:
        raise InvalidMoneyInput("must be between 0 and the gross", field="commission_fen")
    cuts = split_fen(commission_fen, parts)
    nets = split_fen(gross - commission_fen, parts)
    return [ShareFen(c + n, c, n) for c, n in zip(cuts, nets, strict=True)]


def check_withdrawal(
    amount_fen: int, *, available_fen: int, today: DayUse, params: SettlementParams
) -> None:
    """Raise the error naming the rule a withdrawal of ``amount_fen`` breaks, if any."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise InvalidMoneyInput("must be an integer number of fen", field="amount_fen")
    if amount_fen < params.withdrawal_min_fen:
        raise BelowMinimum(
            f"must be at least {params.withdrawal_min_fen} fen "
            f"(¥{params.withdrawal_min_fen / 100:.2f})",
            field="amount_fen",
        )
    if today.count >= params.withdrawal_daily_count:
        raise DailyLimit(
            f"at most {params.withdrawal_daily_count} withdrawals a day; try again tomorrow",
            field="amount_fen",
        )
    left = params.withdrawal_daily_limit_fen - today.total_fen
    if amount_fen > left:
        raise DailyLimit(
            f"the daily limit is {params.withdrawal_daily_limit_fen} fen and {max(left, 0)} fen "
            "of it is left today",
            field="amount_fen",
        )
    if amount_fen > available_fen:
        raise InsufficientBalance(
            f"the available balance is {available_fen} fen", field="amount_fen"
        )

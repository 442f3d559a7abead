"""Membership (会员) rules, pure: levels from the points earned over a rolling window,
their benefits (a points multiplier, a monthly coupon pack), a customer's progress, the
month a pack belongs to. Takes ``now``; no I/O. The params are ``[membership]``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Shanghai")  # months begin at midnight in China
MAX_PACK_ITEMS = 10


@dataclass(frozen=True, slots=True)
class PackItem:
    """Coupons of a monthly pack: ``count`` coupons of ``amount_fen`` off orders of at
    least ``min_spend_fen``, valid ``valid_days`` from issue."""

    amount_fen: int
    min_spend_fen: int = 0
    valid_days: int = 30
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.amount_fen <= 1_000_000:
            raise ValueError("pack amount_fen must be between 1 and 1000000")
        if self.min_spend_fen != 0 and self.min_spend_fen < self.amount_fen:
            raise ValueError("pack min_spend_fen must be 0 or at least amount_fen")
        if not 1 <= self.valid_days <= 366:
            raise ValueError("pack valid_days must be between 1 and 366")
        if not 1 <= self.count <= 10:
            raise ValueError("pack count must be between 1 and 10")


@dataclass(frozen=True, slots=True)
class Level:
    """A level: reached with ``min_points`` earned over the window."""

    code: str
    name_zh: str
    name_en: str
    min_points: int
    multiplier_bps: int = 10_000
    pack: tuple[PackItem, ...] = ()


def _level(raw: Any, i: int) -> Level:
    if isinstance(raw, Level):
        return raw
    if not isinstance(raw, dict):
        raise ValueError(f"levels[{i}] must be a table")
    known = {"code", "name_zh", "name_en", "min_points", "multiplier_bps", "pack"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(
            f"levels[{i}]: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    try:
        pack = tuple(p if isinstance(p, PackItem) else PackItem(**p) for p in raw.get("pack", ()))
        level = Level(
            code=str(raw["code"]),
            name_zh=str(raw["name_zh"]),
            name_en=str(raw["name_en"]),
            min_points=int(raw["min_points"]),
            multiplier_bps=int(raw.get("multiplier_bps", 10_000)),
            pack=pack,
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"levels[{i}]: {e}") from None
    if not level.code.isascii() or not 1 <= len(level.code) <= 16:
        raise ValueError(f"levels[{i}].code must be 1 to 16 ASCII characters")
    if not 10_000 <= level.multiplier_bps <= 50_000:
        raise ValueError(f"levels[{i}].multiplier_bps must be between 10000 and 50000")
    if len(level.pack) > MAX_PACK_ITEMS:
        raise ValueError(f"levels[{i}].pack has at most {MAX_PACK_ITEMS} items")
    return level


def _default_levels() -> tuple[Level, ...]:
    return (
        Level("regular", "普通会员", "Regular", 0),
        Level("silver", "银卡会员", "Silver", 1_000, 12_000, (PackItem(500, 5_000),)),
        Level("gold", "金卡会员", "Gold", 5_000, 15_000, (PackItem(1_000, 8_000, count=2),)),
        Level(
            "diamond",
            "钻石会员",
            "Diamond",
            20_000,
            20_000,
            (PackItem(2_000, 10_000, count=2), PackItem(5_000, 30_000)),
        ),
    )


@dataclass(frozen=True, slots=True)
class MembershipParams:
    """Section ``[membership]`` of the params file: the window and the levels, lowest
    first (the first needs 0 points; each needs more than the one before)."""

    window_days: int = 365
    levels: tuple[Level, ...] | list[Any] = field(default_factory=_default_levels)

    def __post_init__(self) -> None:
        if not 1 <= self.window_days <= 3_660:
            raise ValueError("window_days must be between 1 and 3660")
        levels = tuple(_level(raw, i) for i, raw in enumerate(self.levels))
        if not levels or levels[0].min_points != 0:
            raise ValueError("levels: the first level needs min_points = 0")
        for a, b in itertools.pairwise(levels):
            if b.min_points <= a.min_points:
                raise ValueError(f"levels: {b.code} must need more points than {a.code}")
        if len({lv.code for lv in levels}) != len(levels):
            raise ValueError("levels: codes must differ")
        object.__setattr__(self, "levels", levels)

    @property
    def ladder(self) -> tuple[Level, ...]:
        """The levels, lowest first."""
        return tuple(self.levels)  # made a tuple of Level in __post_init__

    def by_code(self, code: str) -> Level | None:
        """The level of that code (None: no longer in the params)."""
        return next((lv for lv in self.ladder if lv.code == code), None)


def window_start(now: datetime, params: MembershipParams) -> datetime:
    """Points earned at or after this count toward the level."""
    return now - timedelta(days=params.window_days)


def level_for(points: int, params: MembershipParams) -> Level:
    """The highest level whose threshold ``points`` reaches."""
    found = params.ladder[0]
    for lv in params.ladder:
        if points >= lv.min_points:
            found = lv
    return found


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a customer stands: the level, the next one and the points still needed."""

    level: Level
    points: int
    next_level: Level | None
    points_to_next: int
    share_bps: int  # of the way from this level's threshold to the next (10000: there)


def progress(points: int, params: MembershipParams) -> Progress:
    """The customer's level and progress toward the next, from points over the window."""
    level = level_for(points, params)
    ladder = params.ladder
    i = ladder.index(level)
    nxt = ladder[i + 1] if i + 1 < len(ladder) else None
    if nxt is None:
        return Progress(level, points, None, 0, 10_000)
    span = nxt.min_points - level.min_points
    done = max(0, points - level.min_points)
    return Progress(level, points, nxt, nxt.min_points - points, min(10_000, done * 10_000 // span))


def change(old: str | None, new: Level, params: MembershipParams) -> str | None:
    """``up``, ``down`` or None (no change; a first level at the bottom is no change)."""
    if old == new.code:
        return None
    before = params.by_code(old) if old is not None else params.ladder[0]
    if before is None:  # a level since removed from the params
        return "down" if new.min_points == 0 else "up"
    if new.min_points == before.min_points:
        return None
    return "up" if new.min_points > before.min_points else "down"


def month_of(now: datetime) -> str:
    """The month a pack belongs to, ``YYYY-MM`` in China time."""
    return now.astimezone(ZONE).strftime("%Y-%m")


def pack_keys(customer_id: int, month: str, level: Level) -> list[tuple[int, int, str]]:
    """(item index, copy, coupon source_key) of each coupon the level's pack gives this
    month: once per customer, month, level, item and copy."""
    return [
        (i, n, f"member:{customer_id}:{month}:{level.code}:{i}:{n}")
        for i, item in enumerate(level.pack)
        for n in range(item.count)
    ]


def system_key(level: Level, i: int) -> str:
    """The template a pack item's coupons are issued from (new terms: a new template)."""
    item = level.pack[i]
    return f"member:{level.code}:{i}:{item.amount_fen}:{item.min_spend_fen}:{item.valid_days}"

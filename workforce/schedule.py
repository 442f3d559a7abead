"""Pure rules about workers' time: valid weekly windows, and who is free when."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import date

from workforce.errors import InvalidWorkforceInput
from workforce.models import DayException, Window

MINUTES_PER_DAY = 24 * 60


def check_windows(windows: Sequence[Window], field: str = "windows") -> tuple[Window, ...]:
    """Windows in range and not overlapping on the same weekday; returned sorted."""
    for i, w in enumerate(windows):
        if not 0 <= w.weekday <= 6:
            raise InvalidWorkforceInput(
                "must be 0 (Monday) to 6 (Sunday)", field=f"{field}[{i}].weekday"
            )
        if not 0 <= w.start_min < w.end_min <= MINUTES_PER_DAY:
            raise InvalidWorkforceInput(
                "must satisfy 0 <= start_min < end_min <= 1440", field=f"{field}[{i}].start_min"
            )
    ordered = sorted(windows, key=lambda w: (w.weekday, w.start_min))
    for a, b in itertools.pairwise(ordered):
        if a.weekday == b.weekday and b.start_min < a.end_min:
            i = list(windows).index(b)
            raise InvalidWorkforceInput(
                f"overlaps another window on weekday {a.weekday}", field=f"{field}[{i}].start_min"
            )
    return tuple(ordered)


def check_exception(exc: DayException, field: str = "") -> DayException:
    """A day off carries no times; other hours carry valid ones."""
    prefix = f"{field}." if field else ""
    if exc.available:
        if exc.start_min is None or exc.end_min is None:
            raise InvalidWorkforceInput(
                "other hours need start_min and end_min", field=f"{prefix}start_min"
            )
        if not 0 <= exc.start_min < exc.end_min <= MINUTES_PER_DAY:
            raise InvalidWorkforceInput(
                "must satisfy 0 <= start_min < end_min <= 1440", field=f"{prefix}start_min"
            )
    elif exc.start_min is not None or exc.end_min is not None:
        raise InvalidWorkforceInput(
            "a day off has no start_min/end_min", field=f"{prefix}start_min"
        )
    return exc


def windows_on(
    day: date, weekly: Iterable[Window], exceptions: Iterable[DayException]
) -> list[tuple[int, int]]:
    """The (start_min, end_min) windows a worker is available on ``day`` (local date)."""
    for exc in exceptions:
        if exc.on_date == day:
            if not exc.available or exc.start_min is None or exc.end_min is None:
                return []
            return [(exc.start_min, exc.end_min)]
    return sorted((w.start_min, w.end_min) for w in weekly if w.weekday == day.weekday())


def covers(
    day: date,
    start_min: int,
    end_min: int,
    weekly: Iterable[Window],
    exceptions: Iterable[DayException],
) -> bool:
    """True if one availability window on ``day`` holds the whole span [start_min, end_min)."""
    return any(s <= start_min and end_min <= e for s, e in windows_on(day, weekly, exceptions))

"""Recurring bookings, the pure part: a series' dates, its rules, and its worker.

A series is weekly: a service at one address on some weekdays (0 = Monday) at one
local time, for a number of weeks. Its occurrences are ordinary scheduled orders.
Continuity — the same nanny or carer every time — is a preference, not a rule: the
series prefers the worker who can take the most occurrences, and the day plans pay a
penalty (``[plans] continuity_penalty_s``) for each occurrence given to someone else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from dispatch.booking import BookingParams
from dispatch.errors import InvalidOrder
from doorstep import dates as date_ranges


def check_series(
    *,
    weekdays: Sequence[int],
    window_min: int,
    first_date: date,
    weeks: int,
    today: date,
    params: BookingParams,
) -> None:
    """Weekdays 0–6 without repeats, a window as long as a booking's, a first date not in
    the past and a last one within the booking horizon."""
    if not weekdays:
        raise InvalidOrder("name at least one weekday (0 = Monday … 6 = Sunday)", field="weekdays")
    if len(set(weekdays)) != len(weekdays):
        raise InvalidOrder("a weekday may appear only once", field="weekdays")
    for i, d in enumerate(weekdays):
        if not 0 <= d <= 6:
            raise InvalidOrder("must be 0 (Monday) to 6 (Sunday)", field=f"weekdays[{i}]")
    if not params.min_window_min <= window_min <= params.max_window_min:
        raise InvalidOrder(
            f"must be between {params.min_window_min} and {params.max_window_min} minutes",
            field="window_min",
        )
    if first_date < today:
        raise InvalidOrder("is in the past", field="first_date")
    date_ranges.check_days_ahead(
        first_date, "first_date", today=today, ahead_days=params.horizon_days
    )
    dates = occurrence_dates(first_date, weekdays, weeks)
    limit = today + timedelta(days=params.horizon_days)
    if not dates:
        raise InvalidOrder("no date falls on the given weekdays", field="weekdays")
    if dates[-1] > limit:
        fit = max(
            (w for w in range(1, weeks) if occurrence_dates(first_date, weekdays, w)[-1] <= limit),
            default=0,
        )
        raise InvalidOrder(
            f"the last occurrence ({dates[-1]}) is beyond the booking horizon of "
            f"{params.horizon_days} days; book at most {fit} weeks from {first_date}",
            field="weeks",
        )


def occurrence_dates(first_date: date, weekdays: Sequence[int], weeks: int) -> list[date]:
    """Every date on one of ``weekdays`` in the ``weeks`` weeks from ``first_date``."""
    wanted = set(weekdays)
    return [
        first_date + timedelta(days=i)
        for i in range(7 * weeks)
        if (first_date + timedelta(days=i)).weekday() in wanted
    ]


def pick_worker(options: Sequence[Mapping[int, int]]) -> int | None:
    """The series' worker: who can take the most occurrences; then the least added travel
    in total; then the lowest id. ``options[i]`` maps each worker who can take
    occurrence ``i`` to their cheapest added travel (seconds)."""
    score: dict[int, tuple[int, int]] = {}
    for found in options:
        for worker, added in found.items():
            n, total = score.get(worker, (0, 0))
            score[worker] = (n + 1, total + added)
    if not score:
        return None
    return min(score, key=lambda w: (-score[w][0], score[w][1], w))

"""Sane ranges for the dates and times clients send. Pure.

Python's ``date`` ends at 9999-12-31, and a date near either end overflows as soon as
code adds a UTC offset, a day or a few weeks to it: ``first_date: "9999-12-20"`` with
52 weeks, a replan of ``0001-01-01``, a trail ``from=9999-12-30T00:00:00-10:00`` were
500s (issue 14, item 4). Every date or time that comes in is checked here first, against
a range no real booking, plan, trail or certificate leaves, and refused with a 422 that
names the field and the range. Callers that have a tighter rule (today up to the
booking horizon) check it after.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from doorstep.errors import InvalidInput

EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class DateOutOfRange(InvalidInput):
    """A date or time outside the range the field accepts."""

    code = "date_out_of_range"


def check_date(
    value: date, field: str, *, earliest: date = EARLIEST, latest: date = LATEST
) -> date:
    """``value`` if it lies in ``earliest..latest`` (both included)."""
    if not earliest <= value <= latest:
        raise DateOutOfRange(f"must be a date from {earliest} to {latest}", field=field)
    return value


def check_instant(value: datetime, field: str) -> datetime:
    """``value`` if it has a UTC offset and falls, in UTC, within ``EARLIEST..LATEST``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("must include a UTC offset", field=field)
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+08:00 is in year 0 in UTC
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc.date() <= LATEST:
        raise DateOutOfRange(
            f"must be a time from {EARLIEST}T00:00:00Z to {LATEST}T23:59:59Z", field=field
        )
    return value


def parse_date(raw: str, field: str, *, earliest: date = EARLIEST, latest: date = LATEST) -> date:
    """A ``YYYY-MM-DD`` date within ``earliest..latest``."""
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("must be a date as YYYY-MM-DD", field=field) from None
    return check_date(value, field, earliest=earliest, latest=latest)


def parse_instant(raw: str, field: str) -> datetime:
    """An ISO 8601 time with a UTC offset within the sane range."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            "must be an ISO 8601 time, e.g. 2026-11-22T08:00:00+08:00", field=field
        ) from None
    return check_instant(value, field)


def check_days_ahead(value: date, field: str, *, today: date, ahead_days: int) -> date:
    """``value`` if it is ``today`` or at most ``ahead_days`` later (the booking horizon):
    for actions on a day, which mean nothing for a day long past or far away."""
    return check_date(value, field, earliest=today, latest=today + timedelta(days=ahead_days))

"""workforce.schedule: weekly windows, dated exceptions, and who is free when."""

from __future__ import annotations

from datetime import date

import pytest

from workforce.errors import InvalidWorkforceInput
from workforce.models import DayException, Window
from workforce.schedule import check_exception, check_windows, covers, windows_on

MONDAY = date(2030, 1, 7)
TUESDAY = date(2030, 1, 8)
H = 60  # minutes per hour

# Mondays 08:00-12:00 and 14:00-18:00, Tuesdays 09:00-17:00.
WEEKLY = (
    Window(0, 14 * H, 18 * H),
    Window(0, 8 * H, 12 * H),
    Window(1, 9 * H, 17 * H),
)


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ([], ()),
        ([Window(0, 8 * H, 12 * H)], (Window(0, 8 * H, 12 * H),)),
        (  # returned sorted by weekday, then start
            [Window(2, 8 * H, 9 * H), Window(0, 13 * H, 14 * H), Window(0, 8 * H, 9 * H)],
            (Window(0, 8 * H, 9 * H), Window(0, 13 * H, 14 * H), Window(2, 8 * H, 9 * H)),
        ),
        (  # touching windows do not overlap
            [Window(3, 12 * H, 18 * H), Window(3, 8 * H, 12 * H)],
            (Window(3, 8 * H, 12 * H), Window(3, 12 * H, 18 * H)),
        ),
        (  # the same hours on different weekdays do not overlap
            [Window(0, 8 * H, 12 * H), Window(1, 8 * H, 12 * H)],
            (Window(0, 8 * H, 12 * H), Window(1, 8 * H, 12 * H)),
        ),
        ([Window(6, 0, 1440)], (Window(6, 0, 1440),)),  # the whole day, the last weekday
    ],
    ids=["empty", "one", "sorted", "touching", "other-weekday", "whole-sunday"],
)
def test_check_windows_accepts(windows: list[Window], expected: tuple[Window, ...]) -> None:
    """Valid windows come back sorted by (weekday, start_min)."""
    assert check_windows(windows) == expected


@pytest.mark.parametrize(
    ("windows", "field"),
    [
        ([Window(0, 8 * H, 12 * H), Window(0, 11 * H, 13 * H)], "windows[1].start_min"),
        ([Window(0, 11 * H, 13 * H), Window(0, 8 * H, 12 * H)], "windows[0].start_min"),
        ([Window(0, 8 * H, 18 * H), Window(0, 9 * H, 10 * H)], "windows[1].start_min"),
        ([Window(0, 8 * H, 12 * H), Window(0, 8 * H, 10 * H)], "windows[1].start_min"),
        ([Window(0, 12 * H, 12 * H)], "windows[0].start_min"),
        ([Window(0, 13 * H, 12 * H)], "windows[0].start_min"),
        ([Window(0, -1, 12 * H)], "windows[0].start_min"),
        ([Window(0, 8 * H, 1441)], "windows[0].start_min"),
        ([Window(0, 8 * H, 9 * H), Window(7, 8 * H, 9 * H)], "windows[1].weekday"),
        ([Window(-1, 8 * H, 9 * H)], "windows[0].weekday"),
    ],
    ids=[
        "overlap",
        "overlap-reversed",
        "contained",
        "same-start",
        "empty-window",
        "start-after-end",
        "negative-start",
        "end-past-midnight",
        "weekday-7",
        "weekday-negative",
    ],
)
def test_check_windows_rejects(windows: list[Window], field: str) -> None:
    """An overlapping, inverted or out-of-range window is refused, naming the window."""
    with pytest.raises(InvalidWorkforceInput) as err:
        check_windows(windows)
    assert err.value.field == field


def test_check_windows_overlap_message_names_weekday() -> None:
    """The overlap error says which weekday it is on."""
    with pytest.raises(InvalidWorkforceInput, match="overlaps another window on weekday 4"):
        check_windows([Window(4, 8 * H, 12 * H), Window(4, 10 * H, 14 * H)])


def test_check_windows_uses_the_given_field_name() -> None:
    """The field prefix is the caller's."""
    with pytest.raises(InvalidWorkforceInput) as err:
        check_windows([Window(0, 9 * H, 8 * H)], field="availability")
    assert err.value.field == "availability[0].start_min"


@pytest.mark.parametrize(
    "exc",
    [
        DayException(MONDAY, False, None, None, "春节"),
        DayException(MONDAY, True, 10 * H, 14 * H, ""),
        DayException(MONDAY, True, 0, 1440, "all day"),
    ],
    ids=["day-off", "other-hours", "whole-day"],
)
def test_check_exception_accepts(exc: DayException) -> None:
    """A day off without times, or other hours with valid times, is returned unchanged."""
    assert check_exception(exc) is exc


@pytest.mark.parametrize(
    ("exc", "field", "expected"),
    [
        (DayException(MONDAY, False, 10 * H, 14 * H, ""), "", "start_min"),
        (DayException(MONDAY, False, None, 14 * H, ""), "", "start_min"),
        (DayException(MONDAY, False, 10 * H, None, ""), "", "start_min"),
        (DayException(MONDAY, True, None, None, ""), "", "start_min"),
        (DayException(MONDAY, True, 10 * H, None, ""), "", "start_min"),
        (DayException(MONDAY, True, 14 * H, 10 * H, ""), "", "start_min"),
        (DayException(MONDAY, True, 10 * H, 10 * H, ""), "", "start_min"),
        (DayException(MONDAY, True, -5, 10 * H, ""), "", "start_min"),
        (DayException(MONDAY, True, 10 * H, 1441, ""), "", "start_min"),
        (
            DayException(MONDAY, False, 10 * H, 14 * H, ""),
            "exceptions[2]",
            "exceptions[2].start_min",
        ),
    ],
    ids=[
        "day-off-with-times",
        "day-off-with-end",
        "day-off-with-start",
        "hours-without-times",
        "hours-without-end",
        "hours-inverted",
        "hours-empty",
        "hours-negative",
        "hours-past-midnight",
        "prefixed-field",
    ],
)
def test_check_exception_rejects(exc: DayException, field: str, expected: str) -> None:
    """A day off with times, or other hours without valid times, is refused."""
    with pytest.raises(InvalidWorkforceInput) as err:
        check_exception(exc, field)
    assert err.value.field == expected


@pytest.mark.parametrize(
    ("day", "exceptions", "expected"),
    [
        (MONDAY, (), [(8 * H, 12 * H), (14 * H, 18 * H)]),
        (TUESDAY, (), [(9 * H, 17 * H)]),
        (date(2030, 1, 9), (), []),  # a Wednesday: no weekly window
        (MONDAY, (DayException(MONDAY, False, None, None, "sick"),), []),
        (MONDAY, (DayException(MONDAY, True, 10 * H, 11 * H, ""),), [(10 * H, 11 * H)]),
        (  # an exception on Monday does not touch Tuesday
            TUESDAY,
            (DayException(MONDAY, False, None, None, ""),),
            [(9 * H, 17 * H)],
        ),
        (  # other hours on a day without weekly windows
            date(2030, 1, 12),
            (DayException(date(2030, 1, 12), True, 6 * H, 9 * H, ""),),
            [(6 * H, 9 * H)],
        ),
        (  # the same weekday a week later follows the weekly pattern again
            date(2030, 1, 14),
            (DayException(MONDAY, False, None, None, ""),),
            [(8 * H, 12 * H), (14 * H, 18 * H)],
        ),
    ],
    ids=[
        "weekly-monday-sorted",
        "weekly-tuesday",
        "no-window",
        "day-off",
        "other-hours-replace-weekly",
        "other-date",
        "hours-on-free-day",
        "next-week",
    ],
)
def test_windows_on(
    day: date, exceptions: tuple[DayException, ...], expected: list[tuple[int, int]]
) -> None:
    """A date's exception takes precedence over the weekly pattern for that date only."""
    assert windows_on(day, WEEKLY, exceptions) == expected


@pytest.mark.parametrize(
    ("day", "start", "end", "exceptions", "expected"),
    [
        (MONDAY, 9 * H, 11 * H, (), True),
        (MONDAY, 8 * H, 12 * H, (), True),  # exactly the window: edges included
        (MONDAY, 14 * H, 18 * H, (), True),
        (MONDAY, 7 * H, 9 * H, (), False),  # starts before the window
        (MONDAY, 11 * H, 13 * H, (), False),  # runs past the window's end
        (MONDAY, 10 * H, 15 * H, (), False),  # spans two windows and the gap between
        (MONDAY, 12 * H, 14 * H, (), False),  # in the gap
        (TUESDAY, 9 * H, 17 * H, (), True),
        (date(2030, 1, 9), 9 * H, 10 * H, (), False),
        (MONDAY, 9 * H, 11 * H, (DayException(MONDAY, False, None, None, ""),), False),
        (MONDAY, 9 * H, 11 * H, (DayException(MONDAY, True, 10 * H, 16 * H, ""),), False),
        (MONDAY, 12 * H, 16 * H, (DayException(MONDAY, True, 10 * H, 16 * H, ""),), True),
    ],
    ids=[
        "inside",
        "edge-inclusive",
        "afternoon-window",
        "early",
        "late",
        "spans-two-windows",
        "in-gap",
        "whole-tuesday",
        "no-window",
        "day-off",
        "outside-other-hours",
        "inside-other-hours",
    ],
)
def test_covers(
    day: date, start: int, end: int, exceptions: tuple[DayException, ...], expected: bool
) -> None:
    """A span is covered only if a single window of that day holds it whole."""
    assert covers(day, start, end, WEEKLY, exceptions) is expected


def test_covers_does_not_join_touching_windows() -> None:
    """Two touching windows are still two windows: a span across their seam is not covered."""
    weekly = [Window(0, 8 * H, 12 * H), Window(0, 12 * H, 18 * H)]
    assert covers(MONDAY, 8 * H, 12 * H, weekly, ()) is True
    assert covers(MONDAY, 12 * H, 18 * H, weekly, ()) is True
    assert covers(MONDAY, 11 * H, 13 * H, weekly, ()) is False

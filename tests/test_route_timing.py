"""The exact timing of one route in a fixed order (matching/route_timing.py)."""

from __future__ import annotations

from matching.route_timing import Visit, schedule

TEA = (150, 160, 50)  # (earliest, latest, duration)
LUNCH = (400, 450, 100)
VISITS = (Visit((0, 1000), 200, 100), Visit((0, 1000), 200, 100))


def test_two_breaks_are_placed_where_they_must_go() -> None:
    """Tea goes before the first stop and lunch between the stops, with the hand-computed times, break starts and slacks."""
    timing = schedule(0, VISITS, 0, 2000, [TEA, LUNCH])
    assert timing is not None
    assert timing.starts == (200, 600)
    assert timing.arrivals == (200, 600)  # the first stop: the worker leaves just in time
    assert timing.departures == (400, 800)
    assert timing.breaks == ((150, 50), (400, 100))
    assert timing.end_s == 800
    assert timing.slacks == (50, 400)  # A by 250 keeps lunch by 450; B by its window end


def test_no_breaks_is_plain_earliest_timing() -> None:
    """Without breaks the stops start as early as travel and windows allow."""
    timing = schedule(0, VISITS, 50, 2000)
    assert timing is not None
    assert (timing.starts, timing.end_s) == ((100, 400), 650)
    assert timing.slacks == (600, 600)  # B by its window end (1000), so A by 700


def test_a_break_can_fill_waiting_time() -> None:
    """A break taken while waiting for a window to open delays nothing."""
    timing = schedule(0, (Visit((500, 900), 100, 100),), 0, 2000, [(100, 300, 200)])
    assert timing is not None
    assert timing.starts == (500,)
    assert timing.breaks == ((100, 200),)


def test_impossible_orders_are_refused() -> None:
    """A shift too short, a window missed, or a break that cannot fit: no timing."""
    assert schedule(0, VISITS, 0, 700, [TEA, LUNCH]) is None  # ends at 800
    assert schedule(0, (Visit((0, 50), 10, 100),), 0, 2000) is None  # arrives at 100
    assert schedule(0, VISITS, 0, 2000, [(0, 10, 300), (20, 30, 10)]) is None

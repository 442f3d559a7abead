"""Crews, pure: which workers go together to a job that needs several of them."""

from __future__ import annotations

import pytest

from matching.crew import apart, arrive_together, pick_crew, refill_crew
from matching.errors import MatchingError


def test_the_crew_with_the_earliest_last_arrival_within_the_window() -> None:
    """Two workers at 5 and 6 min beat any crew that includes one 20 min away."""
    options = [(1, 300.0, 5.0), (2, 360.0, 6.0), (3, 1200.0, 1.0)]
    crew = pick_crew(options, 2, window_s=600.0)
    assert crew is not None
    assert crew.worker_ids == (1, 2)
    assert (crew.first_arrival_s, crew.last_arrival_s, crew.cost) == (300.0, 360.0, 11.0)


def test_the_window_keeps_a_lone_near_worker_out() -> None:
    """One worker 1 min away, the others 15 and 16 min: with a 5-min window the crew is the far two."""
    options = [(1, 60.0, 1.0), (2, 900.0, 15.0), (3, 960.0, 16.0)]
    crew = pick_crew(options, 2, window_s=300.0)
    assert crew is not None
    assert crew.worker_ids == (2, 3)
    assert pick_crew(options, 3, window_s=300.0) is None  # no three within 5 min
    three = pick_crew(options, 3, window_s=900.0)
    assert three is not None
    assert three.worker_ids == (1, 2, 3)


def test_at_the_same_last_arrival_the_lower_score_wins() -> None:
    """Among workers arriving by the same last moment, the crew of the lowest total score."""
    options = [(1, 300.0, 9.0), (2, 300.0, 1.0), (3, 300.0, 2.0)]
    crew = pick_crew(options, 2, window_s=60.0)
    assert crew is not None
    assert crew.worker_ids == (2, 3)


def test_a_bad_size_or_window_names_the_field() -> None:
    """Size below 1 or a negative window is an error naming it."""
    with pytest.raises(MatchingError, match=r"crew\.size"):
        pick_crew([], 0, 60.0)
    with pytest.raises(MatchingError, match=r"crew\.window_s"):
        pick_crew([], 2, -1.0)


def test_refill_keeps_the_members_and_fits_the_window() -> None:
    """Replacements arrive within the window of the members kept: the earliest last arrival, then the lowest score; none fits: None; bad input names the field."""
    options = [(7, 100.0, 5.0), (8, 900.0, 1.0), (9, 250.0, 9.0), (10, 260.0, 1.0)]
    assert refill_crew([200.0], options, 1, 120.0) == (7,)
    assert refill_crew([200.0], options, 2, 120.0) == (9, 10)  # 7 with 10 spans 160 s
    assert refill_crew([800.0], options, 1, 120.0) == (8,)
    assert refill_crew([500.0], options, 1, 120.0) is None
    assert refill_crew([100.0, 500.0], options, 1, 120.0) is None  # the kept are too far apart
    with pytest.raises(MatchingError, match=r"crew\.need"):
        refill_crew([1.0], options, 0, 10.0)
    with pytest.raises(MatchingError, match=r"crew\.kept"):
        refill_crew([], options, 1, 10.0)


def test_arriving_together_is_the_first_and_last_arrival_within_the_window() -> None:
    """The rule the engine's crews and a dispatcher's crews share: the latest ETA minus the earliest at most the window (edges included, any order); one member or none always fits."""
    assert arrive_together([300.0, 900.0], 600.0)
    assert arrive_together([900.0, 300.0, 600.0], 600.0)
    assert not arrive_together([300.0, 900.5], 600.0)
    assert arrive_together([120.0, 120.0], 0.0)
    assert not arrive_together([120.0, 121.0], 0.0)
    assert arrive_together([4000.0], 0.0)
    assert arrive_together([], 0.0)
    with pytest.raises(MatchingError, match=r"crew\.window_s"):
        arrive_together([1.0], -1.0)


def test_a_crew_too_far_apart_is_told_by_the_rule_and_each_members_eta() -> None:
    """apart: None within the window; otherwise the spread, every member's ETA (earliest first) and crew_window_s."""
    assert apart({5: 60.0, 6: 600.0}, 600.0) is None
    why = apart({9: 1500.0, 5: 30.0, 6: 60.0}, 600.0)
    assert why == (
        "the crew would arrive 1470 s apart (worker 5 in 30 s, worker 6 in 60 s, "
        "worker 9 in 1500 s): more than [matching] crew_window_s = 600 s"
    )

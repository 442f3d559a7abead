"""benchmarks/dispatch_load.py and dispatch_frontier.py: the offline model's wait
decomposition and the frontier's pure helpers (no server, no stores)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from benchmarks.dispatch_frontier import mean_se, pareto
from benchmarks.dispatch_light import clairvoyant_wait
from benchmarks.dispatch_load import eta_s, run_level
from matching.params import MatchParams


def _run(policy: str, params: MatchParams, seed: int) -> dict[str, Any]:
    """The simulator's futian-rush run in the model: 35 minutes of bookings, 1.1 jobs a
    worker, at 1.9 bookings a minute (~29 % utilization)."""
    return run_level(
        1.9, policy, params, workers=60, minutes=35.0, warmup_min=10.0, service_min=7.5, seed=seed
    )


def test_pareto_keeps_the_points_no_other_beats_on_both() -> None:
    """A point beaten on wait and Gini is off the frontier; a trade-off and a tie stay on."""
    points = [(100.0, 0.40), (110.0, 0.30), (120.0, 0.35), (100.0, 0.40), (130.0, 0.20)]
    assert pareto(points) == [True, True, False, True, True]


def test_mean_se_is_the_mean_and_its_standard_error() -> None:
    """Mean of 1..4 is 2.5; sample sd 1.29 over sqrt(4): 0.645; one value has no spread."""
    m, se = mean_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    assert se == pytest.approx(0.6455, abs=1e-4)
    assert mean_se([7.0]) == (7.0, 0.0)


@pytest.mark.parametrize("policy", ["greedy", "batch"])
def test_the_wait_is_delay_plus_nearest_plus_detour(policy: str) -> None:
    """Per policy the mean wait splits into the tick's delay, the nearest free worker's
    ETA and the detour of the choice (to the rounding of each part)."""
    r = _run(policy, MatchParams(), 7)
    parts = r["delay_mean_s"] + r["nearest_mean_s"] + r["detour_mean_s"]
    assert r["wait_mean_s"] == pytest.approx(parts, abs=0.3)
    assert r["travel_mean_s"] == pytest.approx(r["nearest_mean_s"] + r["detour_mean_s"], abs=0.2)
    assert 0 < r["delay_mean_s"] <= 2.0  # at most one 2-s tick: nobody queues at light load


def test_greedy_never_detours_when_it_decides_one_order() -> None:
    """Greedy sends the nearest free worker; only ticks with several orders can detour it."""
    r = _run("greedy", MatchParams(), 11)
    assert r["detour_alone_mean_s"] == 0.0
    assert r["decided_alone_share"] > 0.9


def test_batch_detours_for_fairness_and_not_without_it() -> None:
    """At light load the fairness term's floor is what sends batch farther than the nearest;
    with the floor, the rating weight and rotation at 0 it decides one order as greedy does."""
    fair = _run("batch", replace(MatchParams(), rotation_slack_s=0.0), 11)
    plain = _run(
        "batch",
        replace(MatchParams(), fairness_floor=0.0, weight_rating=0.0, rotation_slack_s=0.0),
        11,
    )
    greedy = _run("greedy", MatchParams(), 11)
    assert fair["detour_alone_mean_s"] > 1.0
    assert plain["detour_alone_mean_s"] == 0.0
    assert plain["wait_mean_s"] == pytest.approx(greedy["wait_mean_s"], rel=0.01)
    assert fair["workers_without_job"] < plain["workers_without_job"]


def test_the_clairvoyant_bound_pays_for_every_worker_it_must_use() -> None:
    """Two bookings at A: with one worker used both are served from A at no wait; with
    both workers used the one starting at B must drive to A; warm-up bookings cost 0."""
    a, b = (22.53, 114.05), (22.54, 114.06)
    bookings = [(0.0, a), (60.0, a)]
    assert clairvoyant_wait([a, b], bookings, 0.0, used=0) == 0.0
    assert clairvoyant_wait([a, b], bookings, 0.0, used=2) == pytest.approx(eta_s(b, a) / 2)
    assert clairvoyant_wait([a, b], bookings, 30.0, used=2) == pytest.approx(0.0)
    assert clairvoyant_wait([a, b], bookings, 100.0, used=2) is None

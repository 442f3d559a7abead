"""The load-shedding rule (tracking/overload.py): pure, with hysteresis."""

from __future__ import annotations

import pytest

from tracking.overload import OverloadGuard, OverloadParams

P = OverloadParams(shed_above_ms=1000, resume_below_ms=200, hold_ms=1000, retry_after_ms=2000)


def test_short_delays_never_shed() -> None:
    """Delays below the threshold, however many, never start shedding."""
    guard = OverloadGuard(P)
    assert not any(guard.observe(999, t) for t in range(0, 10_000, 50))
    assert guard.episodes == 0


def test_a_long_delay_sheds_until_delays_stay_short_for_the_hold() -> None:
    """One delay at the threshold sheds; it ends only after hold_ms of calm, not at once."""
    guard = OverloadGuard(P)
    assert guard.observe(1000, 0)
    assert guard.observe(150, 100)  # calm starts
    assert guard.observe(150, 1000)  # 900 ms of calm: still shedding
    assert not guard.observe(150, 1100)  # 1000 ms: done
    assert guard.episodes == 1


def test_a_middling_delay_restarts_the_calm() -> None:
    """A delay between resume_below_ms and shed_above_ms keeps shedding and restarts the hold."""
    guard = OverloadGuard(P)
    guard.observe(5000, 0)
    guard.observe(100, 100)
    assert guard.observe(500, 900)  # not calm: the hold starts again
    assert guard.observe(100, 1000)
    assert guard.observe(100, 1900)
    assert not guard.observe(100, 2000)


def test_episodes_are_counted_once_each() -> None:
    """Each start of shedding counts once, however many long delays it sees."""
    guard = OverloadGuard(P)
    for t in range(5):
        guard.observe(2000, t)
    guard.observe(0, 10)
    guard.observe(0, 1010)
    guard.observe(3000, 2000)
    assert guard.episodes == 2


def test_zero_threshold_turns_shedding_off() -> None:
    """shed_above_ms = 0 never sheds, whatever the delay."""
    guard = OverloadGuard(OverloadParams(shed_above_ms=0))
    assert not guard.observe(1e9, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shed_above_ms": -1}, "shed_above_ms"),
        ({"shed_above_ms": 100, "resume_below_ms": 100}, "resume_below_ms"),
        ({"hold_ms": 61_000}, "hold_ms"),
        ({"retry_after_ms": 50}, "retry_after_ms"),
    ],
)
def test_bad_params_are_refused_by_name(kwargs: dict[str, float], message: str) -> None:
    """Each out-of-range setting is refused with its name."""
    with pytest.raises(ValueError, match=message):
        OverloadParams(**kwargs)  # type: ignore[arg-type]

"""Arrival at a job address: a geofence with hysteresis against GPS drift.

Pure: the caller computes ``distance_m`` (haversine from the fix to the address) and
passes the fix's claimed ``accuracy_m``; :func:`step` returns the next state and at most
one event. The rules (FIELD-NOTES, "Geofence enter/exit spam"):

- Fixes with an accuracy worse than ``max_accuracy_m`` (or a non-finite distance or
  accuracy) are ignored: they neither count towards a streak nor reset it.
- Outside, ``confirm_fixes`` consecutive usable fixes with ``distance_m <= enter_m``
  enter the fence and emit ``"arrived"``.
- Inside, leaving needs the whole accuracy circle beyond the larger exit radius,
  ``distance_m - accuracy_m > exit_m``, for ``confirm_fixes`` consecutive usable fixes;
  then ``"left"`` is emitted. One wild fix with a tiny claimed accuracy cannot do it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ArrivalEvent = Literal["arrived", "left"]


@dataclass(frozen=True)
class ArrivalParams:
    """Geofence radii in metres around the job address (TOML table ``[arrival]``)."""

    enter_m: float = 60.0
    exit_m: float = 150.0
    confirm_fixes: int = 2
    max_accuracy_m: float = 80.0
    # A scheduled job that is only assigned (the worker has not set off) counts arrivals
    # from this long before its window opens: a worker who happens to be near the door
    # an hour early has not arrived for it.
    scheduled_early_s: float = 1800.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scheduled_early_s) and self.scheduled_early_s >= 0):
            raise ValueError("scheduled_early_s must be a finite number >= 0.")
        for name in ("enter_m", "exit_m", "max_accuracy_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0.")
        if not self.enter_m < self.exit_m:
            raise ValueError("enter_m must be < exit_m.")
        if self.confirm_fixes < 1:
            raise ValueError("confirm_fixes must be >= 1.")


@dataclass(frozen=True)
class ArrivalState:
    """Whether the worker is inside the fence, and the current run of fixes towards the
    opposite state (inside: fixes beyond the exit radius; outside: fixes within enter)."""

    inside: bool = False
    streak: int = 0


def step(
    state: ArrivalState, distance_m: float, accuracy_m: float, params: ArrivalParams
) -> tuple[ArrivalState, ArrivalEvent | None]:
    """Feed one fix; return the new state and ``"arrived"``/``"left"`` on a change."""
    usable = (
        math.isfinite(distance_m)
        and math.isfinite(accuracy_m)
        and 0 <= accuracy_m <= params.max_accuracy_m
    )
    if not usable:
        return state, None
    if state.inside:
        crossing = distance_m - accuracy_m > params.exit_m
    else:
        crossing = distance_m <= params.enter_m
    if not crossing:
        return (state if state.streak == 0 else ArrivalState(state.inside, 0)), None
    streak = state.streak + 1
    if streak < params.confirm_fixes:
        return ArrivalState(state.inside, streak), None
    event: ArrivalEvent = "left" if state.inside else "arrived"
    return ArrivalState(inside=not state.inside, streak=0), event

"""Load shedding for location frames: a pure rule with hysteresis over measured delays.

The server measures how far behind it is — how long a batch of fixes waited from its
first submission until Redis answered, and how late the event loop wakes a timer — and
feeds every measure to :class:`OverloadGuard`. Once a delay reaches ``shed_above_ms``
the guard sheds: frames of fixes are answered ``overloaded`` (with ``retry_after_ms``)
and dropped unread, so the work waiting in front of a frame stops growing and the
clients back off instead of queueing without bound (docs/protocol.md). Shedding ends
when the delays have stayed at or below ``resume_below_ms`` for ``hold_ms``.

No I/O and no clock: the caller passes each measure with its time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OverloadParams:
    """When to shed (``[ingest]`` of the params file, ``shed_*``)."""

    shed_above_ms: float = 1000.0  # a delay this long starts shedding (0: never shed)
    resume_below_ms: float = 200.0  # ... which ends once delays stay at or below this ...
    hold_ms: float = 1000.0  # ... for this long
    retry_after_ms: int = 2000  # what a shed frame's client is told to wait (plus jitter)

    def __post_init__(self) -> None:
        if self.shed_above_ms < 0:
            raise ValueError("shed_above_ms must be >= 0 (0: never shed)")
        if self.shed_above_ms and not 0 <= self.resume_below_ms < self.shed_above_ms:
            raise ValueError("resume_below_ms must be within 0..shed_above_ms")
        if not 0 <= self.hold_ms <= 60_000:
            raise ValueError("hold_ms must be within 0..60000")
        if not 100 <= self.retry_after_ms <= 60_000:
            raise ValueError("retry_after_ms must be within 100..60000")


class OverloadGuard:
    """Whether to shed now, from the delays measured so far."""

    __slots__ = ("_calm_since_ms", "episodes", "params", "shedding")

    def __init__(self, params: OverloadParams) -> None:
        self.params = params
        self.shedding = False
        self.episodes = 0  # times shedding started
        self._calm_since_ms: float | None = None

    def observe(self, delay_ms: float, now_ms: float) -> bool:
        """Take one measured delay at ``now_ms``; True while frames are to be shed."""
        p = self.params
        if not p.shed_above_ms:
            return False
        if delay_ms >= p.shed_above_ms:
            if not self.shedding:
                self.episodes += 1
            self.shedding = True
            self._calm_since_ms = None
        elif self.shedding:
            if delay_ms > p.resume_below_ms:
                self._calm_since_ms = None
            elif self._calm_since_ms is None:
                self._calm_since_ms = now_ms
            if self._calm_since_ms is not None and now_ms - self._calm_since_ms >= p.hold_ms:
                self.shedding = False
                self._calm_since_ms = None
        return self.shedding

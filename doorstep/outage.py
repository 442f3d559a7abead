"""How a background loop tells the logs about a store outage: one line, with a count.

A loop that retries every few seconds while PostgreSQL or Redis is down would otherwise
log a traceback per attempt. :class:`Outage` logs the first failure of an outage in one
line, a reminder with the count at most every ``remind_s``, and one line with the
duration and the count when the loop works again. Pure bookkeeping: the caller passes
the time (``time.monotonic()``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


def describe(error: BaseException) -> str:
    """A one-line description of a failure (type and message, at most 300 characters)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(slots=True)
class Outage:
    """The state of one loop's outage (``what`` names the loop in its log lines)."""

    log: logging.Logger
    what: str
    remind_s: float = 300.0
    since_s: float | None = None  # when the current outage began; None while all is well
    failures: int = 0  # failed attempts in the current outage
    reminded_s: float = 0.0
    outages: int = 0  # outages so far (for tests and metrics)

    def failed(self, error: BaseException, now_s: float) -> None:
        """An attempt failed: the first of an outage is logged; later ones are counted."""
        self.failures += 1
        if self.since_s is None:
            self.since_s = self.reminded_s = now_s
            self.outages += 1
            self.log.warning("%s failed: %s; retrying", self.what, describe(error))
        elif now_s - self.reminded_s >= self.remind_s:
            self.reminded_s = now_s
            self.log.warning(
                "%s still failing after %.0f s (%d failed attempts): %s",
                self.what,
                now_s - self.since_s,
                self.failures,
                describe(error),
            )

    def succeeded(self, now_s: float) -> None:
        """An attempt worked: an outage in progress is over, with one line saying so."""
        if self.since_s is None:
            return
        self.log.warning(
            "%s works again after %.0f s (%d failed attempts)",
            self.what,
            now_s - self.since_s,
            self.failures,
        )
        self.since_s, self.failures = None, 0

    @property
    def ongoing(self) -> bool:
        """Whether the loop is in an outage now."""
        return self.since_s is not None

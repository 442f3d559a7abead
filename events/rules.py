"""Delivery rules: when a failed delivery is tried again, and when it is given up.

Pure: the caller passes ``now`` and the attempt count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal


@dataclass(frozen=True, slots=True)
class DeliveryParams:
    """Section ``[events]`` of the params file."""

    # The relay reads and hands over at most this many events per consumer at a time.
    batch: int = 200
    # The sequencer looks for newly committed events this often (seconds).
    sequence_every_s: float = 0.02
    # Consumers without a notification look for new events this often (seconds).
    poll_s: float = 1.0
    # A consumer hands over what has come at most once every this many seconds (a full
    # batch at once; an event after a quiet spell at once): at a high rate of events its
    # batches are larger — its read, BEGIN, cursor and COMMIT paid once for many events —
    # and its work comes after a burst of requests rather than inside it; an event waits
    # at most this long more. 0.1: the payment storm's paced p99 48-54 ms against 87-181
    # ms with 0, events.py's consumer lag p99 130-147 ms (target 200); 0.25 broke that
    # target (docs/events.md). 0: each consumer takes what there is whenever woken.
    gather_s: float = 0.1
    # The same for *background* consumers (``Consumer.background``: no one waits to see
    # their effects live — the commission snapshot, a paid order's close job, number
    # masking): their work on a burst of payments comes after it, in fewer batches.
    background_gather_s: float = 0.5
    # A failed delivery is tried again after 1, 2, 4, … seconds, at most this long apart.
    backoff_base_s: float = 1.0
    backoff_max_s: float = 600.0
    # After this many failed attempts the delivery is dead-lettered (an admin replays it).
    max_attempts: int = 12
    # A process without a consumer's lease tries to take it this often (seconds).
    lease_retry_s: float = 2.0
    # ``doorstep serve`` runs a relay (the sequencer and every consumer's role, taken
    # through their leases). False for processes that should only answer requests: then
    # some other process (a server with it true) must run the relay, or nothing is
    # delivered.
    in_process: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 10_000:
            raise ValueError("batch must be between 1 and 10000")
        if not 0.001 <= self.sequence_every_s <= 5:
            raise ValueError("sequence_every_s must be between 0.001 and 5")
        if not 0 < self.poll_s <= 60:
            raise ValueError("poll_s must be > 0 and <= 60")
        if not 0 <= self.gather_s <= 5:
            raise ValueError("gather_s must be between 0 and 5")
        if not 0 <= self.background_gather_s <= 5:
            raise ValueError("background_gather_s must be between 0 and 5")
        if not 0 < self.backoff_base_s <= self.backoff_max_s:
            raise ValueError("backoff_base_s must be > 0 and <= backoff_max_s")
        if not 1 <= self.max_attempts <= 100:
            raise ValueError("max_attempts must be between 1 and 100")
        if not 0 < self.lease_retry_s <= 60:
            raise ValueError("lease_retry_s must be > 0 and <= 60")


Outcome = Literal["retry", "dead"]


def after_failure(
    attempts: int, *, now: datetime, params: DeliveryParams
) -> tuple[Outcome, datetime | None]:
    """What follows the ``attempts``-th failed attempt: another try at a time, or death."""
    if attempts >= params.max_attempts:
        return "dead", None
    delay = min(params.backoff_max_s, params.backoff_base_s * 2 ** (attempts - 1))
    return "retry", now + timedelta(seconds=delay)


def describe(error: BaseException) -> str:
    """A one-line description of a consumer's failure, for the dead-letter list."""
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 500 else text[:497] + "..."

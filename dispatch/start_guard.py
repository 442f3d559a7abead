"""How many wrong start codes (核销码) are allowed. Pure: the counts come in, ``now`` too.

A start code has 10^6 values; without a limit a worker guessed one in about 25 minutes
(issue 14, item 3). Two limits, both kept in PostgreSQL (dispatch/start_codes.py) so a
Redis loss cannot reset them:

- per order: after ``order_max_failures`` wrong codes the order's start is *locked* until
  a dispatcher unlocks it or the customer issues a new code (and a dispatcher is alerted);
- per worker: at most ``worker_max_failures`` wrong codes in ``worker_window_s`` over all
  their orders; past it, every start attempt waits (429, ``Retry-After``).

With the defaults an order's code falls to guessing with odds of 5 in 10^6 per lock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class StartGuardParams:
    """Limits on wrong start codes."""

    order_max_failures: int = 5
    worker_max_failures: int = 10
    worker_window_s: int = 3600

    def __post_init__(self) -> None:
        if self.order_max_failures < 1 or self.worker_max_failures < 1:
            raise ValueError("start guard: the limits must be at least 1")
        if self.worker_window_s < 1:
            raise ValueError("start guard: worker_window_s must be at least 1")


def worker_wait_s(
    failures_at: Sequence[datetime], *, now: datetime, params: StartGuardParams
) -> int | None:
    """Seconds the worker must wait before the next attempt, or None if they may try.

    ``failures_at``: the worker's wrong codes (any order); only those inside the window
    count. The wait ends when the oldest failure that keeps them at the limit leaves it.
    """
    window = timedelta(seconds=params.worker_window_s)
    recent = sorted(t for t in failures_at if now - t < window)
    if len(recent) < params.worker_max_failures:
        return None
    frees_at = recent[len(recent) - params.worker_max_failures] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))


def locks_now(failures: int, params: StartGuardParams) -> bool:
    """Whether the order's start locks once it has ``failures`` wrong codes."""
    return failures >= params.order_max_failures


def attempts_left(failures: int, params: StartGuardParams) -> int:
    """Wrong codes the order still takes before it locks."""
    return max(0, params.order_max_failures - failures)

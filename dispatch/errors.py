"""Errors of the dispatch package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class DispatchError(DoorstepError):
    """Root of the dispatch package's errors."""


class InvalidOrder(InvalidInput, DispatchError):
    """A booking or action field breaks a rule."""

    code = "invalid_order"


class OrderNotFound(NotFound, DispatchError):
    """No such order, or not visible to the caller."""

    code = "order_not_found"


class StaleVersion(Conflict, DispatchError):
    """Someone changed the order since the caller read it."""

    code = "stale_version"


class CrewNotHere(Conflict, DispatchError):
    """A crew job starts only when its whole crew has arrived."""

    code = "crew_not_here"


class WorkerBusy(Conflict, DispatchError):
    """The worker already holds an active job."""

    code = "worker_busy"


class CurrentJobFirst(Conflict, DispatchError):
    """A chained job (docs/dispatch.md#chained-orders) starts when the worker's current
    one ends: it cannot be set off or arrived at before."""

    code = "current_job_first"


class NotOnSite(Conflict, DispatchError):
    """The worker's estimate of the time left is taken only while the job is on site."""

    code = "not_on_site"


class IdempotencyKeyReused(InvalidInput, DispatchError):
    """The Idempotency-Key was used before for a different request (another body)."""

    code = "idempotency_key_reused"


class StartLocked(Conflict, DispatchError):
    """Too many wrong start codes: the order's start waits for a dispatcher or a new code."""

    code = "start_locked"


class TooManyStartAttempts(DispatchError):
    """The caller sent too many wrong start codes lately: wait ``retry_after_s``."""

    kind = "rate_limited"
    code = "too_many_start_attempts"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = max(1, retry_after_s)

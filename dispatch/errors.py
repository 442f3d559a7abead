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


class WorkerBusy(Conflict, DispatchError):
    """The worker already holds an active job."""

    code = "worker_busy"


class IdempotencyConflict(Conflict, DispatchError):
    """The Idempotency-Key was used before for a different booking."""

    code = "idempotency_conflict"

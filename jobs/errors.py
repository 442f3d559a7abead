"""Errors of the jobs package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class JobsError(DoorstepError):
    """Root of the jobs package's errors."""


class UnknownTask(InvalidInput, JobsError):
    """No task of that name is registered."""

    code = "unknown_task"


class JobNotFound(NotFound, JobsError):
    """No job with that id."""

    code = "job_not_found"


class JobNotRetryable(Conflict, JobsError):
    """Only a failed job can be retried, only a waiting one cancelled."""

    code = "job_state"

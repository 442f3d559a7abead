"""Errors of the workforce package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class WorkforceError(DoorstepError):
    """Root of the workforce package's errors."""


class InvalidWorkforceInput(InvalidInput, WorkforceError):
    """A field breaks a rule."""


class WorkerNotFound(NotFound, WorkforceError):
    """No such worker, or not visible to the caller."""

    code = "worker_not_found"


class TeamNotFound(NotFound, WorkforceError):
    """No such team, or not visible to the caller."""

    code = "team_not_found"


class DuplicateCertificate(Conflict, WorkforceError):
    """A certificate of this kind and number is registered already."""

    code = "duplicate_certificate"


class DuplicateTeam(Conflict, WorkforceError):
    """A team of this name exists in the city already."""

    code = "duplicate_team"

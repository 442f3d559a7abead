"""Errors of the quality package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class QualityError(DoorstepError):
    """Root of the quality package's errors."""


class InvalidQualityInput(InvalidInput, QualityError):
    """A field breaks a rule."""


class ActionNotFound(NotFound, QualityError):
    """No such discipline action, or not the caller's."""

    code = "action_not_found"


class AppealState(Conflict, QualityError):
    """The action cannot be appealed or decided now."""

    code = "appeal_state"

"""Errors of the analytics package."""

from __future__ import annotations

from doorstep.errors import DoorstepError, InvalidInput, NotFound


class AnalyticsError(DoorstepError):
    """Root of the analytics package's errors."""


class BadQuery(InvalidInput, AnalyticsError):
    """A dashboard parameter breaks a rule; ``field`` names it."""

    code = "invalid_query"


class UnknownCity(NotFound, AnalyticsError):
    """No such city."""

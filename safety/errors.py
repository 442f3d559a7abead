"""Errors of the safety package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound, Unauthenticated


class SafetyError(DoorstepError):
    """Root of the safety package's errors."""


class InvalidSafetyInput(InvalidInput, SafetyError):
    """A field of a safety request breaks a rule."""


class AlertNotFound(NotFound, SafetyError):
    """No such safety alert."""

    code = "alert_not_found"


class SosOrderNotFound(NotFound, SafetyError):
    """An SOS for an order that is not the caller's (or does not exist)."""

    code = "order_not_found"


class AlreadyHandled(Conflict, SafetyError):
    """The alert was already acknowledged, or resolved."""

    code = "already_handled"


class InvalidSosLink(Unauthenticated, SafetyError):
    """An SOS live link that is malformed, forged, expired or for another alert."""

    code = "invalid_sos_link"


class SafetyUnavailable(SafetyError):
    """This process cannot take an SOS here (no safety desk): use the HTTP route."""

    kind = "unavailable"
    code = "unavailable"

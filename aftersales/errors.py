"""Errors of the after-sales package: each names the field and the rule it broke."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class AftersalesError(DoorstepError):
    """Root of the after-sales package's errors."""


class InvalidAftersalesInput(InvalidInput, AftersalesError):
    """A field breaks a rule."""


class OutsideWindow(InvalidInput, AftersalesError):
    """The order is not completed, or its after-sales window is over."""

    code = "outside_window"


class TicketNotFound(NotFound, AftersalesError):
    """No such ticket, or not the caller's."""

    code = "ticket_not_found"


class SpotCheckNotFound(NotFound, AftersalesError):
    """No such spot check."""

    code = "spot_check_not_found"


class TicketState(Conflict, AftersalesError):
    """The ticket is not in a state that allows this (closed, disputed, already open)."""

    code = "ticket_state"


class AlreadyRuled(Conflict, AftersalesError):
    """A dispute is ruled once."""

    code = "already_ruled"


class ClaimState(Conflict, AftersalesError):
    """The insurance claim is not in a state that allows this."""

    code = "claim_state"

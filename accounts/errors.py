"""Errors of the accounts package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound, Unauthenticated


class AccountsError(DoorstepError):
    """Root of the accounts package's errors."""


class InvalidAccountInput(InvalidInput, AccountsError):
    """A field of an account request breaks a rule."""


class BadCredentials(Unauthenticated, AccountsError):
    """Phone and password do not match an active account."""

    code = "bad_credentials"


class InvalidToken(Unauthenticated, AccountsError):
    """A token that is malformed, forged, expired or revoked."""

    code = "invalid_token"


class PhoneTaken(Conflict, AccountsError):
    """Another account already uses this phone number."""

    code = "phone_taken"


class TooManyAttempts(AccountsError):
    """Too many failed logins for this phone in the current window."""

    kind = "rate_limited"
    code = "too_many_attempts"


class UnknownUser(NotFound, AccountsError):
    """No such user (or not visible to the caller)."""

    code = "user_not_found"

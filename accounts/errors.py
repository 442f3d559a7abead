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


class OwnStatus(Conflict, AccountsError):
    """An admin may not freeze or close their own account (another admin can): the last
    admin would lock everyone out, and a script would end its own session."""

    code = "own_status"


class TooManyAttempts(AccountsError):
    """Too many attempts (failed logins, registrations) for now: wait ``retry_after_s``."""

    kind = "rate_limited"
    code = "too_many_attempts"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: int) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = max(1, retry_after_s)


class UnknownUser(NotFound, AccountsError):
    """No such user (or not visible to the caller)."""

    code = "user_not_found"


class BadSmsCode(InvalidInput, AccountsError):
    """An SMS login code that is wrong, expired, or was never sent."""

    code = "bad_sms_code"


class SmsCodeUsed(Conflict, AccountsError):
    """An SMS login code that was used already (a replay)."""

    code = "sms_code_used"

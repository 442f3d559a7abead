"""Errors of the merchants package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class MerchantsError(DoorstepError):
    """Root of the merchants package's errors."""


class InvalidMerchantInput(InvalidInput, MerchantsError):
    """A field of a merchant request breaks a rule."""


class MerchantNotFound(NotFound, MerchantsError):
    """No such merchant, or not one the caller may see."""

    code = "merchant_not_found"


class MerchantState(Conflict, MerchantsError):
    """The merchant's state does not allow this (not approved, reviewed already)."""

    code = "merchant_state"

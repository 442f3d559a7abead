"""Errors of the growth package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class GrowthError(DoorstepError):
    """Root of the growth package's errors."""


class InvalidGrowth(InvalidInput, GrowthError):
    """A coupon, template or points field breaks a rule; the field and the rule are named."""

    code = "invalid_growth"


class GrowthNotFound(NotFound, GrowthError):
    """No such template, coupon or order, or not visible to the caller."""

    code = "growth_not_found"


class CouponUnavailable(Conflict, GrowthError):
    """A coupon cannot be issued or used now: out of stock, the limit reached, used …"""

    code = "coupon_unavailable"


class CheckoutConflict(Conflict, GrowthError):
    """The order is not waiting for a prepayment: its discount cannot change."""

    code = "checkout_conflict"

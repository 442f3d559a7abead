"""Errors of the settlement package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, Forbidden, InvalidInput, NotFound


class SettlementError(DoorstepError):
    """Root of the settlement package's errors."""


class InvalidMoneyInput(InvalidInput, SettlementError):
    """An amount, rate or rule broke a rule; the field and the rule are named."""

    code = "invalid_money_input"


class RuleNotFound(NotFound, SettlementError):
    """No such commission rule."""

    code = "commission_rule_not_found"


class WithdrawalNotFound(NotFound, SettlementError):
    """No such withdrawal (or not the caller's)."""

    code = "withdrawal_not_found"


class BelowMinimum(InvalidInput, SettlementError):
    """A withdrawal below the minimum amount."""

    code = "below_minimum"


class DailyLimit(InvalidInput, SettlementError):
    """A withdrawal that would pass the day's limit."""

    code = "daily_limit_exceeded"


class InsufficientBalance(Conflict, SettlementError):
    """A withdrawal larger than the wallet's available balance."""

    code = "insufficient_balance"


class WrongState(Conflict, SettlementError):
    """The object is not in a state that allows this (a withdrawal already reviewed)."""

    code = "wrong_state"


class NoWallet(Forbidden, SettlementError):
    """The caller holds no wallet (neither a worker nor a merchant)."""

    code = "no_wallet"


class PayoutFailed(SettlementError):
    """The payout provider could not be reached or answered an error (retried by the job)."""

    kind = "unavailable"
    code = "payout_unavailable"


class BillUnavailable(SettlementError):
    """A provider's trade bill could not be fetched (unreachable, refused, a bad hash)."""

    kind = "unavailable"
    code = "bill_unavailable"

"""Errors of the payments package."""

from __future__ import annotations

from typing import ClassVar

from doorstep.errors import Conflict, DoorstepError, ErrorKind, InvalidInput, NotFound


class PaymentsError(DoorstepError):
    """Root of the payments package's errors."""


class InvalidPayment(InvalidInput, PaymentsError):
    """A payment or refund field breaks a rule (amount, currency, channel …)."""

    code = "invalid_payment"


class PaymentNotFound(NotFound, PaymentsError):
    """No such payment or refund, or not visible to the caller."""

    code = "payment_not_found"


class PaymentConflict(Conflict, PaymentsError):
    """The request clashes with the payment's state (already paid, closed, refund reused …)."""

    code = "payment_conflict"


class RefundNumberReused(PaymentConflict):
    """A refund number was used before for a different amount or order."""

    code = "refund_number_reused"


class ProviderError(PaymentsError):
    """The provider answered with a failure (its ``provider_code`` says which)."""

    kind: ClassVar[ErrorKind] = "unavailable"
    code = "provider_error"

    def __init__(self, message: str, *, provider_code: str = "", field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.provider_code = provider_code


class ProviderRefused(ProviderError):
    """The provider refused the request for a business reason (ORDER_CLOSED, NOT_ENOUGH …)."""

    kind = "conflict"
    code = "provider_refused"


class ProviderUnavailable(ProviderError):
    """No answer in time or a 5xx: the outcome is unknown; query before acting again."""

    code = "provider_unavailable"


class NotificationRejected(PaymentsError):
    """An incoming notification failed verification (signature, decryption, merchant,
    amount, currency, unknown order): nothing changed; the provider's failure answer goes back."""

    code = "notification_rejected"

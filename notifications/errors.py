"""Errors of the notifications package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound, Unauthenticated


class NotificationsError(DoorstepError):
    """Root of the notifications package's errors."""


class InvalidSetting(InvalidInput, NotificationsError):
    """A notification setting broke a rule."""

    code = "invalid_notification_setting"


class NotificationNotFound(NotFound, NotificationsError):
    """No such notification in the caller's inbox."""

    code = "notification_not_found"


class BadReceipt(Unauthenticated, NotificationsError):
    """A delivery receipt whose signature or time does not check out."""

    code = "bad_receipt_signature"


class ReceiptRejected(Conflict, NotificationsError):
    """A delivery receipt for no message we sent."""

    code = "unknown_receipt"

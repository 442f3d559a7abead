"""Wire types of notifications."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Notification(msgspec.Struct, frozen=True):
    """One inbox item. ``key`` identifies its cause (a client drops a second push of it)."""

    id: int
    key: str
    kind: str
    title: str
    body: str
    order_id: int | None
    created_at: datetime
    read_at: datetime | None


class Inbox(msgspec.Struct, frozen=True):
    """A page of the inbox, newest first, and how many are unread."""

    items: list[Notification]
    unread: int


class Unread(msgspec.Struct, frozen=True):
    """How many inbox items are unread."""

    unread: int


class QuietHoursOut(msgspec.Struct, frozen=True):
    """Local times ``HH:MM``; may wrap midnight."""

    start: str
    end: str


class NotificationSettings(msgspec.Struct, frozen=True):
    """A user's language, time zone, quiet hours and SMS choice per category."""

    language: str
    timezone: str
    quiet_hours: QuietHoursOut | None
    sms: dict[str, bool]


class SmsMessage(msgspec.Struct, frozen=True):
    """An SMS we send, as an admin sees it."""

    id: int
    key: str
    user_id: int | None
    phone: str
    template_code: str
    params: dict[str, str]
    not_before: datetime
    status: str
    attempts: int
    last_error: str | None
    biz_id: str | None
    sent_at: datetime | None
    reported_at: datetime | None

"""The rules of notifications, without I/O: who is told what about an event, which
channels a user wants, when quiet hours hold an SMS back, when reminders fall, and the
keys that make every effect happen once. Time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from events.types import (
    AccountChanged,
    CertificateExpiring,
    MemberLevelChanged,
    OrderChanged,
    Payload,
)
from notifications.errors import InvalidSetting

Channel = Literal["inbox", "sms"]
Reminder = Literal["eve", "hour"]

# What a user turns SMS on or off for; the inbox is always on.
CATEGORIES: dict[str, bool] = {  # category → SMS wanted by default
    "order": True,
    "offer": True,
    "reminder": True,
    "account": False,
}
DEFAULT_TIMEZONE = "Asia/Shanghai"
EVE_AT = time(20, 0)  # the evening reminder, local time, the day before
HOUR_BEFORE = timedelta(hours=1)

# Order events: the customer's kind, and the kind for the workers the change concerns
# (every member of a crew: the lead and the others).
_CUSTOMER_KIND: dict[str, str] = {
    "order.booked": "order_booked",
    "order.assigned": "order_assigned",
    "order.departed": "order_departed",
    "order.arrived": "order_arrived",
    "order.started": "order_started",
    "order.completed": "order_completed",
    "order.cancelled": "order_cancelled",
    "order.rescheduled": "order_rescheduled",
}
_WORKER_KIND: dict[str, str] = {
    "order.assigned": "job_assigned",
    "order.cancelled": "job_cancelled",
}
# A dispatcher put another worker in one seat of a crew: the one joining and the one
# leaving are told; the customer is not (the order keeps its status and time).
CREW_CHANGED = "order.crew_changed"
# order.confirmed is told with the booking (one message, not two in the same second);
# it still places reminders.
ORDER_TYPES = frozenset(
    {*_CUSTOMER_KIND, "order.offered", "order.confirmed", "order.failed", CREW_CHANGED}
)
ACCOUNT_TYPES = frozenset({"account.created"})
CERTIFICATE_TYPES = frozenset({"certificate.expiring"})
MEMBER_TYPES = frozenset({"member.level_changed"})
# Order events after which no reminder is due.
ENDS_REMINDERS = frozenset({"order.cancelled", "order.failed", "order.completed"})
# Order events that (re)place a scheduled order's reminders.
SETS_REMINDERS = frozenset({"order.booked", "order.confirmed", "order.rescheduled"})


@dataclass(frozen=True, slots=True)
class Intent:
    """Tell ``user_id`` about something, as ``kind``."""

    user_id: int
    kind: str


def category(kind: str) -> str:
    """The preference category a kind belongs to."""
    if kind == "offer":
        return "offer"
    if kind.startswith("reminder_"):
        return "reminder"
    if kind in ("welcome", "member_up", "member_down"):
        return "account"
    return "order"


def members(lead: int | None, crew: Iterable[int]) -> list[int]:
    """The workers holding an order: the lead, then the rest of the crew, once each."""
    return list(dict.fromkeys(w for w in (lead, *crew) if w is not None))


def intents(event_type: str, payload: Payload) -> list[Intent]:
    """Who is told what about an event (offers are the service's: it reads who got one).
    A worker's notice goes to every member of the crew holding the order; if none holds
    it now (a cancel after an unassign), to every member who held it before."""
    if isinstance(payload, OrderChanged):
        out: list[Intent] = []
        kind = _CUSTOMER_KIND.get(event_type)
        if kind is not None:
            out.append(Intent(payload.customer_id, kind))
        now_held = members(payload.worker_id, payload.crew)
        held = members(payload.previous_worker_id, payload.previous_crew)
        if event_type == CREW_CHANGED:
            out += [Intent(w, "crew_joined") for w in now_held if w not in held]
            out += [Intent(w, "crew_left") for w in held if w not in now_held]
            return out
        worker_kind = _WORKER_KIND.get(event_type)
        if worker_kind is not None:
            out += [Intent(w, worker_kind) for w in now_held or held]
        return out
    if (
        isinstance(payload, AccountChanged)
        and event_type == "account.created"
        and {"customer", "worker"} & set(payload.roles)
    ):
        return [Intent(payload.user_id, "welcome")]
    if isinstance(payload, CertificateExpiring):
        return [Intent(payload.worker_id, "reminder_certificate")]
    if isinstance(payload, MemberLevelChanged):
        return [Intent(payload.customer_id, f"member_{payload.direction}")]
    return []


def reminded(customer_id: int, lead: int | None, crew: Iterable[int]) -> list[int]:
    """Who a reminder of a service tells: the customer and every worker holding the order."""
    return [customer_id, *(w for w in members(lead, crew) if w != customer_id)]


def sms_wanted(kind: str, choices: dict[str, bool]) -> bool:
    """Whether the user wants ``kind`` by SMS: their choice for its category, else the
    category's default."""
    cat = category(kind)
    return choices.get(cat, CATEGORIES[cat])


def check_choices(choices: dict[str, bool]) -> dict[str, bool]:
    """SMS choices by category, refused if a category is unknown."""
    for name in choices:
        if name not in CATEGORIES:
            raise InvalidSetting(
                f"unknown category {name!r}; known: {', '.join(sorted(CATEGORIES))}",
                field=f"sms.{name}",
            )
    return dict(choices)


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """An IANA time zone, refused if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSetting(f"unknown time zone {name!r}", field=field) from None


def parse_hhmm(raw: str, field: str) -> int:
    """``"22:30"`` → minutes of the day."""
    hh, sep, mm = raw.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and len(hh) <= 2):
        raise InvalidSetting("must be HH:MM", field=field)
    if not (0 <= int(hh) <= 23 and 0 <= int(mm) <= 59):
        raise InvalidSetting("must be a time of day, 00:00 to 23:59", field=field)
    return int(hh) * 60 + int(mm)


def format_hhmm(minutes: int) -> str:
    """Minutes of the day → ``"HH:MM"``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No SMS from ``start_min`` to ``end_min`` (local minutes of the day; may wrap
    midnight: 22:00 to 08:00)."""

    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        if self.start_min == self.end_min:
            raise InvalidSetting("quiet hours must not start when they end", field="quiet_hours")


def held_until(now: datetime, quiet: QuietHours | None, tz: ZoneInfo) -> datetime | None:
    """When quiet hours that hold ``now`` end (UTC); None if ``now`` is not quiet."""
    if quiet is None:
        return None
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    s, e = quiet.start_min, quiet.end_min
    inside = s <= minute < e if s < e else (minute >= s or minute < e)
    if not inside:
        return None
    end_day = local.date()
    if s > e and minute >= s:  # after the evening start: ends tomorrow morning
        end_day += timedelta(days=1)
    end = datetime.combine(end_day, time(e // 60, e % 60), tzinfo=tz)
    return end.astimezone(UTC)


def reminder_times(
    window_start: datetime, tz: ZoneInfo, *, now: datetime
) -> dict[Reminder, datetime]:
    """When to remind about a service at ``window_start``: the evening before (local
    :data:`EVE_AT`) and an hour before, each only if still ahead of ``now`` (and the
    evening one only if it comes before the hour one)."""
    local = window_start.astimezone(tz)
    eve = datetime.combine(local.date() - timedelta(days=1), EVE_AT, tzinfo=tz).astimezone(UTC)
    hour = (window_start - HOUR_BEFORE).astimezone(UTC)
    out: dict[Reminder, datetime] = {}
    if now < eve < hour:
        out["eve"] = eve
    if now < hour:
        out["hour"] = hour
    return out


def reminder_lock(order_id: int, which: Reminder) -> str:
    """The queueing lock of an order's reminder job: one waiting job per order and kind."""
    return f"reminder:{order_id}:{which}"


def event_key(event_id: int, user_id: int, kind: str, channel: Channel) -> str:
    """The identity of an event's effect: a redelivered event finds it and adds nothing."""
    return f"ev:{event_id}:{user_id}:{kind}:{channel}"


def reminder_key(
    order_id: int, which: Reminder, window_start: datetime, user_id: int, channel: Channel
) -> str:
    """The identity of a reminder (per window: a rescheduled order is reminded again)."""
    return f"rem:{order_id}:{which}:{int(window_start.timestamp())}:{user_id}:{channel}"


def offer_key(offer_id: int, channel: Channel) -> str:
    """The identity of an offer's message to an offline worker: one per offer."""
    return f"offer:{offer_id}:{channel}"


def local_time(at: datetime | None, tz: ZoneInfo, lang: str) -> str:
    """A service time as people read it: ``12月07日 10:00`` or ``Dec 07 10:00``; "尽快" /
    "as soon as possible" for an instant order."""
    if at is None:
        return "尽快" if lang == "zh" else "as soon as possible"
    local = at.astimezone(tz)
    if lang == "zh":
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local:%b} {local.day} {local:%H:%M}"

"""Event types and their payloads: the contract between producers and consumers.

Pure: no I/O. Every event type is registered here with a msgspec ``Struct`` for its
payload, so a producer cannot append a type nobody knows or a payload of the wrong
shape, and a consumer decodes exactly what was written. Payloads only grow: a new
field gets a default, so events already stored still decode.

An event belongs to an *aggregate* (``order:42``, ``user:7``): the object whose row the
producer held locked while it appended the event. Events of one aggregate are
delivered in the order they were appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import msgspec

from events.errors import BadPayload, UnknownEventType


class Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every payload."""


class OrderChanged(Payload, frozen=True, forbid_unknown_fields=True):
    """An order moved from one status to another (or was booked)."""

    order_id: int
    city_id: str
    customer_id: int
    kind: str  # instant | scheduled
    service_code: str
    status: str
    previous: str | None
    action: str
    actor: str  # the lifecycle's actor role
    actor_id: int | None
    version: int
    worker_id: int | None
    previous_worker_id: int | None
    window_start: datetime | None
    window_end: datetime | None
    previous_window_start: datetime | None
    at: datetime
    reason: str = ""
    # Offers withdrawn by this change: [{"offer_id": …, "worker_id": …}].
    withdrawn_offers: list[dict[str, int]] = msgspec.field(default_factory=list)
    # Arrival: the ETA predicted at departure and the observed trip, for learning.
    eta_predicted_s: float | None = None
    en_route_at: datetime | None = None
    arrived_at: datetime | None = None
    # A crew order's workers after and before the change, the lead first (empty: one worker).
    crew: list[int] = msgspec.field(default_factory=list)
    previous_crew: list[int] = msgspec.field(default_factory=list)


class RatingGiven(Payload, frozen=True, forbid_unknown_fields=True):
    """A customer rated a completed order."""

    order_id: int
    city_id: str
    customer_id: int
    worker_id: int
    stars: int
    at: datetime


class AccountChanged(Payload, frozen=True, forbid_unknown_fields=True):
    """An account was created, or its status changed."""

    user_id: int
    roles: list[str]
    status: str
    previous: str | None
    at: datetime


class AlertChanged(Payload, frozen=True, forbid_unknown_fields=True):
    """A dispatcher alert about an order was raised or resolved (dispatch/alerts.py)."""

    alert_id: int
    city_id: str
    order_id: int
    kind: str  # start_locked | overdue_on_site | late_predicted | worker_stale
    message: str
    raised_at: datetime
    resolved: bool = False
    resolved_by: int | None = None
    at: datetime | None = None


class CertificateExpiring(Payload, frozen=True, forbid_unknown_fields=True):
    """A worker's verified certificate expires in ``days_before`` days or fewer
    (onboarding's daily reminder job: 30 and 7 days before)."""

    certificate_id: int
    worker_id: int
    kind: str
    name_zh: str
    name_en: str
    expires_on: date
    days_before: int


class MemberLevelChanged(Payload, frozen=True, forbid_unknown_fields=True):
    """A customer's membership level changed (growth/members.py): up when points earned
    reach a threshold, down when points leave the rolling window (the daily job)."""

    customer_id: int
    old_level: str
    new_level: str
    direction: str  # up or down
    name_zh: str
    name_en: str
    points: int  # earned over the window
    at: datetime


class Probe(Payload, frozen=True, forbid_unknown_fields=True):
    """A diagnostic event: the probe consumer records its delivery (events/probe.py)."""

    probe: str
    hold_ms: int = 0  # the handler waits this long (crash tests), 0..2000

    def __post_init__(self) -> None:
        if not 0 <= self.hold_ms <= 2000:
            raise BadPayload("hold_ms must be between 0 and 2000", field="payload.hold_ms")
        if not 1 <= len(self.probe) <= 64:
            raise BadPayload("probe is 1 to 64 characters", field="payload.probe")


# The order lifecycle's actions, as event types (``book`` is the booking itself).
ORDER_EVENTS: dict[str, str] = {
    "book": "order.booked",
    "confirm": "order.confirmed",
    "request_payment": "order.awaiting_payment",
    "pay": "order.paid",
    "dispatch": "order.dispatching",
    "offer": "order.offered",
    "decline": "order.declined",
    "assign": "order.assigned",
    "unassign": "order.unassigned",
    "depart": "order.departed",
    "arrive": "order.arrived",
    "start": "order.started",
    "complete": "order.completed",
    "cancel": "order.cancelled",
    "fail": "order.failed",
    "reschedule": "order.rescheduled",
    # Not status changes: routed to a merchant, or overflowed back to the platform (issue 18).
    "route": "order.routed",
    "overflow": "order.overflowed",
    # Not a status change: a dispatcher put another worker in one seat of the crew.
    "crew_change": "order.crew_changed",
}

TYPES: dict[str, type[Payload]] = {
    **{name: OrderChanged for name in ORDER_EVENTS.values()},
    "rating.given": RatingGiven,
    "alert.raised": AlertChanged,
    "alert.resolved": AlertChanged,
    "account.created": AccountChanged,
    "account.frozen": AccountChanged,
    "account.unfrozen": AccountChanged,
    "account.closed": AccountChanged,
    "system.probe": Probe,
    "certificate.expiring": CertificateExpiring,
    "member.level_changed": MemberLevelChanged,
}


def order_event_type(action: str) -> str:
    """The event type of an order action; :class:`UnknownEventType` for an unknown one."""
    name = ORDER_EVENTS.get(action)
    if name is None:
        raise UnknownEventType(f"no event for the order action {action!r}", field="action")
    return name


def payload_class(event_type: str) -> type[Payload]:
    """The payload class of a registered type."""
    cls = TYPES.get(event_type)
    if cls is None:
        raise UnknownEventType(
            f"unknown event type {event_type!r}; known: {', '.join(sorted(TYPES))}",
            field="type",
        )
    return cls


def check_types(names: frozenset[str] | set[str], *, field: str = "types") -> frozenset[str]:
    """``names`` if every one is a registered type."""
    unknown = sorted(set(names) - set(TYPES))
    if unknown:
        raise UnknownEventType(
            f"unknown event type {unknown[0]!r}; known: {', '.join(sorted(TYPES))}", field=field
        )
    return frozenset(names)


def encode_payload(event_type: str, payload: Payload) -> dict[str, Any]:
    """The payload as JSON-ready builtins, after checking it is the type's class."""
    cls = payload_class(event_type)
    if type(payload) is not cls:
        raise BadPayload(
            f"{event_type} carries a {cls.__name__}, not a {type(payload).__name__}",
            field="payload",
        )
    out: dict[str, Any] = msgspec.to_builtins(payload)
    return out


def decode_payload(event_type: str, data: object) -> Payload:
    """The stored payload back as its class; :class:`BadPayload` if it does not fit."""
    cls = payload_class(event_type)
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as e:
        raise BadPayload(f"{event_type}: {e}", field="payload") from None


def aggregate_key(kind: str, ident: int | str) -> str:
    """``order:42``: the key events of one object are ordered by."""
    if not kind or ":" in kind:
        raise BadPayload("an aggregate kind is a non-empty name without ':'", field="aggregate")
    return f"{kind}:{ident}"


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event: its id, its place in the delivery order (``seq``), and payload."""

    id: int
    seq: int
    type: str
    aggregate: str
    version: int
    payload: Payload
    occurred_at: datetime

    def as_json(self) -> dict[str, Any]:
        """For the admin API."""
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "aggregate": self.aggregate,
            "version": self.version,
            "payload": msgspec.to_builtins(self.payload),
            "occurred_at": self.occurred_at,
        }

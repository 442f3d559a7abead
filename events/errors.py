"""Errors of the events package."""

from __future__ import annotations

from doorstep.errors import DoorstepError, InvalidInput, NotFound


class EventsError(DoorstepError):
    """Root of the events package's errors."""


class UnknownEventType(InvalidInput, EventsError):
    """No such event type is registered."""

    code = "unknown_event_type"


class BadPayload(InvalidInput, EventsError):
    """An event's payload does not fit its type's schema."""

    code = "invalid_event_payload"


class UnknownConsumer(InvalidInput, EventsError):
    """No consumer of that name runs in this deployment."""

    code = "unknown_consumer"


class DeadEventNotFound(NotFound, EventsError):
    """No dead-lettered delivery with that id."""

    code = "dead_event_not_found"

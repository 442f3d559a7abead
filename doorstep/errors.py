"""The root of every domain error.

Each package has one root exception that subclasses :class:`DoorstepError`;
subclasses carry the offending ``field`` and the ``rule`` it broke and build their
message from them. ``api/`` maps ``kind`` to an HTTP status (and websocket close
code) in one place, so domain code never thinks about HTTP.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal[
    "malformed",
    "invalid",
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "rate_limited",
    "unavailable",
]


class DoorstepError(Exception):
    """A request that cannot be carried out, with a machine-readable code.

    ``code`` is a stable snake_case identifier clients may switch on; ``field`` names
    the input that caused it (dotted path, e.g. ``"service_area.coordinates"``) or is
    ``None`` when no single field is at fault.
    """

    kind: ClassVar[ErrorKind] = "invalid"
    code: ClassVar[str] = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidInput(DoorstepError):
    """A value broke a rule; ``field`` names it and the message states the rule."""

    kind = "invalid"
    code = "invalid_field"


class NotFound(DoorstepError):
    """The object does not exist, or the caller may not know that it does."""

    kind = "not_found"
    code = "not_found"


class Conflict(DoorstepError):
    """The request clashes with the current state (duplicate, wrong state, stale version)."""

    kind = "conflict"
    code = "conflict"


class Unauthenticated(DoorstepError):
    """No credentials, or credentials that are invalid or expired."""

    kind = "unauthenticated"
    code = "unauthenticated"


class Forbidden(DoorstepError):
    """Authenticated, but this caller may not do this."""

    kind = "forbidden"
    code = "forbidden"

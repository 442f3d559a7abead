"""The shapes the permissions package hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Role:
    """A role: a template (built in) or one an admin made."""

    name: str
    title: str
    permissions: tuple[str, ...]
    scopes: tuple[str, ...]
    builtin: bool


@dataclass(frozen=True, slots=True)
class Grant:
    """A role held by a user in a scope (``revoked_at`` set once revoked)."""

    id: int
    user_id: int
    role: str
    scope: str
    granted_by: int | None
    granted_at: datetime
    revoked_by: int | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change to roles, grants or merchants, and who made it."""

    id: int
    at: datetime
    actor_id: int | None
    action: str
    user_id: int | None
    role: str | None
    scope: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Held:
    """One permission the caller holds, and where."""

    permission: str
    scopes: tuple[str, ...]
    via: tuple[str, ...]  # base roles or granted roles that give it

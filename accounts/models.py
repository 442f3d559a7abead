"""The shapes accounts hand out (encoded to JSON as they are)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    """An account as its owner and staff see it."""

    id: int
    phone: str
    name: str
    roles: tuple[str, ...]
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Registration:
    """What a registration answers: the same whether or not the phone had an account."""

    phone: str
    status: str  # "accepted"
    message: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    user: User


@dataclass(frozen=True, slots=True)
class Address:
    """A customer's saved address; ``lat``/``lng`` are WGS-84 whatever the input CRS was."""

    id: int
    user_id: int
    label: str
    lat: float
    lng: float
    source_crs: str
    detail: str
    contact_name: str
    contact_phone: str
    city_id: str | None
    created_at: datetime

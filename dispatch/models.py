"""The shapes dispatch hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Order:
    """An order as its customer and staff see it (workers get :func:`for_worker`)."""

    id: int
    city_id: str
    customer_id: int
    service_code: str
    kind: str
    status: str
    version: int
    lat: float
    lng: float
    address_id: int | None
    address_detail: str
    contact_phone: str
    window_start: datetime | None
    window_end: datetime | None
    duration_min: int
    price_minor: int
    currency: str
    notes: str
    worker_id: int | None
    start_code: str | None
    en_route_at: datetime | None
    arrived_at: datetime | None
    cancel_fee_minor: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One change of an order's status."""

    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    actor_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ShareLink:
    """A token that lets anyone holding it watch one order until it expires."""

    token: str
    expires_at: datetime
    path: str

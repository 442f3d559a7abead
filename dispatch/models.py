"""The shapes dispatch hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
    pinned: bool = False
    dispatch_attempts: int = 0
    completed_at: datetime | None = None
    series_id: int | None = None  # one occurrence of a recurring booking


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
    """A token that lets anyone holding it watch one order until it expires.

    ``path`` is the order socket's path with the token; ``page_path`` the tracking page's
    (``/track/{order_id}?share=…``), and ``page_url`` that page on the host the request
    came to.
    """

    token: str
    expires_at: datetime
    path: str
    page_path: str = ""
    page_url: str = ""


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer of one order to one worker, answered or not."""

    id: int
    order_id: int
    worker_id: int
    mode: str
    status: str
    created_at: datetime
    expires_at: datetime
    answered_at: datetime | None
    reason: str
    eta_s: float | None
    distance_m: float | None


@dataclass(frozen=True, slots=True)
class Override:
    """A dispatcher's intervention, with what it changed."""

    id: int
    at: datetime
    actor_id: int
    action: str
    city_id: str | None
    order_id: int | None
    worker_id: int | None
    reason: str
    forced: bool
    warnings: list[str]
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rating:
    """A customer's rating of a finished job."""

    order_id: int
    worker_id: int
    stars: int
    text: str
    created_at: datetime

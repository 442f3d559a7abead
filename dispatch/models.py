"""The shapes dispatch hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, overload


@overload
def job_end(
    arrived_at: datetime, duration_min: int, expected_end_at: datetime | None
) -> datetime: ...
@overload
def job_end(
    arrived_at: datetime | None, duration_min: int, expected_end_at: datetime | None
) -> datetime | None: ...
def job_end(
    arrived_at: datetime | None, duration_min: int, expected_end_at: datetime | None
) -> datetime | None:
    """When a job on site is expected to end: the worker's estimate if given (sooner or
    later than the catalogue's), else the arrival plus the service's duration; None
    before arrival without an estimate. The one rule, in Python; ``time_left.ends_at``
    writes the same in SQL (``tests/test_time_left.py`` checks they agree). Pure."""
    if expected_end_at is not None:
        return expected_end_at
    if arrived_at is None:
        return None
    return arrived_at + timedelta(minutes=duration_min)


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
    merchant_id: int | None = None  # routed to a merchant: its staff serve it (issue 18)
    crew_size: int = 1  # workers the job needs together (from the service, at booking)
    # A crew order's workers holding it, the lead (``worker_id``) first; empty for a
    # one-worker order and for a crew order not assigned yet (docs/dispatch.md#crews).
    crew: tuple[int, ...] = ()
    # The worker's estimate of when the job on site ends ("about N minutes left",
    # docs/dispatch.md#chained-orders); None: arrived_at + duration_min.
    expected_end_at: datetime | None = None

    @property
    def ends_at(self) -> datetime | None:
        """When the job on site is expected to end (:func:`job_end`)."""
        return job_end(self.arrived_at, self.duration_min, self.expected_end_at)

    @property
    def window_start_ms(self) -> int | None:
        """A scheduled order's window opening in epoch ms (tracking's ``JobInfo``); None
        for an instant one."""
        if self.kind != "scheduled" or self.window_start is None:
            return None
        return round(self.window_start.timestamp() * 1000)

    def holds(self, worker_id: int | None) -> bool:
        """True if this worker holds the order: its worker, or a member of its crew."""
        return worker_id is not None and (worker_id == self.worker_id or worker_id in self.crew)


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
    # A chained offer (docs/dispatch.md#chained-orders): the worker's current job, which
    # this one follows; None for a free worker.
    after_order_id: int | None = None


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
    quality: int | None = None
    attitude: int | None = None
    punctuality: int | None = None
    tags: tuple[str, ...] = ()
    photos: tuple[int, ...] = ()  # review_photo file ids
    edited_at: datetime | None = None
    editable_until: datetime | None = None  # the author's edit window ends
    reply: str | None = None  # the worker's one reply
    replied_at: datetime | None = None
    hidden: bool = False  # hidden by a moderator (counts nowhere)
    hidden_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Review:
    """A rating as anyone may read it: no customer id, the customer's name masked."""

    stars: int
    text: str
    created_at: datetime
    service_code: str
    worker_id: int
    worker_name: str  # surname + 师傅
    customer_name: str  # first character + **
    quality: int | None = None
    attitude: int | None = None
    punctuality: int | None = None
    tags: tuple[str, ...] = ()
    photos: tuple[int, ...] = ()  # review_photo file ids (readable once attached)
    reply: str | None = None  # the worker's reply
    replied_at: datetime | None = None
    edited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Badge:
    """A verified, unexpired certificate as customers see it: its kind, never its number."""

    kind: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class WorkerCard:
    """A worker's public profile: what a customer sees before and after booking."""

    id: int
    name: str  # surname + 师傅, never the full name
    city_id: str
    skills: tuple[str, ...]
    rating: float | None
    rating_count: int
    completed_jobs: int
    reviews: tuple[Review, ...]
    photo_file_id: int | None = None  # the worker's avatar, if any
    years_experience: int | None = None  # null when the profile does not say
    badges: tuple[Badge, ...] = ()
    dimensions: dict[str, float | None] | None = None  # per-dimension averages (visible reviews)
    tags: dict[str, int] | None = None  # tag counts of visible reviews

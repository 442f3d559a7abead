"""What after-sales answers: tickets, their notes, outcomes, ruling and claim, the queue's
timers, the evidence, spot checks and the insurance option."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Ticket(msgspec.Struct, kw_only=True):
    """An after-sales ticket with its SLA timers at the time of the answer."""

    id: int
    order_id: int
    customer_id: int
    worker_id: int | None  # the order's worker; of a crew order, its lead
    city_id: str
    kind: str
    kind_zh: str
    kind_en: str
    status: str
    description: str
    asked_fen: int | None
    escalation_level: int
    first_response_due: datetime
    resolution_due: datetime
    first_response_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    created_at: datetime
    updated_at: datetime
    insured: bool = False
    # A crew order's workers, the lead first: every one is involved (sees the ticket, is
    # told of it, a "same worker" redo goes back to them all); empty for one worker.
    crew: list[int] = msgspec.field(default_factory=list)
    first_response_left_s: int | None = None
    resolution_left_s: int | None = None
    breached: bool = False


class Note(msgspec.Struct, kw_only=True):
    """A message, a statement, or a step of the system."""

    id: int
    side: str
    kind: str
    author_id: int | None
    body: str
    photos: list[int]
    at: datetime


class Outcome(msgspec.Struct, kw_only=True):
    """What a resolution gave: a refund, compensation, a redo order, a claim, a quality event."""

    kind: str
    amount_fen: int | None
    out_refund_no: str | None
    ledger_key: str | None
    redo_order_id: int | None
    detail: dict[str, Any]
    at: datetime


class Ruling(msgspec.Struct, kw_only=True):
    """An admin's ruling on a dispute."""

    in_favour: str
    reason: str
    ruled_by: int
    ruled_at: datetime


class Claim(msgspec.Struct, kw_only=True):
    """An insurance claim of a damage ticket on an insured order."""

    id: int
    ticket_id: int
    order_id: int
    status: str
    claimed_fen: int | None
    assessed_fen: int | None
    coverage_fen: int
    reason: str | None
    assessed_at: datetime | None
    decided_at: datetime | None
    created_at: datetime


class TicketDetail(msgspec.Struct, kw_only=True):
    """A ticket with everything on it."""

    ticket: Ticket
    notes: list[Note]
    outcomes: list[Outcome]
    ruling: Ruling | None
    claim: Claim | None
    settlement_held: bool


class TimelineStep(msgspec.Struct, kw_only=True):
    """One step of the order's history."""

    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    reason: str


class TrailPoint(msgspec.Struct, kw_only=True):
    """One archived fix of the worker during the job."""

    ts: datetime
    lat: float
    lng: float
    accuracy_m: float | None


class MemberTrail(msgspec.Struct, kw_only=True):
    """One crew member's archived fixes during the job."""

    worker_id: int
    trail: list[TrailPoint]


class Evidence(msgspec.Struct, kw_only=True):
    """What staff weigh: the photos, the order's timeline, the worker's trail of the job
    (of a crew order, the lead's; ``crew_trails``: every member's, the lead first)."""

    photos: list[int]
    timeline: list[TimelineStep]
    trail_from: datetime | None
    trail_to: datetime | None
    trail: list[TrailPoint]
    crew_trails: list[MemberTrail] = msgspec.field(default_factory=list)


class SpotCheck(msgspec.Struct, kw_only=True):
    """A call-back task."""

    id: int
    order_id: int
    worker_id: int
    customer_id: int
    city_id: str
    period_start: datetime
    seed: int
    status: str
    answers: dict[str, Any] | None
    passed: bool | None
    note: str
    done_by: int | None
    done_at: datetime | None
    created_at: datetime


class Question(msgspec.Struct, kw_only=True):
    """A question of the call-back questionnaire."""

    key: str
    zh: str
    en: str
    kind: str


class Insurance(msgspec.Struct, kw_only=True):
    """A service's insurance option."""

    service_code: str
    premium_fen: int
    coverage_fen: int
    active: bool


class Sampled(msgspec.Struct, kw_only=True):
    """What a spot-check run did."""

    period_start: datetime
    period_end: datetime
    seed: int
    sampled: int
    created: int

"""The life of an order: a pure, table-driven state machine.

    created → confirmed → dispatching → offered → assigned → en_route → arrived
            → in_service → completed
    created → awaiting_payment (待支付) → confirmed when paid (payments/), or cancelled
            when it closes unpaid
    plus cancelled and failed (terminal), and rescheduling back to confirmed.

Every change is an *action* taken by an *actor role*; the table says which actions
are legal in which status, what status follows, and who may take them. Nothing here
does I/O: the caller passes the current status and ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from doorstep.errors import Conflict, Forbidden

Status = Literal[
    "created",
    "awaiting_payment",
    "confirmed",
    "dispatching",
    "offered",
    "assigned",
    "en_route",
    "arrived",
    "in_service",
    "completed",
    "cancelled",
    "failed",
]
Action = Literal[
    "confirm",
    "request_payment",
    "pay",
    "dispatch",
    "offer",
    "decline",
    "assign",
    "unassign",
    "depart",
    "arrive",
    "start",
    "complete",
    "cancel",
    "fail",
    "reschedule",
]
Actor = Literal["customer", "worker", "dispatcher", "admin", "system"]

STATUSES: tuple[Status, ...] = get_args(Status)
TERMINAL: frozenset[Status] = frozenset({"completed", "cancelled", "failed"})
# A worker holds the job (their position may be shown to the customer) in these.
WITH_WORKER: frozenset[Status] = frozenset({"assigned", "en_route", "arrived", "in_service"})
BEFORE_SERVICE: tuple[Status, ...] = (
    "created",
    "awaiting_payment",
    "confirmed",
    "dispatching",
    "offered",
    "assigned",
    "en_route",
    "arrived",
)

STAFF: frozenset[Actor] = frozenset({"dispatcher", "admin", "system"})

# (from status, action) → to status
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    ("created", "confirm"): "confirmed",
    ("created", "request_payment"): "awaiting_payment",
    ("awaiting_payment", "pay"): "confirmed",
    ("confirmed", "dispatch"): "dispatching",
    ("dispatching", "offer"): "offered",
    ("offered", "decline"): "dispatching",  # rejected or expired: dispatch again
    ("offered", "assign"): "assigned",  # the worker accepted (or a dispatcher assigned)
    ("dispatching", "assign"): "assigned",
    ("confirmed", "assign"): "assigned",
    ("assigned", "unassign"): "dispatching",
    ("en_route", "unassign"): "dispatching",
    ("assigned", "depart"): "en_route",
    ("en_route", "arrive"): "arrived",
    ("assigned", "arrive"): "arrived",
    ("arrived", "start"): "in_service",
    ("in_service", "complete"): "completed",
    ("confirmed", "fail"): "failed",
    ("dispatching", "fail"): "failed",
    ("offered", "fail"): "failed",
    **{(s, "cancel"): "cancelled" for s in BEFORE_SERVICE},
    **{(s, "reschedule"): "confirmed" for s in ("confirmed", "dispatching", "offered", "assigned")},
}

WHO: dict[Action, frozenset[Actor]] = {
    "confirm": frozenset({"customer", "system", "admin"}),
    "request_payment": frozenset({"system"}),
    "pay": frozenset({"system"}),  # only a verified payment confirms a paid order
    "dispatch": STAFF,
    "offer": STAFF,
    "decline": frozenset({"worker", *STAFF}),
    "assign": frozenset({"worker", *STAFF}),
    "unassign": frozenset({"worker", *STAFF}),
    "depart": frozenset({"worker", *STAFF}),
    "arrive": frozenset({"worker", *STAFF}),
    "start": frozenset({"worker", *STAFF}),
    "complete": frozenset({"worker", *STAFF}),
    "cancel": frozenset({"customer", *STAFF}),
    "fail": STAFF,
    "reschedule": frozenset({"customer", *STAFF}),
}


class IllegalTransition(Conflict):
    """The action is not legal in the order's current status."""

    code = "illegal_transition"

    def __init__(self, current: Status, action: str) -> None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == current)
        super().__init__(
            f"cannot {action} an order that is {current}; "
            f"possible now: {', '.join(allowed) if allowed else 'nothing (it is final)'}",
            field="status",
        )
        self.current = current


class NotYourAction(Forbidden):
    """This kind of actor may not take this action."""

    code = "action_forbidden"


def next_status(current: Status, action: Action, actor: Actor) -> Status:
    """The status after ``action`` by ``actor``, or an error saying why not."""
    to = TRANSITIONS.get((current, action))
    if to is None:
        raise IllegalTransition(current, action)
    if actor not in WHO[action]:
        raise NotYourAction(f"a {actor} may not {action} an order")
    return to


def allowed_actions(current: Status, actor: Actor) -> list[Action]:
    """What ``actor`` may do to an order in ``current`` status."""
    return sorted(a for (s, a) in TRANSITIONS if s == current and actor in WHO[a])


@dataclass(frozen=True, slots=True)
class CancelRule:
    """What a cancellation costs the customer, as a fraction of the price."""

    fee_fraction: float
    reason: str


def cancellation_fee(
    status: Status, *, by: Actor, price_minor: int, now_s: int, window_start_s: int | None
) -> tuple[int, str]:
    """The fee (minor units) a cancellation in ``status`` costs the customer, and why.

    Free before a worker is assigned, free when staff cancel, free up to 2 h before a
    scheduled window; 20% once a worker is assigned, 50% once they are on the way or
    there (they spent the trip).
    """
    if by != "customer" or status not in WITH_WORKER:
        return (
            0,
            "free: no worker had committed to it yet"
            if by == "customer"
            else "free: cancelled by staff",
        )
    if status == "assigned" and window_start_s is not None and window_start_s - now_s >= 2 * 3600:
        return 0, "free: more than 2 hours before the booked window"
    fraction = 0.2 if status == "assigned" else 0.5
    fee = (price_minor * round(fraction * 100) + 50) // 100  # half up (四舍五入)
    return (
        fee,
        f"{int(fraction * 100)}% of the price: the worker had {'committed' if status == 'assigned' else 'travelled'}",
    )

"""After-sales rules, without I/O: the window, SLA deadlines and escalation levels, what a
ticket, a resolution, a ruling, a claim and a spot check may be, and the sampling of
spot checks. Time (``now``) and randomness (``seed``) are arguments.

- A ticket is opened on a **completed** order within the after-sales window: the same
  ``[settlement] after_sales_days`` that keeps the worker's earnings frozen (T+N), so a
  ticket can only be opened while settlement has not paid the order out.
- Each ticket has two deadlines from its creation: the first response
  (``first_response_s``) and the resolution (``resolution_s``). A ticket past the first
  without a response is at escalation level 1; past the second and still open, level 2.
- Spot checks: each worker's completed orders of a period are sampled with a seeded
  generator (the same seed and orders give the same sample).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from aftersales.errors import (
    AlreadyRuled,
    ClaimState,
    InvalidAftersalesInput,
    OutsideWindow,
    TicketState,
)
from doorstep.text import check_visible_text

Kind = Literal["redo", "refund", "compensation", "damage", "complaint"]
KINDS: tuple[str, ...] = ("redo", "refund", "compensation", "damage", "complaint")
KIND_NAMES: dict[str, tuple[str, str]] = {
    "redo": ("返工重做", "redo"),
    "refund": ("部分退款", "partial refund"),
    "compensation": ("赔偿", "compensation"),
    "damage": ("物品损坏", "damage claim"),
    "complaint": ("服务态度投诉", "complaint about behaviour"),
}
Status = Literal["open", "in_progress", "disputed", "resolved", "rejected", "withdrawn"]
OPEN: tuple[str, ...] = ("open", "in_progress", "disputed")
Side = Literal["customer", "worker", "staff", "system"]
Favour = Literal["customer", "worker", "split"]
RedoTo = Literal["same", "other"]
ClaimStatus = Literal["claimed", "assessed", "paid", "rejected"]
EVIDENCE_PURPOSE = "aftersales_evidence"
MAX_TEXT = 2000


@dataclass(frozen=True, slots=True)
class AftersalesParams:
    """Section ``[aftersales]`` of the params file. The window itself is
    ``[settlement] after_sales_days``: one number for both."""

    first_response_s: float = 7200.0  # customer service answers within 2 h ...
    resolution_s: float = 172800.0  # ... and closes the ticket within 48 h
    max_compensation_fen: int = 100_000  # one ticket's compensation at most (1,000 yuan)
    max_photos: int = 9  # photos on one message or statement
    spot_per_worker: int = 1  # completed orders called back per worker and period ...
    spot_period_days: int = 7  # ... of this many days

    def __post_init__(self) -> None:
        if not 0 < self.first_response_s <= self.resolution_s:
            raise ValueError("first_response_s must be > 0 and <= resolution_s")
        if not self.resolution_s <= 90 * 86400:
            raise ValueError("resolution_s must be at most 90 days")
        if not 1 <= self.max_compensation_fen <= 10**9:
            raise ValueError("max_compensation_fen must be between 1 and 10^9")
        if not 0 <= self.max_photos <= 20:
            raise ValueError("max_photos must be between 0 and 20")
        if not 0 <= self.spot_per_worker <= 100:
            raise ValueError("spot_per_worker must be between 0 and 100")
        if not 1 <= self.spot_period_days <= 92:
            raise ValueError("spot_period_days must be between 1 and 92")


# --- opening a ticket ---------------------------------------------------------------


def window_end(completed_at: datetime, window_days: int) -> datetime:
    """When the after-sales window of an order completed at ``completed_at`` closes."""
    return completed_at + timedelta(days=window_days)


def check_window(
    status: str, completed_at: datetime | None, *, now: datetime, window_days: int
) -> None:
    """:class:`OutsideWindow` (naming ``order_id``) unless the order is completed and its
    after-sales window is still open at ``now``."""
    if status != "completed" or completed_at is None:
        raise OutsideWindow(
            f"after-sales is for completed orders; this one is {status}", field="order_id"
        )
    end = window_end(completed_at, window_days)
    if now >= end:
        raise OutsideWindow(
            f"the after-sales window ({window_days} days after completion) closed at "
            f"{end.astimezone(UTC).isoformat()}",
            field="order_id",
        )


def text(value: str, field: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    """Trimmed visible text of at most ``limit`` characters, lines allowed (required: not
    blank); control characters are refused (doorstep.text)."""
    return check_visible_text(
        value,
        field,
        max_length=limit,
        required=required,
        single_line=False,
        error=InvalidAftersalesInput,
    )


def fen(value: object, field: str, *, required: bool = True) -> int | None:
    """A positive integer amount of fen (None allowed when not required)."""
    if value is None and not required:
        return None
    if type(value) is not int or value <= 0:
        raise InvalidAftersalesInput("must be a positive integer number of fen", field=field)
    if value > 10**10:
        raise InvalidAftersalesInput("must be at most 10^10 fen", field=field)
    return value


def check_kind(kind: str) -> Kind:
    """One of :data:`KINDS`."""
    if kind not in KINDS:
        raise InvalidAftersalesInput(f"must be one of {', '.join(KINDS)}", field="kind")
    return kind  # type: ignore[return-value]


def check_photos(photos: Sequence[int], params: AftersalesParams) -> tuple[int, ...]:
    """Distinct file ids, at most ``max_photos``."""
    out = tuple(dict.fromkeys(photos))
    if len(out) > params.max_photos:
        raise InvalidAftersalesInput(f"at most {params.max_photos} photos", field="photos")
    return out


def check_photo(
    index: int, *, file_owner: int | None, purpose: str | None, media_type: str | None, author: int
) -> None:
    """Evidence must be an image the author uploaded for ``aftersales_evidence``
    (``file_owner`` None: no such file); 422 naming ``photos[i]`` otherwise."""
    where = f"photos[{index}]"
    if file_owner is None or file_owner != author:
        raise InvalidAftersalesInput(
            f"no such file of yours; upload it first (purpose {EVIDENCE_PURPOSE})", field=where
        )
    if media_type is None or not media_type.startswith("image/"):
        raise InvalidAftersalesInput(f"evidence must be an image, not {media_type}", field=where)
    if purpose != EVIDENCE_PURPOSE:
        raise InvalidAftersalesInput(
            f"must be a file uploaded for {EVIDENCE_PURPOSE}, not {purpose}", field=where
        )


# --- SLA ------------------------------------------------------------------------------


def deadlines(created_at: datetime, params: AftersalesParams) -> tuple[datetime, datetime]:
    """The first-response and resolution deadlines of a ticket created at ``created_at``."""
    return (
        created_at + timedelta(seconds=params.first_response_s),
        created_at + timedelta(seconds=params.resolution_s),
    )


def due_level(
    *,
    status: str,
    first_response_at: datetime | None,
    first_response_due: datetime,
    resolution_due: datetime,
    now: datetime,
) -> int:
    """The escalation level a ticket should be at by ``now``: 2 past its resolution
    deadline and still open; 1 past its first-response deadline without a response; 0."""
    if status not in OPEN:
        return 0
    if now >= resolution_due:
        return 2
    if first_response_at is None and now >= first_response_due:
        return 1
    return 0


@dataclass(frozen=True, slots=True)
class Sla:
    """A ticket's timers as the queue shows them (seconds; negative: overdue)."""

    first_response_left_s: int | None  # None once answered
    resolution_left_s: int | None  # None once closed
    breached: bool


def sla(
    *,
    status: str,
    first_response_at: datetime | None,
    first_response_due: datetime,
    resolution_due: datetime,
    now: datetime,
) -> Sla:
    """The timers of a ticket at ``now``."""
    is_open = status in OPEN
    first = (
        round((first_response_due - now).total_seconds())
        if is_open and first_response_at is None
        else None
    )
    resolve = round((resolution_due - now).total_seconds()) if is_open else None
    breached = (first is not None and first < 0) or (resolve is not None and resolve < 0)
    return Sla(first, resolve, breached)


# --- resolutions and rulings ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """What staff (or an admin's ruling) gives a ticket."""

    refund_fen: int | None = None
    compensation_fen: int | None = None
    redo: RedoTo | None = None
    worker_at_fault: bool = False
    warning: bool = False  # a discipline warning to the worker (quality/)
    note: str = ""

    @property
    def gives_anything(self) -> bool:
        """True if it moves money or books a redo."""
        return bool(self.refund_fen or self.compensation_fen or self.redo)


def check_resolution(res: Resolution, params: AftersalesParams, *, has_worker: bool) -> Resolution:
    """The resolution if its parts are valid, else 422 naming the part."""
    fen(res.refund_fen, "refund_fen", required=False)
    fen(res.compensation_fen, "compensation_fen", required=False)
    if res.compensation_fen is not None and res.compensation_fen > params.max_compensation_fen:
        raise InvalidAftersalesInput(
            f"compensation is at most {params.max_compensation_fen} fen a ticket",
            field="compensation_fen",
        )
    if res.redo is not None and res.redo not in ("same", "other"):
        raise InvalidAftersalesInput("must be 'same' or 'other'", field="redo")
    if (res.redo == "same" or res.worker_at_fault or res.warning) and not has_worker:
        raise InvalidAftersalesInput("the order had no worker", field="worker_at_fault")
    if res.warning and not res.worker_at_fault:
        raise InvalidAftersalesInput("a warning needs worker_at_fault: true", field="warning")
    note = text(res.note, "note", required=not res.gives_anything, limit=500)
    return Resolution(
        res.refund_fen, res.compensation_fen, res.redo, res.worker_at_fault, res.warning, note
    )


def check_can_resolve(status: str) -> None:
    """Staff resolve or reject an open ticket that is not disputed (an admin rules those)."""
    if status == "disputed":
        raise TicketState(
            "this ticket is disputed: an admin rules it (POST …/ruling)", field="ticket_id"
        )
    if status not in OPEN:
        raise TicketState(f"the ticket is {status} already", field="ticket_id")


def check_ruling(status: str, ruled: bool, favour: str, res: Resolution) -> None:
    """A ruling is given once, on a disputed ticket; in the worker's favour it gives the
    customer nothing."""
    if ruled:
        raise AlreadyRuled("this dispute was ruled already; a ruling is final", field="ticket_id")
    if status != "disputed":
        raise TicketState(
            f"only a disputed ticket is ruled; this one is {status}", field="ticket_id"
        )
    if favour not in ("customer", "worker", "split"):
        raise InvalidAftersalesInput("must be customer, worker or split", field="in_favour")
    if favour == "worker" and (res.gives_anything or res.worker_at_fault):
        raise InvalidAftersalesInput(
            "a ruling for the worker gives no refund, compensation or redo and finds no fault",
            field="in_favour",
        )


def check_statement(status: str, side: str, sides_stated: set[str]) -> None:
    """Each party states its case once, while the ticket is open."""
    if status not in OPEN:
        raise TicketState(f"the ticket is {status}", field="ticket_id")
    if side in sides_stated:
        raise TicketState(f"the {side} has stated their case already", field="text")


# --- insurance ------------------------------------------------------------------------

CLAIM_MOVES: dict[tuple[str, str], str] = {
    ("claimed", "assess"): "assessed",
    ("claimed", "reject"): "rejected",
    ("assessed", "pay"): "paid",
    ("assessed", "reject"): "rejected",
}


def claim_next(status: str, action: str) -> str:
    """The claim's state after ``action``, or :class:`ClaimState`."""
    found = CLAIM_MOVES.get((status, action))
    if found is None:
        raise ClaimState(f"a {status} claim cannot be {action}ed", field="claim")
    return found


def check_assessment(assessed_fen: object, coverage_fen: int) -> int:
    """An assessed amount: positive fen, at most the order's coverage."""
    value = fen(assessed_fen, "assessed_fen")
    assert value is not None
    if value > coverage_fen:
        raise InvalidAftersalesInput(
            f"at most the order's coverage, {coverage_fen} fen", field="assessed_fen"
        )
    return value


def premium_line(premium_fen: int) -> tuple[str, str, int]:
    """The fee line of the order's price breakdown."""
    return ("insurance", "服务保险 service insurance", premium_fen)


# --- spot checks ---------------------------------------------------------------------


def period_of(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The last whole period before ``now``: periods of ``days`` days from the epoch (UTC)."""
    span = timedelta(days=days)
    epoch = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday: weekly periods start on Mondays
    n = (now - epoch) // span
    end = epoch + n * span
    return end - span, end


def seed_of(period_start: datetime) -> int:
    """The default seed of a period (its start, in seconds): reruns give the same sample."""
    return int(period_start.timestamp())


def sample(
    completed: Sequence[tuple[int, int]], *, per_worker: int, seed: int
) -> list[tuple[int, int]]:
    """``(order_id, worker_id)`` pairs: at most ``per_worker`` of each worker's orders, drawn
    with a generator seeded by ``seed`` and the worker (reproducible, independent of the
    input's order), sorted by order id."""
    by_worker: dict[int, list[int]] = {}
    for order_id, worker_id in completed:
        by_worker.setdefault(worker_id, []).append(order_id)
    out: list[tuple[int, int]] = []
    for worker_id in sorted(by_worker):
        orders = sorted(set(by_worker[worker_id]))
        rng = random.Random(f"{seed}:{worker_id}")
        picked = rng.sample(orders, min(per_worker, len(orders)))
        out += [(o, worker_id) for o in picked]
    return sorted(out)


@dataclass(frozen=True, slots=True)
class Question:
    """One question of the call-back questionnaire."""

    key: str
    zh: str
    en: str
    kind: Literal["yes_no", "stars"]


QUESTIONNAIRE: tuple[Question, ...] = (
    Question("on_time", "师傅是否按时上门？", "Did the worker arrive on time?", "yes_no"),
    Question("as_described", "服务内容是否与描述一致？", "Was the service as described?", "yes_no"),
    Question("polite", "师傅是否礼貌、规范？", "Was the worker polite and professional?", "yes_no"),
    Question("extra_charges", "是否被额外收费？", "Were you charged anything extra?", "yes_no"),
    Question("satisfaction", "总体满意度（1–5）", "Overall satisfaction (1–5)", "stars"),
)


def check_answers(answers: Mapping[str, object]) -> dict[str, bool | int]:
    """Every question answered with its kind (yes/no: a boolean; stars: 1–5), nothing else."""
    keys = {q.key for q in QUESTIONNAIRE}
    for key in answers:
        if key not in keys:
            raise InvalidAftersalesInput(
                f"unknown question; the questions are {', '.join(sorted(keys))}",
                field=f"answers.{key}",
            )
    out: dict[str, bool | int] = {}
    for q in QUESTIONNAIRE:
        value = answers.get(q.key)
        field = f"answers.{q.key}"
        if value is None:
            raise InvalidAftersalesInput("must be answered", field=field)
        if q.kind == "yes_no":
            if not isinstance(value, bool):
                raise InvalidAftersalesInput("must be true or false", field=field)
        elif type(value) is not int or not 1 <= value <= 5:
            raise InvalidAftersalesInput("must be an integer 1–5", field=field)
        out[q.key] = value
    return out


def verdict(answers: Mapping[str, bool | int]) -> bool:
    """A spot check passes when the worker came on time, did what was described, was
    polite, charged nothing extra, and the customer rates it 3 or more."""
    return (
        answers["on_time"] is True
        and answers["as_described"] is True
        and answers["polite"] is True
        and answers["extra_charges"] is False
        and int(answers["satisfaction"]) >= 3
    )

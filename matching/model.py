"""The data matching works on: a job, a candidate worker, a score breakdown, a decision.

All frozen: slotted dataclasses, and ``msgspec.Struct`` for the three records a batch
makes thousands of (:class:`Candidate`, :class:`Breakdown`, :class:`Considered`): a
500 orders × 100k workers tick builds ~11k candidates and 12k records, and a frozen
Struct is built 3-4× faster than a frozen dataclass of the same fields (measured:
``Candidate`` 0.5 against 2.0 µs, ``Breakdown`` 0.22 against 0.83 µs), with the same
JSON. The three are ``gc=False`` (not tracked by the cycle collector: they hold only
scalars, strings, dates, frozensets, tuples, one dict of dates and each other, so
they cannot be part of a reference cycle); the tick's ~23k of them no longer feed the
collector's counts and passes: building the tick's ~11k candidates went from 31-34 to
18-19 ms CPU (benchmarks/README.md, issue 20 §6). Times are epoch seconds, positions WGS-84 degrees, money in minor units (fen). A :class:`Decision` keeps everything needed to show a
dispatcher why, and to replay it offline (:func:`matching.replay.replay`): the job, the
time, the peers' medians, and for each candidate its inputs (when stored, only what
mattered for the job), its ETA, and why it was infeasible or its score breakdown.
``to_json``/``from_json`` round-trip it for storage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Final, Literal, get_args

import msgspec
from msgspec.structs import force_setattr
from msgspec.structs import replace as replace_struct

from doorstep.wire import decode
from matching.errors import MatchingError

Policy = Literal["batch", "greedy"]
WorkerState = Literal["available", "busy", "unavailable", "offline"]

Term = Literal["eta", "rating", "fairness", "schedule", "affinity", "team", "priority", "rotation"]
TERMS: Final[tuple[Term, ...]] = get_args(Term)
"""The score terms, in the order of :attr:`Breakdown.raw` and :attr:`Breakdown.weighted`.
A new term goes at the end: decisions stored with the earlier ones read back with it as
0 (:meth:`Decision.from_json`)."""


def _check_position(lat: float, lng: float, field_prefix: str) -> None:
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise MatchingError("must be a finite number in [-90, 90]", field=f"{field_prefix}.lat")
    if not (math.isfinite(lng) and -180.0 <= lng <= 180.0):
        raise MatchingError("must be a finite number in [-180, 180]", field=f"{field_prefix}.lng")


@dataclass(frozen=True, slots=True)
class Job:
    """An order to match. The worker must start within [earliest_start_s, latest_start_s].

    An instant order has the window [placed, placed + ``MatchParams.instant_sla_s``]; a
    booked one the customer's window. Jobs are taken oldest first by (``created_s``,
    ``order_id``); left at 0, ``created_s`` leaves it to the order ids, which the
    database hands out in creation order. ``pinned_worker_id``/``excluded_worker_ids``
    are a dispatcher's overrides and the workers who already declined or timed out.
    """

    order_id: int
    lat: float
    lng: float
    earliest_start_s: int
    latest_start_s: int
    duration_s: int
    customer_id: int
    required_skills: frozenset[str] = frozenset()
    required_certificates: frozenset[str] = frozenset()
    preferred_team_id: int | None = None
    pinned_worker_id: int | None = None
    excluded_worker_ids: frozenset[int] = frozenset()
    price_minor: int = 0
    created_s: int = 0

    def __post_init__(self) -> None:
        _check_position(self.lat, self.lng, "job")
        object.__setattr__(self, "lat", float(self.lat))
        object.__setattr__(self, "lng", float(self.lng))
        if self.latest_start_s < self.earliest_start_s:
            raise MatchingError("must be >= earliest_start_s", field="job.latest_start_s")
        if self.duration_s <= 0:
            raise MatchingError("must be > 0", field="job.duration_s")
        if self.price_minor < 0:
            raise MatchingError("must be >= 0", field="job.price_minor")
        if self.pinned_worker_id is not None and self.pinned_worker_id in self.excluded_worker_ids:
            raise MatchingError("the pinned worker is also excluded", field="job.pinned_worker_id")


def merge_intervals(intervals: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Sorted, with overlapping or touching intervals joined (each must have start < end)."""
    if len(intervals) == 1 and intervals[0][0] < intervals[0][1]:
        return intervals
    for i, (start, end) in enumerate(intervals):
        if not start < end:
            raise MatchingError("must have start < end", field=f"candidate.available[{i}]")
    if len(intervals) < 2:
        return intervals
    if type(intervals) is tuple:  # already sorted and apart (load_candidates' are): as is
        for i in range(1, len(intervals)):
            if not intervals[i - 1][1] < intervals[i][0]:
                break
        else:
            return intervals
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class Commitment:
    """A worker's next planned scheduled job (day plans): it must start by
    ``latest_start_s`` (its planned start plus its slack), at ``lat``/``lng``. An instant
    job that would make the worker miss it is infeasible for them."""

    order_id: int
    lat: float
    lng: float
    latest_start_s: int


@dataclass(frozen=True, slots=True)
class Chain:
    """The job a busy worker is on, for chaining (接力单, ``MatchParams.chain_s``): order
    ``order_id``, at the candidate's position (its address), expected to end at ``ends_s``
    (the worker's own estimate, else arrival + the service's duration). A job offered to
    them starts after it: their ETA counts the time left
    (:func:`matching.feasibility.chained_eta_s`)."""

    order_id: int
    ends_s: int


NO_FIX_AGE_S: Final = 1e9
"""The fix age of a worker with no known fix (any larger age is clamped to it)."""


class Candidate(msgspec.Struct, frozen=True, gc=False):
    """A worker as matching sees them at one moment: the geo index plus worker state.

    ``fix_age_s`` is the age of the last location fix; ``math.inf`` (no fix known) is
    stored as :data:`NO_FIX_AGE_S`. ``certificates`` maps kind -> expiry date (the last
    valid day, local time) of *verified* certificates only. ``available`` holds the
    free intervals [start, end) in epoch seconds for the days that matter (availability
    minus jobs already held); they are sorted and merged on construction.
    ``rating_sum``/``rating_count`` are the raw star totals (the score shrinks them
    towards a prior). ``untrained`` names held skills that are not dispatchable yet
    (their exam is not passed: ``workforce.gating``). ``commitment`` is their next planned scheduled job: an instant job
    must leave them time to reach it (``matching.feasibility.why_not_eta``).
    ``priority``: a quality reward gives them dispatch priority now (``quality/``).
    ``chain``: a busy worker (``state`` "busy") whose current job ends soon, at the
    candidate's position; they may take a job next, after it (``MatchParams.chain_s``).
    """

    worker_id: int
    lat: float
    lng: float
    fix_age_s: float
    skills: frozenset[str] = frozenset()
    certificates: Mapping[str, date] = msgspec.field(default_factory=dict)
    rating_sum: float = 0.0
    rating_count: int = 0
    jobs_today: int = 0
    earnings_today_minor: int = 0
    available: tuple[tuple[int, int], ...] = ()
    team_id: int | None = None
    served_customer_ids: frozenset[int] = frozenset()
    state: WorkerState = "available"
    untrained: frozenset[str] = frozenset()  # held skills whose exam is not passed yet
    commitment: Commitment | None = None  # the next planned scheduled job, if any
    priority: bool = False  # dispatch priority (a quality reward in force)
    chain: Chain | None = None  # busy: the current job, ending soon (chained orders)

    def __post_init__(self) -> None:
        lat, lng, age, rating_sum = self.lat, self.lng, self.fix_age_s, self.rating_sum
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            _check_position(lat, lng, "candidate")  # raises, naming the field
        if not age >= 0:
            raise MatchingError("must be a number >= 0", field="candidate.fix_age_s")
        if self.rating_count < 0 or not 0 <= rating_sum <= 5 * self.rating_count:
            raise MatchingError(
                "rating_count must be >= 0 and rating_sum in [0, 5 × rating_count]",
                field="candidate.rating_sum",
            )
        if self.jobs_today < 0 or self.earnings_today_minor < 0:
            raise MatchingError("must be >= 0", field="candidate.jobs_today")
        available = self.available
        if len(available) != 1 or not available[0][0] < available[0][1]:
            force_setattr(self, "available", merge_intervals(available))
        if age > NO_FIX_AGE_S:
            force_setattr(self, "fix_age_s", NO_FIX_AGE_S)
        # Floats stay floats, so equal candidates encode to equal JSON.
        if type(lat) is not float or type(lng) is not float:
            force_setattr(self, "lat", float(lat))
            force_setattr(self, "lng", float(lng))
        if type(age) is not float and age <= NO_FIX_AGE_S:
            force_setattr(self, "fix_age_s", float(age))
        if type(rating_sum) is not float:
            force_setattr(self, "rating_sum", float(rating_sum))

    def relevant_to(self, job: Job) -> Candidate:
        """This candidate with only what can matter for ``job`` (for storing decisions):
        skills and certificates it requires, and whether it served this customer.

        A copy with those four fields replaced (``msgspec.structs.replace``: the other
        fields were checked when this one was built; 0.4 against 1.5 µs through the
        constructor, and a tick stores ~12k of them)."""
        required = job.required_skills
        kinds, certificates = job.required_certificates, self.certificates
        return replace_struct(
            self,
            skills=self.skills & required,
            certificates={k: certificates[k] for k in kinds if k in certificates}
            if kinds and certificates
            else {},
            served_customer_ids=frozenset((job.customer_id,))
            if job.customer_id in self.served_customer_ids
            else _NONE,
            untrained=self.untrained & required if self.untrained else _NO_SKILLS,
        )


_NONE: Final[frozenset[int]] = frozenset()
_NO_SKILLS: Final[frozenset[str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Peers:
    """City medians the fairness term compares a worker against, and the batch's
    ``pressure``: open jobs per free worker (``matching.scoring.load_factor`` fades the
    fairness and rating terms when it is low; None, not known: full weights).

    ``rotation_s``: the rotation window the batch was scored with
    (``MatchParams.rotation_slack_s``, :func:`matching.assess.rotate`), kept with the
    decision so that a replay scores the same; None (a decision stored before rotation, or
    peers given by a caller without it): no rotation term."""

    jobs_today: float = 0.0
    earnings_today_minor: float = 0.0
    pressure: float | None = None
    rotation_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs_today", float(self.jobs_today))
        object.__setattr__(self, "earnings_today_minor", float(self.earnings_today_minor))
        if self.pressure is not None:
            object.__setattr__(self, "pressure", float(self.pressure))
        if self.rotation_s is not None:
            object.__setattr__(self, "rotation_s", float(self.rotation_s))


class Breakdown(msgspec.Struct, frozen=True, gc=False):
    """One candidate's score: per term (in :data:`TERMS` order) the raw value and the
    weighted contribution, and their sum. Lower ``total`` is better (see ``scoring``)."""

    raw: tuple[float, ...]
    weighted: tuple[float, ...]
    total: float

    def __post_init__(self) -> None:
        if not len(self.raw) == len(self.weighted) == len(TERMS):
            raise MatchingError(f"must have {len(TERMS)} terms", field="breakdown.raw")

    def as_dict(self) -> dict[Term, tuple[float, float]]:
        """``{term: (raw, weighted)}``."""
        return {t: (r, w) for t, r, w in zip(TERMS, self.raw, self.weighted, strict=True)}


class Considered(msgspec.Struct, frozen=True, gc=False):
    """One candidate as a decision saw it.

    ``candidate`` is the candidate as given (shared, not copied); stored decisions keep
    only what mattered for the job (:meth:`Decision.for_storage`).
    ``eta_s`` is None when the candidate was ruled out before an ETA was needed;
    ``breakdown`` is set exactly when ``feasible``.
    """

    candidate: Candidate
    feasible: bool
    why_not: str | None
    eta_s: float | None
    breakdown: Breakdown | None

    def __post_init__(self) -> None:
        if self.feasible != (self.why_not is None) or self.feasible != (self.breakdown is not None):
            raise MatchingError(
                "a feasible candidate has a breakdown and no why_not; an infeasible one "
                "a why_not and no breakdown",
                field="candidates.feasible",
            )

    @property
    def worker_id(self) -> int:
        """The candidate's worker id."""
        return self.candidate.worker_id


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one job: the chosen worker, or None and the reason.

    ``candidates`` lists the feasible ones best first (by total, then worker id), then
    the infeasible ones by worker id. ``params_digest`` identifies the params used;
    ``terms`` names the breakdown columns (checked on load).
    """

    order_id: int
    worker_id: int | None
    reason: str | None
    policy: Policy
    now_s: float
    job: Job
    peers: Peers
    candidates: tuple[Considered, ...]
    params_digest: str
    terms: tuple[str, ...] = TERMS

    def __post_init__(self) -> None:
        object.__setattr__(self, "now_s", float(self.now_s))
        if (self.worker_id is None) == (self.reason is None):
            raise MatchingError(
                "exactly one of worker_id and reason must be set", field="decision.reason"
            )
        if self.job.order_id != self.order_id:
            raise MatchingError("must equal job.order_id", field="decision.order_id")
        if self.terms != TERMS:
            raise MatchingError(
                f"stored with terms {list(self.terms)}; this code scores {list(TERMS)}",
                field="decision.terms",
            )
        if self.worker_id is not None and not any(
            c.feasible and c.worker_id == self.worker_id for c in self.candidates
        ):
            raise MatchingError(
                "the chosen worker must be a feasible candidate", field="decision.worker_id"
            )

    @property
    def chosen(self) -> Considered | None:
        """The chosen candidate's record, if any."""
        for c in self.candidates:
            if c.worker_id == self.worker_id:
                return c
        return None

    def for_storage(self) -> Decision:
        """This decision with each candidate trimmed to what mattered for the job
        (:meth:`Candidate.relevant_to`): what :meth:`to_json` stores. Replaying it gives
        the same outcome."""
        job = self.job
        return replace(
            self,
            candidates=tuple(
                msgspec.structs.replace(c, candidate=c.candidate.relevant_to(job))
                for c in self.candidates
            ),
        )

    def to_json(self) -> bytes:
        """JSON of :meth:`for_storage`; sets and mappings in sorted order, so equal
        decisions give equal bytes."""
        return msgspec.json.encode(self.for_storage(), order="deterministic")

    @classmethod
    def from_json(cls, data: bytes | str) -> Decision:
        """Parse :meth:`to_json` output (equal to :meth:`for_storage` of the original);
        wrong or missing fields are errors naming them. A decision stored before a term
        was added (its ``terms`` a prefix of :data:`TERMS`) reads back with the later
        terms at 0 raw and 0 weighted: its totals, and so its outcome, are unchanged."""
        raw = data.encode() if isinstance(data, str) else data
        return decode(_with_current_terms(raw), cls)


def _with_current_terms(raw: bytes) -> bytes:
    """``raw`` with an older prefix of the terms padded to :data:`TERMS` (else as is)."""
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw  # decode() names what is wrong
    terms = doc.get("terms") if isinstance(doc, dict) else None
    n = len(TERMS)
    if not isinstance(terms, list) or not 0 < len(terms) < n or terms != list(TERMS[: len(terms)]):
        return raw
    pad = [0.0] * (n - len(terms))
    for c in doc.get("candidates") or ():
        b = c.get("breakdown") if isinstance(c, dict) else None
        if isinstance(b, dict):
            for key in ("raw", "weighted"):
                if isinstance(b.get(key), list) and len(b[key]) == len(terms):
                    b[key] = [*b[key], *pad]
    doc["terms"] = list(TERMS)
    return msgspec.json.encode(doc)

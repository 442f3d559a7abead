"""Whether a worker may take a job, and if not, why (in words a dispatcher can act on).

Two steps, cheapest first: :func:`why_not` needs only the job, the worker's state and
the time; :func:`why_not_eta` runs for the survivors once their road ETA is known (too
far, would arrive after the latest start, the schedule does not cover the job at the
time they could actually start, or it would make them late for their next planned
scheduled job). ``None`` means feasible.

A reason reads ``"<kind>: <details>"`` (or just ``"<kind>"``); :func:`reason_kind`
gives the kind, for counting reasons over many candidates.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, date, datetime, timedelta, timezone

from geo.coords import haversine_m
from matching.model import NO_FIX_AGE_S, Candidate, Chain, Commitment, Job
from matching.params import MatchParams


def reason_kind(reason: str) -> str:
    """The stable part of a reason: the text before the first colon."""
    return reason.split(":", 1)[0]


@functools.lru_cache(maxsize=4096)
def local_date(ts_s: float, utc_offset_s: int) -> date:
    """The local calendar date of an epoch time."""
    return datetime.fromtimestamp(ts_s + utc_offset_s, UTC).date()


def local_time(ts_s: float, utc_offset_s: int) -> str:
    """An epoch time as local ``YYYY-MM-DD HH:MM`` (for messages)."""
    tz = timezone(timedelta(seconds=utc_offset_s))
    return datetime.fromtimestamp(ts_s, tz).strftime("%Y-%m-%d %H:%M")


def covers(available: tuple[tuple[int, int], ...], start_s: float, end_s: float) -> bool:
    """Whether one of the (merged) free intervals contains [start_s, end_s)."""
    for a, b in available:  # noqa: SIM110 (no generator on the hot path)
        if a <= start_s and end_s <= b:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def missing_skills(required: frozenset[str], held: frozenset[str]) -> str:
    """The reason for a worker holding ``held`` but not all of ``required`` (cached: in a
    batch, the most common reason by far, from a handful of distinct skill sets)."""
    names = ", ".join(repr(s) for s in sorted(required - held))
    return f"missing skill: {names}"


def earliest_start_s(job: Job, now_s: float, eta_s: float = 0.0) -> float:
    """When a worker ``eta_s`` away could start: not before the window opens."""
    return max(float(job.earliest_start_s), now_s + eta_s)


def why_not(job: Job, cand: Candidate, now_s: float, params: MatchParams) -> str | None:
    """Why ``cand`` cannot take ``job`` judging by state alone, or None.

    Checks, in order: excluded, pinned to another worker, not available (busy,
    unavailable, offline; a busy worker with a :class:`~matching.model.Chain` passes
    when chaining is on and their job ends soon enough, :func:`why_not_chain`), stale
    location fix, missing skills, a skill's exam not passed, certificates missing or
    expired before the last day the job could run, schedule not covering the job if it
    started as early as possible.
    """
    if cand.worker_id in job.excluded_worker_ids:
        return "excluded from this order"
    if job.pinned_worker_id is not None and job.pinned_worker_id != cand.worker_id:
        return f"pinned to another worker: {job.pinned_worker_id}"
    if cand.state != "available":
        if cand.state != "busy" or cand.chain is None:
            return f"not available: {cand.state}"
        reason = why_not_chain(cand.chain, now_s, params)
        if reason is not None:
            return reason
    if cand.fix_age_s >= NO_FIX_AGE_S:
        return "stale location fix: none known"
    if cand.fix_age_s > params.fresh_fix_s:
        return f"stale location fix: {cand.fix_age_s:.0f} s old, limit {params.fresh_fix_s:.0f} s"
    if not job.required_skills <= cand.skills:
        return missing_skills(job.required_skills, cand.skills)
    if cand.untrained and job.required_skills & cand.untrained:
        names = ", ".join(repr(s) for s in sorted(job.required_skills & cand.untrained))
        return f"exam not passed: {names}"
    if job.required_certificates:
        last_day = local_date(job.latest_start_s + job.duration_s - 1, params.utc_offset_s)
        for kind in sorted(job.required_certificates):
            expires_on = cand.certificates.get(kind)
            if expires_on is None:
                return f"no verified certificate: {kind!r}"
            if expires_on < last_day:
                return f"certificate expired: {kind!r} valid to {expires_on}, job may run on {last_day}"
    start_s = max(float(job.earliest_start_s), now_s)
    if covers(cand.available, start_s, start_s + job.duration_s):
        return None
    return outside_schedule(job, start_s, params)


def why_not_chain(chain: Chain, now_s: float, params: MatchParams) -> str | None:
    """Why a busy worker on ``chain``'s job cannot be offered a job to do after it, or
    None: chaining off (``chain_s`` 0), or the job ends later than ``chain_s`` from now,
    or it should have ended more than ``chain_s`` ago (an overrun: when it ends is not
    known)."""
    if params.chain_s <= 0:
        return f"not available: busy (order {chain.order_id}; chaining off)"
    left = chain.ends_s - now_s
    if left > params.chain_s:
        return (
            f"busy: order {chain.order_id} ends in {left / 60:.0f} min, "
            f"beyond chaining's {params.chain_s / 60:.0f} min"
        )
    if left < -params.chain_s:
        return f"busy: order {chain.order_id} overran its expected end by {-left / 60:.0f} min"
    return None


def time_left_s(cand: Candidate, now_s: float) -> float:
    """How long until ``cand`` is free: 0, or for a chained candidate the time left of
    their current job (0 once its expected end has passed)."""
    if cand.chain is None:
        return 0.0
    return max(0.0, cand.chain.ends_s - now_s)


def chained_eta_s(cand: Candidate, road_eta_s: float, now_s: float) -> float:
    """The ETA the matcher is given for ``cand``: the road ETA from their position, plus,
    for a chained candidate, the time left of their current job (they set off when it
    ends; the position is its address). The ETAs given to :func:`why_not_eta` and the
    policies count from ``now_s``, so the decision stores this total and replays it."""
    return road_eta_s + time_left_s(cand, now_s) if cand.chain is not None else road_eta_s


def chain_note(cand: Candidate, now_s: float) -> str | None:
    """Why a candidate's ETA is more than the road's, for a dispatcher: "chained: after
    order N, which ends in M min" (None for a free worker)."""
    if cand.chain is None:
        return None
    left = time_left_s(cand, now_s)
    return f"chained: after order {cand.chain.order_id}, which ends in {left / 60:.1f} min"


def why_not_eta(
    job: Job, cand: Candidate, eta_s: float, now_s: float, params: MatchParams
) -> str | None:
    """Why ``cand``, ``eta_s`` seconds away, cannot take ``job``, or None. ``eta_s`` counts
    from ``now_s``: for a chained candidate, the time left of their job plus the road
    (:func:`chained_eta_s`)."""
    if not (math.isfinite(eta_s) and eta_s >= 0):
        return "no road ETA"
    if eta_s > params.max_eta_s:
        return f"too far: ETA {eta_s / 60:.1f} min, limit {params.max_eta_s / 60:.1f} min"
    start_s = max(float(job.earliest_start_s), now_s + eta_s)
    if start_s > job.latest_start_s:
        latest = local_time(job.latest_start_s, params.utc_offset_s)
        return f"too late: could start {local_time(start_s, params.utc_offset_s)}, latest {latest}"
    if not covers(cand.available, start_s, start_s + job.duration_s):
        return outside_schedule(job, start_s, params)
    if cand.commitment is not None and cand.commitment.order_id != job.order_id:
        return why_not_commitment(job, cand.commitment, start_s, params)
    return None


def commitment_travel_s(job: Job, commitment: Commitment, params: MatchParams) -> float:
    """A cautious travel time from the job to the next planned job: the straight line
    × ``plan_detour_factor`` at ``plan_speed_mps``."""
    metres = haversine_m(job.lat, job.lng, commitment.lat, commitment.lng)
    return metres * params.plan_detour_factor / params.plan_speed_mps


def why_not_commitment(
    job: Job, commitment: Commitment, start_s: float, params: MatchParams
) -> str | None:
    """Why a job starting at ``start_s`` would make the worker late for their next planned
    job (finish, travel there, keep ``plan_margin_s`` in hand), or None."""
    due_s = start_s + job.duration_s + commitment_travel_s(job, commitment, params)
    if due_s + params.plan_margin_s <= commitment.latest_start_s:
        return None
    late_by = (due_s + params.plan_margin_s - commitment.latest_start_s) / 60
    latest = local_time(commitment.latest_start_s, params.utc_offset_s)
    return (
        f"planned job: would be late for planned order {commitment.order_id} "
        f"(must start by {latest}; short by {late_by:.0f} min)"
    )


def outside_schedule(job: Job, start_s: float, params: MatchParams) -> str:
    """The reason for a worker whose free intervals do not hold the job started at
    ``start_s``."""
    begin = local_time(start_s, params.utc_offset_s)
    end = local_time(start_s + job.duration_s, params.utc_offset_s)[-5:]
    return f"outside schedule: {begin}–{end}"

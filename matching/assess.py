"""Assessing (job, candidate) pairs: feasibility, road ETA and score, in one pass.

For each job and each of its candidates: the state checks
(:func:`~matching.feasibility.why_not`), then the road ETA (from a row per job, a
mapping worker id -> seconds, or a callback, asked only for the survivors), the ETA
checks (:func:`~matching.feasibility.why_not_eta`) and the score
(:func:`~matching.scoring.score`). The result is one :class:`Considered` record per
pair, which the policies in ``matching.assign`` choose from and the decisions keep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from matching.errors import MatchingError
from matching.feasibility import (
    local_date,
    missing_skills,
    outside_schedule,
    why_not,
    why_not_commitment,
    why_not_eta,
)
from matching.model import NO_FIX_AGE_S, Breakdown, Candidate, Considered, Job, Peers
from matching.params import MatchParams
from matching.scoring import (
    EARNINGS_FLOOR_MINOR,
    JOBS_FLOOR,
    load_factor,
    peers_of,
    rotation_points,
    score,
)

EtaFn = Callable[[int, Candidate], float]
"""``eta(job_index, candidate) -> seconds`` (``nan``: no ETA); asked only for
candidates that pass :func:`~matching.feasibility.why_not`."""
EtaRow = Sequence[float] | npt.NDArray[np.float64] | Mapping[int, float]
Etas = Sequence[EtaRow] | EtaFn
"""Per job either a row aligned with its candidates (``etas[j][i]`` for
``candidates[j][i]``) or a mapping worker id -> seconds (a missing worker: no ETA); or
one :data:`EtaFn` for all."""


@dataclass(frozen=True, slots=True)
class Assessed:
    """One job's candidates assessed: records in input order, feasible ones indexed,
    with their totals (``costs[n]`` is the total of ``records[feasible[n]]``)."""

    records: list[Considered]
    feasible: list[int]  # indices into records
    costs: list[float]  # aligned with feasible
    workers: list[int]  # the records' worker ids, aligned with records


def assess_pair(
    job: Job, cand: Candidate, eta_s: float, now_s: float, peers: Peers, params: MatchParams
) -> Considered:
    """One pair, by the rules as written: :func:`~matching.feasibility.why_not`, then
    :func:`~matching.feasibility.why_not_eta` and :func:`~matching.scoring.score`.

    The reference for :func:`assess_all`, which gives the same records faster (checked by
    ``tests/test_matching_assign.py`` on random batches)."""
    reason = why_not(job, cand, now_s, params)
    if reason is not None:
        return Considered(cand, False, reason, None, None)
    reason = why_not_eta(job, cand, eta_s, now_s, params)
    eta_or_none = eta_s if math.isfinite(eta_s) else None
    if reason is not None:
        return Considered(cand, False, reason, eta_or_none, None)
    return Considered(cand, True, None, eta_s, score(job, cand, eta_s, now_s, peers, params))


def assess_job_by_the_rules(
    job: Job,
    cands: Sequence[Candidate],
    etas: Sequence[float],
    now_s: float,
    peers: Peers,
    params: MatchParams,
) -> Assessed:
    """One job's candidates by the rules as written: :func:`assess_pair` for each, then the
    job's :func:`rotate`. The reference :func:`assess_all` is checked against."""
    records = [
        assess_pair(job, c, e, now_s, peers, params) for c, e in zip(cands, etas, strict=True)
    ]
    assessed = Assessed(
        records,
        [i for i, r in enumerate(records) if r.feasible],
        [r.breakdown.total for r in records if r.breakdown is not None],
        [c.worker_id for c in cands],
    )
    return rotate(assessed, peers, params)


def _eta_values(j: int, n: int, etas: Etas) -> list[float] | Mapping[int, float] | EtaFn:
    """Job j's ETAs: a list aligned with its candidates, a mapping worker id -> seconds,
    or the callback."""
    if callable(etas):
        return etas
    row = etas[j]
    if isinstance(row, Mapping):
        return row
    if len(row) != n:
        raise MatchingError(f"has {len(row)} ETAs for {n} candidates", field=f"etas[{j}]")
    if isinstance(row, np.ndarray):
        values: list[float] = np.asarray(row, dtype=np.float64).tolist()
        return values
    return [float(x) for x in row]


def _assess(
    j: int,
    job: Job,
    cands: Sequence[Candidate],
    etas: Etas,
    now_s: float,
    peers: Peers,
    params: MatchParams,
) -> Assessed:
    """Job j's candidates, in input order (a worker listed twice is an error).

    :func:`assess_pair` for every candidate, with what depends only on the job, the
    peers or the params computed once, and the checks inlined: the 500 orders × 100k
    workers tick assesses 12,000 pairs (measured: 8 µs a pair through the functions,
    ~3 µs here). A pair the inlined checks find infeasible gets its reason from
    ``why_not``/``why_not_eta`` themselves, so the words are the same; the two reasons
    that depend only on the job and the worker's skills (missing skills; a schedule that
    does not hold the job started as early as possible, ~9 µs a pair through ``why_not``
    for its two formatted times) are worded once per job by the same functions.

    Scoring the feasible pairs of the whole batch with numpy instead (the same IEEE
    operations, so the same floats) was measured slower in the 500 × 100k tick: gathering
    each pair's inputs into lists and building the records afterwards cost more than the
    arithmetic it saved (``decide_batch`` 93.8 against 86.7 ms CPU, alternate runs). Tried
    again with the state checks as columns too (branch ``h/tick-vector``): slower still,
    61-67 against 44-52 ms in memory on three of that tick's batches (benchmarks/README.md).
    """
    values = _eta_values(j, len(cands), etas)
    listed = isinstance(values, list)
    eta_list = values if isinstance(values, list) else []
    eta_map = values if isinstance(values, Mapping) else None
    eta_fn = values if callable(values) else None
    isfinite = math.isfinite
    # The job: why_not's and why_not_eta's checks, schedule_term's window.
    excluded = job.excluded_worker_ids
    pinned = job.pinned_worker_id
    required = job.required_skills
    certificates = sorted(job.required_certificates)
    last_day = (
        local_date(job.latest_start_s + job.duration_s - 1, params.utc_offset_s)
        if certificates
        else None
    )
    earliest = float(job.earliest_start_s)
    latest, duration = job.latest_start_s, job.duration_s
    start0 = max(earliest, now_s)
    end0 = start0 + duration
    fresh_s, max_eta_s, gap = params.fresh_fix_s, params.max_eta_s, params.min_useful_gap_s
    customer, team = job.customer_id, job.preferred_team_id
    # The batch: score's weights (the same operations in the same order, so the same
    # floats).
    prior, prior_weight = params.rating_prior_mean, params.rating_prior_weight
    prior_sum = prior * prior_weight
    jobs_median, jobs_scale = peers.jobs_today, max(peers.jobs_today, JOBS_FLOOR)
    money_median = peers.earnings_today_minor
    money_scale = max(peers.earnings_today_minor, EARNINGS_FLOOR_MINOR)
    load = load_factor(peers, params)
    floor = params.fairness_floor
    weight_eta, weight_rating = params.weight_eta, params.weight_rating * load
    weight_fairness = params.weight_fairness * (floor + (1.0 - floor) * load)
    weight_schedule, weight_affinity = params.weight_schedule, params.weight_affinity
    weight_team, weight_priority = params.weight_team, params.weight_priority

    lacking: dict[frozenset[str], str] = {}  # held skills -> the missing-skill reason
    outside: str | None = None  # outside_schedule at start0, once asked
    workers = [cand.worker_id for cand in cands]
    if len(set(workers)) != len(workers):
        seen: set[int] = set()
        for i, worker in enumerate(workers):
            if worker in seen:
                raise MatchingError(f"lists worker {worker} twice", field=f"candidates[{j}][{i}]")
            seen.add(worker)
    records: list[Considered] = []
    feasible: list[int] = []
    costs: list[float] = []
    for i, (cand, worker) in enumerate(zip(cands, workers, strict=True)):
        # why_not, inlined (a missing skill, the usual reason, is worded here by the same
        # function why_not uses).
        age = cand.fix_age_s
        ok = (
            (not excluded or worker not in excluded)
            and (pinned is None or pinned == worker)
            and cand.state == "available"
            and age < NO_FIX_AGE_S
            and age <= fresh_s
        )
        if ok and not required <= cand.skills:
            held = cand.skills
            reason = lacking.get(held)
            if reason is None:
                reason = lacking[held] = missing_skills(required, held)
            records.append(Considered(cand, False, reason, None, None))
            continue
        if ok and cand.untrained and required & cand.untrained:
            ok = False
        if ok and last_day is not None:
            held_certs = cand.certificates
            for kind in certificates:
                expires_on = held_certs.get(kind)
                if expires_on is None or expires_on < last_day:
                    ok = False
                    break
        if ok:
            for a, b in cand.available:
                if a <= start0 and end0 <= b:
                    break
            else:  # every check of why_not passed but the schedule's: its reason
                if outside is None:
                    outside = outside_schedule(job, start0, params)
                records.append(Considered(cand, False, outside, None, None))
                continue
        else:
            reason = why_not(job, cand, now_s, params)
            if reason is not None:
                records.append(Considered(cand, False, reason, None, None))
                continue
        # The road ETA, then why_not_eta, inlined.
        if listed:
            eta = eta_list[i]
        elif eta_map is not None:
            eta = float(eta_map.get(worker, math.nan))
        else:
            assert eta_fn is not None
            eta = float(eta_fn(j, cand))
        finite = isfinite(eta)
        # max() and min() are spelt out below: the same result (the first argument
        # unless the second is strictly greater/smaller), at a third of the cost.
        reach_s = now_s + eta
        start_s = reach_s if reach_s > earliest else earliest
        end_s = start_s + duration
        interval: tuple[int, int] | None = None
        if finite and 0 <= eta <= max_eta_s and start_s <= latest:
            for a, b in cand.available:
                if a <= start_s and end_s <= b:
                    interval = (a, b)
                    break
        commitment = cand.commitment
        if interval is None or (
            commitment is not None
            and commitment.order_id != job.order_id
            and why_not_commitment(job, commitment, start_s, params) is not None
        ):
            reason = why_not_eta(job, cand, eta, now_s, params)
            if reason is not None:
                records.append(Considered(cand, False, reason, eta if finite else None, None))
            else:  # not reached: the inlined checks are why_not_eta's
                feasible.append(len(records))
                breakdown = score(job, cand, eta, now_s, peers, params)
                costs.append(breakdown.total)
                records.append(Considered(cand, True, None, eta, breakdown))
            continue
        # score, inlined (schedule_term's interval is the one found above).
        a, b = interval
        rating = prior - (cand.rating_sum + prior_sum) / (cand.rating_count + prior_weight)
        jobs = (cand.jobs_today - jobs_median) / jobs_scale
        money = (cand.earnings_today_minor - money_median) / money_scale
        jobs = jobs if jobs < 1.0 else 1.0
        money = money if money < 1.0 else 1.0
        fairness = ((jobs if jobs > -1.0 else -1.0) + (money if money > -1.0 else -1.0)) / 2
        opens_s = float(a)
        before = start_s - eta - (now_s if now_s > opens_s else opens_s)
        before = before if before > 0.0 else 0.0
        after = b - end_s
        fragments: float = 0
        if 0 < before < gap:
            fragments = fragments + before
        if 0 < after < gap:
            fragments = fragments + after
        schedule = fragments / gap
        affinity = -1.0 if customer in cand.served_customer_ids else 0.0
        same_team = -1.0 if team is not None and team == cand.team_id else 0.0
        w_eta = weight_eta * (eta / 60.0)
        w_rating = weight_rating * rating
        w_fairness = weight_fairness * fairness
        w_schedule = weight_schedule * schedule
        w_affinity = weight_affinity * affinity
        w_team = weight_team * same_team
        priority = -1.0 if cand.priority else 0.0
        w_priority = weight_priority * priority
        total_ = w_eta + w_rating + w_fairness + w_schedule + w_affinity + w_team + w_priority
        feasible.append(len(records))
        costs.append(total_)
        records.append(
            Considered(
                cand,
                True,
                None,
                eta,
                Breakdown(
                    (eta / 60.0, rating, fairness, schedule, affinity, same_team, priority, 0.0),
                    (w_eta, w_rating, w_fairness, w_schedule, w_affinity, w_team, w_priority, 0.0),
                    total_,
                ),
            )
        )
    return Assessed(records, feasible, costs, workers)


def rotate(assessed: Assessed, peers: Peers, params: MatchParams) -> Assessed:
    """Job-level fairness (轮派): the ``rotation`` term of one job's feasible records.

    The reference is the fewest jobs today among the feasible candidates whose ETA is
    within ``peers.rotation_s`` of the job's best ETA (for a chained candidate the ETA
    counts the time left, and their jobs today the job in hand). Each feasible candidate
    with more jobs than that gets ``min(jobs above, rotation_cap)`` raw and one
    ``rotation_s`` of ETA per such job in points, added to the total. So among
    near-equal ETAs the one with fewer jobs comes first, and nobody is sent more than the
    slack per job farther for it. Pure: the same records and peers give the same result
    (a replay re-derives it from the stored candidates and ``peers.rotation_s``).

    ``assessed`` is changed in place (records and costs) and returned.
    """
    per_job = rotation_points(peers, params)
    slack = peers.rotation_s
    feasible = assessed.feasible
    if not per_job or not slack or not feasible or params.rotation_cap <= 0:
        return assessed
    records, costs = assessed.records, assessed.costs
    etas = [records[i].eta_s for i in feasible]
    best = min(e for e in etas if e is not None)
    limit = best + slack
    fewest = min(
        records[i].candidate.jobs_today
        for i, e in zip(feasible, etas, strict=True)
        if e is not None and e <= limit
    )
    cap = params.rotation_cap
    for n, i in enumerate(feasible):
        rec = records[i]
        above = rec.candidate.jobs_today - fewest
        if above <= 0:
            continue
        raw = float(above) if above < cap else float(cap)
        points = raw * per_job
        b = rec.breakdown
        assert b is not None
        breakdown = Breakdown((*b.raw[:-1], raw), (*b.weighted[:-1], points), b.total + points)
        records[i] = msgspec.structs.replace(rec, breakdown=breakdown)
        costs[n] = breakdown.total
    return assessed


def total(rec: Considered) -> float:
    """A feasible record's total cost."""
    assert rec.breakdown is not None
    return rec.breakdown.total


def sorted_records(assessed: Assessed) -> tuple[Considered, ...]:
    """Feasible best first (total, worker id), then infeasible by worker id."""
    records, workers, feasible = assessed.records, assessed.workers, assessed.feasible
    # (total, worker id, index): tuples built by zip, sorted; the index never decides (a
    # job lists each worker once).
    ranked = sorted(zip(assessed.costs, [workers[i] for i in feasible], feasible, strict=True))
    order = [i for _, _, i in ranked]
    if len(feasible) < len(records):
        # The rest are infeasible; by worker id alone.
        is_feasible = [False] * len(records)
        for i in feasible:
            is_feasible[i] = True
        order += sorted([i for i, ok in enumerate(is_feasible) if not ok], key=workers.__getitem__)
    return tuple([records[i] for i in order])


def assess_all(
    jobs: Sequence[Job],
    candidates: Sequence[Sequence[Candidate]],
    etas: Etas,
    now_s: float,
    params: MatchParams,
    peers: Peers | None,
) -> tuple[list[Assessed], Peers]:
    """Every job's candidates assessed, and the peers used (given, or the medians over
    the candidates and the pressure: jobs per distinct candidate)."""
    if len(candidates) != len(jobs) or (not callable(etas) and len(etas) != len(jobs)):
        raise MatchingError("need one candidate list and one ETA row per job", field="candidates")
    ids = [job.order_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise MatchingError("must not repeat an order", field="jobs")
    if peers is None:
        unique = {c.worker_id: c for row in candidates for c in row}
        peers = peers_of(
            (unique[w] for w in sorted(unique)),
            n_jobs=len(jobs),
            rotation_s=params.rotation_slack_s,
        )
    assessed = [
        rotate(_assess(j, job, candidates[j], etas, now_s, peers, params), peers, params)
        for j, job in enumerate(jobs)
    ]
    return assessed, peers

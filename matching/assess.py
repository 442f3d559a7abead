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

import numpy as np
import numpy.typing as npt

from matching.errors import MatchingError
from matching.feasibility import why_not, why_not_eta
from matching.model import Candidate, Considered, Job, Peers
from matching.params import MatchParams
from matching.scoring import peers_of, score

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
    """One job's candidates assessed: records in input order, feasible ones indexed."""

    records: list[Considered]
    feasible: list[int]  # indices into records


def _eta_lookup(j: int, n: int, etas: Etas) -> Callable[[int, Candidate], float]:
    """``(i, candidate) -> seconds`` for job j's i-th candidate, whatever form etas take."""
    if callable(etas):
        eta_fn = etas
        return lambda i, cand: float(eta_fn(j, cand))
    row = etas[j]
    if isinstance(row, Mapping):
        by_worker = row
        return lambda i, cand: float(by_worker.get(cand.worker_id, math.nan))
    if len(row) != n:
        raise MatchingError(f"has {len(row)} ETAs for {n} candidates", field=f"etas[{j}]")
    seq = row
    return lambda i, cand: float(seq[i])


def _assess(
    j: int,
    job: Job,
    cands: Sequence[Candidate],
    etas: Etas,
    now_s: float,
    peers: Peers,
    params: MatchParams,
) -> Assessed:
    """Job j's candidates, in input order (a worker listed twice is an error)."""
    eta_at = _eta_lookup(j, len(cands), etas)
    seen: set[int] = set()
    records: list[Considered] = []
    feasible: list[int] = []
    for i, cand in enumerate(cands):
        if cand.worker_id in seen:
            raise MatchingError(
                f"lists worker {cand.worker_id} twice", field=f"candidates[{j}][{i}]"
            )
        seen.add(cand.worker_id)
        reason = why_not(job, cand, now_s, params)
        if reason is not None:
            records.append(Considered(cand, False, reason, None, None))
            continue
        eta = eta_at(i, cand)
        reason = why_not_eta(job, cand, eta, now_s, params)
        eta_or_none = eta if math.isfinite(eta) else None
        if reason is not None:
            records.append(Considered(cand, False, reason, eta_or_none, None))
            continue
        breakdown = score(job, cand, eta, now_s, peers, params)
        feasible.append(len(records))
        records.append(Considered(cand, True, None, eta, breakdown))
    return Assessed(records, feasible)


def total(rec: Considered) -> float:
    """A feasible record's total cost."""
    assert rec.breakdown is not None
    return rec.breakdown.total


def sorted_records(assessed: Assessed) -> tuple[Considered, ...]:
    """Feasible best first (total, worker id), then infeasible by worker id."""
    feasible = sorted(
        (assessed.records[i] for i in assessed.feasible), key=lambda r: (total(r), r.worker_id)
    )
    infeasible = sorted((r for r in assessed.records if not r.feasible), key=lambda r: r.worker_id)
    return (*feasible, *infeasible)


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
        peers = peers_of((unique[w] for w in sorted(unique)), n_jobs=len(jobs))
    assessed = [
        _assess(j, job, candidates[j], etas, now_s, peers, params) for j, job in enumerate(jobs)
    ]
    return assessed, peers

"""Who gets which job: a batch assignment, and the greedy baseline.

Both policies first assess every (job, candidate) pair (``matching.assess``). Pinned
jobs are settled first, oldest first: the pinned worker if feasible and not pinned by
an older job, otherwise no one (a dispatcher decided).

- :func:`decide_batch` solves the remaining jobs × free workers with
  ``scipy.optimize.linear_sum_assignment`` on the score, one connected component of
  the feasible-pair graph at a time. Infeasible pairs get a cost larger than any
  difference feasible pairs can make, so the solver first maximises the number of
  jobs served, then minimises the total; an assignment that still lands on an
  infeasible pair is rejected.
- :func:`decide_greedy` is the nearest-idle baseline: jobs oldest first, each takes
  the feasible free worker with the smallest ETA.

Deterministic: jobs are processed by (created_s, order_id), workers by id, and ties
in the greedy policy go to the lower worker id. Nothing is random.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from matching.assess import Assessed, Etas, assess_all, sorted_records
from matching.feasibility import reason_kind
from matching.model import Candidate, Decision, Job, Peers, Policy
from matching.params import MatchParams, params_digest

__all__ = ["Etas", "decide", "decide_batch", "decide_greedy"]


def _no_one_reason(assessed: Assessed) -> str:
    """Why a job got no worker although it was not pinned."""
    n = len(assessed.records)
    if n == 0:
        return "no candidates nearby"
    if not assessed.feasible:
        kinds = Counter(reason_kind(r.why_not or "") for r in assessed.records)
        top = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
        return f"no feasible candidate among {n}: " + ", ".join(f"{k} ×{c}" for k, c in top)
    m = len(assessed.feasible)
    return f"all {m} feasible workers went to other orders of this batch"


def _by_age(jobs: Sequence[Job]) -> list[int]:
    return sorted(range(len(jobs)), key=lambda j: (jobs[j].created_s, jobs[j].order_id))


def _settle_pins(
    jobs: Sequence[Job], assessed: list[Assessed], order: list[int]
) -> tuple[dict[int, int], dict[int, str], set[int]]:
    """Pinned jobs, oldest first: (job -> worker, job -> reason, workers taken)."""
    chosen: dict[int, int] = {}
    reasons: dict[int, str] = {}
    taken: dict[int, int] = {}  # worker -> order id
    for j in order:
        pinned = jobs[j].pinned_worker_id
        if pinned is None:
            continue
        rec = next((r for r in assessed[j].records if r.worker_id == pinned), None)
        if rec is None:
            reasons[j] = f"pinned worker {pinned} is not among the candidates"
        elif not rec.feasible:
            reasons[j] = f"pinned worker {pinned} cannot take it: {rec.why_not}"
        elif pinned in taken:
            reasons[j] = f"pinned worker {pinned} is pinned to older order {taken[pinned]}"
        else:
            chosen[j] = pinned
            taken[pinned] = jobs[j].order_id
    return chosen, reasons, set(taken)


def _decisions(
    jobs: Sequence[Job],
    assessed: list[Assessed],
    chosen: dict[int, int],
    reasons: dict[int, str],
    policy: Policy,
    now_s: float,
    peers: Peers,
    params: MatchParams,
) -> list[Decision]:
    digest = params_digest(params)
    out: list[Decision] = []
    for j, job in enumerate(jobs):
        worker = chosen.get(j)
        reason = None if worker is not None else reasons.get(j) or _no_one_reason(assessed[j])
        out.append(
            Decision(
                order_id=job.order_id,
                worker_id=worker,
                reason=reason,
                policy=policy,
                now_s=now_s,
                job=job,
                peers=peers,
                candidates=sorted_records(assessed[j]),
                params_digest=digest,
            )
        )
    return out


def decide_batch(
    jobs: Sequence[Job],
    candidates: Sequence[Sequence[Candidate]],
    etas: Etas,
    now_s: float,
    params: MatchParams,
    peers: Peers | None = None,
) -> list[Decision]:
    """One decision per job (in ``jobs`` order), by minimum-cost assignment.

    ``candidates[j]`` are job j's candidates (a worker may appear for many jobs; the
    engine adds a pinned worker if retrieval missed them). ``peers`` are the city's
    medians for the fairness term; without them, the medians over the candidates, the
    pressure and ``params.rotation_slack_s`` (given peers bring their own rotation window).
    """
    assessed, peers = assess_all(jobs, candidates, etas, now_s, params, peers)
    order = _by_age(jobs)
    chosen, reasons, taken = _settle_pins(jobs, assessed, order)
    free_jobs = [j for j in order if jobs[j].pinned_worker_id is None]
    chosen.update(_assign(free_jobs, assessed, taken, params))
    return _decisions(jobs, assessed, chosen, reasons, "batch", now_s, peers, params)


def _assign(
    rows: list[int], assessed: list[Assessed], taken: set[int], params: MatchParams
) -> dict[int, int]:
    """Minimum-cost matching of jobs ``rows`` to free workers: job -> worker."""
    pair_rows: list[int] = []
    pair_workers: list[int] = []
    pair_costs: list[float] = []
    for r, j in enumerate(rows):
        workers_j, feasible_j = assessed[j].workers, assessed[j].feasible
        if not taken:  # no pinned job took a worker (the usual case): every feasible pair
            pair_rows.extend([r] * len(feasible_j))
            pair_workers.extend([workers_j[i] for i in feasible_j])
            pair_costs.extend(assessed[j].costs)
            continue
        for i, cost in zip(feasible_j, assessed[j].costs, strict=True):
            worker = workers_j[i]
            if worker not in taken:
                pair_rows.append(r)
                pair_workers.append(worker)
                pair_costs.append(cost)
    if not pair_rows:
        return {}
    if len(set(pair_workers)) == len(pair_workers):  # no worker wanted twice: each job's best
        per_row: dict[int, tuple[float, int]] = {}
        for r, w, cost in zip(pair_rows, pair_workers, pair_costs, strict=True):
            if r not in per_row or (cost, w) < per_row[r]:
                per_row[r] = (cost, w)
        return {rows[r]: w for r, (_, w) in per_row.items()}
    workers, pair_cols = np.unique(np.array(pair_workers, dtype=np.int64), return_inverse=True)
    n_rows, n_cols = len(rows), len(workers)
    row_of = np.array(pair_rows, dtype=np.int64)
    col_of = np.asarray(pair_cols, dtype=np.int64).reshape(-1)
    cost_of = np.array(pair_costs, dtype=np.float64)
    # Components of the bipartite graph: nodes 0..n_rows-1 are jobs, then workers.
    graph = coo_matrix(
        (np.ones(len(row_of)), (row_of, n_rows + col_of)), shape=(n_rows + n_cols,) * 2
    )
    _, labels = connected_components(graph, directed=False)
    pair_label = labels[row_of]
    # The pairs grouped by component, in their order within each (a stable sort).
    by_label = np.argsort(pair_label, kind="stable")
    sorted_labels = pair_label[by_label]
    cuts = [0, *(np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1).tolist()]
    cuts.append(len(by_label))
    rows_in = np.bincount(labels[np.unique(row_of)], minlength=n_rows + n_cols)
    cols_in = np.bincount(labels[n_rows:], minlength=n_rows + n_cols)
    pair_list = by_label.tolist()
    rows_list, cols_list, costs_list = row_of.tolist(), col_of.tolist(), cost_of.tolist()
    worker_list = workers.tolist()
    chosen: dict[int, int] = {}
    for start, end in itertools.pairwise(cuts):
        label = int(sorted_labels[start])
        if rows_in[label] == 1 or cols_in[label] == 1:  # one job or one worker: the best pair
            # Lowest cost, then oldest job, then lowest worker id (columns are by id).
            _, r, c = min((costs_list[p], rows_list[p], cols_list[p]) for p in pair_list[start:end])
            chosen[rows[r]] = worker_list[c]
            continue
        in_comp = by_label[start:end]
        comp_rows, local_r = np.unique(row_of[in_comp], return_inverse=True)
        comp_cols, local_c = np.unique(col_of[in_comp], return_inverse=True)
        costs = cost_of[in_comp]
        local_r = local_r.reshape(-1)
        local_c = local_c.reshape(-1)
        spread = float(costs.max() - costs.min()) + 1.0
        big = max(params.infeasible_cost, spread * (min(len(comp_rows), len(comp_cols)) + 1))
        matrix = np.full((len(comp_rows), len(comp_cols)), big)
        matrix[local_r, local_c] = costs
        feasible = np.zeros(matrix.shape, dtype=bool)
        feasible[local_r, local_c] = True
        r_idx, c_idx = linear_sum_assignment(matrix)
        for r, c in zip(r_idx.tolist(), c_idx.tolist(), strict=True):
            if feasible[r, c]:
                chosen[rows[int(comp_rows[r])]] = int(workers[comp_cols[c]])
    return chosen


def decide_greedy(
    jobs: Sequence[Job],
    candidates: Sequence[Sequence[Candidate]],
    etas: Etas,
    now_s: float,
    params: MatchParams,
    peers: Peers | None = None,
) -> list[Decision]:
    """The nearest-idle baseline: oldest job first takes the nearest feasible free worker
    by ETA (ties: lower worker id). Scores are computed and stored, but not used."""
    assessed, peers = assess_all(jobs, candidates, etas, now_s, params, peers)
    order = _by_age(jobs)
    chosen, reasons, taken = _settle_pins(jobs, assessed, order)
    for j in order:
        if jobs[j].pinned_worker_id is not None:
            continue
        best: tuple[float, int] | None = None
        for i in assessed[j].feasible:
            rec = assessed[j].records[i]
            assert rec.eta_s is not None
            key = (rec.eta_s, rec.worker_id)
            if rec.worker_id not in taken and (best is None or key < best):
                best = key
        if best is not None:
            chosen[j] = best[1]
            taken.add(best[1])
    return _decisions(jobs, assessed, chosen, reasons, "greedy", now_s, peers, params)


def decide(
    jobs: Sequence[Job],
    candidates: Sequence[Sequence[Candidate]],
    etas: Etas,
    now_s: float,
    params: MatchParams,
    peers: Peers | None = None,
) -> list[Decision]:
    """:func:`decide_batch` or :func:`decide_greedy`, as ``params.policy`` says."""
    policy = decide_batch if params.policy == "batch" else decide_greedy
    return policy(jobs, candidates, etas, now_s, params, peers)

"""Route planning (VRPTW) with OR-Tools, and insertion of one more job into a plan.

Pure and synchronous: no I/O, no clock except OR-Tools' own wall-clock cap. A solve
takes up to ``PlannerParams.time_limit_s`` and OR-Tools holds the GIL while it searches
(measured: a thread running :func:`plan` stalls the event loop's thread for the whole
solve), so async callers run it in a process pool —
``await loop.run_in_executor(pool, functools.partial(plan, problem, params, seed=seed))``
with a ``ProcessPoolExecutor`` (the dataclasses pickle) — never on the event loop and
not in ``asyncio.to_thread``. :func:`insertions` needs no solver (milliseconds) and may
run inline.

The model (docs/planning.md has the details):

* Jobs are visits with a service time and a window for the *start* of service
  (waiting allowed, never late). Workers leave ``start_node`` no earlier than their
  shift start and reach ``end_node`` (or finish their last job, when ``end_node`` is
  None) by the shift end. Breaks start inside their own window and may interrupt
  travel or waiting, never a service (``matching.route_timing``).
* A job goes only to a worker who has all its skills, and only to ``worker_id`` when
  set. A started job is the first stop of its worker's route.
* Every job may be dropped: an optional one (``drop_penalty``) at that cost, a
  mandatory one only when it cannot be served (at a penalty larger than any plan's
  travel), and is then reported with a reason.
* Cost: travel seconds, plus ``prefer_penalty`` when a job is not on its preferred
  worker, plus ``PlannerParams.worker_fixed_cost`` per worker used, plus the drop
  penalties of the optional jobs left out.

Determinism: OR-Tools stops at ``PlannerParams.solution_limit`` solutions or
``branch_limit`` search branches (at least ``branches_per_job`` per job to plan),
whichever comes first (a budget of search work,
independent of the machine's speed and load); ``time_limit_s`` is only a safety cap.
Each neighbour's completion runs under that cap too (not OR-Tools' 100 ms default).
The ``seed`` permutes the order in which jobs and workers are given to the solver, so
different seeds explore differently and the same seed repeats the plan exactly.
:attr:`Plan.stopped_by` says whether the cap cut the search short (then the plan may
differ between runs and machines) and :attr:`Plan.search` how much of the budget it
had spent. After the search, every mandatory job it left out that still fits is
inserted at its cheapest place, so a short search never drops a job that had room.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util import optional_boolean_pb2

from matching.errors import PlanError
from matching.route_timing import Timing, Visit, schedule
from matching.travel import road_matrix, straight_matrix

__all__ = [
    "Dropped",
    "Insertion",
    "Matrix",
    "Plan",
    "PlanBreak",
    "PlanJob",
    "PlanProblem",
    "PlanWorker",
    "PlannerParams",
    "Route",
    "Search",
    "Stop",
    "insertions",
    "plan",
    "road_matrix",
    "straight_matrix",
]

Matrix = npt.NDArray[np.int64]  # square, seconds (travel) or metres (distance)

FIRST_SOLUTIONS: Final = tuple(
    name
    for name in routing_enums_pb2.FirstSolutionStrategy.Value.keys()  # noqa: SIM118
    if name not in ("UNSET", "AUTOMATIC")
)
METAHEURISTICS: Final = tuple(
    name
    for name in routing_enums_pb2.LocalSearchMetaheuristic.Value.keys()  # noqa: SIM118
    if name not in ("UNSET", "AUTOMATIC")
)
OPERATOR_SETS: Final = ("lean", "all")
ROUTE_SEARCHES: Final = ("pyvrp", "ortools")
# Left out by "lean": the insertion-LNS operators (slow on windows), Lin-Kernighan (a TSP
# move) and the operators for pickup-and-delivery pairs and chains, which this model has
# not. Measured on Solomon (benchmarks/README.md): about half the gap at the same time.
LEAN_OFF: Final = (
    "use_global_cheapest_insertion_path_lns",
    "use_local_cheapest_insertion_path_lns",
    "use_relocate_path_global_cheapest_insertion_insert_unperformed",
    "use_global_cheapest_insertion_visit_types_lns",
    "use_local_cheapest_insertion_visit_types_lns",
    "use_lin_kernighan",
    "use_relocate_expensive_chain",
    "use_exchange_subtrip",
    "use_relocate_subtrip",
    "use_swap_active_chain",
    "use_shortest_path_swap_active",
    "use_shortest_path_two_opt",
    "use_relocate_pair",
    "use_light_relocate_pair",
    "use_exchange_pair",
    "use_make_chain_inactive",
)
DROP_REASONS: Final = (
    "no_skilled_worker",  # no worker in the problem has every skill it needs
    "worker_unavailable",  # fixed to a worker who is not in the problem
    "outside_shifts",  # its window does not meet any able worker's shift
    "window_unreachable",  # no able worker can reach it in its window, even with no other job
    "no_room",  # feasible alone, but not with the other jobs of the plan
    "not_worth_serving",  # optional, would fit, but costs more than its drop penalty
    "search_limit",  # mandatory, would fit, search stopped first: no longer given (repaired)
)


@dataclass(frozen=True, slots=True)
class PlanBreak:
    """A break of ``duration_s`` that starts in ``[earliest_s, latest_s]``."""

    earliest_s: int
    latest_s: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class PlanWorker:
    """A worker's day: where the route starts and ends, the shift, skills and breaks.

    ``capacity`` (default: none) bounds the sum of its jobs' ``demand`` (used by the
    Solomon benchmark; home services leave both at their defaults).
    """

    id: str
    start_node: int  # index into the matrices (home base, or current position)
    end_node: int | None  # None: the route ends at its last job
    shift: tuple[int, int]  # seconds since the plan's epoch (e.g. local midnight)
    skills: frozenset[str] = frozenset()
    breaks: tuple[PlanBreak, ...] = ()
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class PlanJob:
    """A visit: where, how long, and the window for the start of its service."""

    id: str
    node: int
    service_s: int
    window: tuple[int, int]  # earliest/latest start of service, seconds since epoch
    skills: frozenset[str] = frozenset()
    drop_penalty: int | None = None  # None: mandatory (reported as dropped if infeasible)
    worker_id: str | None = None  # fixed to this worker (pinned, or started)
    started: bool = False  # already started: stays first on worker_id's route
    prefer_worker_id: str | None = None  # soft: continuity (recurring bookings)
    prefer_penalty: int = 0  # cost when not on prefer_worker_id
    demand: int = 0  # against PlanWorker.capacity


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """The matrices, the jobs and the workers of one plan."""

    travel_s: Matrix
    jobs: tuple[PlanJob, ...]
    workers: tuple[PlanWorker, ...]
    distance_m: Matrix | None = None  # for reporting distance; travel_s is used if None


@dataclass(frozen=True, slots=True)
class PlannerParams:
    """Search parameters (TOML table ``[planner]``); see docs/planning.md."""

    time_limit_s: float = 300.0  # wall-clock safety cap of one solve; hitting it is reported
    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"  # OR-Tools FirstSolutionStrategy
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"  # OR-Tools LocalSearchMetaheuristic
    solution_limit: int = 1000  # deterministic budget: solutions found; 0: no limit
    branch_limit: int = 25_000  # deterministic budget: search branches; 0: no limit ...
    branches_per_job: int = 100  # ... raised to this many per job on larger days
    gls_lambda: float = 0.1  # guided local search penalty factor
    worker_fixed_cost: int = 0  # cost of using a worker at all (seconds of travel)
    operators: str = "lean"  # local search operators: "lean" or "all" (OR-Tools' defaults)
    fleet_first_share: float = 0.0  # share of the budget spent first on using fewer workers
    route_search: str = "pyvrp"  # "pyvrp": PyVRP finds the routes, OR-Tools goes on; "ortools"
    pyvrp_iterations: int = 2000  # deterministic budget of the PyVRP stage; 0: no limit ...
    pyvrp_share: float = 0.8  # ... its share of the time cap (OR-Tools: the rest, whole budget)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise ValueError("time_limit_s must be a finite number > 0.")
        if self.first_solution not in FIRST_SOLUTIONS:
            raise ValueError(f"first_solution must be one of {', '.join(FIRST_SOLUTIONS)}.")
        if self.metaheuristic not in METAHEURISTICS:
            raise ValueError(f"metaheuristic must be one of {', '.join(METAHEURISTICS)}.")
        if self.solution_limit < 0:
            raise ValueError("solution_limit must be >= 0.")
        if self.branch_limit < 0:
            raise ValueError("branch_limit must be >= 0.")
        if self.branches_per_job < 0:
            raise ValueError("branches_per_job must be >= 0.")
        if not (math.isfinite(self.gls_lambda) and self.gls_lambda > 0):
            raise ValueError("gls_lambda must be a finite number > 0.")
        if self.worker_fixed_cost < 0:
            raise ValueError("worker_fixed_cost must be >= 0.")
        if self.operators not in OPERATOR_SETS:
            raise ValueError(f"operators must be one of {', '.join(OPERATOR_SETS)}.")
        if not 0.0 <= self.fleet_first_share < 1.0:
            raise ValueError("fleet_first_share must be in [0, 1).")
        if self.route_search not in ROUTE_SEARCHES:
            raise ValueError(f"route_search must be one of {', '.join(ROUTE_SEARCHES)}.")
        if self.pyvrp_iterations < 0:
            raise ValueError("pyvrp_iterations must be >= 0.")
        if not 0.0 < self.pyvrp_share < 1.0:
            raise ValueError("pyvrp_share must be in (0, 1).")


@dataclass(frozen=True, slots=True)
class Stop:
    """One job on a route, with its planned times."""

    job_id: str
    arrival_s: int  # when the worker gets there (first stop: leaves just in time)
    start_s: int  # service start (>= window start; waiting = start - arrival)
    departure_s: int
    slack_s: int  # how much later this stop could start without breaking a later window/shift


@dataclass(frozen=True, slots=True)
class Route:
    """A worker's stops in order, with the route's travel, distance and breaks."""

    worker_id: str
    stops: tuple[Stop, ...]
    travel_s: int
    distance_m: int
    breaks: tuple[tuple[int, int], ...] = ()  # (start_s, duration_s)


@dataclass(frozen=True, slots=True)
class Dropped:
    """A job left out of the plan and why (one of ``DROP_REASONS``)."""

    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Search:
    """What the search did: its work, the budget it had, and the jobs mended after it.

    ``solutions`` and ``branches`` are OR-Tools' own counters (over both stages with
    ``fleet_first_share``); ``solution_limit`` and ``branch_limit`` the budget this
    problem had (0: none). ``repaired``: mandatory jobs the search left out although
    they fit, inserted afterwards at their cheapest place (``insertions``).
    ``iterations``: PyVRP's iterations before OR-Tools (``route_search = "pyvrp"``; 0
    when OR-Tools planned alone), against ``iteration_limit``; on a day whose mandatory
    jobs do not all fit, the required search's probe (a twentieth of the limit, at
    least 50) and then the prize search's up to the limit.
    """

    solutions: int = 0
    branches: int = 0
    solution_limit: int = 0
    branch_limit: int = 0
    repaired: int = 0
    iterations: int = 0
    iteration_limit: int = 0

    @property
    def budget_used(self) -> float:
        """The share of the budget spent, 0..1 (the larger of the two; 0 if no budget)."""
        shares = [
            min(1.0, done / limit)
            for done, limit in (
                (self.solutions, self.solution_limit),
                (self.branches, self.branch_limit),
            )
            if limit
        ]
        return max(shares, default=0.0)


@dataclass(frozen=True, slots=True)
class Plan:
    """One route per worker (in the problem's order, possibly empty) and the dropped jobs.

    ``objective``: travel seconds + preference and fixed costs + drop penalties of the
    optional jobs left out (mandatory dropped jobs are reported, not priced).
    ``stopped_by``: ``"budget"`` (the work budget: reproducible), ``"local_optimum"``
    (reproducible), ``"time_limit"`` (the wall-clock cap cut the search: not
    reproducible; ``search`` says how much of the budget it had spent), or
    ``"no_search"`` (nothing to plan).
    """

    routes: tuple[Route, ...]
    dropped: tuple[Dropped, ...]
    objective: int
    stopped_by: str = "no_search"
    search: Search = Search()


@dataclass(frozen=True, slots=True)
class Insertion:
    """A feasible place for a new job: before ``position`` in ``worker_id``'s stops."""

    worker_id: str
    position: int  # index in that worker's stops where the job goes
    added_travel_s: int
    arrival_s: int
    start_s: int


# --- validation -------------------------------------------------------------------------


def _check_matrix(matrix: Any, name: str, n: int | None) -> int:
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2:
        raise PlanError("must be a 2-d numpy array", field=name)
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise PlanError("must be square and non-empty", field=name)
    if n is not None and matrix.shape[0] != n:
        raise PlanError("must have the shape of travel_s", field=name)
    if not np.issubdtype(matrix.dtype, np.integer):
        raise PlanError("must hold integers", field=name)
    if (matrix < 0).any():
        raise PlanError("must not be negative", field=name)
    return int(matrix.shape[0])


def _check_window(window: tuple[int, int], name: str) -> None:
    if len(window) != 2 or not 0 <= window[0] <= window[1]:
        raise PlanError("must be (earliest, latest) with 0 <= earliest <= latest", field=name)


def _check_problem(problem: PlanProblem) -> None:
    n = _check_matrix(problem.travel_s, "travel_s", None)
    if problem.distance_m is not None:
        _check_matrix(problem.distance_m, "distance_m", n)
    worker_ids = [w.id for w in problem.workers]
    if len(set(worker_ids)) != len(worker_ids):
        raise PlanError("worker ids must be unique", field="workers")
    for i, w in enumerate(problem.workers):
        f = f"workers[{i}]"
        if not 0 <= w.start_node < n:
            raise PlanError(f"must be in [0, {n})", field=f"{f}.start_node")
        if w.end_node is not None and not 0 <= w.end_node < n:
            raise PlanError(f"must be in [0, {n}) or None", field=f"{f}.end_node")
        _check_window(w.shift, f"{f}.shift")
        if w.capacity is not None and w.capacity < 0:
            raise PlanError("must be >= 0 or None", field=f"{f}.capacity")
        for k, b in enumerate(w.breaks):
            if b.earliest_s > b.latest_s or b.duration_s < 0:
                raise PlanError(
                    "needs earliest_s <= latest_s and duration_s >= 0", field=f"{f}.breaks[{k}]"
                )
            if not w.shift[0] <= b.earliest_s <= b.latest_s <= w.shift[1]:
                raise PlanError("must start within the shift", field=f"{f}.breaks[{k}]")
            if k and b.earliest_s < w.breaks[k - 1].earliest_s:
                raise PlanError("must be sorted by earliest_s", field=f"{f}.breaks")
    job_ids = [j.id for j in problem.jobs]
    if len(set(job_ids)) != len(job_ids):
        raise PlanError("job ids must be unique", field="jobs")
    started_on: set[str] = set()
    for i, j in enumerate(problem.jobs):
        _check_job(j, f"jobs[{i}]", n)
        if j.started and j.worker_id is not None:
            if j.worker_id in started_on:
                raise PlanError("at most one started job per worker", field=f"jobs[{i}].started")
            started_on.add(j.worker_id)


def _check_job(j: PlanJob, f: str, n: int) -> None:
    if not 0 <= j.node < n:
        raise PlanError(f"must be in [0, {n})", field=f"{f}.node")
    if j.service_s < 0:
        raise PlanError("must be >= 0", field=f"{f}.service_s")
    _check_window(j.window, f"{f}.window")
    if j.drop_penalty is not None and j.drop_penalty < 0:
        raise PlanError("must be >= 0 or None", field=f"{f}.drop_penalty")
    if j.prefer_penalty < 0:
        raise PlanError("must be >= 0", field=f"{f}.prefer_penalty")
    if j.demand < 0:
        raise PlanError("must be >= 0", field=f"{f}.demand")
    if j.started and j.worker_id is None:
        raise PlanError("a started job needs its worker_id", field=f"{f}.worker_id")


# --- timing of one route ----------------------------------------------------------------


def _leg(matrix: Matrix, a: int | None, b: int | None) -> int:
    return 0 if a is None or b is None else int(matrix[a, b])


def _timing(problem: PlanProblem, worker: PlanWorker, jobs: Sequence[PlanJob]) -> Timing | None:
    """The timing of ``jobs`` in this order on ``worker``'s route, or None (infeasible)."""
    if worker.capacity is not None and sum(j.demand for j in jobs) > worker.capacity:
        return None
    travel = problem.travel_s
    visits, prev = [], worker.start_node
    for j in jobs:
        visits.append(Visit(j.window, j.service_s, int(travel[prev, j.node])))
        prev = j.node
    t0 = worker.shift[0]
    if jobs and jobs[0].started:  # its window is when it actually started: keep it
        t0 = max(0, min(t0, jobs[0].window[0] - visits[0].travel_in_s))
    breaks = [(b.earliest_s, b.latest_s, b.duration_s) for b in worker.breaks]
    return schedule(t0, visits, _leg(travel, prev, worker.end_node), worker.shift[1], breaks)


def _route(problem: PlanProblem, worker: PlanWorker, jobs: Sequence[PlanJob]) -> Route:
    if not jobs:  # the worker stays put; its breaks are not placed
        return Route(worker.id, (), 0, 0)
    timing = _timing(problem, worker, jobs)
    if timing is None:  # OR-Tools' model and route_timing disagree: a bug, not an input
        raise RuntimeError(f"the solver's route for worker {worker.id} is infeasible")
    distance = problem.distance_m if problem.distance_m is not None else problem.travel_s
    nodes: list[int | None] = [worker.start_node, *(j.node for j in jobs), worker.end_node]
    travel_s = distance_m = 0
    for a, b in itertools.pairwise(nodes):
        travel_s += _leg(problem.travel_s, a, b)
        distance_m += _leg(distance, a, b)
    stops = tuple(
        Stop(j.id, timing.arrivals[k], timing.starts[k], timing.departures[k], timing.slacks[k])
        for k, j in enumerate(jobs)
    )
    return Route(worker.id, stops, travel_s, distance_m, timing.breaks)


# --- which workers may take a job -------------------------------------------------------


def _able(problem: PlanProblem, job: PlanJob) -> list[int] | str:
    """Indices of the workers allowed to take ``job`` (skills, pin), or a drop reason."""
    if job.worker_id is not None:
        index = next((i for i, w in enumerate(problem.workers) if w.id == job.worker_id), None)
        if index is None:
            return "worker_unavailable"
        if job.started or job.skills <= problem.workers[index].skills:
            return [index]
        return "no_skilled_worker"
    able = [i for i, w in enumerate(problem.workers) if job.skills <= w.skills]
    return able or "no_skilled_worker"


def _alone_reason(problem: PlanProblem, job: PlanJob, able: list[int]) -> str | None:
    """None if some able worker could serve ``job`` as its only stop, else the reason."""
    travel = problem.travel_s
    overlaps = False
    for i in able:
        w = problem.workers[i]
        if job.window[0] <= w.shift[1] - job.service_s and job.window[1] >= w.shift[0]:
            overlaps = True
        arrive = max(w.shift[0] + int(travel[w.start_node, job.node]), job.window[0])
        if not job.started and (
            arrive > job.window[1]
            or arrive + job.service_s + _leg(travel, job.node, w.end_node) > w.shift[1]
        ):
            continue
        if _timing(problem, w, [job]) is not None:
            return None
    return "window_unreachable" if overlaps or job.started else "outside_shifts"


# --- the solver -------------------------------------------------------------------------


def _search_parameters(params: PlannerParams) -> Any:
    sp = pywrapcp.DefaultRoutingSearchParameters()
    sp.first_solution_strategy = getattr(
        routing_enums_pb2.FirstSolutionStrategy, params.first_solution
    )
    sp.local_search_metaheuristic = getattr(
        routing_enums_pb2.LocalSearchMetaheuristic, params.metaheuristic
    )
    sp.guided_local_search_lambda_coefficient = params.gls_lambda
    if params.operators == "lean":
        for name in LEAN_OFF:
            setattr(sp.local_search_operators, name, optional_boolean_pb2.BOOL_FALSE)
    cap_ms = max(1, round(params.time_limit_s * 1000))
    sp.time_limit.FromMilliseconds(cap_ms)
    # Each neighbour's completion (the solution finalizer) runs under its own clock,
    # 100 ms by default: on a loaded machine that clock, not the search, could reject
    # a neighbour. Only the overall cap may cut anything short.
    sp.lns_time_limit.FromMilliseconds(cap_ms)
    if params.solution_limit:
        sp.solution_limit = params.solution_limit
    return sp


@dataclass
class _Model:
    """The OR-Tools node layout: depots (start/end points) first, then the jobs."""

    depot_nodes: list[int | None] = field(default_factory=list)  # None: "wherever it ends"
    jobs: list[PlanJob] = field(default_factory=list)

    def depot(self, node: int | None) -> int:
        if node not in self.depot_nodes:
            self.depot_nodes.append(node)
        return self.depot_nodes.index(node)

    def matrix_nodes(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        nodes = [*self.depot_nodes, *(j.node for j in self.jobs)]
        virtual = np.array([n is None for n in nodes], dtype=np.bool_)
        return np.array([0 if n is None else n for n in nodes], dtype=np.int64), virtual


def _search(
    problem: PlanProblem,
    params: PlannerParams,
    active: list[PlanJob],
    able: dict[str, list[int]],
    vehicle_order: list[int],
) -> tuple[list[list[int]], str, tuple[int, int]]:
    """Each worker's jobs (indices into ``active``), why the search stopped and its
    (solutions, branches), in one or two stages: with ``fleet_first_share``, that share
    of the budget first searches with a fixed cost per worker above any travel (fewer
    workers), then the rest goes on from there."""
    share = params.fleet_first_share
    if not share or len(problem.workers) < 2:
        return _solve(problem, params, active, able, vehicle_order, params.worker_fixed_cost, None)
    began = time.monotonic()
    first = replace(
        params,
        time_limit_s=params.time_limit_s * share,
        solution_limit=math.ceil(params.solution_limit * share),
        branch_limit=math.ceil(params.branch_limit * share),
    )
    big = int(problem.travel_s.max()) * (len(active) + 2 * len(problem.workers) + 1) + 1
    fixed = params.worker_fixed_cost + big
    routes, _, (sol1, br1) = _solve(problem, first, active, able, vehicle_order, fixed, None)
    rest = replace(
        params,
        time_limit_s=max(0.001, params.time_limit_s - (time.monotonic() - began)),
        solution_limit=max(1, params.solution_limit - first.solution_limit)
        if params.solution_limit
        else 0,
        branch_limit=max(1, params.branch_limit - first.branch_limit) if params.branch_limit else 0,
    )
    fixed = params.worker_fixed_cost
    routes, stopped_by, (sol2, br2) = _solve(
        problem, rest, active, able, vehicle_order, fixed, routes
    )
    if time.monotonic() - began >= params.time_limit_s * 0.98:
        stopped_by = "time_limit"
    return routes, stopped_by, (sol1 + sol2, br1 + br2)


def _solve(
    problem: PlanProblem,
    params: PlannerParams,
    active: list[PlanJob],
    able: dict[str, list[int]],
    vehicle_order: list[int],
    fixed_cost: int,
    start: list[list[int]] | None,
) -> tuple[list[list[int]], str, tuple[int, int]]:
    """One OR-Tools search on the ``active`` jobs (in the seed's order), from ``start``
    (per worker, indices into ``active``) if given: each worker's jobs, why it stopped,
    and its (solutions, branches). If the time cap stops it before a first solution, no
    job is planned (``plan`` then inserts what fits)."""
    # Vehicle v is problem.workers[vehicle_order[v]] (the seed's order of the workers).
    workers = [problem.workers[i] for i in vehicle_order]
    vehicle_of = {w: v for v, w in enumerate(vehicle_order)}
    model = _Model()
    starts = [model.depot(w.start_node) for w in workers]
    ends = [model.depot(w.end_node) for w in workers]
    model.jobs = active
    n_depots = len(model.depot_nodes)
    idx, virtual = model.matrix_nodes()
    travel = problem.travel_s[np.ix_(idx, idx)].astype(np.int64)
    travel[virtual, :] = 0
    travel[:, virtual] = 0
    service = np.array([0] * n_depots + [j.service_s for j in active], dtype=np.int64)

    manager = pywrapcp.RoutingIndexManager(len(idx), len(workers), starts, ends)
    routing = pywrapcp.RoutingModel(manager)

    # Arc costs: travel, plus the preference penalty on arcs into a job for every worker
    # but the preferred one. Workers no job prefers share one matrix.
    worker_index = {w.id: i for i, w in enumerate(workers)}
    generic = travel.copy()
    preferred: dict[int, list[tuple[int, int]]] = {}
    for k, j in enumerate(active):
        if j.prefer_worker_id is not None and j.prefer_penalty > 0:
            generic[:, n_depots + k] += j.prefer_penalty
            v = worker_index.get(j.prefer_worker_id)
            if v is not None:
                preferred.setdefault(v, []).append((n_depots + k, j.prefer_penalty))
    generic_cb = routing.RegisterTransitMatrix(generic.tolist())
    for v in range(len(workers)):
        if v in preferred:
            own = generic.copy()
            for column, penalty in preferred[v]:
                own[:, column] -= penalty
            routing.SetArcCostEvaluatorOfVehicle(routing.RegisterTransitMatrix(own.tolist()), v)
        else:
            routing.SetArcCostEvaluatorOfVehicle(generic_cb, v)
    if fixed_cost:
        routing.SetFixedCostOfAllVehicles(fixed_cost)

    # Time: transit = service at the origin + travel; waiting is slack.
    horizon = max([w.shift[1] for w in workers] + [j.window[1] + j.service_s for j in active] + [1])
    time_cb = routing.RegisterTransitMatrix((travel + service[:, None]).tolist())
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    first_started: dict[int, int] = {}
    for k, j in enumerate(active):
        index = manager.NodeToIndex(n_depots + k)
        time_dim.CumulVar(index).SetRange(max(0, j.window[0]), min(horizon, j.window[1]))
        if j.started:
            first_started[vehicle_of[able[j.id][0]]] = k
    node_visit = [0] * routing.Size()
    for index in range(routing.Size()):
        if not routing.IsStart(index):
            node_visit[index] = int(service[manager.IndexToNode(index)])
    solver = routing.solver()
    for v, w in enumerate(workers):
        lo = w.shift[0]
        if v in first_started:
            job = active[first_started[v]]
            lo = min(lo, job.window[0] - int(problem.travel_s[w.start_node, job.node]))
        lo = max(0, lo)
        time_dim.CumulVar(routing.Start(v)).SetRange(lo, w.shift[1])
        time_dim.CumulVar(routing.End(v)).SetRange(lo, w.shift[1])
        if w.breaks:
            intervals = [
                solver.FixedDurationIntervalVar(
                    b.earliest_s, b.latest_s, b.duration_s, False, f"break {v}.{n}"
                )
                for n, b in enumerate(w.breaks)
            ]
            time_dim.SetBreakIntervalsOfVehicle(intervals, v, node_visit)

    # Capacity, only when some worker has one.
    if any(w.capacity is not None for w in workers):
        demand_cb = routing.RegisterUnaryTransitVector([0] * n_depots + [j.demand for j in active])
        total = sum(j.demand for j in active)
        caps = [total if w.capacity is None else w.capacity for w in workers]
        routing.AddDimensionWithVehicleCapacity(demand_cb, 0, caps, True, "demand")

    # Who may take each job; what dropping it costs; started jobs first on their worker.
    mandatory_penalty = int(travel.max()) * (len(idx) + 1) + sum(j.prefer_penalty for j in active)
    mandatory_penalty += fixed_cost * len(workers) + 1
    for k, j in enumerate(active):
        index = manager.NodeToIndex(n_depots + k)
        allowed = [vehicle_of[i] for i in able[j.id]]
        if j.started:
            routing.NextVar(routing.Start(allowed[0])).SetValue(index)
            continue
        if len(allowed) < len(workers):
            routing.VehicleVar(index).SetValues([-1, *allowed])
        penalty = mandatory_penalty if j.drop_penalty is None else j.drop_penalty
        routing.AddDisjunction([index], penalty)

    if params.branch_limit:
        routing.AddSearchMonitor(solver.BranchesLimit(params.branch_limit))
    began = time.monotonic()
    search = _search_parameters(params)
    initial = None
    if start is not None:
        routing.CloseModelWithParameters(search)
        initial = routing.ReadAssignmentFromRoutes(
            [[manager.NodeToIndex(n_depots + k) for k in start[w]] for w in vehicle_order],
            True,
        )
    if initial is None:  # no start, or OR-Tools' model rejects it: search from scratch
        solution = routing.SolveWithParameters(search)
    else:
        solution = routing.SolveFromAssignmentWithParameters(initial, search)
    elapsed = time.monotonic() - began
    work = (int(solver.Solutions()), int(solver.Branches()))
    cut = elapsed >= params.time_limit_s * 0.98
    spent = bool(
        (params.solution_limit and work[0] >= params.solution_limit)
        or (params.branch_limit and work[1] >= params.branch_limit)
    )
    if solution is None:  # stopped before a first solution: keep what was given
        if not (cut or spent):
            raise RuntimeError("OR-Tools found no solution (started jobs that cannot be kept?)")
        if start is None:
            start = [[] for _ in workers]
            for i in range(len(workers)):
                if vehicle_of[i] in first_started:
                    start[i] = [first_started[vehicle_of[i]]]
        return start, "time_limit" if cut else "budget", work
    routes: list[list[int]] = []
    for v in range(len(workers)):
        route: list[int] = []
        index = solution.Value(routing.NextVar(routing.Start(v)))
        while not routing.IsEnd(index):
            route.append(manager.IndexToNode(index) - n_depots)
            index = solution.Value(routing.NextVar(index))
        routes.append(route)
    routes = [routes[vehicle_of[w]] for w in range(len(workers))]  # back to problem order
    stopped_by = "time_limit" if cut else "budget" if spent else "local_optimum"
    return routes, stopped_by, work


def _hybrid(
    problem: PlanProblem,
    params: PlannerParams,
    active: list[PlanJob],
    able: dict[str, list[int]],
    vehicle_order: list[int],
    seed: int,
) -> tuple[list[list[int]], str, tuple[int, int], tuple[int, int], PlannerParams] | None:
    """PyVRP finds the routes (``matching.pyvrp_stage``), OR-Tools goes on from them with
    every side constraint (breaks) and the rest of the budget: each worker's jobs, why
    the search stopped, OR-Tools' (solutions, branches), PyVRP's (iterations, limit),
    and the params OR-Tools had. None where the translation does not apply (then
    OR-Tools plans alone, as with ``route_search = "ortools"``).

    The split: PyVRP runs ``pyvrp_iterations`` iterations, capped at ``pyvrp_share`` of
    ``time_limit_s``; OR-Tools then has its whole ``solution_limit`` / ``branch_limit``
    and what is left of the time cap, in one stage (no ``fleet_first_share``: PyVRP's
    routes already use as few workers as the cost says). OR-Tools keeps its whole work
    budget because on a day with breaks it is OR-Tools that fits the jobs around them
    (benchmarks/README.md: with a fifth of its budget a 300-job day served 250 jobs,
    252 alone, 255 with all of it)."""
    if params.route_search != "pyvrp":
        return None
    from matching.pyvrp_stage import HgsResult, solve_structure

    began = time.monotonic()
    workers = problem.workers
    used = sorted(
        {j.node for j in active}
        | {w.start_node for w in workers}
        | {w.end_node for w in workers if w.end_node is not None}
    )
    longest = int(problem.travel_s[np.ix_(used, used)].max())
    mandatory = longest * (len(active) + 2 * len(workers) + 1)
    mandatory += sum(j.prefer_penalty for j in active) + params.worker_fixed_cost * len(workers) + 1
    cap_s = params.time_limit_s * params.pyvrp_share

    def pyvrp(required: bool, time_cap_s: float) -> HgsResult | None:
        return solve_structure(
            problem,
            active,
            able,
            vehicle_order,
            fixed_cost=params.worker_fixed_cost,
            mandatory_penalty=mandatory,
            iterations=params.pyvrp_iterations,
            time_cap_s=time_cap_s,
            seed=seed,
            required=required,
        )

    # The mandatory jobs required first; if PyVRP's best does not hold them all (more
    # work than room, or too short a search), again with them as prizes in what is left
    # of the stage's time, so that the search itself chooses what to leave out.
    found = pyvrp(True, cap_s)
    if found is None:
        return None
    left_s = cap_s - (time.monotonic() - began)
    if not found.feasible and left_s > 0.05 and any(j.drop_penalty is None for j in active):
        again = pyvrp(False, left_s)
        if again is not None:
            found = HgsResult(
                again.routes,
                found.iterations + again.iterations,
                again.cut,
                again.feasible,
            )
    # Cut back what breaks a break (PyVRP does not know them; or anything, if PyVRP's best
    # was infeasible): keep the jobs in order, each only if its worker may take it and
    # the route with it still has a timing; then put the jobs cut out back at their
    # cheapest place where they fit (``insertions``), in the seed's order.
    start: list[list[int]] = []
    cut_out: list[PlanJob] = []
    for i, (w, route) in enumerate(zip(workers, found.routes, strict=True)):
        if found.feasible and _timing(problem, w, [active[k] for k in route]) is not None:
            start.append(route)
            continue
        kept: list[int] = []
        for k in route:
            if i in able[active[k].id] and (
                _timing(problem, w, [active[x] for x in [*kept, k]]) is not None
            ):
                kept.append(k)
            else:
                cut_out.append(active[k])
        start.append(kept)
    if cut_out:
        position = {j.id: k for k, j in enumerate(active)}
        routes_now = [
            _route(problem, w, [active[k] for k in route])
            for w, route in zip(workers, start, strict=True)
        ]
        cut_out.sort(key=lambda j: position[j.id])
        _repair(problem, routes_now, cut_out)
        start = [[position[s.job_id] for s in r.stops] for r in routes_now]
    rest = replace(
        params, time_limit_s=max(0.001, params.time_limit_s - (time.monotonic() - began))
    )
    routes, stopped_by, work = _solve(
        problem, rest, active, able, vehicle_order, params.worker_fixed_cost, start
    )
    if found.cut or time.monotonic() - began >= params.time_limit_s * 0.98:
        stopped_by = "time_limit"
    return routes, stopped_by, work, (found.iterations, params.pyvrp_iterations), rest


def _objective(problem: PlanProblem, params: PlannerParams, routes: Sequence[Route]) -> int:
    jobs = {j.id: j for j in problem.jobs}
    total = 0
    for route in routes:
        total += route.travel_s
        if route.stops:
            total += params.worker_fixed_cost
        for stop in route.stops:
            j = jobs[stop.job_id]
            if j.prefer_worker_id is not None and j.prefer_worker_id != route.worker_id:
                total += j.prefer_penalty
    return total


def plan(problem: PlanProblem, params: PlannerParams, *, seed: int = 0) -> Plan:
    """Plan every worker's route; deterministic for the same problem, params and seed
    unless ``Plan.stopped_by == "time_limit"``. Synchronous: run it off the event loop."""
    _check_problem(problem)
    dropped: dict[str, str] = {}
    able: dict[str, list[int]] = {}
    for j in problem.jobs:
        who = _able(problem, j)
        if isinstance(who, str):
            dropped[j.id] = who
            continue
        reason = _alone_reason(problem, j, who)
        if reason is not None:
            dropped[j.id] = reason
        else:
            able[j.id] = who
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(problem.jobs))
    vehicle_order = [int(i) for i in rng.permutation(len(problem.workers))]
    active = [problem.jobs[int(i)] for i in order if problem.jobs[int(i)].id in able]
    if params.branch_limit:  # the budget grows with the day: at least so many per job
        budget = max(params.branch_limit, params.branches_per_job * len(active))
        params = replace(params, branch_limit=budget)
    work = (0, 0)
    iterations = (0, 0)
    if active:
        hybrid = _hybrid(problem, params, active, able, vehicle_order, seed)
        if hybrid is None:
            found, stopped_by, work = _search(problem, params, active, able, vehicle_order)
        else:
            found, stopped_by, work, iterations, params = hybrid
        per_worker = [[active[k] for k in route] for route in found]
    else:
        per_worker, stopped_by = [[] for _ in problem.workers], "no_search"
    routes = [_route(problem, w, jobs) for w, jobs in zip(problem.workers, per_worker, strict=True)]
    repaired = _repair(problem, routes, [j for j in active if j.drop_penalty is None])
    served = {s.job_id for r in routes for s in r.stops}
    current = Plan(tuple(routes), (), 0)
    for j in active:
        if j.id not in served:
            fits = bool(insertions(problem, current, j))
            if j.drop_penalty is None:
                dropped[j.id] = "search_limit" if fits else "no_room"
            else:
                dropped[j.id] = "not_worth_serving" if fits else "no_room"
    objective = _objective(problem, params, routes) + sum(
        j.drop_penalty or 0 for j in problem.jobs if j.id in dropped
    )
    ordered = tuple(Dropped(j.id, dropped[j.id]) for j in problem.jobs if j.id in dropped)
    search = Search(*work, params.solution_limit, params.branch_limit, repaired, *iterations)
    return Plan(tuple(routes), ordered, objective, stopped_by, search)


def _repair(problem: PlanProblem, routes: list[Route], mandatory: Sequence[PlanJob]) -> int:
    """Insert the mandatory jobs the search left out but that fit, each at its cheapest
    place (``insertions``), in the seed's order; how many went in. One pass is enough
    (an insertion never makes room for another job). Deterministic, so a search cut
    short never costs a job that had room; ``routes`` is updated in place."""
    repaired = 0
    workers = {w.id: w for w in problem.workers}
    jobs = {j.id: j for j in problem.jobs}
    served = {s.job_id for r in routes for s in r.stops}
    for job in mandatory:
        if job.id in served or job.started:
            continue
        options = insertions(problem, Plan(tuple(routes), (), 0), job)
        if not options:
            continue
        best = options[0]
        k = next(i for i, r in enumerate(routes) if r.worker_id == best.worker_id)
        seq = [jobs[s.job_id] for s in routes[k].stops]
        seq.insert(best.position, job)
        routes[k] = _route(problem, workers[best.worker_id], seq)
        served.add(job.id)
        repaired += 1
    return repaired


# --- insertion --------------------------------------------------------------------------


def insertions(problem: PlanProblem, current: Plan, job: PlanJob) -> list[Insertion]:
    """Every place ``job`` fits in ``current`` without reordering other stops or breaking
    any window, shift, break, capacity or skill; cheapest (added travel) first.

    ``job.node`` indexes ``problem``'s matrices; the jobs on ``current``'s routes must be
    in ``problem.jobs``. A started job stays first. Pure, no solver.
    """
    _check_matrix(problem.travel_s, "travel_s", None)
    _check_job(job, "job", int(problem.travel_s.shape[0]))
    if job.started:
        raise PlanError("a started job cannot be inserted", field="job.started")
    jobs = {j.id: j for j in problem.jobs}
    workers = {w.id: w for w in problem.workers}
    if any(s.job_id == job.id for r in current.routes for s in r.stops):
        raise PlanError("the job is already planned", field="job.id")
    travel = problem.travel_s
    found: list[tuple[tuple[int, int, int, int], Insertion]] = []
    for order, route in enumerate(current.routes):
        worker = workers.get(route.worker_id)
        if worker is None:
            raise PlanError("routes must be of the problem's workers", field="current.routes")
        if not job.skills <= worker.skills or job.worker_id not in (None, worker.id):
            continue
        try:
            seq = [jobs[s.job_id] for s in route.stops]
        except KeyError as e:
            raise PlanError(f"job {e} is not in the problem", field="current.routes") from None
        first = 1 if seq and seq[0].started else 0
        nodes: list[int | None] = [worker.start_node, *(j.node for j in seq), worker.end_node]
        # Without breaks the current timing is the unique earliest one and its slacks are
        # exact, so two comparisons rule a position out before the full check.
        base = None if worker.breaks else _timing(problem, worker, seq)
        for p in range(first, len(seq) + 1):
            if base is not None:
                t = base.departures[p - 1] if p else worker.shift[0]
                start = max(t + _leg(travel, nodes[p], job.node), job.window[0])
                if start > job.window[1]:
                    continue
                done = start + job.service_s + _leg(travel, job.node, nodes[p + 1])
                latest = base.starts[p] + base.slacks[p] if p < len(seq) else worker.shift[1]
                if done > latest:
                    continue
            timing = _timing(problem, worker, [*seq[:p], job, *seq[p:]])
            if timing is None:
                continue
            before, after = nodes[p], nodes[p + 1]
            added = (
                _leg(travel, before, job.node)
                + _leg(travel, job.node, after)
                - _leg(travel, before, after)
            )
            found.append(
                (
                    (added, timing.starts[p], order, p),
                    Insertion(worker.id, p, added, timing.arrivals[p], timing.starts[p]),
                )
            )
    found.sort(key=lambda pair: pair[0])
    return [ins for _, ins in found]

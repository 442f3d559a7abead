"""The first stage of a day plan: PyVRP's iterated local search finds the routes.

:func:`matching.planner.plan` hands its problem here when ``PlannerParams.search`` is
``"pyvrp"``; the routes found go to OR-Tools as its initial assignment, and OR-Tools
(with the breaks, which PyVRP 0.14 cannot express) and the planner's own timing
(``route_timing``) stay the judges of what is feasible. Pure: no I/O, no clock except
PyVRP's own runtime cap.

The translation (exact for everything but breaks):

* one PyVRP client per job to plan, each on its own location (so that two jobs at one
  road node can differ in who may take them); a worker's start and end are depots; an
  open route (``end_node`` None) ends at a virtual depot every job reaches at no cost;
* a worker is a vehicle type (identical workers share one): start and end depot, the
  shift as the vehicle's time window, ``capacity``, ``worker_fixed_cost``;
* a job's window, service time and demand as the client's; an optional job has its
  ``drop_penalty`` as prize; a mandatory one is a *required* client without a prize
  (``required=True``: PyVRP's search on a day where every job must be served ran 2.6
  times the iterations of the same day with prizes, and ~1.5 times again without a
  prize on the required ones, benchmarks/README.md) or, where that finds no plan with
  every mandatory job (more work than room), the planner's mandatory penalty as prize
  (larger than any plan's cost, the same disjunction as OR-Tools'). The required search
  gives up when its best still leaves a mandatory job out after a twentieth of its
  iterations (at least 50; by time, a twentieth of its time cap, when it has no
  iteration limit): PyVRP's first solution already holds every client when they fit,
  so that costs a day with more work than room about a twentieth more search;
* who may take a job (skills, ``worker_id``) and ``prefer_worker_id`` through routing
  profiles: a profile per distinct set of workers' rights and preferences, whose
  matrices make the arcs into a job a worker may not take longer than any shift (never
  feasible) and add ``prefer_penalty`` to the arcs into a job for every worker but the
  preferred one;
* a started job is not a client: its worker starts at the job's node when the job ends
  (its window is when it started), with what capacity it leaves.

Cost: travel seconds (the distance matrix) + fixed costs + prizes of the jobs left out,
the planner's objective. Breaks are left out here: a route that breaks a break is cut
back by the planner before OR-Tools sees it (OR-Tools puts the jobs back where they fit).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the planner imports this module
    from pyvrp.stop import StoppingCriterion

    from matching.planner import PlanJob, PlanProblem

__all__ = ["MAX_MATRIX_CELLS", "HgsResult", "solve_structure"]

# PyVRP's cost of an infeasible solution is the largest int64 ("a very large number");
# any real plan's cost here is far below this.
_INFEASIBLE_COST = 2**62

# Above this many matrix cells over all profiles (two int64 matrices each, 16 bytes a
# cell: 256 MB) the translation is not tried and OR-Tools plans alone.
MAX_MATRIX_CELLS = 16_000_000


@dataclass(frozen=True, slots=True)
class HgsResult:
    """Per worker (problem order) the indices into ``active`` in route order, started
    job first; the iterations PyVRP ran; whether its time cap stopped it; whether its
    best solution was feasible (if not, the planner cuts the routes back to what fits)."""

    routes: list[list[int]]
    iterations: int
    cut: bool
    feasible: bool


class _GiveUp:
    """A stopping criterion around ``inner``: also stops once ``probe_iterations``
    iterations (or, if None, ``probe_s`` seconds) have passed with the best solution
    still infeasible."""

    def __init__(
        self, inner: StoppingCriterion, probe_iterations: int | None, probe_s: float
    ) -> None:
        self.inner = inner
        self.probe_iterations = probe_iterations
        self.deadline = time.perf_counter() + probe_s
        self.calls = 0

    def __call__(self, best_cost: int) -> bool:
        if self.inner(best_cost):
            return True
        self.calls += 1
        if best_cost < _INFEASIBLE_COST:
            return False
        if self.probe_iterations is None:
            return time.perf_counter() >= self.deadline
        return self.calls > self.probe_iterations


def solve_structure(
    problem: PlanProblem,
    active: Sequence[PlanJob],
    able: dict[str, list[int]],
    vehicle_order: Sequence[int],
    *,
    fixed_cost: int,
    mandatory_penalty: int,
    iterations: int,
    time_cap_s: float,
    seed: int,
    required: bool,
) -> HgsResult | None:
    """PyVRP's routes for ``active`` (see the module doc), or None where the translation
    does not apply (too many profiles for the memory bound, a started job's worker with
    no time left). ``iterations`` 0: no iteration limit (only ``time_cap_s``).
    ``required``: the mandatory jobs are required clients (else prizes of
    ``mandatory_penalty``); if they do not all fit, the search gives up early (see the
    module doc) and its best is infeasible."""
    from pyvrp import Client, Depot, Location, ProblemData, VehicleType
    from pyvrp import solve as pyvrp_solve
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.solve import SolveParams
    from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria

    travel = problem.travel_s
    workers = list(problem.workers)
    started = {able[j.id][0]: k for k, j in enumerate(active) if j.started}
    clients = [k for k, j in enumerate(active) if not j.started]
    if not clients:
        return None

    # Depot locations: every worker's start (a started job's node), end, the virtual end.
    depot_keys: list[tuple[str, int]] = []  # ("node", n) or ("anywhere", 0)

    def depot(key: tuple[str, int]) -> int:
        if key not in depot_keys:
            depot_keys.append(key)
        return depot_keys.index(key)

    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    windows: dict[int, tuple[int, int]] = {}
    loads: dict[int, int | None] = {}
    for i in vehicle_order:
        w = workers[i]
        early, node, cap = w.shift[0], w.start_node, w.capacity
        if i in started:
            job = active[started[i]]
            node = job.node
            early = max(early, job.window[0] + job.service_s)
            cap = None if cap is None else cap - job.demand
        if early > w.shift[1] or (cap is not None and cap < 0):
            return None
        starts[i] = depot(("node", node))
        ends[i] = depot(("anywhere", 0) if w.end_node is None else ("node", w.end_node))
        windows[i] = (early, w.shift[1])
        loads[i] = cap
    n_dep = len(depot_keys)
    n = n_dep + len(clients)

    nodes = np.array(
        [key[1] for key in depot_keys] + [active[k].node for k in clients], dtype=np.int64
    )
    base = travel[np.ix_(nodes, nodes)].astype(np.int64)
    if ("anywhere", 0) in depot_keys:
        v = depot_keys.index(("anywhere", 0))
        base[:, v] = 0
        base[v, :] = 0
    np.fill_diagonal(base, 0)
    horizon = max([w.shift[1] for w in workers] + [active[k].window[1] for k in clients]) + 1
    forbid_dist = mandatory_penalty  # never worth it: more than leaving a mandatory job out

    # Profiles: what a worker may take and which preferred jobs are its own.
    generic_penalty = np.zeros(n, dtype=np.int64)
    for c, k in enumerate(clients):
        j = active[k]
        if j.prefer_worker_id is not None and j.prefer_penalty > 0:
            generic_penalty[n_dep + c] = j.prefer_penalty
    profile_keys: list[tuple[frozenset[int], frozenset[int]]] = []
    profile_of: dict[int, int] = {}
    worker_ids = [w.id for w in workers]
    for i in vehicle_order:
        barred = frozenset(c for c, k in enumerate(clients) if i not in able[active[k].id])
        own = frozenset(
            c for c, k in enumerate(clients) if active[k].prefer_worker_id == worker_ids[i]
        )
        key = (barred, own)
        if key not in profile_keys:
            profile_keys.append(key)
        profile_of[i] = profile_keys.index(key)
    if len(profile_keys) * n * n > MAX_MATRIX_CELLS:
        return None
    distances: list[Any] = []
    durations: list[Any] = []
    for barred, own in profile_keys:
        penalty = generic_penalty.copy()
        for c in own:
            penalty[n_dep + c] = 0
        dist = base + penalty[None, :]
        dur = base.copy()
        if barred:
            cols = np.array([n_dep + c for c in barred], dtype=np.int64)
            dist[:, cols] = forbid_dist
            dur[:, cols] = horizon
        np.fill_diagonal(dist, 0)
        np.fill_diagonal(dur, 0)
        distances.append(dist)
        durations.append(dur)

    # Vehicle types: workers alike in every attribute share one (in the seed's order).
    type_keys: list[tuple[int, int, int, int, int, int | None]] = []
    type_workers: list[list[int]] = []
    for i in vehicle_order:
        tkey = (starts[i], ends[i], *windows[i], profile_of[i], loads[i])
        if tkey not in type_keys:
            type_keys.append(tkey)
            type_workers.append([])
        type_workers[type_keys.index(tkey)].append(i)
    any_capacity = any(load is not None for load in loads.values())
    total_demand = sum(active[k].demand for k in clients)
    vehicle_types = []
    for tkey, members in zip(type_keys, type_workers, strict=True):
        start, end, early, late, profile, load = tkey
        capacity = [total_demand if load is None else load] if any_capacity else []
        vehicle_types.append(
            VehicleType(
                num_available=len(members),
                capacity=capacity,
                start_depot=start,
                end_depot=end,
                fixed_cost=fixed_cost,
                tw_early=early,
                tw_late=late,
                profile=profile,
            )
        )
    locations = [Location(0.0, 0.0) for _ in range(n)]
    depots = [Depot(location=d, tw_early=0, tw_late=horizon) for d in range(n_dep)]
    pyvrp_clients = []
    for c, k in enumerate(clients):
        j = active[k]
        # A required client gets no prize: one with a prize (which changes nothing in the
        # cost, it is always served) made PyVRP's search ~1.5 times slower per iteration
        # (c2_10_1 at 60 s: 28,710 against 45,241 iterations, benchmarks/README.md).
        if j.drop_penalty is not None:
            prize = j.drop_penalty
        else:
            prize = 0 if required else mandatory_penalty
        pyvrp_clients.append(
            Client(
                location=n_dep + c,
                delivery=[j.demand] if any_capacity else [],
                service_duration=j.service_s,
                tw_early=j.window[0],
                tw_late=j.window[1],
                prize=prize,
                required=required and j.drop_penalty is None,
            )
        )
    data = ProblemData(
        locations, pyvrp_clients, depots, vehicle_types, distances, durations, [], []
    )
    criteria: list[StoppingCriterion] = [MaxRuntime(time_cap_s)]
    if iterations:
        criteria.append(MaxIterations(iterations))
    stop: StoppingCriterion = MultipleCriteria(criteria)
    if required and any(active[k].drop_penalty is None for k in clients):
        probe = max(50, iterations // 20) if iterations else None
        stop = _GiveUp(stop, probe, time_cap_s / 20)
    with warnings.catch_warnings():
        # PyVRP warns when its penalties reach their bound: expected on the required
        # search of a day with more work than room, which then gives up.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = pyvrp_solve(
            data,
            stop=stop,
            seed=seed,
            collect_stats=False,
            display=False,
            params=SolveParams(),
        )
    done = int(result.num_iterations)
    cut = not iterations or done < iterations
    routes: list[list[int]] = [[] for _ in workers]
    for i, k in started.items():
        routes[i] = [k]
    taken = [0] * len(type_workers)
    for route in result.best.routes():
        t = int(route.vehicle_type())
        i = type_workers[t][taken[t]]
        taken[t] += 1
        routes[i] += [clients[int(a.idx)] for a in route if a.is_client()]
    return HgsResult(routes, done, cut, bool(result.best.is_feasible()))

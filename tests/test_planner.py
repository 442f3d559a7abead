"""The route planner (matching/planner.py): hand-checkable instances, insertion against
brute force, determinism, re-planning with started jobs, params and travel matrices."""

from __future__ import annotations

import itertools
import multiprocessing
import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from doorstep.params import ParamsError, from_mapping, load_toml
from matching.errors import PlanError
from matching.planner import (
    Plan,
    PlanBreak,
    PlanJob,
    PlannerParams,
    PlanProblem,
    PlanWorker,
    insertions,
    plan,
    road_matrix,
    straight_matrix,
)

REPO = Path(__file__).resolve().parent.parent
FAST = PlannerParams(time_limit_s=5.0, solution_limit=200)

# Four points on a line, 600 s apart: node i is at 600·i seconds.
LINE = np.array([[abs(i - j) * 600 for j in range(4)] for i in range(4)], dtype=np.int64)


def worker(id: str = "w", **changes: object) -> PlanWorker:
    """A worker at node 0 all day (0-10000 s), route ending at its last job."""
    base = PlanWorker(id=id, start_node=0, end_node=None, shift=(0, 10_000))
    return replace(base, **changes)  # type: ignore[arg-type]


def job(id: str, node: int, **changes: object) -> PlanJob:
    """A mandatory 300 s job at ``node``, any time of the day."""
    base = PlanJob(id=id, node=node, service_s=300, window=(0, 10_000))
    return replace(base, **changes)  # type: ignore[arg-type]


def route_of(result: Plan, worker_id: str) -> list[str]:
    """The job ids on ``worker_id``'s route, in order."""
    (route,) = [r for r in result.routes if r.worker_id == worker_id]
    return [s.job_id for s in route.stops]


def assert_valid(problem: PlanProblem, result: Plan) -> None:
    """Every served job keeps its window, skills, pin, travel times, breaks and shift."""
    jobs = {j.id: j for j in problem.jobs}
    workers = {w.id: w for w in problem.workers}
    served = [s.job_id for r in result.routes for s in r.stops]
    assert len(served) == len(set(served))
    assert set(served) | {d.job_id for d in result.dropped} == set(jobs)
    assert not set(served) & {d.job_id for d in result.dropped}
    for route in result.routes:
        w = workers[route.worker_id]
        prev_node, prev_dep = w.start_node, w.shift[0]
        busy: list[tuple[int, int]] = []
        for k, stop in enumerate(route.stops):
            j = jobs[stop.job_id]
            assert j.skills <= w.skills or j.started
            assert j.worker_id in (None, w.id)
            assert j.window[0] <= stop.start_s <= j.window[1]
            assert stop.arrival_s <= stop.start_s
            assert stop.departure_s == stop.start_s + j.service_s
            assert stop.slack_s >= 0
            breaks_between = sum(d for s, d in route.breaks if prev_dep <= s < stop.start_s)
            if k or not j.started:
                need = int(problem.travel_s[prev_node, j.node]) + breaks_between
                assert stop.start_s - prev_dep >= need
            busy.append((stop.start_s, stop.departure_s))
            prev_node, prev_dep = j.node, stop.departure_s
        if route.stops:
            back = 0 if w.end_node is None else int(problem.travel_s[prev_node, w.end_node])
            assert prev_dep + back <= w.shift[1]
            assert len(route.breaks) == len(w.breaks)
        for (start, duration), b in zip(route.breaks, w.breaks, strict=False):
            assert b.earliest_s <= start <= b.latest_s
            assert duration == b.duration_s
            for s0, s1 in busy:
                assert start + duration <= s0 or start >= s1  # never during a service


# --- hand-checkable instances -----------------------------------------------------------


def test_windows_decide_the_order_and_the_times() -> None:
    """A window forces the far job first; start, arrival, departure and slack are exact."""
    problem = PlanProblem(
        LINE,
        jobs=(job("a", 1, window=(3000, 3600)), job("b", 3, window=(1800, 2000))),
        workers=(worker(),),
    )
    result = plan(problem, FAST)
    assert_valid(problem, result)
    (route,) = result.routes
    b, a = route.stops
    assert (b.job_id, b.arrival_s, b.start_s, b.departure_s) == ("b", 1800, 1800, 2100)
    assert (a.job_id, a.arrival_s, a.start_s, a.departure_s) == ("a", 3300, 3300, 3600)
    assert (b.slack_s, a.slack_s) == (200, 300)  # b: own window; a: own window end
    assert (route.travel_s, route.distance_m) == (3000, 3000)
    assert result.objective == 3000
    assert result.dropped == ()


def test_route_back_home_counts_and_bounds_the_shift() -> None:
    """With an end node the travel home counts, and the shift must cover it."""
    problem = PlanProblem(LINE, jobs=(job("a", 3),), workers=(worker(end_node=0, shift=(0, 3900)),))
    result = plan(problem, FAST)
    (route,) = result.routes
    assert route.travel_s == 3600
    assert route.stops[0].slack_s == 0  # 1800 + 300 + 1800 = 3900: no later start fits
    tight = replace(problem, workers=(worker(end_node=0, shift=(0, 3899)),))
    assert plan(tight, FAST).dropped[0].reason == "window_unreachable"


def test_break_is_placed_between_jobs_not_during_service() -> None:
    """A lunch break that cannot wait until the end is taken between the two jobs."""
    problem = PlanProblem(
        LINE,
        jobs=(job("a", 1, service_s=600, window=(600, 5000)), job("b", 2, service_s=600)),
        workers=(worker(breaks=(PlanBreak(2000, 2100, 1000),)),),
    )
    result = plan(problem, FAST)
    assert_valid(problem, result)
    (route,) = result.routes
    a, b = route.stops
    assert (a.start_s, b.start_s) == (600, 3000)  # 1200 leave, break 2000-3000, travel in idle
    assert route.breaks == ((2000, 1000),)
    assert (a.slack_s, b.slack_s) == (900, 6400)  # a may start until 1500: break at 2100


def test_break_after_the_last_job_costs_nothing() -> None:
    """A break whose window is after the day's work delays nothing."""
    problem = PlanProblem(
        LINE,
        jobs=(job("a", 1),),
        workers=(worker(breaks=(PlanBreak(5000, 6000, 1800),)),),
    )
    result = plan(problem, FAST)
    (route,) = result.routes
    assert route.stops[0].start_s == 600
    assert route.breaks == ((5000, 1800),)


def test_skills_keep_a_job_off_unskilled_workers() -> None:
    """A job goes only to a worker with its skill, even past a closer one, and is dropped as no_skilled_worker when nobody has it."""
    # A gas job goes to the gas fitter though another worker is closer; an electrician's job
    # with no electrician is dropped.
    problem = PlanProblem(
        LINE,
        jobs=(
            job("gas", 1, skills=frozenset({"gas"})),
            job("plain", 0),
            job("wiring", 1, skills=frozenset({"electric"})),
        ),
        workers=(
            worker("near"),
            worker("fitter", start_node=3, skills=frozenset({"gas"})),
        ),
    )
    result = plan(problem, FAST)
    assert_valid(problem, result)
    assert route_of(result, "fitter") == ["gas"]
    assert route_of(result, "near") == ["plain"]
    assert [(d.job_id, d.reason) for d in result.dropped] == [("wiring", "no_skilled_worker")]


def test_dropped_jobs_carry_their_reasons() -> None:
    """Outside every shift, unreachable in its window, no room, not worth it: each named."""
    problem = PlanProblem(
        LINE,
        jobs=(
            job("late", 1, window=(20_000, 21_000)),
            job("rushed", 3, window=(100, 200)),
            job("first", 1, window=(1000, 1000), service_s=600),
            job("second", 1, window=(1000, 1000), service_s=600),
            job("cheap", 3, drop_penalty=10),
        ),
        workers=(worker(),),
    )
    result = plan(problem, FAST)
    assert_valid(problem, result)
    reasons = {d.job_id: d.reason for d in result.dropped}
    assert reasons.pop("late") == "outside_shifts"
    assert reasons.pop("rushed") == "window_unreachable"
    assert sorted(reasons) in (["cheap", "second"], ["cheap", "first"])
    assert reasons["cheap"] == "not_worth_serving"
    assert set(reasons.values()) == {"no_room", "not_worth_serving"}
    assert result.objective == 600 + 10  # travel to node 1, plus the dropped optional job


def test_pinned_job_goes_to_its_worker() -> None:
    """A job fixed to a worker is served by that worker even when another is closer."""
    problem = PlanProblem(
        LINE,
        jobs=(job("a", 1, worker_id="far"),),
        workers=(worker("near"), worker("far", start_node=3)),
    )
    result = plan(problem, FAST)
    assert route_of(result, "far") == ["a"]
    assert route_of(result, "near") == []
    gone = replace(problem, jobs=(job("a", 1, worker_id="nobody"),))
    assert plan(gone, FAST).dropped[0].reason == "worker_unavailable"


def test_preferred_worker_is_kept_when_the_penalty_is_worth_it() -> None:
    """Continuity: the preferred worker takes the job if the penalty beats the extra travel."""
    workers = (worker("near"), worker("usual", start_node=3))
    soft = PlanProblem(
        LINE, jobs=(job("a", 1, prefer_worker_id="usual", prefer_penalty=500),), workers=workers
    )
    strong = PlanProblem(
        LINE, jobs=(job("a", 1, prefer_worker_id="usual", prefer_penalty=1500),), workers=workers
    )
    assert route_of(plan(soft, FAST), "near") == ["a"]  # 600 + 500 < 1200
    result = plan(strong, FAST)
    assert route_of(result, "usual") == ["a"]  # 1200 < 600 + 1500
    assert result.objective == 1200


def test_started_job_stays_first_when_replanning() -> None:
    """Re-planning keeps a started job first on its worker, even where another order would be shorter, and plans the rest after it."""
    jobs = (job("s", 2, window=(1200, 1300)), job("c", 1))
    first = plan(PlanProblem(LINE, jobs=jobs, workers=(worker("a"), worker("b"))), FAST)
    (owner,) = [r for r in first.routes if "s" in [x.job_id for x in r.stops]]
    started_at = next(x.start_s for x in owner.stops if x.job_id == "s")
    replanned_jobs = (
        job("s", 2, window=(started_at, started_at), worker_id=owner.worker_id, started=True),
        job("c", 1),
        job("new", 1, window=(0, 10_000)),
    )
    problem = PlanProblem(
        LINE,
        jobs=replanned_jobs,
        workers=(worker("a", shift=(1500, 10_000)), worker("b", shift=(1500, 10_000))),
    )
    for seed in range(3):
        result = plan(problem, FAST, seed=seed)
        assert_valid(problem, result)
        assert route_of(result, owner.worker_id)[0] == "s"
        assert result.dropped == ()


def test_started_job_with_only_one_worker_is_first_not_cheapest() -> None:
    """With one worker the started job comes first although doing the job on the way first would be shorter."""
    # That shorter order would also keep every window.
    problem = PlanProblem(
        LINE,
        jobs=(job("c", 1), job("s", 2, window=(1800, 1800), worker_id="w", started=True)),
        workers=(worker(),),
    )
    result = plan(problem, FAST)
    assert_valid(problem, result)
    assert route_of(result, "w") == ["s", "c"]


def test_capacity_limits_a_worker() -> None:
    """With capacity 2, three unit-demand jobs need two workers."""
    problem = PlanProblem(
        LINE,
        jobs=tuple(job(f"j{i}", 1 + i % 3, demand=1) for i in range(3)),
        workers=(worker("a", capacity=2), worker("b", capacity=2)),
    )
    result = plan(problem, FAST)
    assert sorted(len(r.stops) for r in result.routes) == [1, 2]


# --- against brute force ----------------------------------------------------------------


def simulate(
    problem: PlanProblem, w: PlanWorker, seq: Sequence[PlanJob], fixed_break: int | None
) -> bool:
    """Independent check of one route: every gap for the (at most one) break, its start
    fixed at ``fixed_break``; travel may be split around it. True if some gap works."""
    travel = problem.travel_s
    gaps = range(len(seq) + 2) if w.breaks else [None]
    for gap in gaps:
        t, node, ok = w.shift[0], w.start_node, True
        for k, j in enumerate(seq):
            leg = int(travel[node, j.node])
            if gap == k and fixed_break is not None:
                if fixed_break < t:
                    ok = False
                    break
                done = min(leg, fixed_break - t)
                arrival = fixed_break + w.breaks[0].duration_s + leg - done
            else:
                arrival = t + leg
            start = max(arrival, j.window[0])
            if start > j.window[1]:
                ok = False
                break
            t, node = start + j.service_s, j.node
        if not ok:
            continue
        leg = 0 if w.end_node is None else int(travel[node, w.end_node])
        if gap == len(seq) and fixed_break is not None:
            if fixed_break < t:
                continue
            t = fixed_break + w.breaks[0].duration_s + leg - min(leg, fixed_break - t)
        else:
            t += leg
        if t > w.shift[1]:
            continue
        if gap == len(seq) + 1 and fixed_break is not None and fixed_break < t:
            continue
        return True
    return False


def brute_feasible(problem: PlanProblem, w: PlanWorker, seq: Sequence[PlanJob]) -> bool:
    """Whether ``seq`` can be served by ``w``, trying every integer break start."""
    if not w.breaks:
        return simulate(problem, w, seq, None)
    b = w.breaks[0]
    return any(simulate(problem, w, seq, s) for s in range(b.earliest_s, b.latest_s + 1))


def tiny_problem(rng: random.Random, n_jobs: int, with_breaks: bool) -> PlanProblem:
    """Random points on a 30x30 grid, short windows, two or three workers."""
    n = n_jobs + 3
    pts = [(rng.randint(0, 30), rng.randint(0, 30)) for _ in range(n)]
    travel = np.array(
        [[abs(a[0] - b[0]) + abs(a[1] - b[1]) for b in pts] for a in pts], dtype=np.int64
    )
    jobs = []
    for i in range(n_jobs):
        open_at = rng.randint(0, 150)
        jobs.append(
            PlanJob(
                f"j{i}",
                3 + i,
                rng.randint(5, 20),
                (open_at, open_at + rng.randint(10, 80)),
                drop_penalty=rng.choice([None, 40, 500]),
            )
        )
    workers = []
    for k in range(rng.randint(2, 3)):
        breaks: tuple[PlanBreak, ...] = ()
        if with_breaks and rng.random() < 0.7:
            e = rng.randint(30, 120)
            breaks = (PlanBreak(e, e + rng.randint(0, 40), rng.randint(5, 30)),)
        end = rng.choice([None, k])
        workers.append(PlanWorker(f"w{k}", k, end, (rng.randint(0, 20), 220), breaks=breaks))
    return PlanProblem(travel, tuple(jobs), tuple(workers))


@pytest.mark.parametrize("case", range(12))
def test_insertions_match_brute_force(case: int) -> None:
    """insertions() finds exactly the places, with the right added travel, where a brute-force simulation says the route still works."""
    # The simulation is independent of the planner and tries every break start.
    rng = random.Random(case)
    problem = tiny_problem(rng, n_jobs=5, with_breaks=case % 3 != 0)
    current = plan(problem, PlannerParams(time_limit_s=5.0, solution_limit=50), seed=case)
    assert_valid(problem, current)
    n = problem.travel_s.shape[0]
    new_node = rng.randrange(n)
    open_at = rng.randint(0, 150)
    new = PlanJob("new", new_node, rng.randint(5, 20), (open_at, open_at + rng.randint(10, 80)))
    jobs = {j.id: j for j in problem.jobs}
    expected: dict[tuple[str, int], int] = {}
    for route in current.routes:
        w = next(x for x in problem.workers if x.id == route.worker_id)
        seq = [jobs[s.job_id] for s in route.stops]
        nodes = [w.start_node, *(j.node for j in seq), w.end_node]
        for p in range(len(seq) + 1):
            if brute_feasible(problem, w, [*seq[:p], new, *seq[p:]]):
                a, b = nodes[p], nodes[p + 1]
                leg = problem.travel_s
                added = int(leg[a, new_node]) - (0 if b is None else int(leg[a, b]))
                added += 0 if b is None else int(leg[new_node, b])
                expected[(w.id, p)] = added
    found = insertions(problem, current, new)
    assert {(i.worker_id, i.position): i.added_travel_s for i in found} == expected
    assert [i.added_travel_s for i in found] == sorted(i.added_travel_s for i in found)
    for i in found:
        assert new.window[0] <= i.start_s <= new.window[1]
        assert i.arrival_s <= i.start_s


@pytest.mark.parametrize("case", range(6))
def test_plan_is_optimal_on_tiny_instances(case: int) -> None:
    """On tiny instances the plan's travel equals the exhaustive optimum over every assignment and order."""
    # Each instance has five mandatory jobs and two workers.
    rng = random.Random(100 + case)
    problem = tiny_problem(rng, n_jobs=5, with_breaks=False)
    problem = replace(
        problem,
        jobs=tuple(replace(j, drop_penalty=None, window=(0, 400)) for j in problem.jobs),
        workers=tuple(replace(w, shift=(0, 400)) for w in problem.workers[:2]),
    )

    def cost(w: PlanWorker, seq: Sequence[PlanJob]) -> int:
        nodes = [w.start_node, *(j.node for j in seq)]
        if w.end_node is not None:
            nodes.append(w.end_node)
        return sum(int(problem.travel_s[a, b]) for a, b in itertools.pairwise(nodes)) if seq else 0

    best = None
    w0, w1 = problem.workers
    for perm in itertools.permutations(problem.jobs):
        for cut in range(len(perm) + 1):
            first, second = perm[:cut], perm[cut:]
            if brute_feasible(problem, w0, first) and brute_feasible(problem, w1, second):
                total = cost(w0, first) + cost(w1, second)
                best = total if best is None else min(best, total)
    result = plan(problem, PlannerParams(time_limit_s=5.0, solution_limit=300))
    assert best is not None
    assert result.dropped == ()
    assert result.objective == best


# --- determinism ------------------------------------------------------------------------


def city_day(seed: int) -> PlanProblem:
    """40 jobs, 4 workers with lunch breaks, some skills and optional jobs."""
    rng = np.random.default_rng(seed)
    n = 44
    xy = rng.uniform(0, 8000, size=(n, 2))
    metres = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    travel = np.rint(metres / 6).astype(np.int64)
    jobs = tuple(
        PlanJob(
            f"j{i}",
            4 + i,
            int(rng.integers(1200, 3600)),
            (int(s), int(s) + 7200),
            skills=frozenset({"ac"}) if i % 7 == 0 else frozenset(),
            drop_penalty=None if i % 3 else 3000,
        )
        for i, s in enumerate(rng.integers(8 * 3600, 16 * 3600, size=40))
    )
    workers = tuple(
        PlanWorker(
            f"w{k}",
            k,
            k,
            (8 * 3600, 19 * 3600),
            skills=frozenset({"ac"}) if k < 2 else frozenset(),
            breaks=(PlanBreak(12 * 3600, 13 * 3600, 1800),),
        )
        for k in range(4)
    )
    return PlanProblem(travel, jobs, workers, distance_m=np.rint(metres).astype(np.int64))


def test_same_seed_same_plan() -> None:
    """Two solves with the same problem, params and seed return the identical plan."""
    # Both solves are stopped by the solution budget, not the clock.
    problem = city_day(7)
    params = PlannerParams(time_limit_s=30.0, solution_limit=150)
    first = plan(problem, params, seed=3)
    second = plan(problem, params, seed=3)
    assert first == second
    assert first.stopped_by == "budget"
    assert_valid(problem, first)
    others = [plan(problem, params, seed=s) for s in (4, 5, 6)]
    for other in others:
        assert_valid(problem, other)
    assert len({p.objective for p in [first, *others]}) > 1  # the seed does steer the search


def test_plan_in_a_process_pool_is_the_same_plan() -> None:
    """plan() pickles, runs in a spawned worker process and returns the very plan it gives in-process."""
    # This is how async callers keep the event loop free: OR-Tools holds the GIL.
    problem = city_day(5)
    params = PlannerParams(time_limit_s=30.0, solution_limit=60)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(partial(plan, problem, params, seed=2)).result(timeout=60)
    assert remote == plan(problem, params, seed=2)


@pytest.mark.parametrize(
    "params",
    [
        PlannerParams(time_limit_s=30.0, solution_limit=120, operators="all"),
        PlannerParams(time_limit_s=30.0, solution_limit=120, fleet_first_share=0.5),
    ],
)
def test_other_search_settings_are_reproducible_too(params: PlannerParams) -> None:
    """Other search settings still give a valid plan, the same twice."""
    # The settings: all of OR-Tools' operators, or a first stage that minimises workers.
    problem = city_day(9)
    first = plan(problem, params, seed=1)
    assert first == plan(problem, params, seed=1)
    assert first.stopped_by == "budget"
    assert_valid(problem, first)


def test_time_limit_cap_is_reported() -> None:
    """With no budget and a tiny wall-clock cap the plan says the clock stopped it."""
    problem = city_day(8)
    result = plan(problem, PlannerParams(time_limit_s=0.2, solution_limit=0))
    assert result.stopped_by == "time_limit"
    assert_valid(problem, result)


def test_empty_problem_plans_nothing() -> None:
    """No jobs: every worker gets an empty route, no search runs."""
    result = plan(PlanProblem(LINE, (), (worker("a"), worker("b"))), FAST)
    assert [r.stops for r in result.routes] == [(), ()]
    assert (result.objective, result.stopped_by) == (0, "no_search")


# --- validation and params --------------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "field"),
    [
        (PlanProblem(LINE, (job("a", 9),), (worker(),)), "jobs[0].node"),
        (PlanProblem(LINE, (job("a", 1, window=(5, 4)),), (worker(),)), "jobs[0].window"),
        (PlanProblem(LINE, (job("a", 1, started=True),), (worker(),)), "jobs[0].worker_id"),
        (PlanProblem(LINE, (job("a", 1), job("a", 2)), (worker(),)), "jobs"),
        (PlanProblem(LINE, (), (worker(shift=(10, 5)),)), "workers[0].shift"),
        (
            PlanProblem(LINE, (), (worker(breaks=(PlanBreak(50, 60, 5), PlanBreak(10, 20, 5))),)),
            "workers[0].breaks",
        ),
        (
            PlanProblem(LINE, (), (worker(shift=(100, 5000), breaks=(PlanBreak(0, 50, 5),)),)),
            "workers[0].breaks[0]",
        ),
        (PlanProblem(LINE.astype(np.float64), (), (worker(),)), "travel_s"),
        (PlanProblem(LINE[:3], (), (worker(),)), "travel_s"),
    ],
)
def test_bad_problem_names_the_field(problem: PlanProblem, field: str) -> None:
    """A malformed problem is a PlanError naming the offending field."""
    with pytest.raises(PlanError) as info:
        plan(problem, FAST)
    assert info.value.field == field


def test_insertions_refuse_a_started_or_planned_job() -> None:
    """insertions() refuses a started job and a job that is already on a route."""
    problem = PlanProblem(LINE, (job("a", 1),), (worker(),))
    current = plan(problem, FAST)
    with pytest.raises(PlanError):
        insertions(problem, current, job("x", 2, worker_id="w", started=True))
    with pytest.raises(PlanError):
        insertions(problem, current, job("a", 1))


def test_params_file_holds_the_planner_defaults() -> None:
    """params/doorstep.toml's [planner] table equals the defaults in code."""
    table = load_toml(REPO / "params" / "doorstep.toml")["planner"]
    assert from_mapping(PlannerParams, table, section="planner") == PlannerParams()
    assert set(table) == set(PlannerParams.__dataclass_fields__)


@pytest.mark.parametrize(
    ("table", "word"),
    [
        ({"time_limit_s": 0}, "time_limit_s"),
        ({"first_solution": "FASTEST"}, "first_solution"),
        ({"metaheuristic": "ANNEALING"}, "metaheuristic"),
        ({"solution_limit": -1}, "solution_limit"),
        ({"gls_lambda": 0.0}, "gls_lambda"),
        ({"operators": "some"}, "operators"),
        ({"fleet_first_share": 1.0}, "fleet_first_share"),
        ({"branch_limit": -5}, "branch_limit"),
        ({"branches_per_job": -1}, "branches_per_job"),
        ({"route_search": "hgs"}, "route_search"),
        ({"pyvrp_iterations": -1}, "pyvrp_iterations"),
        ({"pyvrp_share": 1.0}, "pyvrp_share"),
    ],
)
def test_bad_planner_params_are_refused(table: dict[str, object], word: str) -> None:
    """A bad [planner] value is a ParamsError whose message names the key."""
    with pytest.raises(ParamsError) as info:
        from_mapping(PlannerParams, table, section="planner")
    assert word in str(info.value)
    assert info.value.field == "planner"


# --- travel matrices --------------------------------------------------------------------


def test_road_matrix_agrees_with_the_road_eta() -> None:
    """road_matrix's seconds equal tracking.eta's road ETA between the same points and its metres are at least the straight line."""
    from geo.coords import haversine_m
    from geo.roadgraph import load_futian_graph
    from tracking.eta import EtaParams, destination_times, eta_s

    graph = load_futian_graph()
    points = [  # near four graph nodes, off by ~50 m so the access legs count
        (float(graph.lat[i]) + 0.0004, float(graph.lng[i]) - 0.0003) for i in (0, 300, 700, 1100)
    ]
    seconds, metres = road_matrix(graph, points)
    assert seconds.dtype == np.int64
    assert seconds.shape == (4, 4)
    assert (np.diag(seconds) == 0).all()
    assert (np.diag(metres) == 0).all()
    for j, dest in enumerate(points):
        times = destination_times(graph, *dest)
        for i, origin in enumerate(points):
            if i != j:
                eta, kind = eta_s(times, graph, *origin, EtaParams())
                assert kind == "road"
                assert abs(seconds[i, j] - eta) <= 1
                assert metres[i, j] >= haversine_m(*origin, *dest) - 1
    slower, _ = road_matrix(graph, points, speed_factor=0.5)
    assert (slower[~np.eye(4, dtype=bool)] > seconds[~np.eye(4, dtype=bool)]).all()


def test_straight_matrix_is_haversine_over_speed() -> None:
    """One degree of latitude is ~111.2 km; at 10 m/s that is ~11,119 s."""
    seconds, metres = straight_matrix([(22.0, 114.0), (23.0, 114.0)], speed_mps=10.0)
    assert abs(int(metres[0, 1]) - 111_195) <= 2
    assert metres[0, 1] == metres[1, 0]
    assert abs(int(seconds[0, 1]) - 11_120) <= 1
    with pytest.raises(ValueError, match="speed_mps"):
        straight_matrix([(22.0, 114.0)], speed_mps=0.0)

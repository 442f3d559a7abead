"""The planner's PyVRP stage (matching/pyvrp_stage.py): what the translation keeps, the
hand-over to OR-Tools (breaks), reproducibility and the fallback to OR-Tools alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import matching.pyvrp_stage as stage
from matching import planner
from matching.planner import (
    PlanBreak,
    PlanJob,
    PlannerParams,
    PlanProblem,
    PlanWorker,
    plan,
)
from tests.test_planner import LINE, assert_valid, city_day, job, route_of, worker

BIG = 100_000  # a mandatory job's prize in these tests: more than any route


def random_day(seed: int, jobs: int = 30, workers: int = 4) -> PlanProblem:
    """Jobs and homes at random points, windows of 1-3 h, some skills, pins, optional jobs."""
    rng = np.random.default_rng(seed)
    n = jobs + workers
    xy = rng.uniform(0, 6000, size=(n, 2))
    travel = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) / 6)
    day = tuple(
        PlanJob(
            f"j{i}",
            workers + i,
            int(rng.integers(600, 2400)),
            (int(s), int(s) + int(rng.integers(1, 4)) * 3600),
            skills=frozenset({"gas"}) if i % 5 == 0 else frozenset(),
            worker_id="w3" if i % 11 == 1 else None,
            drop_penalty=None if i % 4 else int(rng.integers(100, 3000)),
            demand=int(rng.integers(1, 4)),
        )
        for i, s in enumerate(rng.integers(8 * 3600, 15 * 3600, size=jobs))
    )
    team = tuple(
        PlanWorker(
            f"w{k}",
            k,
            k if k % 2 else None,
            (8 * 3600, (18 if k else 14) * 3600),
            skills=frozenset({"gas"}) if k < 2 else frozenset(),
            capacity=12,
        )
        for k in range(workers)
    )
    return PlanProblem(travel.astype(np.int64), day, team)


def plannable(problem: PlanProblem) -> dict[str, list[int]]:
    """Who may take each job of ``problem`` (every job must be plannable)."""
    able = {}
    for j in problem.jobs:
        who = planner._able(problem, j)
        assert isinstance(who, list)
        able[j.id] = who
    return able


def structure(problem: PlanProblem, seed: int = 0, iterations: int = 300) -> dict[str, list[str]]:
    """The PyVRP stage alone on ``problem`` (every job plannable): job ids per worker."""
    able = plannable(problem)
    active = list(problem.jobs)
    found = stage.solve_structure(
        problem,
        active,
        able,
        list(range(len(problem.workers))),
        fixed_cost=0,
        mandatory_penalty=BIG,
        iterations=iterations,
        time_cap_s=60.0,
        seed=seed,
        required=False,
    )
    assert found is not None
    assert found.feasible
    assert found.iterations == iterations
    assert not found.cut
    return {
        w.id: [active[k].id for k in r] for w, r in zip(problem.workers, found.routes, strict=True)
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pyvrp_routes_keep_skills_pins_shifts_windows_and_capacity(seed: int) -> None:
    """Every route PyVRP returns has skilled, pinned workers only and a timing that keeps windows, shift and capacity."""
    problem = random_day(seed)
    jobs = {j.id: j for j in problem.jobs}
    routes = structure(problem, seed)
    served = [j for r in routes.values() for j in r]
    assert len(served) == len(set(served))
    for w in problem.workers:
        seq = [jobs[j] for j in routes[w.id]]
        for j in seq:
            assert j.skills <= w.skills
            assert j.worker_id in (None, w.id)
        assert planner._timing(problem, w, seq) is not None  # windows, shift, end, capacity
    mandatory = {j.id for j in problem.jobs if j.drop_penalty is None}
    fits = {j.id for j in problem.jobs if planner._alone_reason(problem, j, [0, 1, 2, 3]) is None}
    assert len(mandatory & set(served)) >= len(mandatory & fits) - 3  # a full day drops a few


def test_pyvrp_keeps_a_started_job_first_and_starts_after_it() -> None:
    """A started job is first on its worker's route and the next job starts after it ends."""
    problem = PlanProblem(
        LINE,
        jobs=(
            job("near", 1),
            job("s", 3, window=(1800, 1800), service_s=900, worker_id="w", started=True),
            job("after", 2, window=(0, 3400)),
        ),
        workers=(worker(),),
    )
    routes = structure(problem)
    assert routes["w"][0] == "s"
    assert sorted(routes["w"]) == ["after", "near", "s"]
    seq = [next(j for j in problem.jobs if j.id == x) for x in routes["w"]]
    timing = planner._timing(problem, problem.workers[0], seq)
    assert timing is not None
    assert timing.starts[1] >= 1800 + 900 + 600  # s ends at 2700, then 600 s to node 2


def test_pyvrp_drops_an_optional_job_only_when_its_penalty_is_below_the_detour() -> None:
    """An optional job is left out when its drop penalty is below the travel it needs, served otherwise; mandatory jobs always."""
    cheap = PlanProblem(
        LINE, jobs=(job("m", 1), job("o", 3, drop_penalty=100)), workers=(worker(),)
    )
    dear = replace(cheap, jobs=(job("m", 1), job("o", 3, drop_penalty=5000)))
    assert structure(cheap)["w"] == ["m"]
    assert structure(dear)["w"] == ["m", "o"]


def test_pyvrp_follows_the_preferred_worker_like_ortools() -> None:
    """prefer_worker_id moves the job to the preferred worker exactly when its penalty beats the extra travel."""
    workers = (worker("near"), worker("usual", start_node=3))
    soft = PlanProblem(
        LINE, jobs=(job("a", 1, prefer_worker_id="usual", prefer_penalty=500),), workers=workers
    )
    strong = replace(soft, jobs=(job("a", 1, prefer_worker_id="usual", prefer_penalty=1500),))
    assert structure(soft)["near"] == ["a"]
    assert structure(strong)["usual"] == ["a"]


def test_pyvrp_route_ends_at_the_end_depot_or_the_last_job() -> None:
    """With end_node set the way back counts (the nearer job last); an open route ends where it likes."""
    jobs = (job("one", 1), job("three", 3))
    back_home = PlanProblem(LINE, jobs=jobs, workers=(worker(end_node=0),))
    open_end = PlanProblem(LINE, jobs=jobs, workers=(worker(),))
    assert structure(open_end)["w"] == ["one", "three"]  # 600 + 1200, no way back
    assert structure(back_home)["w"] in (["one", "three"], ["three", "one"])  # 3600 either way
    at_three = PlanProblem(LINE, jobs=jobs, workers=(worker(end_node=3),))
    assert structure(at_three)["w"] == ["one", "three"]


def test_breaks_are_fitted_by_ortools_after_pyvrp() -> None:
    """A fixed break PyVRP does not know about is kept in the final plan, every job still served."""
    # Without the break the worker would do a, b, c back to back from 600 to 3300; the break
    # at 1000-2000 must fall between services, never in one.
    problem = PlanProblem(
        LINE,
        jobs=(
            job("a", 1, service_s=300),
            job("b", 2, service_s=300),
            job("c", 3, service_s=300),
        ),
        workers=(worker(breaks=(PlanBreak(1000, 1000, 1000),)),),
    )
    result = plan(problem, PlannerParams(time_limit_s=30.0, solution_limit=50))
    assert_valid(problem, result)
    assert result.dropped == ()
    assert result.search.iterations == PlannerParams().pyvrp_iterations
    assert result.routes[0].breaks == ((1000, 1000),)


def test_same_input_and_seed_give_the_same_plan_through_pyvrp() -> None:
    """With the PyVRP stage the same problem, params and seed give the identical plan, stopped by the budget."""
    problem = city_day(4)
    params = PlannerParams(time_limit_s=60.0, solution_limit=100, pyvrp_iterations=400)
    first = plan(problem, params, seed=5)
    assert first == plan(problem, params, seed=5)
    assert first.stopped_by == "budget"
    assert (first.search.iterations, first.search.iteration_limit) == (400, 400)
    assert_valid(problem, first)


def test_translation_falls_back_to_ortools_alone_when_it_does_not_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the profiles would not fit the memory bound the plan is OR-Tools' own, as with route_search = "ortools"."""
    problem = city_day(6)
    params = PlannerParams(time_limit_s=60.0, solution_limit=80)
    alone = plan(problem, replace(params, route_search="ortools"), seed=2)
    monkeypatch.setattr(stage, "MAX_MATRIX_CELLS", 1)
    fallback = plan(problem, params, seed=2)
    assert fallback == alone
    assert fallback.search.iterations == 0
    assert_valid(problem, fallback)


def test_pinned_job_for_an_absent_worker_still_plans_the_rest() -> None:
    """A job pinned to a worker not in the problem is dropped as worker_unavailable; PyVRP plans the others."""
    problem = PlanProblem(
        LINE,
        jobs=(job("a", 1, worker_id="nobody"), job("b", 2), job("c", 3, worker_id="far")),
        workers=(worker("near"), worker("far", start_node=3)),
    )
    result = plan(problem, PlannerParams(time_limit_s=30.0, solution_limit=50))
    assert [(d.job_id, d.reason) for d in result.dropped] == [("a", "worker_unavailable")]
    assert route_of(result, "far")[0] == "c"
    assert result.search.iterations > 0


def roomy_day() -> PlanProblem:
    """Twelve mandatory 5-minute jobs on a line, wide windows, three workers free all day."""
    jobs = tuple(job(f"j{i}", 1 + i % 3, window=(1000, 9000)) for i in range(12))
    return PlanProblem(LINE, jobs, tuple(worker(f"w{k}") for k in range(3)))


def crowded_day() -> PlanProblem:
    """Forty jobs (a quarter optional) for four workers whose loads hold about 24."""
    return random_day(4, jobs=40, workers=4)


def searches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, stage.HgsResult | None]]:
    """Records each PyVRP search the planner runs: (required, what it returned)."""
    calls: list[tuple[bool, stage.HgsResult | None]] = []
    solve = stage.solve_structure

    def recorded(*args: Any, **kwargs: Any) -> stage.HgsResult | None:
        found = solve(*args, **kwargs)
        calls.append((kwargs["required"], found))
        return found

    monkeypatch.setattr(stage, "solve_structure", recorded)
    return calls


def test_a_day_with_room_is_one_pyvrp_search_with_the_mandatory_jobs_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where every mandatory job fits, PyVRP searches once, with them as required clients, and serves all."""
    problem = roomy_day()
    calls = searches(monkeypatch)
    result = plan(
        problem, PlannerParams(time_limit_s=60.0, solution_limit=50, pyvrp_iterations=200)
    )
    assert [(required, found is not None and found.feasible) for required, found in calls] == [
        (True, True)
    ]
    assert (result.search.iterations, result.search.iteration_limit) == (200, 200)
    assert result.dropped == ()
    assert_valid(problem, result)


def test_the_required_search_gives_up_early_on_a_day_with_more_work_than_room() -> None:
    """With more mandatory work than room, the required search stops after a twentieth of its iterations (at least 50), infeasible."""
    problem = crowded_day()
    active = list(problem.jobs)
    found = stage.solve_structure(
        problem,
        active,
        plannable(problem),
        [0, 1, 2, 3],
        fixed_cost=0,
        mandatory_penalty=BIG,
        iterations=1200,
        time_cap_s=60.0,
        seed=0,
        required=True,
    )
    assert found is not None
    assert not found.feasible
    assert found.iterations == 60  # 1200 / 20
    assert found.cut


def test_a_day_with_more_work_than_room_is_planned_by_the_prize_search_after_the_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the required search gives up, a prize search with the whole budget picks what to leave out; no job that fits is dropped."""
    problem = crowded_day()
    calls = searches(monkeypatch)
    params = PlannerParams(time_limit_s=60.0, solution_limit=50, pyvrp_iterations=400)
    result = plan(problem, params, seed=3)
    assert [required for required, _ in calls] == [True, False]
    first, second = (found for _, found in calls)
    assert first is not None
    assert not first.feasible
    assert first.iterations == 50
    assert second is not None
    assert second.feasible
    assert second.iterations == 400
    assert result.search.iterations == 450
    assert result.stopped_by == "budget"
    assert result == plan(problem, params, seed=3)  # still reproducible
    mandatory = {j.id for j in problem.jobs if j.drop_penalty is None}
    assert any(d.job_id in mandatory for d in result.dropped)  # the day really is too full
    assert {d.reason for d in result.dropped if d.job_id in mandatory} <= {"no_room"}
    assert_valid(problem, result)


def test_without_an_iteration_limit_the_required_search_gives_up_by_time_and_the_prize_search_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the clock alone (no work budget) an over-full day still gets the prize search after the required one gives up."""
    problem = crowded_day()
    calls = searches(monkeypatch)
    params = PlannerParams(time_limit_s=3.0, solution_limit=0, branch_limit=0, pyvrp_iterations=0)
    result = plan(problem, params, seed=1)
    assert [required for required, _ in calls] == [True, False]
    first, second = (found for _, found in calls)
    assert first is not None
    assert not first.feasible
    assert second is not None
    assert second.feasible
    assert second.iterations > 0
    assert result.stopped_by == "time_limit"
    mandatory = {j.id for j in problem.jobs if j.drop_penalty is None}
    assert {d.reason for d in result.dropped if d.job_id in mandatory} <= {"no_room"}
    assert_valid(problem, result)

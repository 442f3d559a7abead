"""Plan sizes benchmark: wall time, objective and reproducibility of a day plan, 10 to 500 jobs.

A seeded day in Shenzhen on the bundled OSM road graph (``load_city_graph("shenzhen")``,
the graph the server's day plans and ETAs use; travel through ``dispatch.plan_worker.Travel``
with the ``[eta]`` defaults), sized like issue 20's realistic day: one worker per 7.5
jobs (40 workers for 300 jobs), shifts 08:00–20:00 with a lunch gap (a break), jobs of
60–120 min with 2-hour arrival windows from 08:00 to 18:00, every job mandatory, homes
and jobs at random road nodes. For each size the road matrix is built once, then the
day is planned ``--runs`` times (``matching.planner.plan``, seed 0, the ``[planner]``
defaults or ``--params``) in this process, one after the other.

Per run: wall and CPU seconds (``time.process_time``: OR-Tools searches on one thread
of this process), why the search stopped, its solutions and branches against its
budget, the objective, jobs served and dropped (by reason; ``fit_but_dropped`` counts
dropped mandatory jobs that would fit the final plan: must be 0), and the mandatory jobs
the search left out that the repair step put back. ``same_plan``: every run returned
the identical plan, compared as serialised bytes (SHA-256 shown).

Usage::

    python benchmarks/plan_sizes.py --quick     # 10, 25, 50, 100 jobs
    python benchmarks/plan_sizes.py             # 10 … 500 jobs (minutes)
    python benchmarks/plan_sizes.py --sizes 300 --runs 3

No stores needed. JSON on stdout, progress on stderr. CPU time is reported next to
wall time because a shared machine stretches the wall time of the same work.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages

from benchmarks._harness import machine, progress
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, build
from dispatch.plan_worker import Travel
from doorstep.params import from_mapping, load_toml
from geo.roadgraph import load_city_graph
from matching.planner import Plan, PlannerParams, insertions, plan
from tracking.eta import EtaParams

H = 3600
SIZES = (10, 25, 50, 100, 200, 300, 500)
QUICK = (10, 25, 50, 100)
JOBS_PER_WORKER = 7.5  # 300 jobs, 40 workers


def realistic_day(jobs: int, seed: int, workers: int | None = None) -> DayInputs:
    """A seeded day of ``jobs`` jobs on the Shenzhen road graph (see the module doc)."""
    rng = random.Random(seed)
    graph = load_city_graph("shenzhen")
    n_nodes = len(graph.lat)
    count = workers or max(2, round(jobs / JOBS_PER_WORKER))

    def point() -> tuple[float, float]:
        n = rng.randrange(n_nodes)
        return float(graph.lat[n]), float(graph.lng[n])

    days = tuple(
        WorkerDay(i + 1, frozenset(), ((8 * H, 12 * H), (13 * H, 20 * H)), point())
        for i in range(count)
    )
    todo = []
    for k in range(jobs):
        start = rng.randrange(8 * 2, 18 * 2 + 1) * 1800  # 08:00 … 18:00
        lat, lng = point()
        service = rng.choice((60, 75, 90, 105, 120)) * 60
        todo.append(DayJob(k + 1, lat, lng, service, (start, start + 2 * H)))
    return DayInputs("shenzhen", date(2030, 1, 7), 0, -H, days, tuple(todo))


def travel_of(eta: EtaParams | None = None) -> Travel:
    """Travel on the Shenzhen road graph, as ``DayPlans.travel`` gives it to the server."""
    eta = eta or EtaParams()
    return Travel(
        road=True,
        graph_city="shenzhen",
        access_speed_mps=eta.access_speed_mps,
        speed_mps=eta.fallback_speed_mps,
        detour_factor=eta.detour_factor,
    )


def digest(result: Plan) -> str:
    """SHA-256 of the plan serialised: equal digests, byte-for-byte equal plans."""
    return hashlib.sha256(orjson.dumps(result)).hexdigest()


def one_size(jobs: int, params: PlannerParams, runs: int, seed: int) -> dict[str, Any]:
    """Plan one size ``runs`` times; the figures of each run and whether they agree."""
    inputs = realistic_day(jobs, seed)
    t0 = time.perf_counter()
    built = build(inputs, travel_of())
    matrix_s = time.perf_counter() - t0
    problem = built.problem
    demand_h = sum(j.service_s for j in problem.jobs) / H
    supply_h = (
        sum(w.shift[1] - w.shift[0] - sum(b.duration_s for b in w.breaks) for w in problem.workers)
        / H
    )
    out: list[dict[str, Any]] = []
    digests = []
    for run in range(runs):
        progress(f"{jobs} jobs, {len(problem.workers)} workers: run {run + 1}/{runs}")
        load = os.getloadavg()[0]
        w0, c0 = time.perf_counter(), time.process_time()
        result = plan(problem, params, seed=0)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        reasons: dict[str, int] = {}
        for d in result.dropped:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
        by_id = {j.id: j for j in problem.jobs}
        fit_but_dropped = sum(
            1
            for d in result.dropped
            if by_id[d.job_id].drop_penalty is None and insertions(problem, result, by_id[d.job_id])
        )
        digests.append(digest(result))
        out.append(
            {
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "load_1min": round(load, 1),
                "stopped_by": result.stopped_by,
                "solutions": result.search.solutions,
                "branches": result.search.branches,
                "solution_limit": result.search.solution_limit,
                "branch_limit": result.search.branch_limit,
                "budget_used": round(result.search.budget_used, 3),
                "pyvrp_iterations": result.search.iterations,
                "pyvrp_iteration_limit": result.search.iteration_limit,
                "objective": result.objective,
                "served": sum(len(r.stops) for r in result.routes),
                "dropped": reasons,
                "dropped_mandatory": sum(
                    1 for d in result.dropped if by_id[d.job_id].drop_penalty is None
                ),
                "fit_but_dropped": fit_but_dropped,
                "repaired": result.search.repaired,
                "sha256": digests[-1][:16],
            }
        )
    return {
        "jobs": jobs,
        "workers": len(problem.workers),
        "demand_vs_supply": round(demand_h / supply_h, 2),  # service hours / shift hours
        "road_matrix_s": round(matrix_s, 2),
        "runs": out,
        "same_plan": len(set(digests)) == 1,
        "wall_s_max": max(r["wall_s"] for r in out),
        "cpu_s_max": max(r["cpu_s"] for r in out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK}")
    parser.add_argument("--sizes", help="comma-separated job counts (default 10 … 500)")
    parser.add_argument("--runs", type=int, default=2, help="plans per size (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="the day's seed")
    parser.add_argument("--params", help="a TOML file whose [planner] table replaces the defaults")
    parser.add_argument("--time-limit", type=float, help="override [planner] time_limit_s")
    args = parser.parse_args()
    sizes = (
        tuple(int(s) for s in args.sizes.split(","))
        if args.sizes
        else (QUICK if args.quick else SIZES)
    )
    params = PlannerParams()
    if args.params:
        params = from_mapping(
            PlannerParams, load_toml(Path(args.params)).get("planner", {}), section="planner"
        )
    if args.time_limit:
        params = replace(params, time_limit_s=args.time_limit)
    started = os.getloadavg()
    rows = [one_size(n, params, args.runs, args.seed) for n in sizes]
    print(
        orjson.dumps(
            {
                "benchmark": "plan_sizes",
                "machine": machine(["ortools", "pyvrp", "numpy", "scipy"]),
                "load_avg_at_start": [round(x, 1) for x in started],
                "load_avg_at_end": [round(x, 1) for x in os.getloadavg()],
                "params": {
                    "planner": {k: getattr(params, k) for k in params.__dataclass_fields__},
                    "seed": args.seed,
                    "runs": args.runs,
                },
                "sizes": rows,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()

"""Larger days against PyVRP alone: the planner (PyVRP stage + OR-Tools) vs PyVRP's own
search vs OR-Tools alone, each with the same wall-clock limit.

No Gehring–Homberger files are reachable from this machine, so the "200 customers and
more" check of issue 20 §5 uses days the planner was never tuned on: the seeded road-
graph days of ``benchmarks/plan_sizes.py`` (one worker per 7.5 jobs, 2-hour windows,
60–120 min of service, every job mandatory, more work than shift hours) with the lunch
break taken out, so that PyVRP's model is exact and PyVRP alone can be scored on the
same problem. Per size, three solves one after the other (the order rotates by size):

* ``planner``: ``plan()`` with no work budget (``solution_limit = branch_limit =
  pyvrp_iterations = 0``), so the clock splits it (``pyvrp_share`` of it for PyVRP);
* ``pyvrp``: ``matching.pyvrp_stage.solve_structure`` alone for the whole limit, its
  routes timed and priced by the planner's own code (``_route``, ``_objective``);
* ``ortools``: ``plan()`` with ``route_search = "ortools"``.

Scored by jobs served (every job is mandatory), then travel seconds. JSON on stdout.

    python benchmarks/large_vs_pyvrp.py --sizes 200,300,500 --time-limit 30
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages

from benchmarks._harness import machine, progress
from benchmarks.plan_sizes import realistic_day, travel_of
from dispatch.dayplan import build
from matching import planner
from matching.planner import PlannerParams, PlanProblem, plan
from matching.pyvrp_stage import solve_structure


def pyvrp_alone(problem: PlanProblem, time_limit_s: float) -> tuple[int, int]:
    """PyVRP's routes for the whole limit: (served, travel seconds)."""
    able: dict[str, list[int]] = {}
    for j in problem.jobs:
        who = planner._able(problem, j)
        if isinstance(who, list) and planner._alone_reason(problem, j, who) is None:
            able[j.id] = who
    active = [j for j in problem.jobs if j.id in able]
    workers = problem.workers
    used = sorted({j.node for j in active} | {w.start_node for w in workers})
    longest = int(problem.travel_s[np.ix_(used, used)].max())
    found = solve_structure(
        problem,
        active,
        able,
        list(range(len(workers))),
        fixed_cost=0,
        mandatory_penalty=longest * (len(active) + 2 * len(workers) + 1) + 1,
        iterations=0,
        time_cap_s=time_limit_s,
        seed=0,
        required=False,  # these days may hold more work than room: every job a prize
    )
    if found is None or not found.feasible:
        raise RuntimeError("the PyVRP stage did not apply or found no feasible plan")
    routes = [
        planner._route(problem, w, [active[k] for k in r])
        for w, r in zip(workers, found.routes, strict=True)
    ]
    return sum(len(r.stops) for r in routes), sum(r.travel_s for r in routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,300,500")
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7, help="the day's seed")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    solvers = ["planner", "pyvrp", "ortools"]
    for turn, jobs in enumerate(int(s) for s in args.sizes.split(",")):
        built = build(realistic_day(jobs, args.seed), travel_of())
        problem = replace(
            built.problem, workers=tuple(replace(w, breaks=()) for w in built.problem.workers)
        )
        row: dict[str, Any] = {"jobs": jobs, "workers": len(problem.workers)}
        budgetless = PlannerParams(
            time_limit_s=args.time_limit, solution_limit=0, branch_limit=0, pyvrp_iterations=0
        )
        for solver in solvers[turn % 3 :] + solvers[: turn % 3]:
            progress(f"{jobs} jobs: {solver} ({args.time_limit:g} s)")
            w0, c0 = time.perf_counter(), time.process_time()
            if solver == "pyvrp":
                served, travel = pyvrp_alone(problem, args.time_limit)
            else:
                params = budgetless
                if solver == "ortools":
                    params = replace(budgetless, route_search="ortools")
                result = plan(problem, params, seed=0)
                served = sum(len(r.stops) for r in result.routes)
                travel = sum(r.travel_s for r in result.routes)
            row[solver] = {
                "served": served,
                "travel_s": travel,
                "wall_s": round(time.perf_counter() - w0, 1),
                "cpu_s": round(time.process_time() - c0, 1),
                "load_1min_after": round(os.getloadavg()[0], 1),
            }
            progress(f"  served {served}, travel {travel} s")
        peer = row["pyvrp"]
        for solver in ("planner", "ortools"):
            row[solver]["served_vs_pyvrp"] = row[solver]["served"] - peer["served"]
            row[solver]["travel_vs_pyvrp_pct"] = round(
                100.0 * (row[solver]["travel_s"] - peer["travel_s"]) / peer["travel_s"], 2
            )
        rows.append(row)
    out = {
        "benchmark": "large_vs_pyvrp",
        "time_limit_s": args.time_limit,
        "seed": args.seed,
        "machine": machine(["ortools", "pyvrp", "numpy"]),
        "sizes": rows,
    }
    sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()

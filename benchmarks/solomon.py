"""Solomon VRPTW benchmark: the planner (``matching.planner``: PyVRP stage, then OR-Tools;
``--route-search ortools`` for OR-Tools alone) against the best-known values and against PyVRP at the same time limit.

The 56 Solomon (1987) 100-customer instances are read from ``benchmarks/data/solomon``
(standard text format; SOURCES.md there). Each is solved by ``plan()`` — the same code
the server uses, one worker per vehicle starting and ending at the depot, capacity as
``PlanWorker.capacity`` — with a fixed wall-clock limit and no work budget, then by
PyVRP alone (a main dependency) with the same limit (``--iterations K``: equal work
instead). The two take turns instance
by instance (which goes first alternates), never at the same time. Every solution is re-checked here (windows, capacity,
depot closing time, every customer once) and its distance recomputed.

Convention (``--objective distance``, the default): arc length = floor(10 × Euclidean)
/ 10 (the DIMACS convention of the exact methods), travel time = length, objective =
total distance with any number of vehicles up to the file's fleet. The like-for-like
reference is ``best_known_distance_min.csv`` (proven optima of that objective, 37
instances). For the other 19 only the hierarchical best-known (fewest vehicles first,
real-valued distances, ``best_known.csv``) exists; its gap is reported but marked
``ref = "hierarchical"`` and left out of the headline mean, since a distance-only
solution may use more vehicles and beat it.

``--objective hierarchical``: vehicles first (a fixed cost per vehicle larger than any
route), distances in hundredths, rounded; compared with ``best_known.csv`` (vehicles,
then distance) on every instance.

Usage::

    python -m benchmarks.solomon --quick                  # 6 instances x 10 s x 2 solvers
    python -m benchmarks.solomon --time-limit 60 --instances c103,c106,r102
    python -m benchmarks.solomon                          # all 56 at 60 s: about 2 hours

JSON on stdout (with a ``markdown`` table), progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from matching.planner import PlanJob, PlannerParams, PlanProblem, PlanWorker, plan

DATA = Path(__file__).resolve().parent / "data" / "solomon"
SETS = ("C1", "C2", "R1", "R2", "RC1", "RC2")
QUICK = ("c105", "c205", "r105", "r201", "rc105", "rc205")  # one per set, each with an optimum
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Instance:
    """One Solomon instance; customer 0 is the depot. Times and coordinates as in the file."""

    name: str
    vehicles: int
    capacity: int
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    demand: IntArray
    ready: IntArray
    due: IntArray
    service: IntArray

    @property
    def set_name(self) -> str:
        """C1, C2, R1, R2, RC1 or RC2."""
        letters = self.name.rstrip("0123456789").upper()
        return f"{letters}{self.name[len(letters)]}"


def read_instance(path: Path) -> Instance:
    """Parse the standard Solomon text format."""
    lines = [line.split() for line in path.read_text().splitlines()]
    numbers = [row for row in lines if row and all(_is_number(x) for x in row)]
    vehicles, capacity = (int(v) for v in numbers[0])
    rows = np.array([[float(v) for v in row] for row in numbers[1:]], dtype=np.float64)
    if rows.shape[1] != 7 or rows[0, 0] != 0:
        raise ValueError(f"{path.name}: expected 7 columns starting with the depot (0)")
    ints = rows[:, 3:].astype(np.int64)
    return Instance(
        name=path.stem.lower(),
        vehicles=vehicles,
        capacity=capacity,
        x=rows[:, 1],
        y=rows[:, 2],
        demand=ints[:, 0],
        ready=ints[:, 1],
        due=ints[:, 2],
        service=ints[:, 3],
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_references(name: str) -> dict[str, tuple[int, float]]:
    """``{instance: (vehicles, distance)}`` from one of the best-known CSV files."""
    with (DATA / name).open(newline="") as f:
        return {
            r["instance"]: (int(r["vehicles"]), float(r["distance"])) for r in csv.DictReader(f)
        }


@dataclass(frozen=True)
class Scaled:
    """An instance in integer units: ``scale`` units per Solomon unit."""

    scale: int
    dist: IntArray  # arc lengths = travel times
    ready: IntArray
    due: IntArray
    service: IntArray


def scaled(inst: Instance, objective: str) -> Scaled:
    """DIMACS tenths (truncated) for ``distance``; rounded hundredths for ``hierarchical``."""
    euclid = np.hypot(inst.x[:, None] - inst.x[None, :], inst.y[:, None] - inst.y[None, :])
    if objective == "distance":
        scale = 10
        dist = np.floor(euclid * scale + 1e-9).astype(np.int64)
    else:
        scale = 100
        dist = np.rint(euclid * scale).astype(np.int64)
    return Scaled(scale, dist, inst.ready * scale, inst.due * scale, inst.service * scale)


@dataclass(frozen=True)
class Outcome:
    """One solver's result on one instance, checked here."""

    vehicles: int
    distance: float  # in Solomon units
    feasible: bool
    problems: tuple[str, ...]
    seconds: float
    extra: dict[str, Any]


def check(inst: Instance, s: Scaled, routes: Sequence[Sequence[int]]) -> tuple[float, list[str]]:
    """Recompute the distance of ``routes`` (customer numbers) and list broken rules."""
    problems: list[str] = []
    seen = [c for r in routes for c in r]
    if sorted(seen) != list(range(1, len(inst.x))):
        problems.append(f"customers visited {len(seen)} times / {len(set(seen))} distinct")
    if len([r for r in routes if r]) > inst.vehicles:
        problems.append("more routes than vehicles")
    total = 0
    for route in routes:
        if not route:
            continue
        if int(inst.demand[list(route)].sum()) > inst.capacity:
            problems.append(f"capacity exceeded on route starting {route[0]}")
        t, prev = int(s.ready[0]), 0
        for c in route:
            total += int(s.dist[prev, c])
            t = max(t + int(s.dist[prev, c]), int(s.ready[c]))
            if t > s.due[c]:
                problems.append(f"customer {c} served late ({t} > {s.due[c]})")
            t += int(s.service[c])
            prev = c
        total += int(s.dist[prev, 0])
        if t + s.dist[prev, 0] > s.due[0]:
            problems.append(f"route ending {prev} returns after the depot closes")
    return total / s.scale, problems


def vehicle_cost(s: Scaled) -> int:
    """A fixed cost per vehicle above any possible total distance (hierarchical)."""
    return int(s.dist.max()) * (2 * len(s.dist) + 1)


def solve_planner(
    inst: Instance,
    objective: str,
    time_limit_s: float,
    params: PlannerParams,
    seed: int,
    iterations: int = 0,
) -> Outcome:
    """The instance through ``matching.planner.plan``: depot = every worker's start and end."""
    s = scaled(inst, objective)
    jobs = tuple(
        PlanJob(
            id=str(c),
            node=c,
            service_s=int(s.service[c]),
            window=(int(s.ready[c]), int(s.due[c])),
            demand=int(inst.demand[c]),
        )
        for c in range(1, len(inst.x))
    )
    workers = tuple(
        PlanWorker(
            id=f"v{k}",
            start_node=0,
            end_node=0,
            shift=(int(s.ready[0]), int(s.due[0])),
            capacity=inst.capacity,
        )
        for k in range(inst.vehicles)
    )
    fixed = vehicle_cost(s) if objective == "hierarchical" else 0
    if iterations:  # equal work: PyVRP's iterations, then OR-Tools' own budget
        params = replace(
            params, time_limit_s=time_limit_s, pyvrp_iterations=iterations, worker_fixed_cost=fixed
        )
    else:
        params = replace(
            params,
            time_limit_s=time_limit_s,
            solution_limit=0,
            branch_limit=0,
            pyvrp_iterations=0,
            worker_fixed_cost=fixed,
        )
    began, cpu = time.perf_counter(), time.process_time()
    result = plan(PlanProblem(s.dist, jobs, workers), params, seed=seed)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    routes = [[int(stop.job_id) for stop in r.stops] for r in result.routes]
    distance, problems = check(inst, s, routes)
    if result.dropped:
        problems.append(f"{len(result.dropped)} customers dropped")
    reported = sum(r.distance_m for r in result.routes) / s.scale
    if not math.isclose(reported, distance):
        problems.append(f"planner reports distance {reported}, check says {distance}")
    return Outcome(
        vehicles=sum(1 for r in routes if r),
        distance=distance,
        feasible=not problems,
        problems=tuple(problems),
        seconds=round(seconds, 2),
        extra={
            "stopped_by": result.stopped_by,
            "pyvrp_iterations": result.search.iterations,
            "ortools_solutions": result.search.solutions,
            "ortools_branches": result.search.branches,
            "cpu_s": round(cpu, 2),
        },
    )


def solve_pyvrp(
    inst: Instance, objective: str, time_limit_s: float, seed: int, iterations: int = 0
) -> Outcome:
    """The same integer instance through PyVRP's ``Model`` (iterated local search)."""
    from pyvrp import Model
    from pyvrp.stop import MaxIterations, MaxRuntime

    s = scaled(inst, objective)
    m = Model()
    locations = [
        m.add_location(x=float(x), y=float(y)) for x, y in zip(inst.x, inst.y, strict=True)
    ]
    depot = m.add_depot(locations[0], tw_early=int(s.ready[0]), tw_late=int(s.due[0]))
    m.add_vehicle_type(
        num_available=inst.vehicles,
        capacity=inst.capacity,
        start_depot=depot,
        end_depot=depot,
        tw_early=int(s.ready[0]),
        tw_late=int(s.due[0]),
        fixed_cost=vehicle_cost(s) if objective == "hierarchical" else 0,
    )
    for c in range(1, len(inst.x)):
        m.add_client(
            locations[c],
            delivery=int(inst.demand[c]),
            service_duration=int(s.service[c]),
            tw_early=int(s.ready[c]),
            tw_late=int(s.due[c]),
        )
    n = len(inst.x)
    for i in range(n):
        for j in range(n):
            if i != j:
                d = int(s.dist[i, j])
                m.add_edge(locations[i], locations[j], distance=d, duration=d)
    began, cpu = time.perf_counter(), time.process_time()
    stop = MaxIterations(iterations) if iterations else MaxRuntime(time_limit_s)
    result = m.solve(stop=stop, seed=seed, display=False)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    # activity idx of a client counts clients from 0; customer numbers start at 1
    routes = [[int(a.idx) + 1 for a in route if a.is_client()] for route in result.best.routes()]
    distance, problems = check(inst, s, routes)
    if not result.is_feasible():
        problems.append("PyVRP says infeasible")
    return Outcome(
        vehicles=len(routes),
        distance=distance,
        feasible=not problems,
        problems=tuple(problems),
        seconds=round(seconds, 2),
        extra={"iterations": int(result.num_iterations), "cpu_s": round(cpu, 2)},
    )


def gap(value: float, reference: float) -> float:
    """Relative gap in percent."""
    return round(100.0 * (value - reference) / reference, 3)


def mean(values: Sequence[float]) -> float | None:
    """Mean rounded to 3 decimals, None when empty."""
    return round(statistics.fmean(values), 3) if values else None


def summarise(rows: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    """Per set and overall means of the gaps (only like-for-like references count)."""

    def block(subset: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"instances": len(subset)}
        for solver in ("ortools", "pyvrp"):
            ok = [r for r in subset if r.get(solver, {}).get("feasible")]
            like = [r[solver]["gap_pct"] for r in ok if r["ref"] == "like_for_like"]
            out[solver] = {
                "feasible": len(ok),
                "mean_gap_pct": mean(like),
                "gap_instances": len(like),
                "mean_vehicles": mean([r[solver]["vehicles"] for r in ok]),
                "vehicles_over_best": sum(r[solver]["vehicles_vs_best"] for r in ok),
            }
        both = [
            r["ortools_vs_pyvrp_pct"] for r in subset if r.get("ortools_vs_pyvrp_pct") is not None
        ]
        out["ortools_vs_pyvrp_pct"] = mean(both)
        return out

    per_set = {
        name: block([r for r in rows if r["set"] == name])
        for name in SETS
        if any(r["set"] == name for r in rows)
    }
    return {"per_set": per_set, "all": block(rows), "objective": objective}


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any], time_limit_s: float) -> str:
    """The results as a markdown table (per instance, then per set)."""

    def cell(r: dict[str, Any], solver: str) -> str:
        o = r.get(solver)
        if not o:
            return "–"
        if not o["feasible"]:
            return "infeasible"
        return f"{o['vehicles']} / {o['distance']:.1f} ({o['gap_pct']:+.2f} %)"

    lines = [
        f"| instance | best known (veh / dist, ref) | OR-Tools {time_limit_s:g} s | "
        f"PyVRP {time_limit_s:g} s | OR-Tools vs PyVRP |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ref = "" if r["ref"] == "like_for_like" else " hier."
        vs = r.get("ortools_vs_pyvrp_pct")
        lines.append(
            f"| {r['instance']} | {r['best_known'][0]} / {r['best_known'][1]:.2f}{ref} | "
            f"{cell(r, 'ortools')} | {cell(r, 'pyvrp')} | "
            f"{'–' if vs is None else f'{vs:+.2f} %'} |"
        )
    lines += [
        "",
        "| set | instances (with optimum) | OR-Tools mean gap | PyVRP mean gap | OR-Tools vs PyVRP "
        "| vehicles over best known: OR-Tools / PyVRP |",
        "|---|---|---|---|---|---|",
    ]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:+.2f} %"

    for name, b in [*summary["per_set"].items(), ("all", summary["all"])]:
        lines.append(
            f"| {name} | {b['instances']} ({b['ortools']['gap_instances']}) | "
            f"{pct(b['ortools']['mean_gap_pct'])} | {pct(b['pyvrp']['mean_gap_pct'])} | "
            f"{pct(b['ortools_vs_pyvrp_pct'])} | "
            f"{b['ortools']['vehicles_over_best']:+d} / {b['pyvrp']['vehicles_over_best']:+d} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)} at 10 s each")
    parser.add_argument("--instances", help="comma-separated names (default: all 56)")
    parser.add_argument("--time-limit", type=float, help="seconds per instance and solver")
    parser.add_argument("--objective", choices=("distance", "hierarchical"), default="distance")
    parser.add_argument("--solvers", default="ortools,pyvrp", help="ortools, pyvrp or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=Path, help="a params TOML file ([planner] table)")
    parser.add_argument("--first-solution", help="override PlannerParams.first_solution")
    parser.add_argument("--metaheuristic", help="override PlannerParams.metaheuristic")
    parser.add_argument("--gls-lambda", type=float, help="override PlannerParams.gls_lambda")
    parser.add_argument("--operators", choices=("lean", "all"), help="override .operators")
    parser.add_argument(
        "--fleet-first-share",
        type=float,
        default=0.3,
        help="PlannerParams.fleet_first_share for this benchmark (default 0.3; the server's is 0)",
    )
    parser.add_argument(
        "--route-search", choices=("pyvrp", "ortools"), help="override .route_search"
    )
    parser.add_argument("--pyvrp-share", type=float, help="override PlannerParams.pyvrp_share")
    parser.add_argument(
        "--iterations",
        type=int,
        default=0,
        help="equal work instead of equal time: PyVRP alone runs this many iterations; the "
        "planner's PyVRP stage too, then OR-Tools its [planner] budget (--time-limit: the cap)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)

    if args.instances:
        names = [n.strip().lower() for n in args.instances.split(",") if n.strip()]
    elif args.quick:
        names = list(QUICK)
    else:
        names = sorted(p.stem for p in DATA.glob("*.txt"))
    time_limit_s = args.time_limit or (10.0 if args.quick else 60.0)
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    params = PlannerParams()
    if args.params:
        from doorstep.params import from_mapping, load_toml

        params = from_mapping(
            PlannerParams, load_toml(args.params).get("planner", {}), section="planner"
        )
    overrides = {
        "first_solution": args.first_solution,
        "metaheuristic": args.metaheuristic,
        "gls_lambda": args.gls_lambda,
        "operators": args.operators,
        "fleet_first_share": args.fleet_first_share,
        "route_search": args.route_search,
        "pyvrp_share": args.pyvrp_share,
    }
    params = replace(params, **{k: v for k, v in overrides.items() if v is not None})

    optimum = read_references("best_known_distance_min.csv") if args.objective == "distance" else {}
    hierarchical = read_references("best_known.csv")
    instances = [read_instance(DATA / f"{n}.txt") for n in names]

    outcomes: dict[str, dict[str, Outcome]] = {n: {} for n in names}
    load: dict[str, dict[str, float]] = {n: {} for n in names}
    for i, inst in enumerate(instances):
        # The solvers take turns instance by instance (never run together), the first
        # alternating: a machine whose load drifts over the two hours then weighs on
        # both alike, not on whichever ran its whole pass in the busier hour.
        for solver in solvers if i % 2 == 0 else solvers[::-1]:
            h.progress(f"{solver} {inst.name} ({time_limit_s:g} s)")
            if solver == "ortools":
                o = solve_planner(
                    inst, args.objective, time_limit_s, params, args.seed, args.iterations
                )
            elif solver == "pyvrp":
                o = solve_pyvrp(inst, args.objective, time_limit_s, args.seed, args.iterations)
            else:
                parser.error(f"unknown solver {solver}")
            outcomes[inst.name][solver] = o
            load[inst.name][solver] = round(os.getloadavg()[0], 1)
            h.progress(f"  {o.vehicles} vehicles, {o.distance:.1f}, feasible={o.feasible}")

    rows: list[dict[str, Any]] = []
    for inst in instances:
        if inst.name in optimum:
            ref, best = "like_for_like", optimum[inst.name]
        else:
            like = args.objective == "hierarchical"
            ref, best = ("like_for_like" if like else "hierarchical"), hierarchical[inst.name]
        row: dict[str, Any] = {
            "instance": inst.name,
            "set": inst.set_name,
            "best_known": best,
            "ref": ref,
        }
        for solver, o in outcomes[inst.name].items():
            row[solver] = {
                "vehicles": o.vehicles,
                "distance": round(o.distance, 2),
                "gap_pct": gap(o.distance, best[1]),
                "vehicles_vs_best": o.vehicles - best[0],
                "feasible": o.feasible,
                "problems": list(o.problems),
                "seconds": o.seconds,
                "load_average_1m_after": load[inst.name][solver],
                **o.extra,
            }
        ours, peer = outcomes[inst.name].get("ortools"), outcomes[inst.name].get("pyvrp")
        if ours and peer and ours.feasible and peer.feasible:
            row["ortools_vs_pyvrp_pct"] = gap(ours.distance, peer.distance)
        rows.append(row)
    summary = summarise(rows, args.objective)
    table = markdown(rows, summary, time_limit_s)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table, file=sys.stderr)
    report = {
        "benchmark": "solomon",
        "objective": args.objective,
        "convention": (
            "arc = floor(10*euclid)/10, time = distance; reference: distance-only optima "
            "(best_known_distance_min.csv), else hierarchical BKS marked ref=hierarchical"
            if args.objective == "distance"
            else "vehicles first (fixed cost), distance rounded to 0.01; reference best_known.csv"
        ),
        "time_limit_s": time_limit_s,
        "iterations": args.iterations,
        "seed": args.seed,
        "planner_params": {
            "first_solution": params.first_solution,
            "metaheuristic": params.metaheuristic,
            "gls_lambda": params.gls_lambda,
            "operators": params.operators,
            "fleet_first_share": params.fleet_first_share,
            "route_search": params.route_search,
            "pyvrp_share": params.pyvrp_share,
            "pyvrp_iterations": args.iterations,
            "solution_limit": params.solution_limit if args.iterations else 0,
            "branch_limit": params.branch_limit if args.iterations else 0,
        },
        "machine": h.machine(["ortools", "pyvrp", "numpy"]),
        "summary": summary,
        "instances": rows,
        "markdown": table,
    }
    sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

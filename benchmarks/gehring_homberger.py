"""The route planner against PyVRP at 1,000 customers: Gehring–Homberger VRPTW instances
(issue 20 §5, "the same at 200 customers and more", on instances never tuned on).

Six instances, the first of each class, in VRPLIB format (``benchmarks/data/
gehring-homberger``, SOURCES.md there). Each is solved exactly as ``benchmarks/solomon.py``
solves a Solomon instance — the same functions: ``plan()`` (the server's planner: PyVRP
stage, then OR-Tools) with a wall-clock limit and no work budget, and PyVRP alone with
the same limit, taking turns (which goes first alternates), every solution re-checked
here and its distance recomputed — under the DIMACS convention (arc = floor(10 ×
Euclidean) / 10, travel time = length, objective = total distance with up to the file's
fleet), which is also the convention of the best-known values (CVRPLIB's, via the
instances' ``.sol`` files).

Usage::

    python -m benchmarks.gehring_homberger                       # 6 instances x 60 s x 2 solvers
    python -m benchmarks.gehring_homberger --instances c1_10_1 --time-limit 20

JSON on stdout (with a ``markdown`` table), progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks.solomon import Instance, Outcome, gap, mean, solve_planner, solve_pyvrp
from matching.planner import PlannerParams

DATA = Path(__file__).resolve().parent / "data" / "gehring-homberger"


def read_instance(path: Path) -> Instance:
    """A VRPLIB VRPTW file (depot first) as ``solomon.Instance``: coordinates, demands,
    windows and service times as the file gives them."""
    import vrplib  # type: ignore[import-untyped]  # PyVRP's reader of the format (its dependency)

    data = vrplib.read_instance(str(path), compute_edge_weights=False)
    depots = [int(d) for d in np.atleast_1d(data["depot"])]
    if depots != [0]:
        raise ValueError(f"{path.name}: expected one depot, the first node")
    coords = np.asarray(data["node_coord"], dtype=np.float64)
    n = len(coords)
    windows = np.asarray(data["time_window"], dtype=np.int64)
    service = np.broadcast_to(np.asarray(data["service_time"], dtype=np.int64), (n,)).copy()
    service[0] = 0
    return Instance(
        name=path.stem.lower(),
        vehicles=int(data["vehicles"]),
        capacity=int(data["capacity"]),
        x=coords[:, 0],
        y=coords[:, 1],
        demand=np.asarray(data["demand"], dtype=np.int64),
        ready=windows[:, 0],
        due=windows[:, 1],
        service=service,
    )


def read_best_known() -> dict[str, tuple[int, float]]:
    """``{instance: (vehicles, distance)}`` (best_known.csv)."""
    with (DATA / "best_known.csv").open(newline="") as f:
        return {
            r["instance"]: (int(r["vehicles"]), float(r["distance"])) for r in csv.DictReader(f)
        }


def markdown(rows: list[dict[str, Any]], time_limit_s: float) -> str:
    """The results as a markdown table."""

    def cell(r: dict[str, Any], solver: str) -> str:
        o = r.get(solver)
        if not o:
            return "–"
        if not o["feasible"]:
            return "infeasible: " + "; ".join(o["problems"])[:80]
        return f"{o['vehicles']} / {o['distance']:.1f} ({o['gap_pct']:+.2f} %)"

    lines = [
        f"| instance | best known (veh / dist) | planner {time_limit_s:g} s | "
        f"PyVRP {time_limit_s:g} s | planner vs PyVRP |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        vs = r.get("ortools_vs_pyvrp_pct")
        lines.append(
            f"| {r['instance']} | {r['best_known'][0]} / {r['best_known'][1]:.1f} | "
            f"{cell(r, 'ortools')} | {cell(r, 'pyvrp')} | "
            f"{'–' if vs is None else f'{vs:+.2f} %'} |"
        )
    both = [r["ortools_vs_pyvrp_pct"] for r in rows if r.get("ortools_vs_pyvrp_pct") is not None]
    lines.append(f"| mean | | | | {'–' if not both else f'{mean(both):+.2f} %'} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", help="comma-separated names (default: all six)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve")
    parser.add_argument("--solvers", default="ortools,pyvrp", help="ortools, pyvrp or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)

    best = read_best_known()
    names = (
        [n.strip().lower() for n in args.instances.split(",") if n.strip()]
        if args.instances
        else sorted(best)
    )
    for n in names:
        if n not in best:
            parser.error(f"--instances: unknown instance {n!r}; known: {', '.join(sorted(best))}")
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    for s in solvers:
        if s not in ("ortools", "pyvrp"):
            parser.error(f"--solvers: unknown solver {s!r} (ortools, pyvrp)")
    params = PlannerParams()  # the server's planner (route_search "pyvrp")
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        inst = read_instance(DATA / f"{name.upper()}.vrp")
        outcomes: dict[str, Outcome] = {}
        row: dict[str, Any] = {
            "instance": name,
            "customers": len(inst.x) - 1,
            "fleet": inst.vehicles,
            "best_known": best[name],
        }
        for solver in solvers if i % 2 == 0 else solvers[::-1]:
            h.progress(f"{solver} {name} ({args.time_limit:g} s)")
            if solver == "ortools":
                o = solve_planner(inst, "distance", args.time_limit, params, args.seed)
            else:
                o = solve_pyvrp(inst, "distance", args.time_limit, args.seed)
            outcomes[solver] = o
            h.progress(f"  {o.vehicles} vehicles, {o.distance:.1f}, feasible={o.feasible}")
            row[solver] = {
                "vehicles": o.vehicles,
                "distance": round(o.distance, 2),
                "gap_pct": gap(o.distance, best[name][1]),
                "feasible": o.feasible,
                "problems": list(o.problems),
                "seconds": o.seconds,
                "load_average_1m_after": round(os.getloadavg()[0], 1),
                **o.extra,
            }
        ours, peer = outcomes.get("ortools"), outcomes.get("pyvrp")
        if ours and peer and ours.feasible and peer.feasible:
            row["ortools_vs_pyvrp_pct"] = gap(ours.distance, peer.distance)
        rows.append(row)
    table = markdown(rows, args.time_limit)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table, file=sys.stderr)
    both = [r["ortools_vs_pyvrp_pct"] for r in rows if "ortools_vs_pyvrp_pct" in r]
    report = {
        "benchmark": "gehring_homberger",
        "convention": "arc = floor(10*euclid)/10, time = distance, objective total distance; "
        "best known: CVRPLIB's (DIMACS), from the instances' .sol files",
        "time_limit_s": args.time_limit,
        "seed": args.seed,
        "planner_params": {
            "route_search": params.route_search,
            "pyvrp_share": params.pyvrp_share,
        },
        "machine": h.machine(["ortools", "pyvrp", "numpy"]),
        "summary": {
            "instances": len(rows),
            "planner_vs_pyvrp_mean_pct": mean(both),
            "within_1pct": sum(1 for v in both if v <= 1.0),
            "compared": len(both),
        },
        "instances": rows,
        "markdown": table,
    }
    sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Road ETA cost per call on each bundled graph, against the old demo graph in the same run.

The road ETA is two calls (``tracking/eta.py``): once per job destination,
``destination_times`` (a reverse Dijkstra over the whole graph, so it grows with the
graph), then per location fix ``eta_s`` (a k-d tree query and an array lookup). This
measures both on:

* ``futian-2023``: the previous demo graph, a 4.4 × 3.8 km corner of Futian
  (``benchmarks/data/osm-shenzhen-futian-2023``, kept only for this baseline);
* ``shenzhen``: the 2024 Futian + Shenzhen Bay network that replaced it;
* ``chengdu``: the 2nd-Ring network.

Seeded destinations and worker points (within ~300 m of random nodes), the methods take
turns in rounds so a change in the machine's load hits all of them; wall and thread CPU
time per call, p50/p90, and the ratio of each graph's p50 to the 2023 graph's.

Usage::

    python -m benchmarks.road_eta [--quick]

JSON on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages

from geo.roadgraph import RoadGraph, build_road_graph, load_city_graph
from tracking.eta import EtaParams, destination_times, eta_s

OLD = Path(__file__).resolve().parent / "data" / "osm-shenzhen-futian-2023"


def old_graph() -> RoadGraph:
    """The 2023 demo graph, built by today's code from its CSVs."""
    with (OLD / "nodes.csv").open(encoding="utf-8") as f:
        nodes = list(csv.DictReader(f))
    with (OLD / "edges.csv").open(encoding="utf-8") as f:
        edges = list(csv.DictReader(f))
    return build_road_graph(nodes, edges, drivable_only=True)


def points_near_nodes(graph: RoadGraph, n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` seeded points within ~300 m of random nodes of the graph."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        i = rng.randrange(graph.n_nodes)
        out.append(
            (
                float(graph.lat[i]) + rng.uniform(-0.0027, 0.0027),
                float(graph.lng[i]) + rng.uniform(-0.0027, 0.0027),
            )
        )
    return out


def pcts(samples: list[float]) -> dict[str, float]:
    """p50 and p90 (nearest rank), rounded."""
    data = sorted(samples)
    return {f"p{p}": round(data[max(1, math.ceil(p / 100 * len(data))) - 1], 1) for p in (50, 90)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: about 20 s")
    args = parser.parse_args()
    rounds, per_round, fixes = (10, 10, 200) if args.quick else (30, 20, 500)
    params = EtaParams()
    graphs = {
        "futian-2023": old_graph(),
        "shenzhen": load_city_graph("shenzhen"),
        "chengdu": load_city_graph("chengdu"),
    }
    dests = {name: points_near_nodes(g, rounds * per_round, 1) for name, g in graphs.items()}
    workers = {name: points_near_nodes(g, fixes, 2) for name, g in graphs.items()}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"dest_wall": [], "dest_cpu": [], "eta_wall": [], "eta_cpu": []} for name in graphs
    }
    road_share: dict[str, list[int]] = {name: [0, 0] for name in graphs}
    started = time.perf_counter()
    for r in range(rounds):
        for name, graph in graphs.items():
            s = samples[name]
            for lat, lng in dests[name][r * per_round : (r + 1) * per_round]:
                t0, c0 = time.perf_counter(), time.thread_time()
                times = destination_times(graph, lat, lng)
                s["dest_cpu"].append((time.thread_time() - c0) * 1e6)
                s["dest_wall"].append((time.perf_counter() - t0) * 1e6)
                for wlat, wlng in workers[name][r::rounds][:10]:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    _, kind = eta_s(times, graph, wlat, wlng, params)
                    s["eta_cpu"].append((time.thread_time() - c0) * 1e6)
                    s["eta_wall"].append((time.perf_counter() - t0) * 1e6)
                    road_share[name][0] += kind == "road"
                    road_share[name][1] += 1
        print(f"round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {
        "benchmark": "road_eta",
        "quick": args.quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "graphs": {},
    }
    base = samples["futian-2023"]
    for name, graph in graphs.items():
        s = samples[name]
        lat_km = (float(graph.lat.max()) - float(graph.lat.min())) * 111.32
        lng_km = (
            (float(graph.lng.max()) - float(graph.lng.min()))
            * 111.32
            * math.cos(math.radians(float(graph.lat.mean())))
        )
        out["graphs"][name] = {
            "nodes": graph.n_nodes,
            "edges": graph.n_edges,
            "extent_km": [round(lng_km, 1), round(lat_km, 1)],
            "destination_times_us": {"wall": pcts(s["dest_wall"]), "cpu": pcts(s["dest_cpu"])},
            "eta_s_per_fix_us": {"wall": pcts(s["eta_wall"]), "cpu": pcts(s["eta_cpu"])},
            "ratio_vs_futian_2023_p50_cpu": {
                "destination_times": round(
                    statistics.median(s["dest_cpu"]) / statistics.median(base["dest_cpu"]), 2
                ),
                "eta_s_per_fix": round(
                    statistics.median(s["eta_cpu"]) / statistics.median(base["eta_cpu"]), 2
                ),
            },
            "fixes_on_roads_share": round(road_share[name][0] / max(1, road_share[name][1]), 3),
        }
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()

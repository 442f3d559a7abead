"""Day-plans benchmark: does planning a city's day stall the server's event loop?

A seeded day in Futian (Shenzhen) on the bundled road graph: ``--workers`` workers
with homes on the graph, shifts 08:00–20:00 with a lunch gap, and ``--jobs`` scheduled
jobs of 1–3 h with 2 h windows. It times the road matrix, one full solve
(``matching.planner.plan`` through ``dispatch.plan_worker.solve``, as the server runs
it) and the slot check (``insertions`` over the day's 12 hourly windows), then measures
the event loop while the same solve runs three ways:

* ``idle``: no solve (the baseline, for as long as a solve takes);
* ``thread``: ``asyncio.to_thread`` — the loop shares the GIL with OR-Tools;
* ``process``: the one-worker spawned ``ProcessPoolExecutor`` the server uses
  (warmed up first, so the figure is per solve, not per process start).

The loop's lag is what a 5 ms ``asyncio.sleep`` overshoots by, sampled continuously:
every socket frame and request waits at least that long. Ratios are against ``idle``
in the same run.

Usage::

    python benchmarks/dayplans.py --quick    # about 30 s
    python benchmarks/dayplans.py            # a bigger day

No stores needed. JSON on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages

from benchmarks._harness import machine, percentiles, progress
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, build, current_plan
from dispatch.plan_worker import Travel, solve
from geo.roadgraph import load_futian_graph
from matching.planner import PlannerParams, insertions

H = 3600


def day(workers: int, jobs: int, seed: int) -> DayInputs:
    """A seeded day: workers and jobs at random road-graph nodes of Futian."""
    rng = random.Random(seed)
    graph = load_futian_graph()
    nodes = list(range(graph.n_nodes))

    def point() -> tuple[float, float]:
        n = rng.choice(nodes)
        return float(graph.lat[n]), float(graph.lng[n])

    days = tuple(
        WorkerDay(i + 1, frozenset(), ((8 * H, 12 * H), (13 * H, 20 * H)), point())
        for i in range(workers)
    )
    todo = []
    for k in range(jobs):
        start = rng.randrange(8 * 2, 17 * 2) * 1800
        lat, lng = point()
        todo.append(DayJob(k + 1, lat, lng, rng.choice((1, 2, 3)) * H, (start, start + 2 * H)))
    return DayInputs("shenzhen", date(2030, 1, 7), 0, -H, days, tuple(todo))


async def lag_while(run: Any, *, probe_s: float = 0.005) -> tuple[dict[str, float], float]:
    """Event-loop lag samples (ms) while ``run()`` is awaited; and how long it took (s)."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(probe_s)
            lags.append((time.perf_counter() - t - probe_s) * 1000)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.05)
    lags.clear()
    t0 = time.perf_counter()
    await run()
    took = time.perf_counter() - t0
    done.set()
    await task
    out = percentiles(lags, (50, 99))
    out["samples"] = len(lags)
    return out, took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small day, about 30 s")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=None, help="[planner] time_limit_s")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    workers = args.workers or (20 if args.quick else 60)
    jobs = args.jobs or (80 if args.quick else 250)
    params = PlannerParams(time_limit_s=args.time_limit or (2.0 if args.quick else 5.0))
    inputs = day(workers, jobs, args.seed)
    travel = Travel(road=True, access_speed_mps=4.0, speed_mps=6.0, detour_factor=1.35)
    progress(f"{workers} workers, {jobs} jobs; road matrix")
    points = [w.start for w in inputs.workers] + [(j.lat, j.lng) for j in inputs.jobs]
    t0 = time.perf_counter()
    travel(points)
    matrix_s = time.perf_counter() - t0
    progress("one solve, in this process")
    solved = solve(inputs, travel, 1800, params)
    assert solved.plan is not None, solved.error
    plan = solved.plan
    served = sum(len(r.stops) for r in plan.routes)

    progress("slot check: insertions over 12 hourly windows")
    stored = {int(r.worker_id): tuple(int(s.job_id) for s in r.stops) for r in plan.routes}
    with_routes = DayInputs(
        inputs.city_id, inputs.day, 0, -H, inputs.workers, inputs.jobs, stored, 1
    )
    extra = DayJob(0, points[0][0], points[0][1], 2 * H, (0, 0))
    t0 = time.perf_counter()
    built = build(with_routes, travel, extra=extra)
    current = current_plan(built, stored)
    build_s = time.perf_counter() - t0
    assert built.new_job is not None
    slot_ms = []
    open_slots = 0
    for hour in range(8, 20):
        job = replace(built.new_job, window=(hour * H, (hour + 1) * H - 60))
        t0 = time.perf_counter()
        found = insertions(built.problem, current, job)
        slot_ms.append((time.perf_counter() - t0) * 1000)
        open_slots += bool(found)

    progress("event-loop lag: idle, thread, process")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, solve, inputs, travel, 1800, params)  # warm up
    call = (inputs, travel, 1800, params)

    async def in_thread() -> None:
        await asyncio.to_thread(solve, *call)

    async def in_process() -> None:
        await loop.run_in_executor(pool, solve, *call)

    thread_lag, thread_s = await lag_while(in_thread)
    process_lag, process_s = await lag_while(in_process)
    idle_lag, _ = await lag_while(lambda: asyncio.sleep(max(thread_s, process_s)))
    pool.shutdown(wait=True)

    def ratio(a: dict[str, float], key: str) -> float:
        return round(a[key] / max(idle_lag[key], 1e-3), 1)

    print(
        orjson.dumps(
            {
                "benchmark": "dayplans",
                "machine": machine(["ortools", "numpy", "scipy"]),
                "params": {
                    "workers": workers,
                    "jobs": jobs,
                    "time_limit_s": params.time_limit_s,
                    "seed": args.seed,
                },
                "road_matrix_s": round(matrix_s, 3),
                "solve": {
                    "seconds": round(solved.ms / 1000, 3),
                    "served": served,
                    "dropped": len(plan.dropped),
                    "stopped_by": plan.stopped_by,
                    "objective": plan.objective,
                },
                "slot_check": {
                    "build_s": round(build_s, 3),
                    "insertions_ms": percentiles(slot_ms, (50, 99)),
                    "open_slots": open_slots,
                },
                "loop_lag_ms": {
                    "idle": idle_lag,
                    "thread": thread_lag | {"solve_s": round(thread_s, 3)},
                    "process": process_lag | {"solve_s": round(process_s, 3)},
                },
                "loop_lag_max_vs_idle": {
                    "thread": ratio(thread_lag, "max"),
                    "process": ratio(process_lag, "max"),
                },
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    asyncio.run(main())

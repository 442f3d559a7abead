"""What runs in the planning process: travel matrices, the day's problem, the solve.

OR-Tools holds the GIL for the whole of ``SolveWithParameters``: solved in a thread of
the server process, a plan would stall its event loop — sockets, ingest, every request
— for up to ``[planner] time_limit_s`` (measured: ``benchmarks/dayplans.py``). So
:class:`dispatch.plans.DayPlans` sends :func:`solve` to a process of its own (a
one-worker ``ProcessPoolExecutor``, spawned). Everything here is picklable and pure
but for reading the bundled road graphs once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from dispatch.dayplan import DayInputs, Point, build
from geo.roadgraph import city_for_bbox, load_city_graph
from matching.errors import PlanError
from matching.planner import Plan, PlannerParams, plan, road_matrix, straight_matrix


def new_pool() -> ProcessPoolExecutor:
    """The planning process: one worker, spawned, that dies with the server. A server
    killed mid-solve (SIGKILL, a crash) would otherwise leave it solving on until its time
    limit, holding a core."""
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


def _die_with_parent(parent: int) -> None:
    """In the planning process: SIGTERM when the server process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(1)


@dataclass(frozen=True, slots=True)
class Travel:
    """How travel is measured in a city: on the bundled road graph (off-graph points walk
    to their nearest node), or in straight lines with a detour factor — as ETAs are."""

    road: bool
    access_speed_mps: float
    speed_mps: float
    detour_factor: float
    graph_city: str = "shenzhen"  # which bundled network (geo.bundled.ROAD_NETWORKS)

    def __call__(self, points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
        """(seconds, metres) between every pair of ``points``."""
        if self.road:
            return road_matrix(
                load_city_graph(self.graph_city), points, access_speed_mps=self.access_speed_mps
            )
        return straight_matrix(points, speed_mps=self.speed_mps, detour_factor=self.detour_factor)


def road_graph_city(bbox: Sequence[float]) -> str | None:
    """The bundled network under a city's (min_lat, min_lng, max_lat, max_lng), or None
    — the rule ``tracking.eta_store`` uses to give a city its graph."""
    min_lat, min_lng, max_lat, max_lng = bbox
    return city_for_bbox((min_lat, min_lng, max_lat, max_lng))


def road_graph_covers(bbox: Sequence[float]) -> bool:
    """True if a bundled road graph overlaps a city's (min_lat, min_lng, max_lat, max_lng)."""
    return road_graph_city(bbox) is not None


@dataclass(frozen=True, slots=True)
class Solved:
    """A solve's result: the plan (None on failure), how long it took, or why it failed."""

    plan: Plan | None
    ms: int
    error: str = ""


def solve(
    inputs: DayInputs, travel: Travel, continuity_penalty_s: int, params: PlannerParams
) -> Solved:
    """Build the day's problem and plan it (never raises: failures come back as text)."""
    t0 = time.perf_counter()
    if not inputs.jobs:
        return Solved(Plan((), (), 0), 0)
    try:
        built = build(inputs, travel, continuity_penalty_s=continuity_penalty_s)
        result = plan(built.problem, params, seed=0)
    except (PlanError, RuntimeError, ValueError) as e:  # e.g. a job under way that cannot be kept
        return Solved(None, int((time.perf_counter() - t0) * 1000), str(e))
    return Solved(result, int((time.perf_counter() - t0) * 1000))

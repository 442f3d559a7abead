"""Travel matrices for the planner: road (Dijkstra over the city graph) or straight-line.

Pure: the road graph is passed in (``geo.roadgraph.load_futian_graph()`` loads the
bundled one once). Both return ``(seconds, metres)`` as square int64 numpy arrays,
indexed like ``points`` ((lat, lng) in degrees, WGS-84), zero on the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from geo.coords import EARTH_RADIUS_M
from geo.roadgraph import RoadGraph

Matrix = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _points(points: Sequence[tuple[float, float]]) -> tuple[FloatArray, FloatArray]:
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(array) == 0:
        raise ValueError("points must not be empty.")
    if not np.isfinite(array).all() or (np.abs(array[:, 0]) > 90).any():
        raise ValueError("points must be finite (lat, lng) pairs with |lat| <= 90.")
    return array[:, 0], array[:, 1]


def _path_lengths(length_m: Any, predecessors: npt.NDArray[np.int32]) -> FloatArray:
    """Per Dijkstra source (row), the length of the tree path to every node, by pointer
    jumping over the predecessor tree (log2(n) vectorised rounds)."""
    rows, n = predecessors.shape
    pred = predecessors.astype(np.int64)
    own = np.broadcast_to(np.arange(n), (rows, n))
    valid = pred >= 0
    acc = np.zeros((rows, n), dtype=np.float64)
    if valid.any():
        acc[valid] = np.asarray(length_m[pred[valid], own[valid]]).ravel()
    jump = np.where(valid, pred, own)
    row = np.arange(rows)[:, None]
    for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
        acc = acc + acc[row, jump]
        jump = jump[row, jump]
    return acc


def road_matrix(
    graph: RoadGraph,
    points: Sequence[tuple[float, float]],
    *,
    speed_factor: float = 1.0,
    access_speed_mps: float = 4.0,
) -> tuple[Matrix, Matrix]:
    """Fastest-path seconds and that path's metres between every pair of ``points``.

    Each point is snapped to its nearest graph node; the snap distance is walked at
    ``access_speed_mps`` at both ends (as ``tracking.eta`` does). Graph times are
    divided by ``speed_factor`` (0.8: traffic 20 % slower than free flow). One
    Dijkstra per distinct node (scipy), so ~100 points cost a few tens of ms.
    """
    if not (math.isfinite(speed_factor) and speed_factor > 0):
        raise ValueError("speed_factor must be a finite number > 0.")
    if not (math.isfinite(access_speed_mps) and access_speed_mps > 0):
        raise ValueError("access_speed_mps must be a finite number > 0.")
    lat, lng = _points(points)
    nodes, snap_m = graph.nearest_nodes(lat, lng)
    unique, inverse = np.unique(nodes, return_inverse=True)
    seconds_raw, predecessors = dijkstra(
        graph.travel_s, directed=True, indices=unique, return_predecessors=True
    )
    seconds = np.asarray(seconds_raw, dtype=np.float64)[inverse][:, nodes]
    if not np.isfinite(seconds).all():
        raise ValueError("some points cannot reach each other on the road graph.")
    lengths = _path_lengths(graph.length_m, np.asarray(predecessors))[inverse][:, nodes]
    access = snap_m[:, None] + snap_m[None, :]
    travel = seconds / speed_factor + access / access_speed_mps
    metres = lengths + access
    np.fill_diagonal(travel, 0.0)
    np.fill_diagonal(metres, 0.0)
    return np.rint(travel).astype(np.int64), np.rint(metres).astype(np.int64)


def straight_matrix(
    points: Sequence[tuple[float, float]], *, speed_mps: float, detour_factor: float = 1.0
) -> tuple[Matrix, Matrix]:
    """Great-circle metres × ``detour_factor`` between every pair of ``points``, and
    seconds at ``speed_mps``: for a city without a road graph."""
    if not (math.isfinite(speed_mps) and speed_mps > 0):
        raise ValueError("speed_mps must be a finite number > 0.")
    if not (math.isfinite(detour_factor) and detour_factor >= 1):
        raise ValueError("detour_factor must be a finite number >= 1.")
    lat_deg, lng_deg = _points(points)
    lat, lng = np.radians(lat_deg), np.radians(lng_deg)
    a = (
        np.sin((lat[:, None] - lat[None, :]) / 2) ** 2
        + np.cos(lat[:, None])
        * np.cos(lat[None, :])
        * np.sin((lng[:, None] - lng[None, :]) / 2) ** 2
    )
    metres = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))) * detour_factor
    return np.rint(metres / speed_mps).astype(np.int64), np.rint(metres).astype(np.int64)

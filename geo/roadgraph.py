"""A directed road graph with travel times, and the bundled per-city OSM ones.

Nodes are numbered 0..n-1; ``travel_s[i, j]`` and ``length_m[i, j]`` describe the
fastest direct edge from node i to node j (scipy CSR matrices, zero = no edge).
Coordinates are WGS-84; convert GCJ-02 points (AMap, Tencent) before snapping.

Each row of a bundled ``edges.csv.gz`` is one direction u -> v. OSMnx lists a two-way
road once per direction and a one-way road once, so ``oneway`` is already honoured
by the rows themselves (tests/test_roadgraph.py checks this on the data).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geo import bundled
from geo.coords import EARTH_RADIUS_M, haversine_m
from geo.road_speeds import is_drivable, speed_kmh

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class RoadGraph:
    """Nodes at (``lat[i]``, ``lng[i]``) with OSM ids ``node_ids[i]``, and directed edges.

    ``travel_s`` and ``length_m`` are n x n scipy CSR matrices (seconds, metres).
    Read-only: the arrays, including the matrices' buffers, are marked non-writeable,
    so one cached instance can be shared safely.
    """

    node_ids: IntArray
    lat: FloatArray
    lng: FloatArray
    travel_s: Any  # scipy.sparse.csr_matrix (scipy ships no type hints)
    length_m: Any  # scipy.sparse.csr_matrix
    _ref_lat_lng: tuple[float, float] = field(init=False, repr=False)
    _tree: Any = field(init=False, repr=False)  # scipy.spatial.cKDTree over local metres
    # travel_s transposed (edges reversed), for searches *to* a node: built once here
    # (transposing per search cost ~0.1 ms of each ~0.5 ms destination search).
    reverse_travel_s: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.node_ids)
        if not len(self.lat) == len(self.lng) == n or n == 0:
            raise ValueError("node_ids, lat and lng must be non-empty and of equal length")
        if self.travel_s.shape != (n, n) or self.length_m.shape != (n, n):
            raise ValueError("travel_s and length_m must be n x n")
        buffers = [self.node_ids, self.lat, self.lng]
        for matrix in (self.travel_s, self.length_m):
            buffers += [matrix.data, matrix.indices, matrix.indptr]
        for array in buffers:
            array.setflags(write=False)
        ref = (float(self.lat.mean()), float(self.lng.mean()))
        object.__setattr__(self, "_ref_lat_lng", ref)
        object.__setattr__(self, "_tree", cKDTree(self._local_xy_m(self.lat, self.lng)))
        reverse = self.travel_s.T.tocsr()
        for array in (reverse.data, reverse.indices, reverse.indptr):
            array.setflags(write=False)
        object.__setattr__(self, "reverse_travel_s", reverse)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        """Number of directed node-to-node edges (parallel edges merged)."""
        return int(self.travel_s.nnz)

    def _local_xy_m(self, lat: FloatArray, lng: FloatArray) -> FloatArray:
        """Equirectangular projection in metres around the graph's mean position."""
        ref_lat, ref_lng = self._ref_lat_lng
        x_m = np.radians(lng - ref_lng) * EARTH_RADIUS_M * math.cos(math.radians(ref_lat))
        y_m = np.radians(lat - ref_lat) * EARTH_RADIUS_M
        return np.column_stack([x_m, y_m])

    def nearest_node(self, lat: float, lng: float) -> tuple[int, float]:
        """Index of the node nearest to (lat, lng) and its great-circle distance in metres."""
        point = self._local_xy_m(np.array([lat]), np.array([lng]))[0]
        _, index = self._tree.query(point)
        node = int(index)
        return node, haversine_m(lat, lng, float(self.lat[node]), float(self.lng[node]))

    def nearest_nodes(self, lat: FloatArray, lng: FloatArray) -> tuple[IntArray, FloatArray]:
        """:meth:`nearest_node` for many points at once: node indices and metres."""
        _, index = self._tree.query(self._local_xy_m(np.asarray(lat), np.asarray(lng)))
        nodes = np.asarray(index, dtype=np.int64)
        lat1, lng1 = np.radians(np.asarray(lat)), np.radians(np.asarray(lng))
        lat2, lng2 = np.radians(self.lat[nodes]), np.radians(self.lng[nodes])
        a = (
            np.sin((lat2 - lat1) / 2) ** 2
            + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
        )
        metres: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))
        return nodes, metres


def _largest_scc(n: int, rows: IntArray, cols: IntArray) -> npt.NDArray[np.bool_]:
    """Mask of the nodes in the largest strongly connected component."""
    adjacency = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(adjacency, directed=True, connection="strong")
    mask: npt.NDArray[np.bool_] = labels == np.bincount(labels).argmax()
    return mask


def build_road_graph(
    node_rows: Iterable[Mapping[str, str]],
    edge_rows: Iterable[Mapping[str, str]],
    *,
    drivable_only: bool,
) -> RoadGraph:
    """Build a RoadGraph from OSMnx-style CSV rows, kept to its largest strongly
    connected component so every node can reach every other.

    Edge time is ``length_m / speed`` (see ``geo.road_speeds``); self-loops are
    dropped and parallel edges keep the fastest.
    """
    nodes = list(node_rows)
    index_of = {int(row["osmid"]): i for i, row in enumerate(nodes)}
    fastest: dict[tuple[int, int], tuple[float, float]] = {}  # (u, v) -> (seconds, metres)
    for row in edge_rows:
        if drivable_only and not is_drivable(row["highway"]):
            continue
        u, v = index_of[int(row["u"])], index_of[int(row["v"])]
        if u == v:
            continue
        metres = float(row["length_m"])
        seconds = metres / (speed_kmh(row["highway"], row["maxspeed"]) / 3.6)
        if (u, v) not in fastest or seconds < fastest[(u, v)][0]:
            fastest[(u, v)] = (seconds, metres)

    rows = np.array([u for u, _ in fastest], dtype=np.int64)
    cols = np.array([v for _, v in fastest], dtype=np.int64)
    keep = _largest_scc(len(nodes), rows, cols)
    new_index = np.cumsum(keep) - 1
    edge_keep = keep[rows] & keep[cols]
    rows, cols = new_index[rows[edge_keep]], new_index[cols[edge_keep]]
    values = np.array(list(fastest.values()), dtype=np.float64).reshape(-1, 2)[edge_keep]
    n = int(keep.sum())

    def matrix(data: FloatArray) -> Any:
        return csr_matrix((data, (rows, cols)), shape=(n, n))

    kept = [row for row, k in zip(nodes, keep, strict=True) if k]
    return RoadGraph(
        node_ids=np.array([int(row["osmid"]) for row in kept], dtype=np.int64),
        lat=np.array([float(row["lat"]) for row in kept], dtype=np.float64),
        lng=np.array([float(row["lon"]) for row in kept], dtype=np.float64),
        travel_s=matrix(values[:, 0]),
        length_m=matrix(values[:, 1]),
    )


@functools.cache
def _city_graph(city_id: str, drivable_only: bool) -> RoadGraph:
    """A bundled graph, built once per city and ``drivable_only`` value."""
    nodes, edges = bundled.read_road_nodes(city_id), bundled.read_road_edges(city_id)
    return build_road_graph(nodes, edges, drivable_only=drivable_only)


def bundled_cities() -> tuple[str, ...]:
    """Ids of the cities with a bundled road network (``geo.bundled.ROAD_NETWORKS``)."""
    return tuple(bundled.ROAD_NETWORKS)


def load_city_graph(city_id: str, drivable_only: bool = True) -> RoadGraph:
    """The bundled OSM drive network of a city (© OpenStreetMap contributors, ODbL).

    ``"shenzhen"``: Futian and the Shenzhen Bay edge of Nanshan, OSM of 2024-10-06
    (4,497 nodes, 9,134 directed edges before the strongly connected cut).
    ``"chengdu"``: inside the 2nd Ring Road, OSM of about Feb 2020 (see its SOURCES.md
    for the one-way caveat). Both networks hold drivable ways only, so
    ``drivable_only=False`` changes nothing there. Cached: the graph is read-only, so
    every caller shares one instance. Raises KeyError for a city with no network.
    """
    return _city_graph(city_id, bool(drivable_only))


def load_futian_graph(drivable_only: bool = True) -> RoadGraph:
    """The Shenzhen graph, ``load_city_graph("shenzhen")`` (Futian + Shenzhen Bay, 2024)."""
    return load_city_graph("shenzhen", drivable_only)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area in square degrees shared by two (min_lat, min_lng, max_lat, max_lng) boxes."""
    d_lat = min(a[2], b[2]) - max(a[0], b[0])
    d_lng = min(a[3], b[3]) - max(a[1], b[1])
    return d_lat * d_lng if d_lat > 0 and d_lng > 0 else 0.0


def graph_bbox(graph: RoadGraph) -> tuple[float, float, float, float]:
    """The graph's (min_lat, min_lng, max_lat, max_lng)."""
    lat, lng = graph.lat, graph.lng
    return float(lat.min()), float(lng.min()), float(lat.max()), float(lng.max())


def city_for_bbox(bbox: tuple[float, float, float, float]) -> str | None:
    """The bundled network whose extent overlaps ``bbox`` (min_lat, min_lng, max_lat,
    max_lng) the most, or None when none overlaps: a city is served by the graph that
    lies under its service area, whatever its id."""
    best, best_overlap = None, 0.0
    for city_id in bundled_cities():
        overlap = _overlap(bbox, graph_bbox(load_city_graph(city_id)))
        if overlap > best_overlap:
            best, best_overlap = city_id, overlap
    return best


def graph_for_bbox(bbox: tuple[float, float, float, float]) -> RoadGraph | None:
    """The bundled graph under ``bbox`` (see :func:`city_for_bbox`), or None."""
    city_id = city_for_bbox(bbox)
    return None if city_id is None else load_city_graph(city_id)

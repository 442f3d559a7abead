"""Road-network ETA to one job address, and its learned bias per city and local hour.

Pure: no I/O, no clock. Per job destination, :func:`destination_times` runs one reverse
Dijkstra over the road graph (seconds from every node *to* the destination); per location
fix, :func:`eta_s` is then a k-d tree query and an array lookup:

    eta = snap_m(worker) / access_speed + seconds_to[worker's node] + snap_m(dest) / access_speed

If the worker or the destination lies more than ``max_snap_m`` from the graph, or the
destination cannot be reached, it falls back to the straight line:
``haversine × detour_factor / fallback_speed_mps``.

Graph times are free-flow; real trips differ by city, hour and length. The caller keeps a
calibration per city (:mod:`tracking.eta_calibration`: quantiles of observed / predicted
learned from arrivals, per local hour and trip band) and turns a base ETA into a range
with :func:`eta_range`.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from geo.coords import EARTH_RADIUS_M, haversine_m
from geo.roadgraph import RoadGraph
from tracking.eta_calibration import EtaCalibration, log_quantiles, prior_calibration

FloatArray = npt.NDArray[np.float64]
EtaKind = Literal["road", "straight"]


@dataclass(frozen=True)
class EtaParams:
    """Tuning knobs for the ETA (TOML table ``[eta]``).

    Speeds are metres per second; ``prior_weight`` and ``window`` count observations.
    """

    access_speed_mps: float = 4.0  # walking/parking leg between a point and its graph node
    detour_factor: float = 1.35  # road distance / straight distance, for the fallback
    fallback_speed_mps: float = 6.0  # average speed of the straight-line fallback
    max_snap_m: float = 300.0  # farther from the graph than this: straight-line fallback
    # The learned range (tracking/eta_calibration.py).
    max_ratio: float = 6.0  # observed/predicted ratios are clipped to [1/max_ratio, max_ratio]
    min_learn_s: float = 20.0  # trips predicted shorter than this teach nothing
    bands_s: tuple[float, ...] = (120.0, 300.0, 600.0, 1200.0)  # predicted-trip band edges
    bin_width: float = 0.05  # histogram bin of log(observed / predicted)
    prior_ratio: float = 1.25  # before data: observed / predicted is about this ...
    prior_sd: float = 0.3  # ... with this spread of its log
    prior_weight: float = 5.0  # the prior counts as this many trips in a band's pool
    pool_weight: float = 60.0  # a band's pool (all hours) counts as this many trips an hour
    shift_z: float = 1.645  # the p90 uses an hour's shift this many standard errors higher
    own_shift_z: float = 1.0  # ... and at least its own (unshrunk) shift this many higher
    coverage: float = 0.93  # the quantile the p90 is read at (0.9 promised, a margin over it)
    window: int = 500  # a bucket's trips are capped at this (older ones fade)
    refresh_s: float = 30.0  # how often a process rereads the learned buckets

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands_s", tuple(float(b) for b in self.bands_s))
        positive = (
            "access_speed_mps",
            "fallback_speed_mps",
            "max_snap_m",
            "prior_weight",
            "prior_sd",
            "prior_ratio",
            "pool_weight",
            "shift_z",
            "own_shift_z",
            "bin_width",
            "refresh_s",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0.")
        if not (math.isfinite(self.detour_factor) and self.detour_factor >= 1):
            raise ValueError("detour_factor must be a finite number >= 1.")
        if not (math.isfinite(self.max_ratio) and self.max_ratio > 1):
            raise ValueError("max_ratio must be a finite number > 1.")
        if not (math.isfinite(self.min_learn_s) and self.min_learn_s >= 0):
            raise ValueError("min_learn_s must be a finite number >= 0.")
        if self.window < 2:
            raise ValueError("window must be >= 2.")
        if not (0.5 <= self.coverage < 1):
            raise ValueError("coverage must be >= 0.5 and < 1.")
        bands = self.bands_s
        if not bands or not all(math.isfinite(b) and b > 0 for b in bands):
            raise ValueError("bands_s must be finite numbers > 0, at least one.")
        if any(a >= b for a, b in itertools.pairwise(bands)):
            raise ValueError("bands_s must increase.")


@dataclass(frozen=True, eq=False)
class DestinationTimes:
    """Travel seconds from every graph node to one destination (``inf``: unreachable).

    ``node`` is the destination's nearest graph node, ``snap_m`` its distance from it.
    ``seconds_to`` is read-only and indexed like the graph's nodes.
    """

    lat: float
    lng: float
    node: int
    snap_m: float
    seconds_to: FloatArray
    next_hop: npt.NDArray[np.int32] | None = None  # the next node toward the destination


def destination_times(graph: RoadGraph, lat: float, lng: float) -> DestinationTimes:
    """Snap (lat, lng) to the graph and run one reverse Dijkstra from its node."""
    node, snap_m = graph.nearest_node(lat, lng)
    # Shortest paths *from* the destination on the reversed graph = paths *to* it; the
    # predecessor of a node on the reversed graph is its next hop toward the destination.
    reverse: Any = graph.reverse_travel_s
    seconds_raw, predecessors = dijkstra(
        reverse, directed=True, indices=node, return_predecessors=True
    )
    seconds: FloatArray = np.asarray(seconds_raw, dtype=np.float64)
    next_hop = np.asarray(predecessors, dtype=np.int32)
    seconds.setflags(write=False)
    next_hop.setflags(write=False)
    return DestinationTimes(
        lat=lat, lng=lng, node=node, snap_m=snap_m, seconds_to=seconds, next_hop=next_hop
    )


class DestinationCache:
    """:func:`destination_times` per destination on one graph, kept between calls.

    An open order is matched on every engine tick until a worker takes it, at the same
    address: its reverse search (~0.5 ms; 500 orders a tick: ~250 ms) is run once, not
    once per tick. Least recently used entries go first once the arrays held pass
    ``max_bytes``; a different graph (reloaded) empties the cache. Same inputs, same
    function: the same times as calling :func:`destination_times` each time."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.max_bytes = max_bytes
        self._graph: RoadGraph | None = None
        self._entries: OrderedDict[tuple[float, float], DestinationTimes] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, graph: RoadGraph, lat: float, lng: float) -> DestinationTimes:
        """The times to (lat, lng) on ``graph``: kept, or computed and kept."""
        if graph is not self._graph:
            self._graph = graph
            self._entries.clear()
        key = (lat, lng)
        entries = self._entries
        times = entries.get(key)
        if times is not None:
            entries.move_to_end(key)
            self.hits += 1
            return times
        self.misses += 1
        times = destination_times(graph, lat, lng)
        entries[key] = times
        per_entry = times.seconds_to.nbytes + (
            times.next_hop.nbytes if times.next_hop is not None else 0
        )
        while len(entries) > 1 and len(entries) * per_entry > self.max_bytes:
            entries.popitem(last=False)
        return times


def route_line(
    times: DestinationTimes, graph: RoadGraph, lat: float, lng: float, params: EtaParams
) -> list[tuple[float, float]]:
    """The road route (lat, lng points) from a worker to the destination, or a straight
    segment when either end is off the graph or the destination is unreachable."""
    node, snap_m = graph.nearest_node(lat, lng)
    straight = [(lat, lng), (times.lat, times.lng)]
    if (
        times.next_hop is None
        or max(snap_m, times.snap_m) > params.max_snap_m
        or not math.isfinite(float(times.seconds_to[node]))
    ):
        return straight
    points = [(lat, lng)]
    for _ in range(graph.n_nodes):
        points.append((float(graph.lat[node]), float(graph.lng[node])))
        if node == times.node:
            break
        node = int(times.next_hop[node])
        if node < 0:
            return straight
    points.append((times.lat, times.lng))
    return points


def straight_eta_s(distance_m: float, params: EtaParams) -> float:
    """The straight-line fallback for a great-circle distance."""
    return distance_m * params.detour_factor / params.fallback_speed_mps


def eta_s(
    times: DestinationTimes, graph: RoadGraph, lat: float, lng: float, params: EtaParams
) -> tuple[float, EtaKind]:
    """Seconds for a worker at (lat, lng) to reach ``times``' destination, and how."""
    if len(times.seconds_to) != graph.n_nodes:
        raise ValueError("times were computed on a different graph (node counts differ).")
    node, snap_m = graph.nearest_node(lat, lng)
    on_road = float(times.seconds_to[node])
    if max(snap_m, times.snap_m) > params.max_snap_m or not math.isfinite(on_road):
        return straight_eta_s(haversine_m(lat, lng, times.lat, times.lng), params), "straight"
    return (snap_m + times.snap_m) / params.access_speed_mps + on_road, "road"


def eta_many(
    times: DestinationTimes,
    graph: RoadGraph,
    nodes: npt.NDArray[np.int64],
    snap_m: FloatArray,
    lat: FloatArray,
    lng: FloatArray,
    params: EtaParams,
) -> FloatArray:
    """:func:`eta_s` for many workers at once, their nodes snapped beforehand
    (``graph.nearest_nodes``, once per tick for every worker): per job an array lookup.
    :func:`eta_many_jobs` with one job."""
    return eta_many_jobs([times], [len(nodes)], nodes, snap_m, lat, lng, params)


def eta_many_jobs(
    times: Sequence[DestinationTimes],
    counts: Sequence[int],
    nodes: npt.NDArray[np.int64],
    snap_m: FloatArray,
    lat: FloatArray,
    lng: FloatArray,
    params: EtaParams,
) -> FloatArray:
    """:func:`eta_s` for several jobs' workers in one pass: the workers of job ``j`` are the
    ``counts[j]`` entries of ``nodes``/``snap_m``/``lat``/``lng`` after those of the jobs
    before it, and their ETAs the same entries of the result.

    Bit for bit the same as job by job (the same operations on the same values in the same
    order, each job's own numbers — its radians and cosine, by ``math`` — repeated over its
    workers; tested), and as the per-job numpy code it replaced. A tick of 500 jobs paid ~12 numpy calls per job (~20 µs
    each job); here the per-job work is one array lookup."""
    if len(times) != len(counts):
        raise ValueError("need one count per job")
    total = sum(counts)
    if not len(nodes) == len(snap_m) == len(lat) == len(lng) == total:
        raise ValueError("need one node, snap, lat and lng per worker of every job")
    if total == 0:
        return np.empty(0)
    on_road = np.empty(total)
    start = 0
    for t, n in zip(times, counts, strict=True):
        end = start + n
        on_road[start:end] = t.seconds_to[nodes[start:end]]
        start = end
    reps = np.asarray(counts, dtype=np.int64)
    dest_snap = np.repeat(np.array([t.snap_m for t in times], dtype=np.float64), reps)
    dest_lat = np.repeat(np.array([math.radians(t.lat) for t in times]), reps)
    dest_lng = np.repeat(np.array([math.radians(t.lng) for t in times]), reps)
    dest_cos = np.repeat(np.array([math.cos(math.radians(t.lat)) for t in times]), reps)
    road = (snap_m + dest_snap) / params.access_speed_mps + on_road
    lat_r, lng_r = np.radians(lat), np.radians(lng)
    dlat, dlng = dest_lat - lat_r, dest_lng - lng_r
    a = np.sin(dlat / 2) ** 2 + np.cos(lat_r) * dest_cos * np.sin(dlng / 2) ** 2
    straight = (
        2
        * EARTH_RADIUS_M
        * np.arcsin(np.sqrt(a))
        * params.detour_factor
        / params.fallback_speed_mps
    )
    off = (np.maximum(snap_m, dest_snap) > params.max_snap_m) | ~np.isfinite(on_road)
    out: FloatArray = np.where(off, straight, road)
    return out


@dataclass(frozen=True)
class EtaRange:
    """Median and 90th-percentile ETA in seconds (``p90_s >= p50_s``)."""

    p50_s: float
    p90_s: float


def eta_range(base_s: float, cal: EtaCalibration, params: EtaParams) -> EtaRange:
    """The learned range around a base ETA from :func:`eta_s`: base x exp(the log-ratio
    quantiles of its hour and band), the prior's when ``cal`` is empty."""
    if not (math.isfinite(base_s) and base_s >= 0):
        raise ValueError("base_s must be a finite number >= 0.")
    if not cal.q50:
        cal = prior_calibration(params)
    q50, q90 = log_quantiles(base_s, cal, params)
    p50_s = base_s * math.exp(q50)
    return EtaRange(p50_s=p50_s, p90_s=max(p50_s, base_s * math.exp(q90)))

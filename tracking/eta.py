"""Road-network ETA to one job address, and its learned bias per city and local hour.

Pure: no I/O, no clock. Per job destination, :func:`destination_times` runs one reverse
Dijkstra over the road graph (seconds from every node *to* the destination); per location
fix, :func:`eta_s` is then a k-d tree query and an array lookup:

    eta = snap_m(worker) / access_speed + seconds_to[worker's node] + snap_m(dest) / access_speed

If the worker or the destination lies more than ``max_snap_m`` from the graph, or the
destination cannot be reached, it falls back to the straight line:
``haversine × detour_factor / fallback_speed_mps``.

Graph times are free-flow; real trips differ by city and hour. The caller keeps one
:class:`EtaStats` per (city, local hour 0-23), feeds each finished trip to :func:`update`
(observed vs. the ETA predicted when the trip started), and turns a base ETA into a range
with :func:`eta_range`.

Statistics model: each observation contributes ``x = log(observed / predicted)``, clipped
to ±log(``max_ratio``) so a forgotten "arrived" tap cannot swamp the bucket. ``EtaStats``
keeps the running mean and variance of ``x`` with weight ``1 / min(n, window)``: exactly
Welford's mean and (population) variance for the first ``window`` observations, then an
exponential moving average with alpha = 1/``window``, so the bias tracks slow drift.
:func:`eta_range` shrinks both towards a prior (ratio 1.0, sd ``prior_sd``) worth
``prior_weight`` observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from geo.coords import EARTH_RADIUS_M, haversine_m
from geo.roadgraph import RoadGraph

FloatArray = npt.NDArray[np.float64]
EtaKind = Literal["road", "straight"]

Z_90: Final = 1.2815515655446004  # standard normal 90th percentile


@dataclass(frozen=True)
class EtaParams:
    """Tuning knobs for the ETA (TOML table ``[eta]``).

    Speeds are metres per second; ``prior_weight`` and ``window`` count observations.
    """

    access_speed_mps: float = 4.0  # walking/parking leg between a point and its graph node
    detour_factor: float = 1.35  # road distance / straight distance, for the fallback
    fallback_speed_mps: float = 6.0  # average speed of the straight-line fallback
    max_snap_m: float = 300.0  # farther from the graph than this: straight-line fallback
    max_ratio: float = 4.0  # observed/predicted ratios are clipped to [1/max_ratio, max_ratio]
    min_learn_s: float = 60.0  # trips predicted shorter than this teach nothing
    prior_weight: float = 5.0  # the prior counts as this many observations
    prior_sd: float = 0.25  # prior standard deviation of log(observed / predicted)
    window: int = 500  # after this many observations the statistics become an EMA

    def __post_init__(self) -> None:
        positive = (
            "access_speed_mps",
            "fallback_speed_mps",
            "max_snap_m",
            "prior_weight",
            "prior_sd",
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
        if self.window < 1:
            raise ValueError("window must be >= 1.")


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
    reverse: Any = graph.travel_s.T.tocsr()
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
    (``graph.nearest_nodes``, once per tick for every worker): per job an array lookup."""
    on_road = times.seconds_to[nodes]
    road = (snap_m + times.snap_m) / params.access_speed_mps + on_road
    lat_r, lng_r = np.radians(lat), np.radians(lng)
    dlat, dlng = math.radians(times.lat) - lat_r, math.radians(times.lng) - lng_r
    a = (
        np.sin(dlat / 2) ** 2
        + np.cos(lat_r) * math.cos(math.radians(times.lat)) * np.sin(dlng / 2) ** 2
    )
    straight = (
        2
        * EARTH_RADIUS_M
        * np.arcsin(np.sqrt(a))
        * params.detour_factor
        / params.fallback_speed_mps
    )
    off = (np.maximum(snap_m, times.snap_m) > params.max_snap_m) | ~np.isfinite(on_road)
    out: FloatArray = np.where(off, straight, road)
    return out


@dataclass(frozen=True)
class EtaStats:
    """Running statistics of the clipped ``log(observed / predicted)`` of finished trips.

    ``n`` counts observations; ``mean_log_ratio`` and ``var_log_ratio`` are their mean and
    population variance (Welford, then an EMA once ``n`` passes ``EtaParams.window``).
    """

    n: int = 0
    mean_log_ratio: float = 0.0
    var_log_ratio: float = 0.0


@dataclass(frozen=True)
class EtaRange:
    """Median and 90th-percentile ETA in seconds (``p90_s >= p50_s``)."""

    p50_s: float
    p90_s: float


def update(stats: EtaStats, observed_s: float, predicted_s: float, params: EtaParams) -> EtaStats:
    """``stats`` with one finished trip added.

    Trips predicted shorter than ``min_learn_s`` return ``stats`` unchanged (a few
    seconds of parking dominate them); the log ratio is clipped to ±log(``max_ratio``).
    """
    if not (math.isfinite(observed_s) and observed_s >= 0):
        raise ValueError("observed_s must be a finite number >= 0.")
    if not (math.isfinite(predicted_s) and predicted_s >= 0):
        raise ValueError("predicted_s must be a finite number >= 0.")
    if predicted_s < params.min_learn_s or predicted_s == 0:
        return stats
    limit = math.log(params.max_ratio)
    ratio = observed_s / predicted_s
    x = min(limit, max(-limit, math.log(ratio))) if ratio > 0 else -limit
    alpha = 1.0 / min(stats.n + 1, params.window)
    diff = x - stats.mean_log_ratio
    return EtaStats(
        n=stats.n + 1,
        mean_log_ratio=stats.mean_log_ratio + alpha * diff,
        var_log_ratio=(1 - alpha) * (stats.var_log_ratio + alpha * diff * diff),
    )


def eta_range(base_s: float, stats: EtaStats, params: EtaParams) -> EtaRange:
    """The learned range around a base ETA from :func:`eta_s`.

    p50 = base × exp(shrunk mean log ratio); p90 = p50 × exp(z90 × shrunk sd), where
    both are averaged with the prior (0 and ``prior_sd``) at weight ``prior_weight``.
    """
    if not (math.isfinite(base_s) and base_s >= 0):
        raise ValueError("base_s must be a finite number >= 0.")
    weight = float(min(stats.n, params.window))
    total = weight + params.prior_weight
    mean = weight * stats.mean_log_ratio / total
    variance = (params.prior_weight * params.prior_sd**2 + weight * stats.var_log_ratio) / total
    p50_s = base_s * math.exp(mean)
    return EtaRange(p50_s=p50_s, p90_s=p50_s * math.exp(Z_90 * math.sqrt(variance)))

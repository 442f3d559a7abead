"""How simulated workers move and what their phones report. Pure: no I/O, no clock.

- :class:`Router` finds the fastest path on the road graph (the bundled Futian graph,
  the same map the server uses for ETAs; a phone has a map too).
- :func:`plan_trip` turns a path into a timed polyline: from the start to the nearest
  road node (at three times walking speed: a scooter off the road), each edge at its
  road speed times a per-trip traffic factor (log-normal), a wait at some intersections
  (lights), and a walk at the end from the road to the door.
- :class:`GpsNoise` is what a phone's fix adds to the truth: an error that wanders
  (first-order Gauss–Markov, so consecutive fixes are correlated as real ones are), an
  accuracy estimate that goes with it, now and then a poor fix (urban canyon) and rarely
  a multipath jump of a few hundred metres.

All randomness comes from a ``numpy.random.Generator`` the caller passes (seeded).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from geo.coords import haversine_m
from geo.roadgraph import RoadGraph

FloatArray = npt.NDArray[np.float64]
M_PER_DEG_LAT = 111_320.0
WALK_MPS = 1.3


class Router:
    """Fastest paths on a road graph (cached per source node)."""

    def __init__(self, graph: RoadGraph, cache_size: int = 256) -> None:
        self.graph = graph
        self._cache: dict[int, npt.NDArray[np.int32]] = {}
        self._cache_size = cache_size

    def nearest(self, lat: float, lng: float) -> int:
        """The graph node nearest to a point."""
        return self.graph.nearest_node(lat, lng)[0]

    def path(self, source: int, target: int) -> list[int]:
        """Node indices from ``source`` to ``target`` along the fastest roads."""
        if source == target:
            return [source]
        pred = self._cache.get(source)
        if pred is None:
            _, p = dijkstra(self.graph.travel_s, indices=source, return_predecessors=True)
            pred = np.asarray(p, dtype=np.int32)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[source] = pred
        out = [target]
        while out[-1] != source:
            prev = int(pred[out[-1]])
            if prev < 0:
                raise ValueError(f"no road from node {source} to node {target}")
            out.append(prev)
        return out[::-1]


@dataclass(frozen=True, slots=True)
class MotionParams:
    """How fast and how smoothly workers travel (``[workers]`` of a scenario)."""

    speed_factor: float = 0.85
    speed_sd: float = 0.15
    stop_share: float = 0.15
    stop_s: tuple[float, float] = (5.0, 40.0)
    walk_mps: float = WALK_MPS  # on foot from the road to the door


@dataclass(frozen=True, slots=True)
class Trip:
    """A timed polyline: at ``times[i]`` seconds after the start the worker is at vertex i
    (a vertex may repeat: a wait)."""

    lat: FloatArray
    lng: FloatArray
    times: FloatArray
    length_m: float

    @property
    def duration_s(self) -> float:
        """From the start to the door."""
        return float(self.times[-1])

    @property
    def end(self) -> tuple[float, float]:
        """The door."""
        return float(self.lat[-1]), float(self.lng[-1])

    def at(self, t: float) -> tuple[float, float, float, float | None]:
        """(lat, lng, speed m/s, heading degrees or None) ``t`` seconds after the start."""
        times = self.times
        if t <= 0:
            return float(self.lat[0]), float(self.lng[0]), 0.0, None
        if t >= times[-1]:
            return float(self.lat[-1]), float(self.lng[-1]), 0.0, None
        i = int(np.searchsorted(times, t, side="right")) - 1
        dt = float(times[i + 1] - times[i])
        f = (t - float(times[i])) / dt if dt > 0 else 1.0
        lat0, lng0 = float(self.lat[i]), float(self.lng[i])
        lat1, lng1 = float(self.lat[i + 1]), float(self.lng[i + 1])
        lat, lng = lat0 + (lat1 - lat0) * f, lng0 + (lng1 - lng0) * f
        seg = haversine_m(lat0, lng0, lat1, lng1)
        if seg < 0.5 or dt <= 0:
            return lat, lng, 0.0, None
        kx = math.cos(math.radians(lat0))
        heading = math.degrees(math.atan2((lng1 - lng0) * kx, lat1 - lat0)) % 360.0
        return lat, lng, seg / dt, heading

    def distance_by(self, t: float) -> float:
        """Metres travelled ``t`` seconds after the start."""
        if t >= self.duration_s:
            return self.length_m
        lat, lng, _, _ = self.at(t)
        i = int(np.searchsorted(self.times, max(t, 0.0), side="right")) - 1
        done = 0.0
        for k in range(min(i, len(self.lat) - 1)):
            done += haversine_m(
                float(self.lat[k]),
                float(self.lng[k]),
                float(self.lat[k + 1]),
                float(self.lng[k + 1]),
            )
        return done + haversine_m(float(self.lat[i]), float(self.lng[i]), lat, lng)


def plan_trip(
    router: Router,
    start: tuple[float, float],
    door: tuple[float, float],
    rng: np.random.Generator,
    params: MotionParams,
) -> Trip:
    """From ``start`` to ``door``: to the nearest road node, the fastest roads, then on foot."""
    graph = router.graph
    a, b = router.nearest(*start), router.nearest(*door)
    nodes = router.path(a, b)
    factor = float(params.speed_factor * math.exp(rng.normal(0.0, params.speed_sd)))
    lats, lngs, times = [start[0]], [start[1]], [0.0]
    length = 0.0

    def leg(lat: float, lng: float, seconds: float, metres: float) -> None:
        nonlocal length
        lats.append(lat)
        lngs.append(lng)
        times.append(times[-1] + max(seconds, 0.0))
        length += metres

    first = haversine_m(start[0], start[1], float(graph.lat[a]), float(graph.lng[a]))
    leg(float(graph.lat[a]), float(graph.lng[a]), first / (params.walk_mps * 3), first)
    for u, v in itertools.pairwise(nodes):
        seconds = float(graph.travel_s[u, v]) / factor
        metres = float(graph.length_m[u, v])
        if rng.random() < params.stop_share:  # wait at the intersection before the edge
            leg(float(graph.lat[u]), float(graph.lng[u]), float(rng.uniform(*params.stop_s)), 0.0)
        leg(float(graph.lat[v]), float(graph.lng[v]), seconds, metres)
    last = haversine_m(float(graph.lat[b]), float(graph.lng[b]), door[0], door[1])
    leg(door[0], door[1], last / params.walk_mps, last)
    return Trip(np.array(lats), np.array(lngs), np.array(times), length)


@dataclass(frozen=True, slots=True)
class NoiseParams:
    """A phone's GPS in a dense city."""

    sigma_m: float = 6.0  # steady error per axis (metres)
    tau_s: float = 20.0  # how long an error persists (correlation time)
    accuracy_median_m: float = 8.0  # the accuracy the phone reports, typically
    poor_share: float = 0.03  # fixes in an urban canyon: error and accuracy x 3..8
    jump_share: float = 0.004  # multipath jumps (150–400 m off, reported accuracy fine)


class GpsNoise:
    """One phone's GPS error over time (seeded)."""

    def __init__(self, rng: np.random.Generator, params: NoiseParams | None = None) -> None:
        self.rng = rng
        self.params = params or NoiseParams()
        self._e = rng.normal(0.0, self.params.sigma_m, size=2)  # (north, east) metres

    def fix(self, lat: float, lng: float, dt_s: float) -> tuple[float, float, float]:
        """(lat, lng, accuracy_m) the phone reports for the true (lat, lng), ``dt_s`` after
        its previous fix."""
        p, rng = self.params, self.rng
        keep = math.exp(-max(dt_s, 0.0) / p.tau_s)
        self._e = self._e * keep + rng.normal(0.0, p.sigma_m * math.sqrt(1 - keep * keep), size=2)
        error = self._e.copy()
        accuracy = p.accuracy_median_m * math.exp(rng.normal(0.0, 0.35))
        u = rng.random()
        if u < p.jump_share:
            r, a = rng.uniform(150.0, 400.0), rng.uniform(0.0, 2 * math.pi)
            error = error + np.array([r * math.sin(a), r * math.cos(a)])
        elif u < p.jump_share + p.poor_share:
            k = rng.uniform(3.0, 8.0)
            error, accuracy = error * k, accuracy * k
        north, east = float(error[0]), float(error[1])
        kx = M_PER_DEG_LAT * math.cos(math.radians(lat))
        return lat + north / M_PER_DEG_LAT, lng + east / kx, round(max(accuracy, 3.0), 1)

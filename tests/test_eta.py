"""tracking.eta: road-network ETA on the real Futian graph (the learned range: test_eta_calibration)."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from doorstep.params import ParamsError, from_mapping
from geo.coords import EARTH_RADIUS_M, haversine_m
from geo.roadgraph import RoadGraph, load_futian_graph
from tracking.eta import (
    DestinationCache,
    EtaParams,
    destination_times,
    eta_many,
    eta_many_jobs,
    eta_s,
    straight_eta_s,
)

PARAMS = EtaParams()
M_PER_DEG = math.radians(1) * EARTH_RADIUS_M
NODES = [0, 137, 688, 1001, 1375]  # destinations spread over the graph's node indices


@pytest.fixture(scope="module")
def graph() -> RoadGraph:
    """The default (drivable-only) Futian graph."""
    return load_futian_graph()


def near(graph: RoadGraph, node: int, north_m: float) -> tuple[float, float]:
    """A point ``north_m`` metres north of a node."""
    return float(graph.lat[node]) + north_m / M_PER_DEG, float(graph.lng[node])


def at(graph: RoadGraph, node: int) -> tuple[float, float]:
    """A node's own coordinate."""
    return float(graph.lat[node]), float(graph.lng[node])


@pytest.mark.parametrize("node", NODES)
def test_eta_from_destination_node_is_the_destination_leg(graph: RoadGraph, node: int) -> None:
    """A worker standing on the destination's snapped node needs only the destination leg."""
    times = destination_times(graph, *near(graph, node, 15.0))
    assert 0.0 < times.snap_m <= 15.0
    seconds, kind = eta_s(times, graph, *at(graph, times.node), PARAMS)
    assert kind == "road"
    assert seconds == pytest.approx(times.snap_m / PARAMS.access_speed_mps)


@pytest.mark.parametrize("node", NODES)
def test_eta_decreases_along_the_shortest_path(graph: RoadGraph, node: int) -> None:
    """Walking the shortest path from the farthest node, every next node has a smaller ETA."""
    times = destination_times(graph, *at(graph, node))
    _, successor = dijkstra(graph.travel_s.T.tocsr(), indices=node, return_predecessors=True)
    current = int(np.argmax(times.seconds_to))
    etas = []
    while current != node:
        etas.append(eta_s(times, graph, *at(graph, current), PARAMS))
        current = int(successor[current])
    etas.append(eta_s(times, graph, *at(graph, node), PARAMS))
    assert len(etas) > 10
    assert {kind for _, kind in etas} == {"road"}
    seconds = [s for s, _ in etas]
    assert all(a > b for a, b in itertools.pairwise(seconds))
    assert seconds[-1] == 0.0


@pytest.mark.parametrize("node", NODES)
def test_road_eta_is_at_least_straight_line_at_top_speed(graph: RoadGraph, node: int) -> None:
    """No road ETA beats the straight-line distance covered at the fastest edge's speed."""
    coo = graph.travel_s.tocoo()
    top_speed_mps = float((graph.length_m.tocoo().data / coo.data).max())
    times = destination_times(graph, *near(graph, node, 40.0))
    rng = random.Random(node)
    checked = 0
    for _ in range(300):
        # Anywhere within ~270 m of a random node: on land (the 2024 bbox also holds sea).
        base = rng.randrange(graph.n_nodes)
        lat = float(graph.lat[base]) + rng.uniform(-0.0025, 0.0025)
        lng = float(graph.lng[base]) + rng.uniform(-0.0025, 0.0025)
        seconds, kind = eta_s(times, graph, lat, lng, PARAMS)
        if kind == "road":
            checked += 1
            lower_s = haversine_m(lat, lng, times.lat, times.lng) / top_speed_mps
            assert seconds >= lower_s * (1 - 1e-6) - 1e-3  # OSM lengths are rounded to 1 mm
    assert checked > 200


@pytest.mark.parametrize(("worker", "dest"), [(0, 688), (1375, 137), (500, 1001), (42, 42)])
def test_reverse_times_match_a_forward_dijkstra(graph: RoadGraph, worker: int, dest: int) -> None:
    """The reverse search gives the same seconds as a forward search from the worker's node."""
    times = destination_times(graph, *near(graph, dest, 25.0))
    forward = dijkstra(graph.travel_s, indices=worker)
    seconds, kind = eta_s(times, graph, *at(graph, worker), PARAMS)
    assert kind == "road"
    expected = forward[times.node] + times.snap_m / PARAMS.access_speed_mps
    assert seconds == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("node", NODES)
def test_times_satisfy_the_triangle_inequality_on_every_edge(graph: RoadGraph, node: int) -> None:
    """For every edge u→v, time(u) <= travel(u, v) + time(v), with equality somewhere."""
    times = destination_times(graph, *at(graph, node)).seconds_to
    coo = graph.travel_s.tocoo()
    slack = coo.data + times[coo.col] - times[coo.row]
    assert slack.min() >= -1e-9
    assert np.isfinite(times).all()
    assert times[node] == 0.0


def test_times_are_read_only(graph: RoadGraph) -> None:
    """The per-destination array cannot be changed by a caller sharing it."""
    times = destination_times(graph, *at(graph, 3))
    with pytest.raises(ValueError, match="read-only"):
        times.seconds_to[0] = 1.0


@pytest.mark.parametrize("direction", ["north", "south", "east", "west"])
def test_worker_off_the_graph_gets_the_straight_line(graph: RoadGraph, direction: str) -> None:
    """A worker 2 km outside the graph's bbox gets haversine × detour / fallback speed."""
    lat_mid, lng_mid = float(graph.lat.mean()), float(graph.lng.mean())
    lng_scale = M_PER_DEG * math.cos(math.radians(lat_mid))
    lat, lng = {
        "north": (float(graph.lat.max()) + 2000 / M_PER_DEG, lng_mid),
        "south": (float(graph.lat.min()) - 2000 / M_PER_DEG, lng_mid),
        "east": (lat_mid, float(graph.lng.max()) + 2000 / lng_scale),
        "west": (lat_mid, float(graph.lng.min()) - 2000 / lng_scale),
    }[direction]
    times = destination_times(graph, *at(graph, 688))
    seconds, kind = eta_s(times, graph, lat, lng, PARAMS)
    assert kind == "straight"
    distance_m = haversine_m(lat, lng, times.lat, times.lng)
    assert seconds == pytest.approx(distance_m * 1.35 / 6.0)
    assert seconds == straight_eta_s(distance_m, PARAMS)


def test_destination_off_the_graph_gets_the_straight_line(graph: RoadGraph) -> None:
    """A destination 400 m from the nearest node falls back even for a worker on a node."""
    times = destination_times(graph, float(graph.lat.max()) + 400 / M_PER_DEG, 114.02)
    assert times.snap_m > PARAMS.max_snap_m
    seconds, kind = eta_s(times, graph, *at(graph, 688), PARAMS)
    assert kind == "straight"
    assert seconds == pytest.approx(haversine_m(*at(graph, 688), times.lat, times.lng) * 1.35 / 6.0)


def one_way_graph() -> RoadGraph:
    """Three nodes 100 m apart west to east: 0 ⇄ 1 → 2, so 2 cannot reach 0 or 1."""
    lng_step = 100 / (M_PER_DEG * math.cos(math.radians(22.53)))
    rows, cols = np.array([0, 1, 1]), np.array([1, 0, 2])

    def matrix(values: list[float]) -> Any:
        return csr_matrix((np.array(values), (rows, cols)), shape=(3, 3))

    return RoadGraph(
        node_ids=np.array([10, 11, 12], dtype=np.int64),
        lat=np.full(3, 22.53),
        lng=114.0 + lng_step * np.arange(3.0),
        travel_s=matrix([10.0, 10.0, 10.0]),
        length_m=matrix([100.0, 100.0, 100.0]),
    )


def test_unreachable_destination_gets_the_straight_line() -> None:
    """From a node with no path to the destination the ETA is the straight-line fallback."""
    small = one_way_graph()
    times = destination_times(small, *at(small, 0))
    assert math.isinf(times.seconds_to[2])
    seconds, kind = eta_s(times, small, *at(small, 2), PARAMS)
    assert kind == "straight"
    assert seconds == pytest.approx(haversine_m(*at(small, 2), *at(small, 0)) * 1.35 / 6.0)
    assert eta_s(times, small, *at(small, 1), PARAMS) == (10.0, "road")


def test_times_from_another_graph_are_rejected(graph: RoadGraph) -> None:
    """Using one graph's destination times with another graph is an error, not a wrong ETA."""
    times = destination_times(one_way_graph(), 22.53, 114.0)
    with pytest.raises(ValueError, match="different graph"):
        eta_s(times, graph, *at(graph, 0), PARAMS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("access_speed_mps", 0.0),
        ("fallback_speed_mps", -6.0),
        ("max_snap_m", math.inf),
        ("detour_factor", 0.9),
        ("max_ratio", 1.0),
        ("min_learn_s", -1.0),
        ("prior_weight", 0.0),
        ("prior_sd", math.nan),
        ("window", 0),
        ("coverage", 1.0),
        ("bin_width", 0.0),
        ("bands_s", (300.0, 120.0)),
        ("prior_ratio", 0.0),
    ],
)
def test_params_reject_bad_values(field: str, value: float) -> None:
    """An out-of-range knob is a ValueError naming the field."""
    changes: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        EtaParams(**changes)


def test_params_load_from_a_toml_table() -> None:
    """The [eta] table overrides defaults, accepts ints for floats, and rejects unknown keys."""
    params = from_mapping(EtaParams, {"access_speed_mps": 3, "window": 50}, section="eta")
    assert params == EtaParams(access_speed_mps=3.0, window=50)
    with pytest.raises(ParamsError, match=r"eta\.speed"):
        from_mapping(EtaParams, {"speed": 3}, section="eta")
    with pytest.raises(ParamsError, match="max_snap_m"):
        from_mapping(EtaParams, {"max_snap_m": -1}, section="eta")


def test_eta_many_equals_eta_s_point_by_point() -> None:
    """The vectorised ETA gives exactly what eta_s gives, on and off the graph."""
    graph = load_futian_graph()
    params = EtaParams()
    rng = np.random.default_rng(5)
    lat = rng.uniform(22.50, 22.56, 300)  # some points off the graph's bbox: straight-line
    lng = rng.uniform(113.98, 114.06, 300)
    times = destination_times(graph, float(graph.lat[100]), float(graph.lng[100]))
    nodes, snap_m = graph.nearest_nodes(lat, lng)
    many = eta_many(times, graph, nodes, snap_m, lat, lng, params)
    one = [
        eta_s(times, graph, float(a), float(b), params)[0] for a, b in zip(lat, lng, strict=True)
    ]
    assert many == pytest.approx(one, rel=1e-9)


def test_eta_many_jobs_equals_eta_many_job_by_job_bit_for_bit() -> None:
    """Several jobs' ETAs in one pass are each job's alone, to the bit (on and off the graph,
    a job without workers included)."""
    graph = load_futian_graph()
    params = EtaParams()
    rng = np.random.default_rng(7)
    dests = [int(d) for d in rng.integers(0, len(graph.lat), 6)]
    times = [destination_times(graph, float(graph.lat[d]), float(graph.lng[d])) for d in dests]
    times.append(destination_times(graph, 22.49, 113.97))  # off the graph: straight lines
    counts = [40, 0, 1, 25, 60, 7, 30]
    lat = rng.uniform(22.50, 22.56, sum(counts))
    lng = rng.uniform(113.98, 114.06, sum(counts))
    nodes, snap_m = graph.nearest_nodes(lat, lng)
    together = eta_many_jobs(times, counts, nodes, snap_m, lat, lng, params)
    start, apart = 0, []
    for t, n in zip(times, counts, strict=True):
        s = slice(start, start + n)
        apart.append(eta_many(t, graph, nodes[s], snap_m[s], lat[s], lng[s], params))
        start += n
    assert together.tobytes() == np.concatenate(apart).tobytes()


def test_the_destination_cache_gives_the_same_times_and_keeps_them_within_its_budget(
    graph: RoadGraph,
) -> None:
    """DestinationCache returns destination_times' arrays bit for bit, runs one search per
    destination, drops the least recently used past its byte budget, and starts over for
    another graph."""
    points = [(22.53 + i * 0.004, 114.02 + i * 0.003) for i in range(4)]
    per_entry = graph.n_nodes * (8 + 4)  # seconds_to float64 + next_hop int32
    cache = DestinationCache(max_bytes=3 * per_entry)
    for lat, lng in points[:3]:
        kept, fresh = cache.get(graph, lat, lng), destination_times(graph, lat, lng)
        assert np.array_equal(kept.seconds_to, fresh.seconds_to)
        assert kept.next_hop is not None
        assert fresh.next_hop is not None
        assert np.array_equal(kept.next_hop, fresh.next_hop)
        assert (kept.node, kept.snap_m) == (fresh.node, fresh.snap_m)
    first = cache.get(graph, *points[0])
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 3)
    cache.get(graph, *points[3])  # over budget: points[1], the least recently used, goes
    assert len(cache) == 3
    assert cache.get(graph, *points[0]) is first
    cache.get(graph, *points[1])
    assert cache.misses == 5
    walking = load_futian_graph(drivable_only=False)  # another graph: the cache starts over
    assert cache.get(walking, *points[0]).seconds_to.shape == (walking.n_nodes,)
    assert len(cache) == 1

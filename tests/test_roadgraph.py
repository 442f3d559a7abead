"""geo.roadgraph and geo.road_speeds: the bundled city graphs (Shenzhen 2024, Chengdu 2020) and how they are built."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components, dijkstra

from geo import bundled
from geo.coords import haversine_m
from geo.road_speeds import is_drivable, speed_kmh, tag_values
from geo.roadgraph import (
    RoadGraph,
    build_road_graph,
    city_for_bbox,
    graph_for_bbox,
    load_city_graph,
    load_futian_graph,
)


@pytest.fixture(scope="module")
def graph() -> RoadGraph:
    """The default (drivable-only) Shenzhen graph (Futian + Shenzhen Bay, OSM 2024)."""
    return load_futian_graph()


@pytest.mark.parametrize(
    ("city", "drivable_only", "n_nodes", "n_edges"),
    [
        ("shenzhen", True, 4293, 8759),  # 11 busway edges are not for cars
        ("shenzhen", False, 4295, 8765),
        ("chengdu", True, 3903, 10696),
        ("chengdu", False, 3903, 10698),
    ],
)
def test_node_and_edge_counts(city: str, drivable_only: bool, n_nodes: int, n_edges: int) -> None:
    """Each bundled graph has the documented number of nodes and distinct directed edges."""
    road_graph = load_city_graph(city, drivable_only)
    assert road_graph.n_nodes == n_nodes
    assert road_graph.n_edges == n_edges
    assert road_graph.lat.shape == road_graph.lng.shape == road_graph.node_ids.shape == (n_nodes,)
    assert len(set(road_graph.node_ids.tolist())) == n_nodes


@pytest.mark.parametrize("city", ["shenzhen", "chengdu"])
@pytest.mark.parametrize("drivable_only", [True, False])
def test_graph_is_strongly_connected(city: str, drivable_only: bool) -> None:
    """Every node can reach every other node (one strongly connected component)."""
    road_graph = load_city_graph(city, drivable_only)
    n_components, _ = connected_components(road_graph.travel_s, connection="strong")
    assert n_components == 1
    assert np.isfinite(dijkstra(road_graph.travel_s, indices=0)).all()


@pytest.mark.parametrize(
    ("city", "bbox"),
    [
        ("shenzhen", (22.5036, 113.9539, 22.5994, 114.0939)),
        ("chengdu", (30.6198, 104.0135, 30.7002, 104.1175)),
    ],
)
def test_coordinates_lie_in_the_extract_bbox(
    city: str, bbox: tuple[float, float, float, float]
) -> None:
    """All nodes are inside the extract's WGS-84 bounding box."""
    graph = load_city_graph(city)
    assert graph.lat.min() > bbox[0]
    assert graph.lng.min() > bbox[1]
    assert graph.lat.max() < bbox[2]
    assert graph.lng.max() < bbox[3]


def test_the_graph_covers_futian_end_to_end(graph: RoadGraph) -> None:
    """The 2024 graph reaches from Shenzhen Bay (west of 113.97 E) to east of the CBD (114.07 E)."""
    assert graph.lng.min() < 113.97
    assert graph.lng.max() > 114.07
    _cbd_node, cbd_m = graph.nearest_node(22.5404, 114.0555)  # 会展中心, Futian CBD (WGS-84)
    assert cbd_m < 150


def test_a_city_box_finds_its_own_graph() -> None:
    """A service area's bbox picks the bundled graph under it, and a box elsewhere picks none."""
    assert city_for_bbox((22.50, 113.99, 22.59, 114.09)) == "shenzhen"
    assert city_for_bbox((30.63, 104.02, 30.69, 104.11)) == "chengdu"
    assert city_for_bbox((39.8, 116.3, 40.0, 116.5)) is None  # Beijing
    assert graph_for_bbox((30.63, 104.02, 30.69, 104.11)) is load_city_graph("chengdu")


def test_nearest_node_of_every_node_is_itself(graph: RoadGraph) -> None:
    """Snapping a node's own coordinate returns that node at distance 0."""
    for index in range(graph.n_nodes):
        assert graph.nearest_node(float(graph.lat[index]), float(graph.lng[index])) == (index, 0.0)


def test_nearest_node_agrees_with_brute_force(graph: RoadGraph) -> None:
    """For random points in and around the bbox the k-d tree finds the haversine-nearest node."""
    rng = np.random.default_rng(7)
    lats = rng.uniform(22.50, 22.60, 200)
    lngs = rng.uniform(113.95, 114.10, 200)
    for lat, lng in zip(lats.tolist(), lngs.tolist(), strict=True):
        node, distance_m = graph.nearest_node(lat, lng)
        all_m = [haversine_m(lat, lng, a, b) for a, b in zip(graph.lat, graph.lng, strict=True)]
        assert distance_m == pytest.approx(min(all_m), abs=0.01)
        assert distance_m == pytest.approx(all_m[node])


def test_travel_times_are_positive_and_plausible(graph: RoadGraph) -> None:
    """Edge times are positive and imply 10-80 km/h; lengths share the same edges."""
    assert (graph.travel_s.data > 0).all()
    assert (graph.length_m.data > 0).all()
    assert (graph.travel_s.indptr == graph.length_m.indptr).all()
    assert (graph.travel_s.indices == graph.length_m.indices).all()
    speed_kmh_values = graph.length_m.data / graph.travel_s.data * 3.6
    assert speed_kmh_values.min() >= 10.0 - 1e-9
    assert speed_kmh_values.max() <= 80.0 + 1e-9
    assert 2.0 < float(np.median(graph.travel_s.data)) < 60.0


def test_cross_district_trip_takes_a_plausible_time(graph: RoadGraph) -> None:
    """Driving between opposite corners takes longer than straight-line at 60 km/h, under 30 min."""
    south_west = int(np.argmin(graph.lat + graph.lng))
    north_east = int(np.argmax(graph.lat + graph.lng))
    eta_s = float(dijkstra(graph.travel_s, indices=south_west)[north_east])
    straight_m = haversine_m(
        float(graph.lat[south_west]),
        float(graph.lng[south_west]),
        float(graph.lat[north_east]),
        float(graph.lng[north_east]),
    )
    assert straight_m > 4000
    assert straight_m / (60 / 3.6) < eta_s < 30 * 60


@pytest.mark.parametrize(("city", "n_two_way"), [("shenzhen", 4622), ("chengdu", 9530)])
def test_data_lists_both_directions_of_two_way_roads(city: str, n_two_way: int) -> None:
    """In edges.csv.gz every oneway=False row has its reverse row, so rows already encode oneway."""
    rows = bundled.read_road_edges(city)
    pairs = {(row["u"], row["v"]) for row in rows}
    two_way = [row for row in rows if row["oneway"] == "False"]
    assert len(two_way) == n_two_way
    assert all((row["v"], row["u"]) in pairs for row in two_way)


def test_chengdu_one_ways_of_unknown_direction_are_both_ways_and_flagged() -> None:
    """The 1,422 Chengdu one-way segments without geometry are written both ways and flagged."""
    rows = bundled.read_road_edges("chengdu")
    unresolved = [row for row in rows if row["oneway_unresolved"]]
    assert len(unresolved) == 2 * 1422
    pairs = {(row["u"], row["v"]) for row in unresolved}
    assert all((row["v"], row["u"]) in pairs for row in unresolved)
    resolved = [row for row in rows if row["oneway"] == "True"]
    assert len(resolved) == 1329
    assert not any(row["oneway_unresolved"] for row in resolved)


def test_one_way_roads_stay_one_way(graph: RoadGraph) -> None:
    """A oneway=True edge without a listed reverse has no reverse edge in the graph."""
    rows = bundled.read_futian_edges()
    pairs = {(row["u"], row["v"]) for row in rows}
    index_of = {int(osm_id): i for i, osm_id in enumerate(graph.node_ids.tolist())}
    checked = 0
    for row in rows:
        u, v = index_of.get(int(row["u"])), index_of.get(int(row["v"]))
        if row["oneway"] == "True" and (row["v"], row["u"]) not in pairs and u is not None:
            if v is None or not is_drivable(row["highway"]):
                continue
            assert graph.travel_s[u, v] > 0
            assert graph.travel_s[v, u] == 0
            checked += 1
    assert checked > 500


def test_graph_is_cached_and_read_only(graph: RoadGraph) -> None:
    """Loading twice returns one shared instance whose arrays cannot be written."""
    assert load_futian_graph() is graph
    assert load_futian_graph(drivable_only=True) is graph
    with pytest.raises(ValueError, match="read-only"):
        graph.lat[0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        graph.travel_s.data[0] = 0.0


def node(osmid: int, lat: float, lng: float) -> dict[str, str]:
    """A nodes.csv row."""
    return {"osmid": str(osmid), "lat": str(lat), "lon": str(lng)}


def edge(
    u: int, v: int, length_m: float, highway: str = "primary", maxspeed: str = ""
) -> dict[str, str]:
    """An edges.csv row."""
    return {
        "u": str(u),
        "v": str(v),
        "length_m": str(length_m),
        "highway": highway,
        "maxspeed": maxspeed,
    }


def test_build_keeps_fastest_parallel_edge_and_largest_component() -> None:
    """Parallel edges keep the fastest, self-loops go, and a one-way dead end is dropped."""
    nodes = [
        node(10, 22.54, 114.0),
        node(20, 22.54, 114.01),
        node(30, 22.55, 114.0),
        node(40, 22.56, 114.0),
    ]
    edges = [
        edge(10, 20, 1000.0, "residential"),  # 20 km/h: 180 s
        edge(10, 20, 1100.0, "primary"),  # 40 km/h: 99 s, the faster one
        edge(20, 10, 1000.0, "primary", maxspeed="30"),  # 120 s
        edge(10, 30, 500.0, "footway"),
        edge(30, 10, 500.0, "footway"),
        edge(10, 10, 50.0),  # self-loop
        edge(20, 40, 200.0),  # dead end: 40 cannot get back
    ]
    drivable = build_road_graph(nodes, edges, drivable_only=True)
    assert drivable.node_ids.tolist() == [10, 20]
    assert drivable.travel_s[0, 1] == pytest.approx(99.0)
    assert drivable.length_m[0, 1] == pytest.approx(1100.0)
    assert drivable.travel_s[1, 0] == pytest.approx(120.0)
    assert drivable.n_edges == 2
    everything = build_road_graph(nodes, edges, drivable_only=False)
    assert everything.node_ids.tolist() == [10, 20, 30]
    assert everything.travel_s[0, 2] == pytest.approx(500 / (20 / 3.6))


@pytest.mark.parametrize(
    ("text", "values"),
    [("primary", ["primary"]), ("['steps', 'footway']", ["steps", "footway"]), ("", [])],
)
def test_tag_values_reads_osmnx_lists(text: str, values: list[str]) -> None:
    """OSMnx's list text is split into its values; a plain value stays whole."""
    assert tag_values(text) == values


@pytest.mark.parametrize(
    ("highway", "drivable"),
    [
        ("primary", True),
        ("service", True),
        ("motorway_link", True),
        ("footway", False),
        ("steps", False),
        ("['primary', 'trunk']", True),
        ("['service', 'footway']", False),
        ("", False),
    ],
)
def test_is_drivable(highway: str, drivable: bool) -> None:
    """A road is drivable only if every highway type on it is open to cars."""
    assert is_drivable(highway) is drivable


@pytest.mark.parametrize(
    ("highway", "maxspeed", "expected_kmh"),
    [
        ("primary", "", 40.0),
        ("secondary", "", 35.0),
        ("tertiary", "", 30.0),
        ("residential", "", 20.0),
        ("service", "", 15.0),
        ("footway", "", 20.0),
        ("residential", "40", 40.0),
        ("primary", "['40', '60']", 40.0),
        ("primary", "30 mph", 30 * 1.609344),
        ("primary", "signals", 40.0),
        ("['primary', 'tertiary']", "", 30.0),
    ],
)
def test_speed_kmh(highway: str, maxspeed: str, expected_kmh: float) -> None:
    """Numeric maxspeed wins, else the slowest default of the edge's highway types."""
    assert speed_kmh(highway, maxspeed) == pytest.approx(expected_kmh)


GRAPHML = """<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="d0" for="node" attr.name="y" attr.type="string" />
  <key id="d1" for="node" attr.name="x" attr.type="string" />
  <key id="d2" for="edge" attr.name="length" attr.type="string" />
  <key id="d3" for="edge" attr.name="highway" attr.type="string" />
  <key id="d4" for="edge" attr.name="oneway_tag_unresolved" attr.type="string" />
  <graph edgedefault="directed">
    <node id="11"><data key="d0">22.5</data><data key="d1">114.0</data></node>
    <node id="12"><data key="d0">22.6</data><data key="d1">114.1</data></node>
    <edge source="11" target="12" id="0">
      <data key="d2">110.48086444859956</data><data key="d3">primary</data>
      <data key="d4">yes</data>
    </edge>
  </graph>
</graphml>"""


def test_graphml_becomes_our_node_and_edge_rows() -> None:
    """geo.osm_graphml renames OSMnx's attributes to our columns, rounds lengths to 1 mm
    and leaves absent attributes empty."""
    from geo.osm_graphml import EDGE_COLUMNS, NODE_COLUMNS, parse_graphml

    nodes, edges = parse_graphml(GRAPHML)
    assert nodes == [
        dict.fromkeys(NODE_COLUMNS, "") | {"osmid": "11", "lat": "22.5", "lon": "114.0"},
        dict.fromkeys(NODE_COLUMNS, "") | {"osmid": "12", "lat": "22.6", "lon": "114.1"},
    ]
    assert edges == [
        dict.fromkeys(EDGE_COLUMNS, "")
        | {
            "u": "11",
            "v": "12",
            "key": "0",
            "length_m": "110.481",
            "highway": "primary",
            "oneway_unresolved": "yes",
        }
    ]

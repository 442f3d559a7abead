"""The self-drawn basemap: roads and areas as small GeoJSON, served cached and gzipped."""

from __future__ import annotations

import gzip

import httpx
import orjson
from shapely.geometry import Point, shape

from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.stores import Stores
from geo import basemap, bundled
from geo.areas import load_bundled_district
from geo.roadgraph import load_futian_graph
from tests.helpers import SQUARE

NODES = [
    {"osmid": "1", "lon": "114.0000", "lat": "22.5000"},
    {"osmid": "2", "lon": "114.0010", "lat": "22.5000"},
    {"osmid": "3", "lon": "114.0010", "lat": "22.5010"},
    {"osmid": "4", "lon": "115.0000", "lat": "23.0000"},
    {"osmid": "5", "lon": "115.0010", "lat": "23.0000"},
]


def _edge(u: str, v: str, highway: str, wkt: str = "") -> dict[str, str]:
    return {"u": u, "v": v, "key": "0", "highway": highway, "geometry_wkt": wkt}


def test_roads_are_drawn_once_per_two_way_road_by_class_and_near_the_box() -> None:
    """Both directions of a road give one line; classes follow the highway type; far roads are left out."""
    edges = [
        _edge("1", "2", "primary"),
        _edge("2", "1", "primary"),
        _edge(
            "2", "3", "residential", "LINESTRING (114.001 22.5, 114.00102 22.5005, 114.001 22.501)"
        ),
        _edge("3", "2", "residential"),  # the reverse row of the same road
        _edge("4", "5", "primary"),  # far away
    ]
    out = basemap.roads(NODES, edges, (22.49, 113.99, 22.51, 114.01))
    by_class = {f["properties"]["class"]: f["geometry"]["coordinates"] for f in out["features"]}
    assert set(by_class) == {"major", "minor"}
    assert by_class["major"] == [[[114.0, 22.5], [114.001, 22.5]]]
    assert len(by_class["minor"]) == 1
    assert by_class["minor"][0][0] == [114.001, 22.5]
    assert by_class["minor"][0][-1] == [114.001, 22.501]
    assert basemap.road_class("['primary', 'trunk']") == "major"
    assert basemap.road_class("footway") == "path"
    assert basemap.road_class("") == "path"


def test_the_bundled_roads_are_small_and_in_wgs84() -> None:
    """Futian's roads simplify to a small layer whose vertices lie on the (WGS-84) road graph's extent."""
    box = basemap.expand((22.52, 114.0, 22.54, 114.02), basemap.MARGIN_DEG)
    out = basemap.roads(bundled.read_futian_nodes(), bundled.read_futian_edges(), box)
    body = orjson.dumps(out)
    assert len(gzip.compress(body)) < 60_000
    graph = load_futian_graph(drivable_only=False)
    lngs = [p[0] for f in out["features"] for line in f["geometry"]["coordinates"] for p in line]
    lats = [p[1] for f in out["features"] for line in f["geometry"]["coordinates"] for p in line]
    assert graph.lng.min() - 0.01 <= min(lngs)
    assert max(lngs) <= graph.lng.max() + 0.01
    assert graph.lat.min() - 0.01 <= min(lats)
    assert max(lats) <= graph.lat.max() + 0.01


def test_areas_convert_district_borders_to_wgs84_and_clip_them() -> None:
    """The bundled GCJ-02 district borders come back in WGS-84, clipped to the box, with the service area last."""
    box = basemap.expand((22.52, 114.0, 22.54, 114.02), basemap.MARGIN_DEG)
    out = basemap.areas(SQUARE, bundled.read_shenzhen_districts(), box)
    kinds = [(f["properties"]["kind"], f["properties"].get("name")) for f in out["features"]]
    assert ("district", "福田区") in kinds
    assert kinds[-1] == ("service_area", None)
    assert ("district", "深圳市") not in kinds
    assert shape(out["features"][-1]["geometry"]).equals(shape(SQUARE))
    futian = next(f for f in out["features"] if f["properties"].get("name") == "福田区")
    border = shape(futian["geometry"])
    min_x, min_y, max_x, max_y = border.bounds
    assert box[1] - 1e-9 <= min_x
    assert box[0] - 1e-9 <= min_y
    assert max_x <= box[3] + 1e-9
    assert max_y <= box[2] + 1e-9
    # Within ~20 m of the WGS-84 border, and far from the GCJ-02 one (~600 m off here).
    wgs84 = shape(load_bundled_district("福田区")).boundary
    gcj02 = shape(
        next(
            f["geometry"]
            for f in bundled.read_shenzhen_districts()["features"]  # type: ignore[index]
            if f["properties"]["name"] == "福田区"
        )
    ).boundary
    points = [Point(x, y) for line in futian["geometry"]["coordinates"] for x, y in line]
    assert max(wgs84.distance(p) for p in points) < 0.0002
    assert max(gcj02.distance(p) for p in points) > 0.003


async def test_map_layers_are_public_cached_and_gzipped(
    client: httpx.AsyncClient, live_city: str
) -> None:
    """Both layers answer without a token, gzipped when asked, with an ETag that gives 304."""
    for layer in ("roads", "areas"):
        url = f"/v1/cities/{live_city}/map/{layer}.geojson"
        r = await client.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/geo+json"
        assert r.headers["content-encoding"] == "gzip"
        assert r.json()["type"] == "FeatureCollection"
        assert r.json()["features"]
        again = await client.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        plain = await client.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.json() == r.json()


async def test_map_layers_of_a_city_far_from_the_bundled_roads(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """A city elsewhere gets no roads and just its own service area; an unknown city is 404."""
    area = {
        "type": "Polygon",
        "coordinates": [
            [[121.4, 31.2], [121.5, 31.2], [121.5, 31.3], [121.4, 31.3], [121.4, 31.2]]
        ],
    }
    city = catalog_service.build_city(
        id="map-far-city",
        name_zh="远城",
        name_en="Far city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=area,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    roads = await client.get("/v1/cities/map-far-city/map/roads.geojson")
    assert roads.json() == {"type": "FeatureCollection", "features": []}
    areas = (await client.get("/v1/cities/map-far-city/map/areas.geojson")).json()
    assert [f["properties"]["kind"] for f in areas["features"]] == ["service_area"]
    r = await client.get("/v1/cities/atlantis/map/roads.geojson")
    assert r.status_code == 404
    assert r.json()["error"]["field"] == "city_id"

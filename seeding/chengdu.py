"""Chengdu inside the 2nd Ring Road: the second real city (issue 20 §1).

Its service area is drawn from its own bundled road network (OSM, WGS-84): the convex
hull of the 2nd Ring Road (every edge named 二环…, the elevated road included) grown by
about 60 m so the ring's own frontage is in, 62 km² (the ring encloses about 61 km²). No district boundary file is bundled for
Chengdu, and the ring is how the city itself names this area. Pure but for reading the
bundled network (``geo.bundled``).
"""

from __future__ import annotations

import functools
from typing import Any

import shapely
from shapely import wkt
from shapely.geometry import LineString, MultiPoint, Polygon

from catalog import service as catalog_service
from catalog.models import City
from geo import bundled

CITY_ID = "chengdu"
RING_NAME = "二环"
RING_MARGIN_DEG = 0.0006  # about 60 m
SEED_OFFSET = 1000
"""Chengdu's people are drawn with ``seed + SEED_OFFSET``: other names and phones than
Shenzhen's for the same ``--seed`` (accounts are found by phone)."""


@functools.cache
def second_ring_area() -> dict[str, Any]:
    """The 2nd Ring's enclosed area as a GeoJSON Polygon (WGS-84, 6 decimals ~0.1 m)."""
    nodes = {
        row["osmid"]: (float(row["lon"]), float(row["lat"]))
        for row in bundled.read_road_nodes(CITY_ID)
    }
    points: list[tuple[float, float]] = []
    for row in bundled.read_road_edges(CITY_ID):
        if RING_NAME not in row["name"]:
            continue
        text = row["geometry_wkt"]
        line = wkt.loads(text) if text else LineString([nodes[row["u"]], nodes[row["v"]]])
        points.extend((float(x), float(y)) for x, y, *_ in line.coords)
    # Grown by RING_MARGIN_DEG: the ring road's own nodes are the hull's corners, and a
    # door on the ring (seeded up to 25 m off a node) must be inside.
    hull = MultiPoint(points).convex_hull.buffer(RING_MARGIN_DEG, quad_segs=2)
    hull = shapely.set_precision(hull, 1e-6)
    if not isinstance(hull, Polygon):
        raise ValueError(f"the edges named {RING_NAME} do not enclose an area")
    return {
        "type": "Polygon",
        "coordinates": [[[x, y] for x, y in hull.exterior.coords]],
    }


def chengdu() -> City:
    """Chengdu, served inside the 2nd Ring Road (the area its bundled road graph covers)."""
    return catalog_service.build_city(
        id=CITY_ID,
        name_zh="成都",
        name_en="Chengdu",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=second_ring_area(),
        crs="wgs84",
    )

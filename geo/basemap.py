"""A basemap drawn from our own data: roads and areas as small GeoJSON. Pure.

The live pages draw their map from these layers instead of fetching tiles, so they work
on closed networks. Everything is WGS-84 (lng, lat), like every position the API sends:
the road graph is OSM (WGS-84) and the bundled district polygons, published in GCJ-02,
are converted here. One datum for the whole map is what matters for a self-drawn
basemap; no tile provider's datum is involved.

Sizes are kept small: two-way roads are drawn once, lines and polygons are simplified
(Douglas-Peucker, a few metres), coordinates are rounded to 1e-5 degree (about 1 m),
and only what lies near the city's bounding box is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import shapely
from shapely import wkt
from shapely.geometry import LineString, MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from geo.areas import district_geometry_wgs84
from geo.road_speeds import tag_values

ROAD_CLASSES: Final[Mapping[str, str]] = {
    "motorway": "major",
    "trunk": "major",
    "primary": "major",
    "motorway_link": "major",
    "trunk_link": "major",
    "primary_link": "major",
    "secondary": "medium",
    "tertiary": "medium",
    "secondary_link": "medium",
    "tertiary_link": "medium",
    "residential": "minor",
    "unclassified": "minor",
    "living_street": "minor",
    "service": "minor",
}
"""OSM highway type -> drawing class; any other type (footway, path, steps …) is "path"."""

CLASS_ORDER: Final = ("path", "minor", "medium", "major")  # drawn bottom to top
ROAD_TOLERANCE_DEG: Final = 3e-5  # ~3 m
AREA_TOLERANCE_DEG: Final = 1e-4  # ~10 m
MARGIN_DEG: Final = 0.02  # ~2 km around the city's bounding box
DIGITS: Final = 5


def road_class(highway: str) -> str:
    """The drawing class of an edge: its most important highway type's class."""
    classes = {ROAD_CLASSES.get(kind, "path") for kind in tag_values(highway)} or {"path"}
    return max(classes, key=CLASS_ORDER.index)


def _round(coords: Iterable[Any]) -> list[list[float]]:
    return [[round(float(x), DIGITS), round(float(y), DIGITS)] for x, y, *_ in coords]


def expand(
    bbox: tuple[float, float, float, float], margin_deg: float
) -> tuple[float, float, float, float]:
    """A (min_lat, min_lng, max_lat, max_lng) box grown by ``margin_deg`` on each side."""
    min_lat, min_lng, max_lat, max_lng = bbox
    return (min_lat - margin_deg, min_lng - margin_deg, max_lat + margin_deg, max_lng + margin_deg)


def roads(
    node_rows: Iterable[Mapping[str, str]],
    edge_rows: Iterable[Mapping[str, str]],
    bbox: tuple[float, float, float, float],
) -> dict[str, Any]:
    """The roads near ``bbox`` (min_lat, min_lng, max_lat, max_lng) as a FeatureCollection:
    one MultiLineString per class (``properties.class``), bottom class first.

    Rows are OSMnx-style (``geo.bundled``): an edge without ``geometry_wkt`` is the
    straight segment between its nodes. A two-way road (both directions listed) is
    drawn once.
    """
    where = {row["osmid"]: (float(row["lon"]), float(row["lat"])) for row in node_rows}
    min_lat, min_lng, max_lat, max_lng = bbox
    window = box(min_lng, min_lat, max_lng, max_lat)
    lines: dict[str, list[list[list[float]]]] = {c: [] for c in CLASS_ORDER}
    seen: set[tuple[str, str, str]] = set()
    for row in edge_rows:
        u, v = row["u"], row["v"]
        key = (min(u, v), max(u, v), row.get("key", "0"))
        if key in seen or u not in where or v not in where:
            continue
        seen.add(key)
        text = row.get("geometry_wkt") or ""
        line = wkt.loads(text) if text else LineString([where[u], where[v]])
        if not isinstance(line, LineString) or not line.intersects(window):
            continue
        simple = line.simplify(ROAD_TOLERANCE_DEG, preserve_topology=False)
        lines[road_class(row.get("highway", ""))].append(_round(simple.coords))
    features = [
        {
            "type": "Feature",
            "properties": {"class": cls, "segments": len(lines[cls])},
            "geometry": {"type": "MultiLineString", "coordinates": lines[cls]},
        }
        for cls in CLASS_ORDER
        if lines[cls]
    ]
    return {"type": "FeatureCollection", "features": features}


def _polygon_json(geometry: BaseGeometry) -> dict[str, Any] | None:
    """A simplified, rounded Polygon/MultiPolygon as GeoJSON; None if nothing is left."""
    simple = geometry.simplify(AREA_TOLERANCE_DEG, preserve_topology=True)
    parts = [
        g
        for g in getattr(simple, "geoms", [simple])
        if isinstance(g, Polygon) and not g.is_empty and g.area > 0
    ]
    if not parts:
        return None
    polygons = [
        [_round(p.exterior.coords), *(_round(ring.coords) for ring in p.interiors)] for p in parts
    ]
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def _lines_json(geometry: BaseGeometry) -> dict[str, Any] | None:
    """Line work as a rounded MultiLineString; None if nothing is left."""
    parts = [
        g for g in getattr(geometry, "geoms", [geometry]) if isinstance(g, LineString) and g.length
    ]
    if not parts:
        return None
    return {"type": "MultiLineString", "coordinates": [_round(g.coords) for g in parts]}


def areas(
    service_area: Mapping[str, Any],
    districts_gcj02: object,
    bbox: tuple[float, float, float, float],
) -> dict[str, Any]:
    """The city's service area and the district borders around ``bbox`` as a
    FeatureCollection.

    ``service_area`` is WGS-84 GeoJSON (as cities store it), kept as a polygon;
    ``districts_gcj02`` a GCJ-02 FeatureCollection of named districts (the bundled
    Shenzhen file), whose borders are converted to WGS-84 and clipped to ``bbox`` as
    lines. Districts come first, the service area last (``properties.kind``:
    ``district`` or ``service_area``).
    """
    min_lat, min_lng, max_lat, max_lng = bbox
    window = box(min_lng, min_lat, max_lng, max_lat)
    features: list[dict[str, Any]] = []
    collection = districts_gcj02 if isinstance(districts_gcj02, dict) else {}
    for feature in collection.get("features", []):
        props = feature.get("properties") or {}
        if props.get("level") == "市":  # the whole city: its districts say more
            continue
        raw = feature.get("geometry")
        if not isinstance(raw, dict):
            continue
        rough = shape(raw)  # GCJ-02 is within ~1 km of WGS-84: a cheap first filter
        if not rough.intersects(box(*window.buffer(0.02).bounds)):
            continue
        name = str(props.get("name", ""))
        exact = shape(district_geometry_wgs84({"features": [feature]}, name))
        # The border as lines, clipped: a clipped polygon would draw the box's edge too.
        border = shapely.intersection(exact.boundary, window)
        lines = _lines_json(border.simplify(AREA_TOLERANCE_DEG))
        if lines is not None:
            features.append(
                {
                    "type": "Feature",
                    "properties": {"kind": "district", "name": name},
                    "geometry": lines,
                }
            )
    area = shape(dict(service_area))
    if isinstance(area, Polygon | MultiPolygon):
        geometry = _polygon_json(area)
        if geometry is not None:
            features.append(
                {"type": "Feature", "properties": {"kind": "service_area"}, "geometry": geometry}
            )
    return {"type": "FeatureCollection", "features": features}


__all__ = ["areas", "expand", "road_class", "roads"]

"""Service areas: GeoJSON (multi)polygons parsed, validated and held in WGS-84.

``parse_service_area`` is the wire-format door: it accepts a GeoJSON Polygon,
MultiPolygon, Feature or single-feature FeatureCollection and names the exact field
and rule when it refuses one. ``ServiceArea`` is what the rest of the server holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity

from geo import bundled
from geo.coords import EARTH_RADIUS_M, Crs, gcj02_to_wgs84, parse_crs
from geo.errors import AreaError
from geo.geojson_rings import PolygonRings, Position, parse_polygon_rings, unwrap_geometry

MAX_VERTICES: Final = 10_000


@dataclass(frozen=True)
class BBox:
    """A latitude/longitude bounding box in degrees."""

    min_lat: float
    min_lng: float
    max_lat: float
    max_lng: float


@dataclass(frozen=True)
class ServiceArea:
    """A valid, non-empty Polygon or MultiPolygon in WGS-84 (x = lng, y = lat).

    The geometry is prepared once for fast point queries; a point on the boundary
    counts as inside.
    """

    geometry: Polygon | MultiPolygon

    def __post_init__(self) -> None:
        geometry = self.geometry
        if not isinstance(geometry, Polygon | MultiPolygon) or geometry.is_empty:
            raise AreaError("geometry must be a non-empty Polygon or MultiPolygon")
        if not geometry.is_valid:
            raise AreaError(f"geometry must be valid: {explain_validity(geometry)}")
        shapely.prepare(geometry)
        # GEOS builds a prepared geometry's point index lazily, and that first build
        # is not thread-safe (libgeos/geos#825): build it now with one query inside
        # the envelope, so later queries from any thread only read.
        min_x, min_y, max_x, max_y = geometry.bounds
        shapely.intersects_xy(geometry, (min_x + max_x) / 2, (min_y + max_y) / 2)

    def contains(self, lat: float, lng: float) -> bool:
        """Whether the point (degrees, WGS-84) is inside the area or on its boundary."""
        return bool(shapely.intersects_xy(self.geometry, lng, lat))

    @property
    def bbox(self) -> BBox:
        """The smallest lat/lng box holding the area."""
        min_lng, min_lat, max_lng, max_lat = self.geometry.bounds
        return BBox(min_lat=min_lat, min_lng=min_lng, max_lat=max_lat, max_lng=max_lng)

    @property
    def area_km2(self) -> float:
        """Approximate area in km² (sinusoidal equal-area projection, spherical Earth)."""
        box = self.bbox
        central_lng = (box.min_lng + box.max_lng) / 2

        def project(lng_lat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            lat_rad = np.radians(lng_lat[:, 1])
            x_m = EARTH_RADIUS_M * np.radians(lng_lat[:, 0] - central_lng) * np.cos(lat_rad)
            return np.column_stack([x_m, EARTH_RADIUS_M * lat_rad])

        return float(shapely.transform(self.geometry, project).area) / 1e6

    def to_geojson(self) -> dict[str, Any]:
        """The area as a GeoJSON geometry dict (plain lists, WGS-84 lng/lat order)."""
        if isinstance(self.geometry, Polygon):
            return {"type": "Polygon", "coordinates": _polygon_coordinates(self.geometry)}
        parts = [_polygon_coordinates(part) for part in self.geometry.geoms]
        return {"type": "MultiPolygon", "coordinates": parts}


def _polygon_coordinates(polygon: Polygon) -> list[list[list[float]]]:
    """GeoJSON coordinates of one polygon: exterior ring first, then holes."""
    rings = (polygon.exterior, *polygon.interiors)
    return [[[float(x), float(y)] for x, y in ring.coords] for ring in rings]


def _build(polygons: list[PolygonRings], multi: bool) -> Polygon | MultiPolygon:
    """Shapely geometry from parsed rings; ``multi`` keeps a MultiPolygon a MultiPolygon."""
    parts = [Polygon(rings[0], rings[1:]) for rings in polygons]
    return MultiPolygon(parts) if multi else parts[0]


def _check_shape(geometry: Polygon | MultiPolygon, field: str, crs_note: str = "") -> None:
    """Raise AreaError unless ``geometry`` encloses area and is valid."""
    if shapely.convex_hull(geometry).area == 0:
        raise AreaError(f"must enclose a non-zero area{crs_note}", field=field)
    if not geometry.is_valid:
        reason = explain_validity(geometry)
        rule = f"must be a valid polygon without self-intersections{crs_note}: {reason}"
        raise AreaError(rule, field=field)


def _position_to_wgs84(position: Position) -> Position:
    """A GCJ-02 GeoJSON position (lng, lat) converted to WGS-84, still (lng, lat)."""
    lng, lat = position
    wgs_lat, wgs_lng = gcj02_to_wgs84(lat, lng)
    return wgs_lng, wgs_lat


def _rings_to_wgs84(polygons: list[PolygonRings]) -> list[PolygonRings]:
    """Every vertex of every ring converted from GCJ-02 to WGS-84."""
    return [[[_position_to_wgs84(p) for p in ring] for ring in rings] for rings in polygons]


def parse_service_area(
    obj: object, *, crs: Crs = "wgs84", field: str = "service_area"
) -> ServiceArea:
    """Parse a GeoJSON Polygon/MultiPolygon/Feature/FeatureCollection into a ServiceArea.

    With ``crs="gcj02"`` every vertex is converted to WGS-84 and validity is checked
    again. Raises AreaError naming the offending field and the rule it broke.
    """
    source_crs = parse_crs(crs)
    geometry_obj, path = unwrap_geometry(obj, field)
    polygons = parse_polygon_rings(geometry_obj, path, max_vertices=MAX_VERTICES)
    multi = geometry_obj["type"] == "MultiPolygon"
    geometry = _build(polygons, multi)
    _check_shape(geometry, path)
    if source_crs == "gcj02":
        geometry = _build(_rings_to_wgs84(polygons), multi)
        _check_shape(geometry, path, crs_note=" after conversion from GCJ-02")
    return ServiceArea(geometry)


def district_geometry_wgs84(collection: object, name_zh: str) -> dict[str, Any]:
    """The geometry of the feature named ``name_zh`` in a GCJ-02 FeatureCollection, in WGS-84."""
    features = collection.get("features", []) if isinstance(collection, dict) else []
    names: list[str] = []
    for index, feature in enumerate(features):
        properties = feature.get("properties") or {}
        names.append(str(properties.get("name")))
        if properties.get("name") == name_zh:
            field = f"features[{index}].geometry"
            area = parse_service_area(feature.get("geometry"), crs="gcj02", field=field)
            return area.to_geojson()
    raise AreaError(f"must be one of {', '.join(names)}", field="district")


def load_bundled_district(name_zh: str) -> dict[str, Any]:
    """The bundled Shenzhen district (or the whole city, "深圳市") as WGS-84 GeoJSON.

    E.g. ``load_bundled_district("福田区")``. The bundled file is GCJ-02 (AMap); see
    ``geo/data/china-district-boundaries/SOURCES.md`` for origin and licence caveats.
    """
    return district_geometry_wgs84(bundled.read_shenzhen_districts(), name_zh)

"""GeoJSON polygon structure: unwrap Features and check rings and positions.

Turns untrusted JSON into ``(lng, lat)`` rings, or raises AreaError whose ``field`` is
the exact path at fault (``"service_area.coordinates[0][3][1]"``). Geometric
validity (self-intersection and the like) is ``geo.areas``' job.
"""

from __future__ import annotations

from typing import Any

from geo.coords import validate_lat_lng
from geo.errors import AreaError, CoordinateError

Position = tuple[float, float]  # (lng, lat) in degrees, GeoJSON order
Ring = list[Position]
PolygonRings = list[Ring]  # exterior ring first, then holes

_GEOMETRY_TYPES = ("Polygon", "MultiPolygon")
_TYPE_RULE = "type must be Polygon, MultiPolygon, Feature or FeatureCollection"


def _require_object(obj: object, field: str) -> dict[str, Any]:
    """``obj`` if it is a JSON object, else AreaError."""
    if not isinstance(obj, dict):
        raise AreaError("must be a GeoJSON object", field=field)
    return obj


def unwrap_geometry(obj: object, field: str) -> tuple[dict[str, Any], str]:
    """The Polygon/MultiPolygon inside ``obj`` and its field path."""
    data = _require_object(obj, field)
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list) or len(features) != 1:
            raise AreaError("must be a list holding exactly one Feature", field=f"{field}.features")
        field = f"{field}.features[0]"
        data = _require_object(features[0], field)
        kind = data.get("type")
        if kind != "Feature":
            raise AreaError("type must be Feature", field=f"{field}.type")
    if kind == "Feature":
        field = f"{field}.geometry"
        data = _require_object(data.get("geometry"), field)
        kind = data.get("type")
        if kind not in _GEOMETRY_TYPES:
            raise AreaError("type must be Polygon or MultiPolygon", field=f"{field}.type")
    if kind not in _GEOMETRY_TYPES:
        raise AreaError(_TYPE_RULE, field=f"{field}.type")
    return data, field


def _parse_position(obj: object, field: str) -> Position:
    """One ``[lng, lat]`` (or ``[lng, lat, altitude]``) position; altitude is dropped."""
    if not isinstance(obj, list | tuple) or len(obj) not in (2, 3):
        raise AreaError("must be a position [lng, lat]", field=field)
    try:
        lat, lng = validate_lat_lng(obj[1], obj[0])
    except CoordinateError as exc:
        index = 1 if exc.field == "lat" else 0
        raise AreaError(exc.message, field=f"{field}[{index}]") from exc
    return lng, lat


class _VertexBudget:
    """Counts positions across all rings and refuses more than ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, count: int, field: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise AreaError(f"must have at most {self.limit} vertices in total", field=field)


def _parse_ring(obj: object, field: str, budget: _VertexBudget) -> Ring:
    """A closed linear ring of at least 4 positions."""
    if not isinstance(obj, list):
        raise AreaError("must be a linear ring (a list of positions)", field=field)
    if len(obj) < 4:
        raise AreaError(f"a linear ring needs at least 4 positions, got {len(obj)}", field=field)
    budget.spend(len(obj), field)
    ring = [_parse_position(position, f"{field}[{i}]") for i, position in enumerate(obj)]
    if ring[0] != ring[-1]:
        raise AreaError("a linear ring must be closed (last position equal to first)", field=field)
    return ring


def _parse_polygon(obj: object, field: str, budget: _VertexBudget) -> PolygonRings:
    """A polygon's rings: a non-empty list of linear rings."""
    if not isinstance(obj, list) or not obj:
        raise AreaError("must be a non-empty list of linear rings", field=field)
    return [_parse_ring(ring, f"{field}[{i}]", budget) for i, ring in enumerate(obj)]


def parse_polygon_rings(
    geometry: dict[str, Any], field: str, *, max_vertices: int
) -> list[PolygonRings]:
    """The rings of each polygon in a Polygon (one) or MultiPolygon (one or more)."""
    budget = _VertexBudget(max_vertices)
    path = f"{field}.coordinates"
    coordinates = geometry.get("coordinates")
    if geometry.get("type") == "Polygon":
        return [_parse_polygon(coordinates, path, budget)]
    if not isinstance(coordinates, list) or not coordinates:
        raise AreaError("must be a non-empty list of polygons", field=path)
    return [
        _parse_polygon(polygon, f"{path}[{i}]", budget) for i, polygon in enumerate(coordinates)
    ]

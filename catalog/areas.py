"""Which city's service area holds a point.

Parsed service areas are cached in-process per (city, updated_at): the SQL query
narrows by bounding box, shapely decides, and a changed area is parsed again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog import store
from doorstep.db import Conn
from geo.areas import ServiceArea, parse_service_area

_cache: dict[str, tuple[datetime, ServiceArea]] = {}


def _area(city_id: str, updated_at: datetime, geojson: dict[str, Any]) -> ServiceArea:
    hit = _cache.get(city_id)
    if hit is not None and hit[0] == updated_at:
        return hit[1]
    area = parse_service_area(geojson)
    _cache[city_id] = (updated_at, area)
    return area


async def city_at(db: Conn, lat: float, lng: float) -> str | None:
    """The id of the active city whose service area contains the WGS-84 point, or None."""
    for city_id, updated_at, geojson in await store.cities_with_bbox_at(db, lat, lng):
        if _area(city_id, updated_at, geojson).contains(lat, lng):
            return city_id
    return None

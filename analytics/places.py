"""Where an order is, for the breakdowns and the heatmap: its district and its H3 cell.

Districts are the bundled Shenzhen district polygons (GCJ-02 in the file, converted to
WGS-84 once); an order outside all of them has district ``""``. Hexagons are Uber's H3
(``h3`` 4.x, Apache-2.0): equal-area cells that nest (a resolution-8 cell, about
0.74 km², has one parent at resolution 7, about 5.2 km²), so one stored resolution
serves both zoom levels. Pure apart from reading the bundled file once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Final

import h3
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import mapping, shape

from geo import bundled
from geo.areas import district_geometry_wgs84

STORED_RES: Final = 8
SIMPLIFY_DEG: Final = 0.0003  # about 30 m: district outlines for the page, not for tests


@cache
def districts() -> tuple[tuple[str, Any], ...]:
    """(name, prepared WGS-84 geometry) of every bundled district (not the whole city)."""
    collection: Any = bundled.read_shenzhen_districts()
    out = []
    for feature in collection["features"]:
        props = feature["properties"]
        if props.get("level") == "市":
            continue
        geometry = shape(district_geometry_wgs84(collection, props["name"]))
        shapely.prepare(geometry)
        out.append((str(props["name"]), geometry))
    return tuple(out)


def district_of(lat: npt.ArrayLike, lng: npt.ArrayLike) -> list[str]:
    """The district of each point (WGS-84 degrees), ``""`` outside all of them."""
    la = np.asarray(lat, dtype=np.float64)
    ln = np.asarray(lng, dtype=np.float64)
    out = np.full(la.shape, "", dtype=object)
    left = np.ones(la.shape, dtype=bool)
    for name, geometry in districts():
        if not left.any():
            break
        inside = np.zeros(la.shape, dtype=bool)
        inside[left] = shapely.intersects_xy(geometry, ln[left], la[left])
        out[inside] = name
        left &= ~inside
    return [str(x) for x in out]


def cell_of(lat: Iterable[float], lng: Iterable[float]) -> list[int]:
    """The H3 cell (resolution :data:`STORED_RES`, as a 64-bit integer) of each point."""
    return [
        h3.str_to_int(h3.latlng_to_cell(a, b, STORED_RES)) for a, b in zip(lat, lng, strict=True)
    ]


def to_res(cell: int, res: int) -> int:
    """A stored cell at a coarser resolution (its parent), or itself."""
    if res >= STORED_RES:
        return cell
    return int(h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), res)))


def hex_feature(cell: int, properties: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON polygon of a cell (lng/lat order, closed ring)."""
    ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(h3.int_to_str(cell))]
    ring.append(ring[0])
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"h3": h3.int_to_str(cell), **properties},
    }


@cache
def district_outline(name: str) -> dict[str, Any] | None:
    """A district's simplified WGS-84 geometry as GeoJSON, or None if unknown."""
    for found, geometry in districts():
        if found == name:
            return dict(mapping(geometry.simplify(SIMPLIFY_DEG, preserve_topology=True)))
    return None


def district_features(counts: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """GeoJSON features of the districts with their order counts (unknown ones left out)."""
    out = []
    for name, orders in counts:
        outline = district_outline(name)
        if outline is not None:
            out.append(
                {
                    "type": "Feature",
                    "geometry": outline,
                    "properties": {"district": name, "orders": orders},
                }
            )
    return out

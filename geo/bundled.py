"""Read the data files bundled in ``geo/data`` (the only I/O in ``geo``).

Callers get plain rows and parsed JSON; turning them into graphs and areas is done by
the pure modules. See each data folder's ``SOURCES.md`` for origin and licence.

Road networks are registered per city in :data:`ROAD_NETWORKS` (city id -> data folder);
each folder holds ``nodes.csv.gz`` and ``edges.csv.gz`` written by ``geo.osm_graphml``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Final

_DATA = files("geo") / "data"
_DISTRICTS = _DATA / "china-district-boundaries"

ROAD_NETWORKS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "shenzhen": "osm-shenzhen-futian-2024",
        "chengdu": "osm-chengdu-2nd-ring-2020",
    }
)
"""City id -> folder of its OSM drive network in ``geo/data`` (both WGS-84, ODbL)."""


def _read_csv_gz(path: Traversable) -> list[dict[str, str]]:
    """All rows of a gzip-compressed UTF-8 CSV file with a header row, as dicts of strings."""
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _network(city_id: str) -> Traversable:
    if city_id not in ROAD_NETWORKS:
        known = ", ".join(ROAD_NETWORKS)
        raise KeyError(f"no bundled road network for city {city_id!r}; bundled: {known}")
    return _DATA / ROAD_NETWORKS[city_id]


def read_road_nodes(city_id: str) -> list[dict[str, str]]:
    """Rows of a city's OSM ``nodes.csv.gz``: osmid, lon, lat, street_count, highway."""
    return _read_csv_gz(_network(city_id) / "nodes.csv.gz")


def read_road_edges(city_id: str) -> list[dict[str, str]]:
    """Rows of a city's OSM ``edges.csv.gz``: u, v, key, osmid, length_m, highway, oneway, …"""
    return _read_csv_gz(_network(city_id) / "edges.csv.gz")


def read_futian_nodes() -> list[dict[str, str]]:
    """The Shenzhen (Futian + Shenzhen Bay, 2024) node rows: ``read_road_nodes("shenzhen")``."""
    return read_road_nodes("shenzhen")


def read_futian_edges() -> list[dict[str, str]]:
    """The Shenzhen (Futian + Shenzhen Bay, 2024) edge rows: ``read_road_edges("shenzhen")``."""
    return read_road_edges("shenzhen")


def read_shenzhen_districts() -> object:
    """The Shenzhen district FeatureCollection (GCJ-02 coordinates), parsed from JSON."""
    return json.loads((_DISTRICTS / "shenzhen_districts_gcj02.geojson").read_text("utf-8"))

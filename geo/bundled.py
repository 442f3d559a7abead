"""Read the data files bundled in ``geo/data`` (the only I/O in ``geo``).

Callers get plain rows and parsed JSON; turning them into graphs and areas is done by
the pure modules. See each data folder's ``SOURCES.md`` for origin and licence.
"""

from __future__ import annotations

import csv
import io
import json
from importlib.resources import files
from importlib.resources.abc import Traversable

_DATA = files("geo") / "data"
_FUTIAN = _DATA / "osm-shenzhen-futian"
_DISTRICTS = _DATA / "china-district-boundaries"


def _read_csv(path: Traversable) -> list[dict[str, str]]:
    """All rows of a UTF-8 CSV file with a header row, as dicts of strings."""
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def read_futian_nodes() -> list[dict[str, str]]:
    """Rows of the Futian OSM ``nodes.csv``: osmid, lon, lat, street_count, highway."""
    return _read_csv(_FUTIAN / "nodes.csv")


def read_futian_edges() -> list[dict[str, str]]:
    """Rows of the Futian OSM ``edges.csv``: u, v, key, osmid, length_m, highway, oneway, …"""
    return _read_csv(_FUTIAN / "edges.csv")


def read_shenzhen_districts() -> object:
    """The Shenzhen district FeatureCollection (GCJ-02 coordinates), parsed from JSON."""
    return json.loads((_DISTRICTS / "shenzhen_districts_gcj02.geojson").read_text("utf-8"))

"""OSM road tags -> whether a car may use the road, and how fast it goes there.

Tag values arrive as OSMnx writes them: a plain value (``"primary"``, ``"40"``) or,
for an edge merged from several OSM ways, a list's text (``"['primary', 'trunk']"``).
The default speeds are typical urban travel speeds, not legal limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

DEFAULT_SPEED_KMH: Final[Mapping[str, float]] = MappingProxyType(
    {
        "motorway": 60.0,
        "trunk": 50.0,
        "primary": 40.0,
        "secondary": 35.0,
        "tertiary": 30.0,
        "unclassified": 25.0,
        "residential": 20.0,
        "living_street": 10.0,
        "service": 15.0,
        "motorway_link": 40.0,
        "trunk_link": 35.0,
        "primary_link": 30.0,
        "secondary_link": 25.0,
        "tertiary_link": 20.0,
    }
)
"""Speeds for the drivable highway types; every key is drivable."""

OTHER_SPEED_KMH: Final = 20.0
"""Speed for any highway type not in :data:`DEFAULT_SPEED_KMH` (footway, path, …)."""

MIN_SPEED_KMH: Final = 10.0
MAX_SPEED_KMH: Final = 80.0
"""A tagged ``maxspeed`` is clamped to this range: it is a legal limit, not a travel speed.
The 2024 Shenzhen extract tags urban expressways at 100-120 km/h (nobody averages that
between junctions in the city) and a few car-park lanes at 1-5 km/h (tagging slips)."""

_MPH_IN_KMH: Final = 1.609344


def tag_values(text: str) -> list[str]:
    """The values of an OSMnx tag cell: ``"a"`` -> ``["a"]``, ``"['a', 'b']"`` -> both."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        parts = (part.strip().strip("'\"") for part in text[1:-1].split(","))
        return [part for part in parts if part]
    return [text] if text else []


def is_drivable(highway: str) -> bool:
    """Whether every highway type on the edge is open to cars."""
    types = tag_values(highway)
    return bool(types) and all(kind in DEFAULT_SPEED_KMH for kind in types)


def _parse_kmh(value: str) -> float | None:
    """One maxspeed value in km/h (``"40"``, ``"30 mph"``), or None if not numeric."""
    number, _, unit = value.partition(" ")
    try:
        speed = float(number)
    except ValueError:
        return None
    if unit.strip() == "mph":
        speed *= _MPH_IN_KMH
    return speed if speed > 0 else None


def speed_kmh(highway: str, maxspeed: str) -> float:
    """Travel speed for an edge: its numeric ``maxspeed`` (clamped to
    :data:`MIN_SPEED_KMH`..:data:`MAX_SPEED_KMH`), else the default for its type.

    Several values (a merged edge) give the slowest one.
    """
    limits = [kmh for kmh in map(_parse_kmh, tag_values(maxspeed)) if kmh is not None]
    if limits:
        return min(max(min(limits), MIN_SPEED_KMH), MAX_SPEED_KMH)
    defaults = [DEFAULT_SPEED_KMH.get(kind, OTHER_SPEED_KMH) for kind in tag_values(highway)]
    return min(defaults, default=OTHER_SPEED_KMH)

"""Errors raised by ``geo``: one root, one subclass per kind of input.

The message states the rule that was broken (``"lat must be between -90 and 90"``)
and ``field`` is the dotted path the caller supplied, extended to the exact part at
fault (``"pickup.lat"``, ``"service_area.coordinates[0][3]"``).
"""

from __future__ import annotations

from doorstep.errors import InvalidInput


class GeoError(InvalidInput):
    """Root of every ``geo`` error: a coordinate or shape the caller sent is unusable."""

    code = "invalid_geo"


class CoordinateError(GeoError):
    """A latitude, longitude or coordinate system is not a usable value."""

    code = "invalid_coordinate"


class AreaError(GeoError):
    """A service-area polygon is malformed, invalid, empty or too large."""

    code = "invalid_area"

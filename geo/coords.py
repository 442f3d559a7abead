"""Latitude/longitude: validation, great-circle distance, WGS-84 <-> GCJ-02.

GCJ-02 is the datum Chinese map providers (AMap, Tencent, Google China) publish:
WGS-84 plus a smooth offset of a few hundred metres that depends on position. The
forward formula is the widely published one (googollee/eviltransform,
wandergis/coordtransform, hujiulong/gcoord). It applies only inside a rough bounding
box of China and is the identity elsewhere. The inverse has no closed form, so
``gcj02_to_wgs84`` iterates the forward formula to a fixed point.
"""

from __future__ import annotations

import math
from typing import Final, Literal, get_args

from geo.errors import CoordinateError

Crs = Literal["wgs84", "gcj02"]
CRS_NAMES: Final[tuple[str, ...]] = get_args(Crs)

EARTH_RADIUS_M: Final = 6_371_008.8  # IUGG mean radius
# Redis geo sets (GEOADD) accept latitudes within this: Web Mercator's limit.
GEO_LAT_LIMIT: Final = 85.05112878

_GCJ_A_M: Final = 6_378_245.0  # Krasovsky 1940 semi-major axis, as in the GCJ-02 formula
_GCJ_EE: Final = 0.00669342162296594323  # its first eccentricity squared
_INVERSE_TOLERANCE_DEG: Final = 1e-9
_INVERSE_MAX_ITERATIONS: Final = 30


def _check_degrees(value: object, name: str, limit: float, field: str) -> float:
    """``value`` as a float in [-limit, limit], or CoordinateError naming ``field``."""
    path = f"{field}.{name}" if field else name
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoordinateError(f"{name} must be a number", field=path)
    try:
        degrees = float(value)
    except OverflowError:  # an int too large for a float
        degrees = math.inf
    if not math.isfinite(degrees):
        raise CoordinateError(f"{name} must be a finite number", field=path)
    if not -limit <= degrees <= limit:
        raise CoordinateError(f"{name} must be between {-limit:g} and {limit:g}", field=path)
    return degrees


def validate_lat_lng(lat: object, lng: object, field: str = "") -> tuple[float, float]:
    """Return ``(lat, lng)`` as floats, or raise CoordinateError at ``f"{field}.lat"`` etc.

    Rejects non-numbers (including bools), NaN, infinities and out-of-range values.
    """
    return _check_degrees(lat, "lat", 90.0, field), _check_degrees(lng, "lng", 180.0, field)


def parse_crs(value: object, field: str = "crs") -> Crs:
    """Return ``value`` as a :data:`Crs`, or raise CoordinateError naming ``field``."""
    if value == "wgs84":
        return "wgs84"
    if value == "gcj02":
        return "gcj02"
    raise CoordinateError("crs must be 'wgs84' or 'gcj02'", field=field)


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lng2 - lng1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180
_HALF_RAD_PER_DEG = math.pi / 360


def near_distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Distance in metres between two nearby points (equirectangular), the great circle
    beyond a degree apart. Within 1e-5 of :func:`haversine_m` up to 0.3° apart, at a
    quarter of its cost: it runs for every GPS fix (tracking/fixes.py)."""
    dlat, dlng = lat2 - lat1, lng2 - lng1
    if not (-1.0 < dlat < 1.0 and -1.0 < dlng < 1.0):
        return haversine_m(lat1, lng1, lat2, lng2)
    x = dlng * math.cos((lat1 + lat2) * _HALF_RAD_PER_DEG)
    return _M_PER_DEG * math.sqrt(x * x + dlat * dlat)


def in_china(lat: float, lng: float) -> bool:
    """Whether the GCJ-02 offset applies: the rough box used by the standard algorithm.

    The box is coarse (it includes e.g. Korea and Vietnam); that is deliberate, it is
    what the published converters and the map providers' SDKs assume.
    """
    return 72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271


def _gcj02_offset_deg(lat: float, lng: float) -> tuple[float, float]:
    """The GCJ-02 minus WGS-84 offset ``(dlat, dlng)`` at a WGS-84 point, in degrees."""
    x, y = lng - 105.0, lat - 35.0
    common = (20 * math.sin(6 * x * math.pi) + 20 * math.sin(2 * x * math.pi)) * 2 / 3
    dlat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    dlat += (20 * math.sin(y * math.pi) + 40 * math.sin(y / 3 * math.pi)) * 2 / 3
    dlat += (160 * math.sin(y / 12 * math.pi) + 320 * math.sin(y * math.pi / 30)) * 2 / 3
    dlng = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    dlng += (20 * math.sin(x * math.pi) + 40 * math.sin(x / 3 * math.pi)) * 2 / 3
    dlng += (150 * math.sin(x / 12 * math.pi) + 300 * math.sin(x / 30 * math.pi)) * 2 / 3
    rad_lat = math.radians(lat)
    magic = 1 - _GCJ_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat_deg = dlat * 180 / ((_GCJ_A_M * (1 - _GCJ_EE)) / (magic * sqrt_magic) * math.pi)
    dlng_deg = dlng * 180 / (_GCJ_A_M / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlat_deg, dlng_deg


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """Convert a WGS-84 point to GCJ-02; the identity outside :func:`in_china`."""
    if not in_china(lat, lng):
        return lat, lng
    dlat, dlng = _gcj02_offset_deg(lat, lng)
    return lat + dlat, lng + dlng


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    """Convert a GCJ-02 point to WGS-84; the identity outside :func:`in_china`.

    Iterates until the forward conversion of the result is within 1e-9 degree of
    the input (about 0.1 mm; three or four steps in practice).
    """
    if not in_china(lat, lng):
        return lat, lng
    wgs_lat, wgs_lng = lat, lng
    for _ in range(_INVERSE_MAX_ITERATIONS):
        gcj_lat, gcj_lng = wgs84_to_gcj02(wgs_lat, wgs_lng)
        err_lat, err_lng = gcj_lat - lat, gcj_lng - lng
        if abs(err_lat) < _INVERSE_TOLERANCE_DEG and abs(err_lng) < _INVERSE_TOLERANCE_DEG:
            break
        wgs_lat, wgs_lng = wgs_lat - err_lat, wgs_lng - err_lng
    return wgs_lat, wgs_lng


def to_wgs84(lat: float, lng: float, crs: Crs) -> tuple[float, float]:
    """Convert a point given in ``crs`` to WGS-84."""
    if parse_crs(crs) == "gcj02":
        return gcj02_to_wgs84(lat, lng)
    return lat, lng

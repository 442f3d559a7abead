"""geo.coords: GCJ-02 conversion against published reference points, distance, validation."""

from __future__ import annotations

import math
import random

import pytest

from doorstep.errors import InvalidInput
from geo.coords import (
    EARTH_RADIUS_M,
    gcj02_to_wgs84,
    haversine_m,
    in_china,
    near_distance_m,
    parse_crs,
    to_wgs84,
    validate_lat_lng,
    wgs84_to_gcj02,
)
from geo.errors import CoordinateError, GeoError

# (wgs_lat, wgs_lng, gcj_lat, gcj_lng) from googollee/eviltransform, python/test.py
# (same table in go/transform_test.go): Shanghai, Shenzhen, Beijing.
EVILTRANSFORM_POINTS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
]
# wandergis/coordtransform, test/app.js: wgs84togcj02(116.404, 39.915) (lng, lat order there).
COORDTRANSFORM_POINT = (39.915, 116.404, 39.91640428150164, 116.41024449916938)

SHENZHEN_WGS84 = [
    (22.5431, 114.0579),  # Futian CBD
    (22.5333, 113.9330),  # Shenzhen University, Nanshan
    (22.5445, 114.1200),  # Dongmen, Luohu
    (22.6930, 113.8130),  # Bao'an airport
]


@pytest.mark.parametrize(("wgs_lat", "wgs_lng", "gcj_lat", "gcj_lng"), EVILTRANSFORM_POINTS)
def test_wgs84_to_gcj02_matches_eviltransform(
    wgs_lat: float, wgs_lng: float, gcj_lat: float, gcj_lng: float
) -> None:
    """WGS-84 -> GCJ-02 reproduces eviltransform's published pairs to 1e-9 degree."""
    lat, lng = wgs84_to_gcj02(wgs_lat, wgs_lng)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)
    assert lng == pytest.approx(gcj_lng, abs=1e-9)


def test_wgs84_to_gcj02_matches_coordtransform() -> None:
    """WGS-84 -> GCJ-02 reproduces coordtransform's published Beijing example."""
    wgs_lat, wgs_lng, gcj_lat, gcj_lng = COORDTRANSFORM_POINT
    assert wgs84_to_gcj02(wgs_lat, wgs_lng) == pytest.approx((gcj_lat, gcj_lng), abs=1e-9)


@pytest.mark.parametrize(("wgs_lat", "wgs_lng", "gcj_lat", "gcj_lng"), EVILTRANSFORM_POINTS)
def test_gcj02_to_wgs84_inverts_eviltransform_points(
    wgs_lat: float, wgs_lng: float, gcj_lat: float, gcj_lng: float
) -> None:
    """GCJ-02 -> WGS-84 recovers the published WGS-84 point to 1e-7 degree (~1 cm)."""
    lat, lng = gcj02_to_wgs84(gcj_lat, gcj_lng)
    assert lat == pytest.approx(wgs_lat, abs=1e-7)
    assert lng == pytest.approx(wgs_lng, abs=1e-7)


def test_gcoord_reference_point_both_directions() -> None:
    """Both directions match hujiulong/gcoord's [123, 45] cases at its 5-decimal tolerance."""
    # test/unit/crs/WGS84.spec.ts and GCJ02.spec.ts (toBeCloseTo(x, 5): |diff| < 5e-6).
    assert wgs84_to_gcj02(45.0, 123.0) == pytest.approx((45.00197815, 123.00607541), abs=5e-6)
    assert gcj02_to_wgs84(45.0, 123.0) == pytest.approx((44.99804071, 122.99395597), abs=5e-6)


@pytest.mark.parametrize(
    ("lat", "lng"), [*SHENZHEN_WGS84, (31.2304, 121.4737), (39.9042, 116.4074), (45.75, 126.65)]
)
def test_round_trip_wgs_gcj_wgs_is_exact(lat: float, lng: float) -> None:
    """wgs84 -> gcj02 -> wgs84 returns the start point to within 1e-7 degree."""
    back_lat, back_lng = gcj02_to_wgs84(*wgs84_to_gcj02(lat, lng))
    assert abs(back_lat - lat) < 1e-7
    assert abs(back_lng - lng) < 1e-7


@pytest.mark.parametrize(("lat", "lng"), SHENZHEN_WGS84)
def test_shenzhen_offset_is_a_few_hundred_metres(lat: float, lng: float) -> None:
    """In Shenzhen the GCJ-02 offset is between 300 and 700 m."""
    assert 300 < haversine_m(lat, lng, *wgs84_to_gcj02(lat, lng)) < 700


@pytest.mark.parametrize(
    ("lat", "lng"),
    [(0.0, 0.0), (51.5074, -0.1278), (40.7128, -74.0060), (-33.8688, 151.2093), (60.0, 100.0)],
)
def test_outside_china_both_directions_are_identity(lat: float, lng: float) -> None:
    """Outside the China box neither direction moves the point."""
    assert wgs84_to_gcj02(lat, lng) == (lat, lng)
    assert gcj02_to_wgs84(lat, lng) == (lat, lng)


@pytest.mark.parametrize(
    ("lat", "lng", "expected"),
    [
        (22.5431, 114.0579, True),
        (39.9042, 116.4074, True),
        (0.5, 100.0, False),
        (56.0, 100.0, False),
        (30.0, 72.0, False),
        (30.0, 138.0, False),
        (math.nan, 114.0, False),
    ],
)
def test_in_china_uses_the_standard_box(lat: float, lng: float, expected: bool) -> None:
    """in_china is the published rough box and is False for NaN."""
    assert in_china(lat, lng) is expected


def test_haversine_matches_published_lyon_paris() -> None:
    """Lyon-Paris equals mapado/haversine's expected value (tests/geo_ressources.py)."""
    assert haversine_m(45.7597, 4.8422, 48.8567, 2.3508) == pytest.approx(392217.2595593981)


@pytest.mark.parametrize(
    ("lat1", "lng1", "lat2", "lng2", "expected_m"),
    [
        (22.5431, 114.0579, 22.5431, 114.0579, 0.0),
        (0.0, 0.0, 0.0, 180.0, math.pi * EARTH_RADIUS_M),
        (90.0, 0.0, -90.0, 0.0, math.pi * EARTH_RADIUS_M),
        (0.0, 0.0, 1.0, 0.0, math.radians(1) * EARTH_RADIUS_M),
    ],
)
def test_haversine_known_distances(
    lat1: float, lng1: float, lat2: float, lng2: float, expected_m: float
) -> None:
    """Zero, antipodal and one-degree-of-meridian distances come out exactly."""
    assert haversine_m(lat1, lng1, lat2, lng2) == pytest.approx(expected_m, abs=1e-6)
    assert haversine_m(lat2, lng2, lat1, lng1) == pytest.approx(expected_m, abs=1e-6)


@pytest.mark.parametrize(("lat", "lng"), [(22.5, 114), (-90, 180), (90.0, -180.0), (0, 0)])
def test_validate_lat_lng_accepts_and_returns_floats(lat: float, lng: float) -> None:
    """Valid numbers (ints included, limits included) come back as floats."""
    result = validate_lat_lng(lat, lng, "pickup")
    assert result == (float(lat), float(lng))
    assert all(type(value) is float for value in result)


@pytest.mark.parametrize(
    ("lat", "lng", "field", "message"),
    [
        (90.5, 0.0, "job.pickup.lat", "lat must be between -90 and 90"),
        (-91, 0.0, "job.pickup.lat", "lat must be between -90 and 90"),
        (0.0, 180.01, "job.pickup.lng", "lng must be between -180 and 180"),
        (math.nan, 0.0, "job.pickup.lat", "lat must be a finite number"),
        (0.0, math.inf, "job.pickup.lng", "lng must be a finite number"),
        (0.0, -math.inf, "job.pickup.lng", "lng must be a finite number"),
        (10**400, 0.0, "job.pickup.lat", "lat must be a finite number"),
        ("22.5", 0.0, "job.pickup.lat", "lat must be a number"),
        (None, 0.0, "job.pickup.lat", "lat must be a number"),
        (True, 0.0, "job.pickup.lat", "lat must be a number"),
        (0.0, [114.0], "job.pickup.lng", "lng must be a number"),
    ],
)
def test_validate_lat_lng_names_field_and_rule(
    lat: object, lng: object, field: str, message: str
) -> None:
    """Bad values raise CoordinateError with the caller's field path and the rule broken."""
    with pytest.raises(CoordinateError) as caught:
        validate_lat_lng(lat, lng, field="job.pickup")
    assert caught.value.field == field
    assert caught.value.message == message
    assert str(caught.value) == f"{field}: {message}"


def test_validate_lat_lng_without_field_uses_bare_names() -> None:
    """With no field prefix the error field is just 'lat' or 'lng'."""
    with pytest.raises(CoordinateError) as caught:
        validate_lat_lng(0.0, 200.0)
    assert caught.value.field == "lng"


def test_coordinate_error_is_an_invalid_input() -> None:
    """CoordinateError sits under GeoError and doorstep's InvalidInput (maps to a 4xx)."""
    error = CoordinateError("lat must be a number", field="lat")
    assert isinstance(error, GeoError)
    assert isinstance(error, InvalidInput)
    assert error.kind == "invalid"


def test_to_wgs84_converts_only_gcj02() -> None:
    """to_wgs84 is the identity for wgs84 and the inverse transform for gcj02."""
    gcj = wgs84_to_gcj02(22.5431, 114.0579)
    assert to_wgs84(22.5431, 114.0579, "wgs84") == (22.5431, 114.0579)
    assert to_wgs84(*gcj, "gcj02") == pytest.approx((22.5431, 114.0579), abs=1e-9)


@pytest.mark.parametrize("value", ["WGS84", "bd09", "", None, 4326])
def test_parse_crs_rejects_unknown_systems(value: object) -> None:
    """Anything but 'wgs84' or 'gcj02' is refused, naming the field."""
    with pytest.raises(CoordinateError) as caught:
        parse_crs(value, field="body.crs")
    assert caught.value.field == "body.crs"
    assert caught.value.message == "crs must be 'wgs84' or 'gcj02'"


def test_near_distance_agrees_with_the_great_circle() -> None:
    """The per-fix distance is within 1e-5 of haversine up to 0.3° apart, and haversine beyond 1°."""
    rng = random.Random(7)
    for _ in range(5000):
        lat, lng = rng.uniform(-85.0, 85.0), rng.uniform(-179.0, 179.0)
        lat2, lng2 = lat + rng.uniform(-0.3, 0.3), lng + rng.uniform(-0.3, 0.3)
        exact = haversine_m(lat, lng, lat2, lng2)
        assert near_distance_m(lat, lng, lat2, lng2) == pytest.approx(exact, rel=1e-5, abs=1e-6)
    assert near_distance_m(22.5, 114.0, 24.0, 116.0) == haversine_m(22.5, 114.0, 24.0, 116.0)
    assert near_distance_m(22.5, 179.9, 22.5, -179.9) == haversine_m(22.5, 179.9, 22.5, -179.9)

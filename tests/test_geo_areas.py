"""geo.areas: parsing, validating and querying service areas; the bundled districts."""

from __future__ import annotations

import math
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, Polygon

from geo import bundled
from geo.areas import (
    MAX_VERTICES,
    ServiceArea,
    load_bundled_district,
    parse_service_area,
)
from geo.coords import gcj02_to_wgs84, haversine_m, wgs84_to_gcj02
from geo.errors import AreaError, CoordinateError, GeoError

# A 0.01 x 0.01 degree square around Futian CBD, GeoJSON (lng, lat) order.
SQUARE = [[114.05, 22.54], [114.06, 22.54], [114.06, 22.55], [114.05, 22.55], [114.05, 22.54]]
HOLE = [
    [114.054, 22.544],
    [114.054, 22.546],
    [114.056, 22.546],
    [114.056, 22.544],
    [114.054, 22.544],
]
BOW_TIE = [[114.05, 22.54], [114.06, 22.55], [114.06, 22.54], [114.05, 22.55], [114.05, 22.54]]

FUTIAN_CBD = (22.5431, 114.0579)  # WGS-84, Futian Central Business District
LUOHU_DONGMEN = (22.5445, 114.1200)  # WGS-84, Dongmen, Luohu
NANSHAN_SZU = (22.5333, 113.9330)  # WGS-84, Shenzhen University, Nanshan


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    """A GeoJSON Polygon with the given rings."""
    return {"type": "Polygon", "coordinates": list(rings)}


def with_position(index: int, position: object) -> dict[str, Any]:
    """The square with one position replaced."""
    ring: list[object] = list(SQUARE)
    ring[index] = position
    return {"type": "Polygon", "coordinates": [ring]}


def circle_ring(n_positions: int) -> list[list[float]]:
    """A closed ring of ``n_positions`` positions (first repeated last) around Futian."""
    steps = n_positions - 1
    ring = [
        [
            114.05 + 0.01 * math.cos(2 * math.pi * i / steps),
            22.54 + 0.01 * math.sin(2 * math.pi * i / steps),
        ]
        for i in range(steps)
    ]
    return [*ring, ring[0]]


@pytest.mark.parametrize(
    "obj",
    [
        polygon(SQUARE),
        {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
        {"type": "Feature", "properties": {"name": "cbd"}, "geometry": polygon(SQUARE)},
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": None, "geometry": polygon(SQUARE)}],
        },
    ],
    ids=["Polygon", "MultiPolygon", "Feature", "FeatureCollection"],
)
def test_accepts_every_geojson_wrapper(obj: dict[str, Any]) -> None:
    """Polygon, MultiPolygon, Feature and one-feature FeatureCollection all parse to the square."""
    area = parse_service_area(obj)
    assert area.contains(22.545, 114.055)
    assert not area.contains(22.535, 114.055)
    assert area.geometry.equals(Polygon(SQUARE))


def test_square_bbox_area_and_boundary() -> None:
    """bbox is lat/lng-named, area_km2 matches the haversine side lengths, edges count as inside."""
    area = parse_service_area(polygon(SQUARE))
    box = area.bbox
    assert (box.min_lat, box.min_lng, box.max_lat, box.max_lng) == (22.54, 114.05, 22.55, 114.06)
    width_m = haversine_m(22.545, 114.05, 22.545, 114.06)
    height_m = haversine_m(22.54, 114.05, 22.55, 114.05)
    assert area.area_km2 == pytest.approx(width_m * height_m / 1e6, rel=1e-3)
    assert area.contains(22.54, 114.055)  # on the southern edge
    assert area.contains(22.55, 114.06)  # a corner


def test_hole_is_excluded() -> None:
    """A point inside an interior ring is outside the area."""
    area = parse_service_area(polygon(SQUARE, HOLE))
    assert not area.contains(22.545, 114.055)
    assert area.contains(22.541, 114.051)


def test_to_geojson_round_trips_with_plain_lists() -> None:
    """to_geojson gives plain lists that parse back to an equal area."""
    area = parse_service_area({"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE]]})
    data = area.to_geojson()
    assert data["type"] == "MultiPolygon"
    assert data["coordinates"] == [[SQUARE, HOLE]]
    assert parse_service_area(data) == area


def test_altitude_is_accepted_and_dropped() -> None:
    """A third (altitude) number in a position is allowed and ignored."""
    area = parse_service_area(polygon([[*p, 10.0] for p in SQUARE]))
    assert area.geometry.equals(Polygon(SQUARE))


@pytest.mark.parametrize(
    ("obj", "field", "rule"),
    [
        ("POLYGON((0 0, 1 0, 1 1, 0 0))", "service_area", "must be a GeoJSON object"),
        ({"type": "Point", "coordinates": [114.0, 22.5]}, "service_area.type", "type must be"),
        ({"coordinates": [SQUARE]}, "service_area.type", "type must be"),
        (
            {"type": "FeatureCollection", "features": []},
            "service_area.features",
            "exactly one Feature",
        ),
        (
            {"type": "FeatureCollection", "features": [polygon(SQUARE)]},
            "service_area.features[0].type",
            "type must be Feature",
        ),
        ({"type": "Feature", "geometry": None}, "service_area.geometry", "GeoJSON object"),
        (
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": SQUARE}},
            "service_area.geometry.type",
            "Polygon or MultiPolygon",
        ),
        ({"type": "Polygon", "coordinates": "x"}, "service_area.coordinates", "linear rings"),
        ({"type": "Polygon", "coordinates": []}, "service_area.coordinates", "linear rings"),
        ({"type": "Polygon", "coordinates": [5]}, "service_area.coordinates[0]", "linear ring"),
        (
            {"type": "MultiPolygon", "coordinates": []},
            "service_area.coordinates",
            "non-empty list of polygons",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE], []]},
            "service_area.coordinates[1]",
            "non-empty list of linear rings",
        ),
        (polygon(SQUARE[:-1]), "service_area.coordinates[0]", "must be closed"),
        (polygon(SQUARE, HOLE[:-1]), "service_area.coordinates[1]", "must be closed"),
        (polygon(SQUARE[:3]), "service_area.coordinates[0]", "at least 4 positions, got 3"),
        (with_position(1, "114.06,22.54"), "service_area.coordinates[0][1]", "a position"),
        (with_position(1, [114.06]), "service_area.coordinates[0][1]", "a position"),
        (with_position(1, [114.06, "22.54"]), "service_area.coordinates[0][1][1]", "a number"),
        (with_position(1, [True, 22.54]), "service_area.coordinates[0][1][0]", "a number"),
        (with_position(2, [114.06, math.nan]), "service_area.coordinates[0][2][1]", "finite"),
        (with_position(2, [math.inf, 22.55]), "service_area.coordinates[0][2][0]", "finite"),
        (
            with_position(2, [114.06, 95.0]),
            "service_area.coordinates[0][2][1]",
            "lat must be between -90 and 90",
        ),
        (
            with_position(2, [214.06, 22.55]),
            "service_area.coordinates[0][2][0]",
            "lng must be between -180 and 180",
        ),
        (polygon(BOW_TIE), "service_area", "Self-intersection"),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [[SQUARE], [[[x + 0.005, y] for x, y in SQUARE]]],
            },
            "service_area",
            "Self-intersection",
        ),
        (
            polygon([[114.05, 22.54], [114.06, 22.54], [114.07, 22.54], [114.05, 22.54]]),
            "service_area",
            "must enclose a non-zero area",
        ),
        (polygon([SQUARE[0]] * 4), "service_area", "must enclose a non-zero area"),
        (
            polygon(circle_ring(MAX_VERTICES + 1)),
            "service_area.coordinates[0]",
            "at most 10000 vertices",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[circle_ring(6000)], [circle_ring(6000)]]},
            "service_area.coordinates[1][0]",
            "at most 10000 vertices",
        ),
    ],
)
def test_rejects_bad_areas_naming_field_and_rule(obj: object, field: str, rule: str) -> None:
    """Every malformed or invalid input raises AreaError with the exact field and the rule."""
    with pytest.raises(AreaError) as caught:
        parse_service_area(obj)
    assert caught.value.field == field
    assert rule in caught.value.message


def test_bow_tie_message_explains_validity() -> None:
    """The self-intersection error carries explain_validity's text and the caller's field."""
    with pytest.raises(AreaError) as caught:
        parse_service_area({"type": "Feature", "geometry": polygon(BOW_TIE)}, field="body.area")
    assert caught.value.field == "body.area.geometry"
    assert caught.value.message == (
        "must be a valid polygon without self-intersections: Self-intersection[114.055 22.545]"
    )
    assert isinstance(caught.value, GeoError)


def test_exactly_max_vertices_is_accepted() -> None:
    """A ring of exactly MAX_VERTICES positions is within the limit."""
    area = parse_service_area(polygon(circle_ring(MAX_VERTICES)))
    assert area.contains(22.54, 114.05)


def test_gcj02_input_is_converted_to_wgs84() -> None:
    """With crs='gcj02' every vertex is converted, so a GCJ-02 square holds its WGS-84 centre."""
    centre_lat, centre_lng = FUTIAN_CBD
    gcj_lat, gcj_lng = wgs84_to_gcj02(centre_lat, centre_lng)
    d = 0.001  # ~100 m, much smaller than the ~600 m GCJ-02 offset
    ring = [
        [gcj_lng - d, gcj_lat - d],
        [gcj_lng + d, gcj_lat - d],
        [gcj_lng + d, gcj_lat + d],
        [gcj_lng - d, gcj_lat + d],
        [gcj_lng - d, gcj_lat - d],
    ]
    as_gcj = parse_service_area(polygon(ring), crs="gcj02")
    as_wgs = parse_service_area(polygon(ring))
    assert as_gcj.contains(centre_lat, centre_lng)
    assert not as_wgs.contains(centre_lat, centre_lng)
    for (lng, lat), (out_lng, out_lat) in zip(
        ring, as_gcj.to_geojson()["coordinates"][0], strict=True
    ):
        assert (out_lat, out_lng) == pytest.approx(gcj02_to_wgs84(lat, lng), abs=1e-12)


def test_gcj02_bow_tie_is_still_rejected() -> None:
    """Validity is checked for GCJ-02 input as well."""
    with pytest.raises(AreaError, match="Self-intersection"):
        parse_service_area(polygon(BOW_TIE), crs="gcj02")


def test_unknown_crs_is_rejected() -> None:
    """A crs other than wgs84/gcj02 raises CoordinateError on the crs field."""
    with pytest.raises(CoordinateError) as caught:
        parse_service_area(polygon(SQUARE), crs="bd09")  # type: ignore[arg-type]
    assert caught.value.field == "crs"


def test_service_area_constructor_rejects_invalid_geometry() -> None:
    """Building a ServiceArea directly from an invalid or empty shape is refused too."""
    with pytest.raises(AreaError, match="Self-intersection"):
        ServiceArea(Polygon(BOW_TIE))
    with pytest.raises(AreaError, match="non-empty"):
        ServiceArea(MultiPolygon())


def test_futian_district_contains_cbd_not_neighbours() -> None:
    """Bundled Futian (converted to WGS-84) holds the CBD, not Dongmen (Luohu) or SZU (Nanshan)."""
    futian = parse_service_area(load_bundled_district("福田区"))
    assert futian.contains(*FUTIAN_CBD)
    assert not futian.contains(*LUOHU_DONGMEN)
    assert not futian.contains(*NANSHAN_SZU)
    assert 70 < futian.area_km2 < 90  # official figure: 78.66 km²


@pytest.mark.parametrize(
    ("name", "point"),
    [("罗湖区", LUOHU_DONGMEN), ("南山区", NANSHAN_SZU), ("深圳市", FUTIAN_CBD)],
)
def test_neighbouring_districts_contain_their_points(name: str, point: tuple[float, float]) -> None:
    """Luohu holds Dongmen, Nanshan holds SZU and the whole city holds the CBD."""
    assert parse_service_area(load_bundled_district(name)).contains(*point)


def test_bundled_district_is_converted_from_the_raw_gcj02_file() -> None:
    """Each returned Futian vertex is the raw file's vertex moved 300-700 m by gcj02_to_wgs84."""
    collection: Any = bundled.read_shenzhen_districts()
    raw = next(f for f in collection["features"] if f["properties"]["name"] == "福田区")
    raw_ring = raw["geometry"]["coordinates"][0][0]
    futian = load_bundled_district("福田区")
    assert futian["type"] == "MultiPolygon"
    for (raw_lng, raw_lat), (lng, lat) in zip(
        raw_ring[:50], futian["coordinates"][0][0], strict=False
    ):
        assert (lat, lng) == pytest.approx(gcj02_to_wgs84(raw_lat, raw_lng), abs=1e-12)
        assert 300 < haversine_m(lat, lng, raw_lat, raw_lng) < 700


def test_unknown_district_lists_the_choices() -> None:
    """An unknown district name raises AreaError listing the bundled names."""
    with pytest.raises(AreaError, match="福田区") as caught:
        load_bundled_district("Futian")
    assert caught.value.field == "district"

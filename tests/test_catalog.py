"""The catalog API: cities and service areas, locate, skills, certificate kinds, categories, services."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from geo.coords import gcj02_to_wgs84, wgs84_to_gcj02
from tests.helpers import SQUARE, Account, MakeUser

_rng = secrets.SystemRandom()


def _city_id() -> str:
    return f"t-{secrets.token_hex(3)}"


def _code() -> str:
    return f"t_{secrets.token_hex(3)}"


def _square(lat: float, lng: float, size: float) -> dict[str, Any]:
    """A WGS-84 square with its south-west corner at (lat, lng)."""
    ring = [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _remote_corner() -> tuple[float, float]:
    """A random south-west corner in the South Pacific, where no other test puts a city."""
    return round(_rng.uniform(-55.0, -45.0), 3), round(_rng.uniform(-140.0, -100.0), 3)


def _china_corner() -> tuple[float, float]:
    """A random spot in western Guangdong (inside the GCJ-02 box, away from Futian)."""
    return round(_rng.uniform(21.0, 22.3), 3), round(_rng.uniform(109.5, 113.0), 3)


def _city_body(city_id: str, area: Any, **over: Any) -> dict[str, Any]:
    body = {
        "id": city_id,
        "name_zh": "测试城",
        "name_en": "Test City",
        "timezone": "Asia/Shanghai",
        "currency": "CNY",
        "service_area": area,
    }
    return body | over


def _update_body(area: Any, **over: Any) -> dict[str, Any]:
    body = _city_body("unused", area, **over)
    del body["id"]
    return body


async def _create_city(client: httpx.AsyncClient, admin: Account, area: Any, **over: Any) -> str:
    city_id = _city_id()
    r = await client.post("/v1/cities", json=_city_body(city_id, area, **over), headers=admin.auth)
    assert r.status_code == 201, r.text
    return city_id


async def _locate(client: httpx.AsyncClient, lat: float, lng: float, crs: str | None = None) -> Any:
    params: dict[str, Any] = {"lat": lat, "lng": lng}
    if crs is not None:
        params["crs"] = crs
    r = await client.get("/v1/locate", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    assert error["field"] == field, error
    return error


# --- cities ---------------------------------------------------------------------------


async def test_create_city_is_public_and_listed(client: httpx.AsyncClient, admin: Account) -> None:
    """An admin creates a city (201); anyone can GET it and it appears in /v1/cities."""
    city_id = _city_id()
    r = await client.post("/v1/cities", json=_city_body(city_id, SQUARE), headers=admin.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created == {
        "id": city_id,
        "name_zh": "测试城",
        "name_en": "Test City",
        "timezone": "Asia/Shanghai",
        "currency": "CNY",
        "service_area": SQUARE,
        "bbox": [22.52, 114.00, 22.54, 114.02],
        "active": True,
    }
    r = await client.get(f"/v1/cities/{city_id}")
    assert r.status_code == 200
    assert r.json() == created
    r = await client.get("/v1/cities")
    assert r.status_code == 200
    assert created in r.json()


async def test_duplicate_city_id_conflicts(client: httpx.AsyncClient, admin: Account) -> None:
    """Creating a city with a taken id is 409 already_exists naming id."""
    city_id = await _create_city(client, admin, SQUARE)
    r = await client.post("/v1/cities", json=_city_body(city_id, SQUARE), headers=admin.auth)
    _assert_error(r, 409, "already_exists", "id")


async def test_unknown_city_is_404(client: httpx.AsyncClient) -> None:
    """GET of a city that does not exist is 404 naming city_id."""
    r = await client.get(f"/v1/cities/{_city_id()}")
    _assert_error(r, 404, "not_found", "city_id")


_A, _B, _C, _D = [114.00, 22.52], [114.02, 22.52], [114.02, 22.54], [114.00, 22.54]


@pytest.mark.parametrize(
    ("area", "field", "fragment"),
    [
        (
            {"type": "Polygon", "coordinates": [[_A, _C, _B, _D, _A]]},
            "service_area",
            "self-intersection",
        ),
        (
            {"type": "Polygon", "coordinates": [[_A, _B, _C, _D, [114.001, 22.52]]]},
            "service_area.coordinates[0]",
            "closed",
        ),
        (
            {"type": "Polygon", "coordinates": [[_A, _B, _A]]},
            "service_area.coordinates[0]",
            "at least 4 positions",
        ),
        (
            {"type": "Polygon", "coordinates": [[_A, [114.02, 95.0], _C, _A]]},
            "service_area.coordinates[0][1][1]",
            "lat must be between -90 and 90",
        ),
        (
            {"type": "Polygon", "coordinates": [[_A, _B, [190.0, 22.54], _A]]},
            "service_area.coordinates[0][2][0]",
            "lng must be between -180 and 180",
        ),
        ({"type": "Point", "coordinates": _A}, "service_area.type", "type must be"),
        (
            {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": _A}},
            "service_area.geometry.type",
            "type must be",
        ),
        (
            {"type": "Polygon", "coordinates": [[_A, [114.01, 22.52], _B, _A]]},
            "service_area",
            "non-zero area",
        ),
        ({"type": "Polygon", "coordinates": []}, "service_area.coordinates", "non-empty"),
    ],
    ids=[
        "bow-tie",
        "unclosed-ring",
        "three-positions",
        "lat-out-of-range",
        "lng-out-of-range",
        "point",
        "feature-of-point",
        "zero-area",
        "no-rings",
    ],
)
async def test_invalid_service_area_is_rejected(
    client: httpx.AsyncClient, admin: Account, area: dict[str, Any], field: str, fragment: str
) -> None:
    """An unusable service area is 422 invalid_area naming the exact part and rule; nothing is stored."""
    city_id = _city_id()
    r = await client.post("/v1/cities", json=_city_body(city_id, area), headers=admin.auth)
    error = _assert_error(r, 422, "invalid_area", field)
    assert error["field"].startswith("service_area")
    assert fragment in error["message"].lower()
    assert (await client.get(f"/v1/cities/{city_id}")).status_code == 404


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "invalid_field", "timezone"),
        ({"timezone": "../../etc/passwd"}, "invalid_field", "timezone"),
        ({"currency": "cny"}, "invalid_field", "currency"),
        ({"currency": "YUAN"}, "invalid_field", "currency"),
        ({"crs": "bd09"}, "invalid_field", "crs"),
        ({"id": "Shenzhen"}, "invalid_field", "id"),
    ],
    ids=["unknown-zone", "path-zone", "lowercase-currency", "long-currency", "crs", "id-case"],
)
async def test_invalid_city_field_is_rejected(
    client: httpx.AsyncClient, admin: Account, over: dict[str, Any], code: str, field: str
) -> None:
    """A bad time zone, currency, crs or id is 422 naming that field."""
    r = await client.post(
        "/v1/cities", json=_city_body(_city_id(), SQUARE, **over), headers=admin.auth
    )
    _assert_error(r, 422, code, field)


async def test_gcj02_area_is_stored_in_wgs84(client: httpx.AsyncClient, admin: Account) -> None:
    """A GCJ-02 service area is converted vertex by vertex to WGS-84 (an offset of ~0.005°)."""
    lat, lng = _china_corner()
    area = _square(lat, lng, 0.01)
    city_id = await _create_city(client, admin, area, crs="gcj02")
    stored = (await client.get(f"/v1/cities/{city_id}")).json()
    ring_in = area["coordinates"][0]
    ring_out = stored["service_area"]["coordinates"][0]
    assert len(ring_out) == len(ring_in)
    for (lng_in, lat_in), (lng_out, lat_out) in zip(ring_in, ring_out, strict=True):
        assert 0.003 < abs(lng_out - lng_in) < 0.007
        assert 0.001 < abs(lat_out - lat_in) < 0.004
    want_lat, want_lng = gcj02_to_wgs84(ring_in[2][1], ring_in[2][0])
    assert ring_out[2] == [pytest.approx(want_lng, abs=1e-9), pytest.approx(want_lat, abs=1e-9)]
    lats, lngs = [p[1] for p in ring_out], [p[0] for p in ring_out]
    assert stored["bbox"] == [
        pytest.approx(min(lats)),
        pytest.approx(min(lngs)),
        pytest.approx(max(lats)),
        pytest.approx(max(lngs)),
    ]


async def test_update_city_changes_area_seen_by_locate(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """PUT replaces a city's area and /v1/locate follows it at once (the area cache refreshes)."""
    lat, lng = _remote_corner()
    # An L shape: the full 0.02° square without its north-east quarter.
    l_shape = {
        "type": "Polygon",
        "coordinates": [
            [
                [lng, lat],
                [lng + 0.02, lat],
                [lng + 0.02, lat + 0.01],
                [lng + 0.01, lat + 0.01],
                [lng + 0.01, lat + 0.02],
                [lng, lat + 0.02],
                [lng, lat],
            ]
        ],
    }
    city_id = await _create_city(client, admin, l_shape)
    inside = (lat + 0.005, lng + 0.005)
    north_east = (lat + 0.015, lng + 0.015)  # in the bounding box, outside the L
    assert (await _locate(client, *inside))["city_id"] == city_id  # caches the L
    assert (await _locate(client, *north_east))["city_id"] is None

    body = _update_body(_square(lat, lng, 0.02), name_en="Renamed")
    r = await client.put(f"/v1/cities/{city_id}", json=body, headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["name_en"] == "Renamed"
    assert r.json()["bbox"] == [
        pytest.approx(lat),
        pytest.approx(lng),
        pytest.approx(lat + 0.02),
        pytest.approx(lng + 0.02),
    ]
    assert (await client.get(f"/v1/cities/{city_id}")).json()["name_en"] == "Renamed"
    assert (await _locate(client, *north_east))["city_id"] == city_id

    r = await client.put(
        f"/v1/cities/{city_id}", json=_update_body(l_shape, active=False), headers=admin.auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert (await _locate(client, *inside))["city_id"] is None


async def test_update_city_validates_and_404s(client: httpx.AsyncClient, admin: Account) -> None:
    """PUT with a bad area is 422 (the city unchanged); PUT of an unknown city is 404."""
    city_id = await _create_city(client, admin, SQUARE)
    bow_tie = {"type": "Polygon", "coordinates": [[_A, _C, _B, _D, _A]]}
    r = await client.put(f"/v1/cities/{city_id}", json=_update_body(bow_tie), headers=admin.auth)
    _assert_error(r, 422, "invalid_area", "service_area")
    assert (await client.get(f"/v1/cities/{city_id}")).json()["service_area"] == SQUARE
    r = await client.put(f"/v1/cities/{_city_id()}", json=_update_body(SQUARE), headers=admin.auth)
    _assert_error(r, 404, "not_found", "city_id")


# --- locate ---------------------------------------------------------------------------


async def test_locate_inside_and_outside(client: httpx.AsyncClient, admin: Account) -> None:
    """A point in a city's area gives its id (boundary included); a point outside every area gives null."""
    lat, lng = _remote_corner()
    city_id = await _create_city(client, admin, _square(lat, lng, 0.01))
    found = await _locate(client, lat + 0.005, lng + 0.005)
    assert found == {"lat": lat + 0.005, "lng": lng + 0.005, "city_id": city_id}
    assert (await _locate(client, lat, lng + 0.005))["city_id"] == city_id  # on the edge
    assert (await _locate(client, lat - 0.005, lng + 0.005))["city_id"] is None
    assert (await _locate(client, -89.5, 0.0))["city_id"] is None


async def test_locate_converts_gcj02_input(client: httpx.AsyncClient, admin: Account) -> None:
    """With crs=gcj02 the point is converted to WGS-84 before the lookup, and returned converted."""
    lat, lng = _china_corner()
    city_id = await _create_city(client, admin, _square(lat, lng, 0.002))
    centre = (lat + 0.001, lng + 0.001)
    g_lat, g_lng = wgs84_to_gcj02(*centre)
    found = await _locate(client, g_lat, g_lng, crs="gcj02")
    assert found["city_id"] == city_id
    assert found["lat"] == pytest.approx(centre[0], abs=1e-7)
    assert found["lng"] == pytest.approx(centre[1], abs=1e-7)
    # The same numbers read as WGS-84 lie ~500 m east, outside the small square.
    assert (await _locate(client, g_lat, g_lng))["city_id"] != city_id
    assert (await _locate(client, g_lat, g_lng, crs="wgs84"))["city_id"] != city_id


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"lat": "91", "lng": "114"}, "invalid_coordinate", "lat"),
        ({"lat": "-90.5", "lng": "114"}, "invalid_coordinate", "lat"),
        ({"lat": "22.5", "lng": "181"}, "invalid_coordinate", "lng"),
        ({"lat": "nan", "lng": "114"}, "invalid_coordinate", "lat"),
        ({"lat": "22.5"}, "invalid_field", "lng"),
        ({"lng": "114"}, "invalid_field", "lat"),
        ({"lat": "north", "lng": "114"}, "invalid_field", "lat"),
        ({"lat": "22.5", "lng": "114", "crs": "bd09"}, "invalid_field", "crs"),
    ],
    ids=[
        "lat-high",
        "lat-low",
        "lng-high",
        "lat-nan",
        "missing-lng",
        "missing-lat",
        "lat-word",
        "unknown-crs",
    ],
)
async def test_locate_rejects_bad_query(
    client: httpx.AsyncClient, params: dict[str, str], code: str, field: str
) -> None:
    """A missing, non-numeric or out-of-range coordinate (or unknown crs) is 422 naming it."""
    r = await client.get("/v1/locate", params=params)
    _assert_error(r, 422, code, field)


# --- skills, certificate kinds, categories ------------------------------------------------

_SIMPLE: list[tuple[str, dict[str, Any]]] = [
    ("/v1/skills", {"name_zh": "测试技能", "name_en": "Test skill"}),
    ("/v1/certificate-kinds", {"name_zh": "测试证", "name_en": "Test cert", "validity_years": 3}),
    ("/v1/categories", {"name_zh": "测试类", "name_en": "Test category", "sort": 7}),
]


@pytest.mark.parametrize(("path", "fields"), _SIMPLE, ids=["skill", "certificate-kind", "category"])
async def test_simple_catalog_entry_create_list_duplicate(
    client: httpx.AsyncClient, admin: Account, path: str, fields: dict[str, Any]
) -> None:
    """An admin adds an entry (201), the public list shows it, and a taken code is 409."""
    body = {"code": _code(), **fields}
    r = await client.post(path, json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    assert r.json() == body
    r = await client.get(path)
    assert r.status_code == 200
    assert body in r.json()
    r = await client.post(path, json=body | {"name_en": "Other"}, headers=admin.auth)
    _assert_error(r, 409, "already_exists", "code")
    assert [e for e in (await client.get(path)).json() if e["code"] == body["code"]] == [body]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/skills", {"code": "Bad-Code", "name_zh": "x", "name_en": "x"}, "code"),
        ("/v1/skills", {"code": _code(), "name_zh": "", "name_en": "x"}, "name_zh"),
        (
            "/v1/certificate-kinds",
            {"code": _code(), "name_zh": "x", "name_en": "x", "validity_years": 0},
            "validity_years",
        ),
        (
            "/v1/categories",
            {"code": _code(), "name_zh": "x", "name_en": "x", "sort": -1},
            "sort",
        ),
    ],
    ids=["skill-code", "skill-empty-name", "kind-validity", "category-sort"],
)
async def test_simple_catalog_entry_rejects_bad_field(
    client: httpx.AsyncClient, admin: Account, path: str, body: dict[str, Any], field: str
) -> None:
    """A malformed code, empty name or out-of-range number is 422 naming the field."""
    r = await client.post(path, json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", field)


async def test_catalog_writes_need_admin(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """A merchant may not add catalog entries (403 forbidden)."""
    merchant = await make_user("merchant")
    for path, fields in _SIMPLE:
        r = await client.post(path, json={"code": _code(), **fields}, headers=merchant.auth)
        _assert_error(r, 403, "forbidden", None)


# --- services -------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def refs(client: httpx.AsyncClient, admin: Account) -> dict[str, str]:
    """A category, a second category, a skill and a certificate kind of this module's own."""
    made = {"category": _code(), "other_category": _code(), "skill": _code(), "kind": _code()}
    for key, path, extra in (
        ("category", "/v1/categories", {"sort": 9000}),
        ("other_category", "/v1/categories", {"sort": 9001}),
        ("skill", "/v1/skills", {}),
        ("kind", "/v1/certificate-kinds", {"validity_years": 5}),
    ):
        body = {"code": made[key], "name_zh": "测", "name_en": key, **extra}
        r = await client.post(path, json=body, headers=admin.auth)
        assert r.status_code == 201, r.text
    return made


def _service_body(code: str, refs: dict[str, str], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "category": refs["category"],
        "name_zh": "日常保洁",
        "name_en": "Daily cleaning",
        "description_zh": "两小时",
        "description_en": "Two hours",
        "price_minor": 12_000,
        "currency": "CNY",
        "duration_min": 120,
        "required_skills": [refs["skill"]],
        "required_certificates": [refs["kind"]],
        "checklist": [{"zh": "擦桌子", "en": "Wipe tables"}, {"zh": "拖地", "en": "Mop floors"}],
        "instant": True,
        "scheduled": False,
        "active": True,
        "crew_size": 1,
    }
    return body | over


async def _create_service(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str], **over: Any
) -> dict[str, Any]:
    body = _service_body(_code(), refs, **over)
    r = await client.post("/v1/services", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_create_service_round_trips(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """A valid service is 201 and reads back field for field, checklist included."""
    body = _service_body(_code(), refs)
    r = await client.post("/v1/services", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    assert r.json() == body
    r = await client.get(f"/v1/services/{body['code']}")
    assert r.status_code == 200
    assert r.json() == body
    assert r.json()["checklist"] == [
        {"zh": "擦桌子", "en": "Wipe tables"},
        {"zh": "拖地", "en": "Mop floors"},
    ]


async def test_create_service_defaults_and_dedupes(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """Optional fields default (CNY, empty lists, active) and repeated skills are kept once."""
    code = _code()
    body = {
        "code": code,
        "category": refs["category"],
        "name_zh": "测",
        "name_en": "t",
        "price_minor": 0,
        "duration_min": 15,
        "instant": False,
        "scheduled": True,
        "required_skills": [refs["skill"], refs["skill"]],
    }
    r = await client.post("/v1/services", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["currency"] == "CNY"
    assert got["required_skills"] == [refs["skill"]]
    assert got["required_certificates"] == []
    assert got["checklist"] == []
    assert got["description_zh"] == got["description_en"] == ""
    assert got["active"] is True


async def test_duplicate_service_code_conflicts(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """A taken service code is 409 already_exists naming code."""
    created = await _create_service(client, admin, refs)
    r = await client.post(
        "/v1/services", json=_service_body(created["code"], refs), headers=admin.auth
    )
    _assert_error(r, 409, "already_exists", "code")


_UNKNOWN = "t_unknown_zz"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"category": _UNKNOWN}, "category"),
        ({"required_skills": [_UNKNOWN]}, "required_skills[0]"),
        ({"required_certificates": [_UNKNOWN]}, "required_certificates[0]"),
        ({"instant": False, "scheduled": False}, "instant"),
        ({"price_minor": -1}, "price_minor"),
        ({"duration_min": 10}, "duration_min"),
        ({"currency": "cny"}, "currency"),
        ({"checklist": [{"zh": "", "en": "x"}]}, "checklist[0].zh"),
    ],
    ids=[
        "unknown-category",
        "unknown-skill",
        "unknown-certificate",
        "not-bookable",
        "negative-price",
        "too-short",
        "lowercase-currency",
        "empty-checklist-step",
    ],
)
async def test_create_service_rejects(
    client: httpx.AsyncClient,
    admin: Account,
    refs: dict[str, str],
    over: dict[str, Any],
    field: str,
) -> None:
    """A service with a bad value or a dangling reference is 422 naming the field, and is not stored."""
    code = _code()
    r = await client.post(
        "/v1/services", json=_service_body(code, refs, **over), headers=admin.auth
    )
    _assert_error(r, 422, "invalid_field", field)
    assert (await client.get(f"/v1/services/{code}")).status_code == 404


async def test_unknown_skill_is_named_by_position(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """The field of an unknown skill is its index in the list."""
    body = _service_body(_code(), refs, required_skills=[refs["skill"], _UNKNOWN])
    r = await client.post("/v1/services", json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "required_skills[1]")


async def test_list_services_filters_by_category(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """?category= returns only that category's services."""
    mine = await _create_service(client, admin, refs)
    other = await _create_service(client, admin, refs, category=refs["other_category"])
    r = await client.get("/v1/services", params={"category": refs["category"]})
    assert r.status_code == 200
    listed = r.json()
    assert {s["category"] for s in listed} == {refs["category"]}
    assert mine in listed
    assert other["code"] not in {s["code"] for s in listed}
    r = await client.get("/v1/services", params={"category": refs["other_category"]})
    assert [s["code"] for s in r.json()] == [other["code"]]
    everything = {s["code"] for s in (await client.get("/v1/services")).json()}
    assert {mine["code"], other["code"]} <= everything


async def test_inactive_service_only_listed_for_admin(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser, refs: dict[str, str]
) -> None:
    """An inactive service is missing from the public (and a customer's) list but shown to an admin."""
    hidden = await _create_service(client, admin, refs, active=False)
    customer = await make_user("customer")
    params = {"category": refs["category"]}
    public = {s["code"] for s in (await client.get("/v1/services", params=params)).json()}
    as_customer = await client.get("/v1/services", params=params, headers=customer.auth)
    as_admin = await client.get("/v1/services", params=params, headers=admin.auth)
    assert hidden["code"] not in public
    assert hidden["code"] not in {s["code"] for s in as_customer.json()}
    assert hidden in as_admin.json()


async def test_update_service(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """PUT replaces every field but the code; GET shows the new values."""
    created = await _create_service(client, admin, refs)
    code = created["code"]
    body = _service_body(code, refs, price_minor=15_000, name_en="Deep cleaning", scheduled=True)
    body |= {"checklist": [{"zh": "消毒", "en": "Disinfect"}], "required_certificates": []}
    del body["code"]
    r = await client.put(f"/v1/services/{code}", json=body, headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json() == body | {"code": code}
    assert (await client.get(f"/v1/services/{code}")).json() == body | {"code": code}


async def test_update_service_rejects_and_404s(
    client: httpx.AsyncClient, admin: Account, refs: dict[str, str]
) -> None:
    """PUT with an unknown skill is 422 (service unchanged); PUT of an unknown code is 404."""
    created = await _create_service(client, admin, refs)
    body = _service_body(created["code"], refs, required_skills=[_UNKNOWN])
    del body["code"]
    r = await client.put(f"/v1/services/{created['code']}", json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "required_skills[0]")
    assert (await client.get(f"/v1/services/{created['code']}")).json() == created
    del body["required_skills"]
    r = await client.put(f"/v1/services/{_code()}", json=body, headers=admin.auth)
    _assert_error(r, 404, "not_found", "service_code")


async def test_unknown_service_is_404(client: httpx.AsyncClient) -> None:
    """GET of an unknown service code is 404 naming service_code."""
    r = await client.get(f"/v1/services/{_code()}")
    _assert_error(r, 404, "not_found", "service_code")

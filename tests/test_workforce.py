"""The workforce API: workers, teams, visibility, availability, exceptions, certificates."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from geo.coords import gcj02_to_wgs84
from tests.helpers import PASSWORD, Account, MakeUser, new_phone

HOME = {"lat": 22.53, "lng": 114.01}  # WGS-84, inside helpers.SQUARE


def _code() -> str:
    return f"t_{secrets.token_hex(3)}"


def _square(lat: float, lng: float) -> dict[str, Any]:
    ring = [[lng, lat], [lng + 0.02, lat], [lng + 0.02, lat + 0.02], [lng, lat + 0.02], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error


async def _login(client: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"phone": phone, "password": password})


@dataclass(frozen=True)
class World:
    """This module's own city, second city, skills, certificate kind, merchants and teams."""

    city: str
    other_city: str
    skill: str
    other_skill: str
    kind: str
    merchant: Account
    other_merchant: Account
    team: int  # the merchant's, in city
    other_team: int  # the other merchant's, in city
    far_team: int  # the merchant's, in other_city


async def _post(client: httpx.AsyncClient, admin: Account, path: str, body: dict[str, Any]) -> Any:
    r = await client.post(path, json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
async def world(client: httpx.AsyncClient, admin: Account, make_user: MakeUser) -> World:
    """Set up the catalog entries, merchants and teams the tests share."""
    cities = []
    for lat, lng in ((45.0, -35.0), (46.0, -36.0)):  # mid-Atlantic, clear of test_catalog's
        city_id = f"t-{secrets.token_hex(3)}"
        body: dict[str, Any] = {
            "id": city_id,
            "name_zh": "工作城",
            "name_en": "Workforce City",
            "timezone": "Asia/Shanghai",
            "currency": "CNY",
            "service_area": _square(lat + secrets.randbelow(1000) / 1000, lng),
        }
        cities.append((await _post(client, admin, "/v1/cities", body))["id"])
    skills = []
    for _ in range(2):
        body = {"code": _code(), "name_zh": "技能", "name_en": "skill"}
        skills.append((await _post(client, admin, "/v1/skills", body))["code"])
    kind_body = {"code": _code(), "name_zh": "证", "name_en": "cert", "validity_years": 3}
    kind = (await _post(client, admin, "/v1/certificate-kinds", kind_body))["code"]
    merchant = await make_user("merchant")
    other_merchant = await make_user("merchant")
    teams = []
    for name, city, owner in (
        ("甲队", cities[0], merchant),
        ("乙队", cities[0], other_merchant),
        ("丙队", cities[1], merchant),
    ):
        body = {"name": name, "city_id": city, "merchant_id": owner.id}
        teams.append((await _post(client, admin, "/v1/teams", body))["id"])
    return World(cities[0], cities[1], skills[0], skills[1], kind, merchant, other_merchant, *teams)


def _worker_body(world: World, **over: Any) -> dict[str, Any]:
    body = {
        "phone": new_phone(),
        "password": PASSWORD,
        "name": "王阿姨",
        "city_id": world.city,
        "skills": [world.skill],
        "home": dict(HOME),
        "team_id": None,
    }
    return body | over


async def _worker(
    client: httpx.AsyncClient, admin: Account, world: World, **over: Any
) -> tuple[dict[str, Any], Account]:
    """Create a worker through the API and log them in."""
    created = await _post(client, admin, "/v1/workers", _worker_body(world, **over))
    r = await _login(client, created["phone"])
    assert r.status_code == 200, r.text
    tokens = r.json()
    account = Account(
        created["user_id"],
        created["phone"],
        ("worker",),
        tokens["access_token"],
        tokens["refresh_token"],
    )
    return created, account


# --- creating workers ----------------------------------------------------------------


async def test_create_worker_makes_account_and_profile(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """POST /v1/workers is 201; the worker logs in with the password and reads their own profile."""
    body = _worker_body(world, team_id=world.team, skills=[world.skill, world.other_skill])
    r = await client.post("/v1/workers", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created == {
        "user_id": created["user_id"],
        "name": "王阿姨",
        "phone": body["phone"],
        "city_id": world.city,
        "skills": [world.skill, world.other_skill],
        "home_lat": HOME["lat"],
        "home_lng": HOME["lng"],
        "rating": None,
        "rating_count": 0,
        "team_id": world.team,
        "certificates": [],
        "availability": [],
        "exceptions": [],
    }
    r = await _login(client, body["phone"])
    assert r.status_code == 200, r.text
    assert r.json()["user"]["roles"] == ["worker"]
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await client.get(f"/v1/workers/{created['user_id']}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == created


async def test_create_worker_home_in_gcj02_is_converted(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A GCJ-02 home base is stored in WGS-84."""
    home: dict[str, Any] = {"lat": 22.5431, "lng": 114.0579, "crs": "gcj02"}
    created, _ = await _worker(client, admin, world, home=home)
    lat, lng = gcj02_to_wgs84(home["lat"], home["lng"])
    assert created["home_lat"] == pytest.approx(lat, abs=1e-9)
    assert created["home_lng"] == pytest.approx(lng, abs=1e-9)
    assert abs(created["home_lng"] - home["lng"]) > 0.003


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"city_id": "t-nowhere"}, "invalid_field", "city_id"),
        ({"skills": ["t_no_such_skill"]}, "invalid_field", "skills[0]"),
        ({"skills": ["Bad Code"]}, "invalid_field", "skills[0]"),
        ({"team_id": "far"}, "invalid_field", "team_id"),
        ({"team_id": 2**62}, "invalid_field", "team_id"),
        ({"home": {"lat": 91.0, "lng": 114.0}}, "invalid_coordinate", "home.lat"),
        ({"home": {"lat": 22.5, "lng": 114.0, "crs": "bd09"}}, "invalid_field", "home.crs"),
        ({"password": "short"}, "invalid_field", "password"),
        ({"password": "1234567890"}, "invalid_field", "password"),
        ({"name": "  "}, "invalid_field", "name"),
    ],
    ids=[
        "unknown-city",
        "unknown-skill",
        "malformed-skill",
        "team-in-other-city",
        "unknown-team",
        "home-lat",
        "home-crs",
        "short-password",
        "digit-password",
        "blank-name",
    ],
)
async def test_create_worker_rejects_and_creates_no_account(
    client: httpx.AsyncClient,
    admin: Account,
    world: World,
    over: dict[str, Any],
    code: str,
    field: str,
) -> None:
    """A bad worker is 422 naming the field, and no account is left behind (login fails 401)."""
    if over.get("team_id") == "far":
        over = {"team_id": world.far_team}
    body = _worker_body(world, **over)
    r = await client.post("/v1/workers", json=body, headers=admin.auth)
    _assert_error(r, 422, code, field)
    r = await _login(client, body["phone"], body["password"])
    _assert_error(r, 401, "bad_credentials", None)


async def test_create_worker_with_taken_phone_conflicts(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A phone another account uses is 409 phone_taken."""
    created, _ = await _worker(client, admin, world)
    r = await client.post(
        "/v1/workers", json=_worker_body(world, phone=created["phone"]), headers=admin.auth
    )
    _assert_error(r, 409, "phone_taken", "phone")


# --- teams ----------------------------------------------------------------------------


async def test_create_team(client: httpx.AsyncClient, admin: Account, world: World) -> None:
    """An admin creates a team for a merchant (201); the same name in another city is allowed."""
    name = f"队{secrets.token_hex(2)}"
    body = {"name": name, "city_id": world.city, "merchant_id": world.merchant.id}
    r = await client.post("/v1/teams", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    team = r.json()
    assert team == {**body, "id": team["id"], "members": 0}
    r = await client.post(
        "/v1/teams", json=body | {"city_id": world.other_city}, headers=admin.auth
    )
    assert r.status_code == 201, r.text


async def test_duplicate_team_name_in_city_conflicts(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A second team of the same name in the same city is 409 duplicate_team (name trimmed)."""
    name = f"队{secrets.token_hex(2)}"
    body = {"name": name, "city_id": world.city, "merchant_id": world.merchant.id}
    await _post(client, admin, "/v1/teams", body)
    r = await client.post(
        "/v1/teams",
        json=body | {"name": f" {name} ", "merchant_id": world.other_merchant.id},
        headers=admin.auth,
    )
    _assert_error(r, 409, "duplicate_team", "name")


@pytest.mark.parametrize(
    "merchant", ["customer", "worker", "dispatcher", "unknown"], ids=lambda m: f"merchant-{m}"
)
async def test_team_needs_a_merchant(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser, world: World, merchant: str
) -> None:
    """merchant_id must name a user holding the merchant role, else 422 naming merchant_id."""
    user_id = 2**62 if merchant == "unknown" else (await make_user(merchant)).id
    body = {"name": f"队{secrets.token_hex(2)}", "city_id": world.city, "merchant_id": user_id}
    r = await client.post("/v1/teams", json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "merchant_id")


async def test_blank_team_name_is_rejected(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A team name of only spaces is 422 naming name (it would be stored empty)."""
    body = {"name": "   ", "city_id": world.city, "merchant_id": world.merchant.id}
    r = await client.post("/v1/teams", json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "name")


async def test_team_needs_a_known_city(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A team in an unknown city is 422 naming city_id."""
    body = {"name": "队", "city_id": "t-nowhere", "merchant_id": world.merchant.id}
    r = await client.post("/v1/teams", json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "city_id")


async def test_teams_are_visible_to_staff_and_their_merchant(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser, world: World
) -> None:
    """A merchant lists and reads only their own teams; a dispatcher reads any."""
    r = await client.get("/v1/teams", headers=world.merchant.auth)
    assert r.status_code == 200
    mine = {t["id"] for t in r.json()}
    assert {world.team, world.far_team} <= mine
    assert world.other_team not in mine
    assert {t["merchant_id"] for t in r.json()} == {world.merchant.id}
    assert (
        await client.get(f"/v1/teams/{world.team}", headers=world.merchant.auth)
    ).status_code == 200
    r = await client.get(f"/v1/teams/{world.other_team}", headers=world.merchant.auth)
    _assert_error(r, 404, "team_not_found", "team_id")
    dispatcher = await make_user("dispatcher")
    r = await client.get(f"/v1/teams/{world.other_team}", headers=dispatcher.auth)
    assert r.status_code == 200
    assert r.json()["merchant_id"] == world.other_merchant.id


# --- who sees which worker ---------------------------------------------------------------


@pytest.fixture(scope="module")
async def crew(
    client: httpx.AsyncClient, admin: Account, world: World
) -> dict[str, tuple[dict[str, Any], Account]]:
    """Three workers in the module's city: in the merchant's team, the other team, no team."""
    return {
        "ours": await _worker(client, admin, world, team_id=world.team),
        "theirs": await _worker(client, admin, world, team_id=world.other_team),
        "free": await _worker(client, admin, world),
    }


async def test_merchant_lists_only_their_teams_workers(
    client: httpx.AsyncClient, world: World, crew: dict[str, tuple[dict[str, Any], Account]]
) -> None:
    """GET /v1/workers for a merchant holds only their teams' workers, even when asking for another team."""
    r = await client.get("/v1/workers", headers=world.merchant.auth)
    assert r.status_code == 200, r.text
    listed = r.json()
    assert crew["ours"][0]["user_id"] in {w["user_id"] for w in listed}
    assert {w["team_id"] for w in listed} <= {world.team, world.far_team}
    r = await client.get(
        "/v1/workers", params={"team_id": world.other_team}, headers=world.merchant.auth
    )
    assert r.status_code == 200
    assert r.json() == []


async def test_merchant_reads_only_their_teams_workers(
    client: httpx.AsyncClient, world: World, crew: dict[str, tuple[dict[str, Any], Account]]
) -> None:
    """A merchant reads their team's worker; another team's or a teamless worker is 404."""
    ours, theirs, free = (crew[k][0]["user_id"] for k in ("ours", "theirs", "free"))
    r = await client.get(f"/v1/workers/{ours}", headers=world.merchant.auth)
    assert r.status_code == 200
    for other in (theirs, free):
        r = await client.get(f"/v1/workers/{other}", headers=world.merchant.auth)
        _assert_error(r, 404, "worker_not_found", "worker_id")


async def test_dispatcher_sees_every_worker(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    world: World,
    crew: dict[str, tuple[dict[str, Any], Account]],
) -> None:
    """A dispatcher lists and reads workers of every team and none."""
    dispatcher = await make_user("dispatcher")
    r = await client.get("/v1/workers", params={"city_id": world.city}, headers=dispatcher.auth)
    assert r.status_code == 200, r.text
    listed = {w["user_id"] for w in r.json()}
    assert {c[0]["user_id"] for c in crew.values()} <= listed
    assert {w["city_id"] for w in r.json()} == {world.city}
    for created, _ in crew.values():
        r = await client.get(f"/v1/workers/{created['user_id']}", headers=dispatcher.auth)
        assert r.status_code == 200
        assert r.json()["user_id"] == created["user_id"]


async def test_list_workers_filters(
    client: httpx.AsyncClient, admin: Account, world: World, crew: dict[str, Any]
) -> None:
    """?team_id=, ?skill= and keyset paging narrow the admin's list."""
    r = await client.get("/v1/workers", params={"team_id": world.other_team}, headers=admin.auth)
    assert [w["user_id"] for w in r.json()] == [crew["theirs"][0]["user_id"]]
    r = await client.get(
        "/v1/workers", params={"city_id": world.city, "skill": world.skill}, headers=admin.auth
    )
    assert {c[0]["user_id"] for c in crew.values()} <= {w["user_id"] for w in r.json()}
    r = await client.get("/v1/workers", params={"skill": _code()}, headers=admin.auth)
    assert r.json() == []
    first = min(c[0]["user_id"] for c in crew.values())
    r = await client.get(
        "/v1/workers",
        params={"city_id": world.city, "after_id": first, "limit": 1},
        headers=admin.auth,
    )
    assert len(r.json()) == 1
    assert r.json()[0]["user_id"] > first
    r = await client.get("/v1/workers", params={"limit": 0}, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "limit")


async def test_worker_reads_only_self(
    client: httpx.AsyncClient, crew: dict[str, tuple[dict[str, Any], Account]]
) -> None:
    """A worker reads their own profile (200) but another worker's is 404."""
    me, account = crew["ours"]
    r = await client.get(f"/v1/workers/{me['user_id']}", headers=account.auth)
    assert r.status_code == 200
    assert r.json()["user_id"] == me["user_id"]
    r = await client.get(f"/v1/workers/{crew['free'][0]['user_id']}", headers=account.auth)
    _assert_error(r, 404, "worker_not_found", "worker_id")


async def test_customer_may_not_list_or_read_workers(
    client: httpx.AsyncClient, make_user: MakeUser, crew: dict[str, Any]
) -> None:
    """A customer gets 403 on the worker list and on a worker."""
    customer = await make_user("customer")
    _assert_error(await client.get("/v1/workers", headers=customer.auth), 403, "forbidden", None)
    r = await client.get(f"/v1/workers/{crew['ours'][0]['user_id']}", headers=customer.auth)
    _assert_error(r, 403, "forbidden", None)


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        ("/v1/workers/999999999999", 404, "worker_not_found", "worker_id"),
        ("/v1/workers/0", 422, "invalid_field", "worker_id"),
        ("/v1/workers/abc", 422, "invalid_field", "worker_id"),
        ("/v1/workers/99999999999999999999", 422, "invalid_field", "worker_id"),
        ("/v1/teams/999999999999", 404, "team_not_found", "team_id"),
        ("/v1/teams/99999999999999999999", 422, "invalid_field", "team_id"),
    ],
    ids=["missing", "zero", "word", "worker-past-bigint", "missing-team", "team-past-bigint"],
)
async def test_unknown_or_malformed_id_in_path(
    client: httpx.AsyncClient, admin: Account, path: str, status: int, code: str, field: str
) -> None:
    """An id that names nobody is 404; one that is not a positive 64-bit integer is 422."""
    r = await client.get(path, headers=admin.auth)
    _assert_error(r, status, code, field)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/workers", {"team_id": 2**63}, "team_id"),
        ("POST", "/v1/teams", {"merchant_id": 2**63}, "merchant_id"),
        ("PATCH", "/v1/workers/{worker}", {"team_id": 2**63}, "team_id"),
        (
            "PUT",
            "/v1/workers/{worker}/certificates/9223372036854775808/status",
            {},
            "certificate_id",
        ),
    ],
    ids=["worker-team", "team-merchant", "patch-team", "certificate-path"],
)
async def test_ids_past_bigint_are_rejected(
    client: httpx.AsyncClient,
    admin: Account,
    world: World,
    crew: dict[str, tuple[dict[str, Any], Account]],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    """An id beyond PostgreSQL's bigint range is 422 naming it, not a server error."""
    base: dict[str, Any] = {
        "/v1/workers": _worker_body(world),
        "/v1/teams": {"name": "队", "city_id": world.city, "merchant_id": world.merchant.id},
    }.get(path, {"status": "verified"} if "status" in path else {})
    url = path.format(worker=crew["free"][0]["user_id"])
    r = await client.request(method, url, json=base | body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", field)


# --- weekly availability ---------------------------------------------------------------

MON_9_12 = {"weekday": 0, "start_min": 540, "end_min": 720}
MON_13_18 = {"weekday": 0, "start_min": 780, "end_min": 1080}
TUE_8_12 = {"weekday": 1, "start_min": 480, "end_min": 720}
TUE_12_18 = {"weekday": 1, "start_min": 720, "end_min": 1080}


async def test_worker_sets_own_availability_sorted(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A worker replaces their weekly windows (200), returned sorted; touching windows are fine."""
    me, account = await _worker(client, admin, world)
    url = f"/v1/workers/{me['user_id']}/availability"
    windows = [TUE_12_18, MON_13_18, TUE_8_12, MON_9_12]
    r = await client.put(url, json={"windows": windows}, headers=account.auth)
    assert r.status_code == 200, r.text
    assert r.json()["availability"] == [MON_9_12, MON_13_18, TUE_8_12, TUE_12_18]
    r = await client.get(f"/v1/workers/{me['user_id']}", headers=account.auth)
    assert r.json()["availability"] == [MON_9_12, MON_13_18, TUE_8_12, TUE_12_18]
    r = await client.put(url, json={"windows": [TUE_8_12]}, headers=account.auth)
    assert r.json()["availability"] == [TUE_8_12]
    r = await client.put(url, json={"windows": []}, headers=account.auth)
    assert r.json()["availability"] == []


@pytest.mark.parametrize(
    ("windows", "field"),
    [
        ([MON_9_12, {"weekday": 0, "start_min": 660, "end_min": 800}], "windows[1].start_min"),
        ([MON_9_12, {"weekday": 0, "start_min": 540, "end_min": 600}], "windows[1].start_min"),
        ([{"weekday": 2, "start_min": 600, "end_min": 600}], "windows[0].start_min"),
        ([MON_9_12, {"weekday": 2, "start_min": 700, "end_min": 600}], "windows[1].start_min"),
        ([{"weekday": 7, "start_min": 600, "end_min": 700}], "windows[0].weekday"),
        ([{"weekday": 0, "start_min": 600, "end_min": 1441}], "windows[0].end_min"),
    ],
    ids=["overlap", "same-start", "empty", "inverted", "weekday-7", "past-midnight"],
)
async def test_invalid_availability_is_rejected(
    client: httpx.AsyncClient,
    admin: Account,
    world: World,
    windows: list[dict[str, int]],
    field: str,
) -> None:
    """Overlapping, empty, inverted or out-of-range windows are 422 naming the window; nothing changes."""
    me, account = await _worker(client, admin, world)
    url = f"/v1/workers/{me['user_id']}/availability"
    assert (await client.put(url, json={"windows": [TUE_8_12]}, headers=account.auth)).is_success
    r = await client.put(url, json={"windows": windows}, headers=account.auth)
    _assert_error(r, 422, "invalid_field", field)
    r = await client.get(f"/v1/workers/{me['user_id']}", headers=account.auth)
    assert r.json()["availability"] == [TUE_8_12]


async def test_who_may_set_availability(
    client: httpx.AsyncClient,
    admin: Account,
    make_user: MakeUser,
    world: World,
    crew: dict[str, tuple[dict[str, Any], Account]],
) -> None:
    """Another worker and another team's merchant get 404; the team's merchant and an admin may; a dispatcher 403."""
    ours = crew["ours"][0]["user_id"]
    url = f"/v1/workers/{ours}/availability"
    body = {"windows": [MON_9_12]}
    r = await client.put(url, json=body, headers=crew["free"][1].auth)
    _assert_error(r, 404, "worker_not_found", "worker_id")
    r = await client.put(url, json=body, headers=world.other_merchant.auth)
    _assert_error(r, 404, "worker_not_found", "worker_id")
    dispatcher = await make_user("dispatcher")
    _assert_error(await client.put(url, json=body, headers=dispatcher.auth), 403, "forbidden", None)
    r = await client.put(url, json=body, headers=world.merchant.auth)
    assert r.status_code == 200, r.text
    assert r.json()["availability"] == [MON_9_12]
    r = await client.put(url, json={"windows": [TUE_8_12]}, headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["availability"] == [TUE_8_12]


# --- dated exceptions -------------------------------------------------------------------


async def test_day_off_and_other_hours(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A worker sets a day off and other hours on two dates; setting a date again replaces it."""
    me, account = await _worker(client, admin, world)
    base = f"/v1/workers/{me['user_id']}/availability/exceptions"
    r = await client.put(
        f"{base}/2030-01-08",
        json={"available": True, "start_min": 600, "end_min": 900},
        headers=account.auth,
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"{base}/2030-01-07", json={"available": False, "reason": " 春节 "}, headers=account.auth
    )
    assert r.status_code == 200, r.text
    day_off = {
        "on_date": "2030-01-07",
        "available": False,
        "start_min": None,
        "end_min": None,
        "reason": "春节",
    }
    hours = {
        "on_date": "2030-01-08",
        "available": True,
        "start_min": 600,
        "end_min": 900,
        "reason": "",
    }
    assert r.json()["exceptions"] == [day_off, hours]
    r = await client.put(f"{base}/2030-01-08", json={"available": False}, headers=account.auth)
    assert r.json()["exceptions"][1] == hours | {
        "available": False,
        "start_min": None,
        "end_min": None,
    }


@pytest.mark.parametrize(
    ("on_date", "body", "field"),
    [
        ("2030-01-07", {"available": False, "start_min": 600, "end_min": 700}, "start_min"),
        ("2030-01-07", {"available": False, "end_min": 700}, "start_min"),
        ("2030-01-07", {"available": True}, "start_min"),
        ("2030-01-07", {"available": True, "start_min": 700, "end_min": 600}, "start_min"),
        ("2030-01-07", {"available": True, "start_min": 600, "end_min": 1441}, "end_min"),
        ("2030-02-30", {"available": False}, "on_date"),
        ("tomorrow", {"available": False}, "on_date"),
        ("2030-1-7", {"available": False}, "on_date"),
        ("20300107", {"available": False}, "on_date"),
        ("2030-W02-1", {"available": False}, "on_date"),
    ],
    ids=[
        "day-off-with-times",
        "day-off-with-end",
        "hours-without-times",
        "hours-inverted",
        "hours-past-midnight",
        "no-such-date",
        "word",
        "unpadded",
        "basic-format",
        "week-date",
    ],
)
async def test_invalid_exception_is_rejected(
    client: httpx.AsyncClient,
    crew: dict[str, tuple[dict[str, Any], Account]],
    on_date: str,
    body: dict[str, Any],
    field: str,
) -> None:
    """A day off with times, hours without valid times, or a bad date is 422 naming the field."""
    me, account = crew["free"]
    url = f"/v1/workers/{me['user_id']}/availability/exceptions/{on_date}"
    r = await client.put(url, json=body, headers=account.auth)
    _assert_error(r, 422, "invalid_field", field)


async def test_delete_exception(client: httpx.AsyncClient, admin: Account, world: World) -> None:
    """DELETE removes a date's exception (204); deleting it again is 404 naming on_date."""
    me, account = await _worker(client, admin, world, team_id=world.team)
    url = f"/v1/workers/{me['user_id']}/availability/exceptions/2030-03-01"
    r = await client.put(url, json={"available": False}, headers=world.merchant.auth)
    assert r.status_code == 200, r.text
    r = await client.delete(url, headers=account.auth)
    assert r.status_code == 204, r.text
    r = await client.get(f"/v1/workers/{me['user_id']}", headers=account.auth)
    assert r.json()["exceptions"] == []
    r = await client.delete(url, headers=account.auth)
    _assert_error(r, 404, "worker_not_found", "on_date")
    r = await client.delete(url.replace("2030-03-01", "2030-13-01"), headers=account.auth)
    _assert_error(r, 422, "invalid_field", "on_date")


async def test_exception_of_another_worker_is_404(
    client: httpx.AsyncClient, crew: dict[str, tuple[dict[str, Any], Account]]
) -> None:
    """A worker cannot set or delete another worker's exception (404)."""
    other = crew["ours"][0]["user_id"]
    url = f"/v1/workers/{other}/availability/exceptions/2030-01-07"
    r = await client.put(url, json={"available": False}, headers=crew["free"][1].auth)
    _assert_error(r, 404, "worker_not_found", "worker_id")
    r = await client.delete(url, headers=crew["free"][1].auth)
    _assert_error(r, 404, "worker_not_found", "worker_id")


# --- certificates -------------------------------------------------------------------------


def _cert(world: World, **over: Any) -> dict[str, Any]:
    body = {
        "kind": world.kind,
        "number": f"T{secrets.token_hex(5).upper()}",
        "issued_on": "2024-05-01",
        "expires_on": "2027-05-01",
    }
    return body | over


async def test_certificate_register_and_verify(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """A worker registers a certificate (201, pending); an admin verifies it; the profile shows it."""
    me, account = await _worker(client, admin, world)
    body = _cert(world)
    r = await client.post(
        f"/v1/workers/{me['user_id']}/certificates", json=body, headers=account.auth
    )
    assert r.status_code == 201, r.text
    cert = r.json()
    assert cert == {**body, "id": cert["id"], "status": "pending", "reason": ""}
    url = f"/v1/workers/{me['user_id']}/certificates/{cert['id']}/status"
    _assert_error(
        await client.put(url, json={"status": "verified"}, headers=account.auth),
        403,
        "forbidden",
        None,
    )
    r = await client.put(url, json={"status": "verified"}, headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json() == cert | {"status": "verified"}
    r = await client.get(f"/v1/workers/{me['user_id']}", headers=account.auth)
    assert r.json()["certificates"] == [cert | {"status": "verified"}]
    r = await client.put(url, json={"status": "approved"}, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", "status")


async def test_certificate_status_of_another_workers_certificate_is_404(
    client: httpx.AsyncClient, admin: Account, world: World, crew: dict[str, Any]
) -> None:
    """Setting the status through the wrong worker's path is 404 naming certificate_id."""
    me, account = await _worker(client, admin, world)
    r = await client.post(
        f"/v1/workers/{me['user_id']}/certificates", json=_cert(world), headers=account.auth
    )
    cert_id = r.json()["id"]
    other = crew["free"][0]["user_id"]
    r = await client.put(
        f"/v1/workers/{other}/certificates/{cert_id}/status",
        json={"status": "verified"},
        headers=admin.auth,
    )
    _assert_error(r, 404, "worker_not_found", "certificate_id")


async def test_duplicate_certificate_conflicts(
    client: httpx.AsyncClient, admin: Account, world: World, crew: dict[str, Any]
) -> None:
    """The same (kind, number) twice, by anyone and despite spaces, is 409 duplicate_certificate."""
    me, account = await _worker(client, admin, world)
    body = _cert(world)
    url = f"/v1/workers/{me['user_id']}/certificates"
    assert (await client.post(url, json=body, headers=account.auth)).status_code == 201
    r = await client.post(url, json=body, headers=account.auth)
    _assert_error(r, 409, "duplicate_certificate", "number")
    other, other_account = crew["free"]
    r = await client.post(
        f"/v1/workers/{other['user_id']}/certificates",
        json=body | {"number": f"  {body['number']} "},
        headers=other_account.auth,
    )
    _assert_error(r, 409, "duplicate_certificate", "number")


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"expires_on": "2024-04-30"}, "expires_on"),
        ({"expires_on": "2024-05-01"}, "expires_on"),
        ({"kind": "t_no_such_kind"}, "kind"),
        ({"issued_on": "2024-02-30"}, "issued_on"),
        ({"number": "AB"}, "number"),
        ({"number": "  AB  "}, "number"),
    ],
    ids=[
        "expires-before-issued",
        "expires-on-issue-day",
        "unknown-kind",
        "bad-date",
        "short-number",
        "short-number-padded",
    ],
)
async def test_invalid_certificate_is_rejected(
    client: httpx.AsyncClient,
    world: World,
    crew: dict[str, tuple[dict[str, Any], Account]],
    over: dict[str, Any],
    field: str,
) -> None:
    """A certificate that expires too early, of an unknown kind or malformed is 422 naming the field."""
    me, account = crew["free"]
    r = await client.post(
        f"/v1/workers/{me['user_id']}/certificates", json=_cert(world, **over), headers=account.auth
    )
    _assert_error(r, 422, "invalid_field", field)


async def test_merchant_registers_certificate_for_own_team_only(
    client: httpx.AsyncClient, world: World, crew: dict[str, tuple[dict[str, Any], Account]]
) -> None:
    """A merchant registers a certificate for their team's worker, not for another team's (404)."""
    ours, theirs = crew["ours"][0]["user_id"], crew["theirs"][0]["user_id"]
    r = await client.post(
        f"/v1/workers/{ours}/certificates", json=_cert(world), headers=world.merchant.auth
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/workers/{theirs}/certificates", json=_cert(world), headers=world.merchant.auth
    )
    _assert_error(r, 404, "worker_not_found", "worker_id")


# --- changing the profile ------------------------------------------------------------------


async def test_patch_worker_skills_and_team(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """An admin changes skills and team; absent fields stay; the new merchant sees the worker."""
    me, _ = await _worker(client, admin, world, team_id=world.team)
    url = f"/v1/workers/{me['user_id']}"
    r = await client.patch(
        url,
        json={"skills": [world.other_skill, world.other_skill], "team_id": world.other_team},
        headers=admin.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json() == me | {"skills": [world.other_skill], "team_id": world.other_team}
    assert (await client.get(url, headers=world.other_merchant.auth)).status_code == 200
    _assert_error(
        await client.get(url, headers=world.merchant.auth), 404, "worker_not_found", "worker_id"
    )
    r = await client.patch(url, json={"team_id": None}, headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["team_id"] is None
    r = await client.patch(
        url, json={"city_id": world.other_city, "team_id": world.far_team}, headers=admin.auth
    )
    assert r.status_code == 200, r.text
    assert (r.json()["city_id"], r.json()["team_id"]) == (world.other_city, world.far_team)
    r = await client.patch(
        url, json={"home": {"lat": 22.5431, "lng": 114.0579, "crs": "gcj02"}}, headers=admin.auth
    )
    lat, lng = gcj02_to_wgs84(22.5431, 114.0579)
    assert (r.json()["home_lat"], r.json()["home_lng"]) == (pytest.approx(lat), pytest.approx(lng))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"skills": ["t_no_such_skill"]}, "skills[0]"),
        ({"skills": ["same", "t_no_such_skill"]}, "skills[1]"),
        ({"team_id": "far"}, "team_id"),
        ({"city_id": "other"}, "team_id"),  # the worker's team stays in the old city
        ({"city_id": "t-nowhere"}, "city_id"),
    ],
    ids=[
        "unknown-skill",
        "second-skill",
        "team-in-other-city",
        "city-away-from-team",
        "unknown-city",
    ],
)
async def test_patch_worker_rejects(
    client: httpx.AsyncClient,
    admin: Account,
    world: World,
    body: dict[str, Any],
    field: str,
) -> None:
    """A PATCH with an unknown skill or city, or a team outside the city, is 422 and changes nothing."""
    me, _ = await _worker(client, admin, world, team_id=world.team)
    if body.get("skills", [""])[0] == "same":
        body = {"skills": [world.skill, "t_no_such_skill"]}
    if body.get("team_id") == "far":
        body = {"team_id": world.far_team}
    if body.get("city_id") == "other":
        body = {"city_id": world.other_city}
    url = f"/v1/workers/{me['user_id']}"
    r = await client.patch(url, json=body, headers=admin.auth)
    _assert_error(r, 422, "invalid_field", field)
    assert (await client.get(url, headers=admin.auth)).json() == me


async def test_patch_unknown_worker_is_404(client: httpx.AsyncClient, admin: Account) -> None:
    """PATCH of a worker that does not exist is 404 naming worker_id."""
    r = await client.patch("/v1/workers/999999999999", json={"skills": []}, headers=admin.auth)
    _assert_error(r, 404, "worker_not_found", "worker_id")


async def test_the_list_shows_certificates_and_availability_like_one_worker(
    client: httpx.AsyncClient, admin: Account, world: World
) -> None:
    """GET /v1/workers fills certificates, availability and exceptions as GET /v1/workers/{id} does, each worker their own."""
    ids: list[int] = []
    for windows in ([MON_9_12, TUE_8_12], [MON_13_18]):
        me, account = await _worker(client, admin, world)
        url = f"/v1/workers/{me['user_id']}"
        r = await client.put(f"{url}/availability", json={"windows": windows}, headers=account.auth)
        assert r.status_code == 200, r.text
        r = await client.post(f"{url}/certificates", json=_cert(world), headers=account.auth)
        assert r.status_code == 201, r.text
        r = await client.put(
            f"{url}/availability/exceptions/2030-01-0{len(ids) + 1}",
            json={"available": False},
            headers=account.auth,
        )
        assert r.status_code == 200, r.text
        ids.append(me["user_id"])
    r = await client.get(
        "/v1/workers",
        params={"city_id": world.city, "after_id": min(ids) - 1, "limit": 2},
        headers=admin.auth,
    )
    listed = {w["user_id"]: w for w in r.json()}
    assert set(listed) == set(ids)
    for worker_id in ids:
        one = (await client.get(f"/v1/workers/{worker_id}", headers=admin.auth)).json()
        assert one["certificates"]
        assert one["availability"]
        for key in ("certificates", "availability", "exceptions"):
            assert listed[worker_id][key] == one[key], key

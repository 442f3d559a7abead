"""Accounts over HTTP on the real stores: registration, login, tokens, users, addresses."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from accounts import service
from accounts.errors import InvalidToken
from accounts.service import TokenPolicy
from accounts.tokens import verify
from doorstep.settings import Settings
from doorstep.stores import Stores
from geo.coords import gcj02_to_wgs84, haversine_m
from tests.helpers import PASSWORD, SQUARE, Account, MakeUser, from_network, new_phone

USER_KEYS = {"id", "phone", "name", "roles", "status", "created_at"}


def _error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


def _dashed(phone: str) -> str:
    """``14712345678`` as a user might type it: ``+86 147-1234-5678``."""
    return f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}"


def _policy(settings: Settings) -> TokenPolicy:
    return TokenPolicy(
        key=settings.secret_key,
        access_ttl_s=settings.access_token_ttl_s,
        refresh_ttl_s=settings.refresh_token_ttl_s,
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _login(client: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"phone": phone, "password": password})


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


def _assert_invalid_token(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert _error(r)["code"] == "invalid_token"
    assert r.headers["www-authenticate"] == "Bearer"


# --- registration -----------------------------------------------------------------------


def test_a_server_process_hashes_with_argon2id_at_rfc_9106s_cost() -> None:
    """Outside the tests' own process (which lowers it) a password hash is Argon2id with
    RFC 9106's second recommendation: t=3, 64 MiB, 4 lanes."""
    code = (
        "import asyncio; from accounts.passwords import hash_password as h; "
        "print(asyncio.run(h('x')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), out


async def test_register_creates_an_active_customer(client: httpx.AsyncClient) -> None:
    """Registering answers 202 accepted (no password hash in it); the customer can then log in."""
    phone = new_phone()
    r = await client.post(
        "/v1/auth/register",
        json={"phone": phone, "password": PASSWORD, "name": " 李四 "},
        headers=from_network(),
    )
    assert r.status_code == 202, r.text
    assert r.json()["phone"] == phone
    assert r.json()["status"] == "accepted"
    assert "argon2" not in r.text
    assert PASSWORD not in r.text
    login = await _login(client, phone)
    assert login.status_code == 200, login.text
    me = (await client.get("/v1/me", headers=_bearer(login.json()["access_token"]))).json()
    assert (me["phone"], me["name"], me["roles"], me["status"]) == (
        phone,
        "李四",
        ["customer"],
        "active",
    )


async def test_register_normalises_the_phone(client: httpx.AsyncClient) -> None:
    """A phone typed as "+86 147-xxxx-xxxx" is stored as 11 digits and logs in either way."""
    phone = new_phone()
    r = await client.post(
        "/v1/auth/register",
        json={"phone": _dashed(phone), "password": PASSWORD, "name": "王五"},
        headers=from_network(),
    )
    assert r.status_code == 202, r.text
    assert r.json()["phone"] == phone
    assert (await _login(client, phone)).status_code == 200
    assert (await _login(client, f"0086{phone}")).status_code == 200


@pytest.mark.parametrize(
    "same_phone",
    [lambda p: p, _dashed, lambda p: f"0086{p}"],
    ids=["same", "formatted", "0086"],
)
async def test_register_answers_a_taken_phone_like_a_free_one(
    client: httpx.AsyncClient, same_phone: Callable[[str], str]
) -> None:
    """Registering a phone that has an account, in any format, answers exactly as a new one does and changes nothing."""
    phone = new_phone()
    net = from_network()
    body = {"phone": phone, "password": PASSWORD, "name": "赵六"}
    first = await client.post("/v1/auth/register", json=body, headers=net)
    other = "another fine password 7"
    again = await client.post(
        "/v1/auth/register",
        json=body | {"phone": same_phone(phone), "password": other},
        headers=net,
    )
    assert (first.status_code, again.status_code) == (202, 202), again.text
    assert first.content == again.content  # nothing tells the two apart
    assert (await _login(client, phone)).status_code == 200  # the account is unchanged
    assert (await _login(client, phone, other)).status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"password": "short1"}, "password", id="password-too-short"),
        pytest.param({"password": "12345678"}, "password", id="password-digits-only"),
        pytest.param({"password": "a" * 129}, "password", id="password-too-long"),
        pytest.param({"phone": "075583765432"}, "phone", id="landline"),
        pytest.param({"phone": "1380013800a"}, "phone", id="phone-letter"),
        pytest.param({"phone": "1380013800"}, "phone", id="phone-10-digits"),
        pytest.param({"name": "   "}, "name", id="blank-name"),
    ],
)
async def test_register_rejects_bad_input(
    client: httpx.AsyncClient, change: dict[str, str], field: str
) -> None:
    """Bad registration input is 422 naming the field, and creates no account."""
    phone = new_phone()
    net = from_network()
    body = {"phone": phone, "password": PASSWORD, "name": "钱七"} | change
    r = await client.post("/v1/auth/register", json=body, headers=net)
    assert r.status_code == 422, r.text
    assert _error(r)["field"] == field
    if "phone" not in change:
        assert (await _login(client, phone)).status_code == 401  # no account was made


# --- login ------------------------------------------------------------------------------


async def test_login_returns_a_working_token_pair(
    client: httpx.AsyncClient, stores: Stores, settings: Settings
) -> None:
    """Login gives a Bearer access token that works on /v1/me and a refresh token."""
    phone = new_phone()
    await service.create_user(
        stores, phone=phone, name="孙八", password=PASSWORD, roles=["customer"]
    )
    r = await _login(client, phone)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_s
    assert body["user"]["phone"] == phone
    assert set(body["user"]) == USER_KEYS
    me = await client.get("/v1/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == body["user"]["id"]


async def test_login_failure_does_not_say_whether_the_phone_exists(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """An unknown phone and a wrong password get the same 401 bad_credentials error."""
    user = await make_user()
    wrong_password = await _login(client, user.phone, "not the password")
    unknown_phone = await _login(client, new_phone())
    for r in (wrong_password, unknown_phone):
        assert r.status_code == 401, r.text
        assert _error(r)["code"] == "bad_credentials"
        assert r.headers["www-authenticate"] == "Bearer"
    assert _error(wrong_password) == _error(unknown_phone)


async def test_me_returns_the_caller(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """/v1/me is the caller's own account, with their roles."""
    user = await make_user("worker", "merchant", name="周九")
    r = await client.get("/v1/me", headers=user.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == USER_KEYS
    assert (body["id"], body["phone"], body["name"]) == (user.id, user.phone, "周九")
    assert body["roles"] == ["merchant", "worker"]


# --- expiry, refresh, logout -----------------------------------------------------------


async def test_access_token_expires_after_its_ttl(
    stores: Stores, settings: Settings, make_user: MakeUser
) -> None:
    """A live access token authenticates until one second before its exp, not at exp."""
    user = await make_user()
    policy = _policy(settings)
    exp = verify(user.token, key=policy.key, now=0, typ="access").expires_at
    claims = await service.authenticate(stores, policy, user.token, now=exp - 1)
    assert claims.user_id == user.id
    with pytest.raises(InvalidToken, match="expired"):
        await service.authenticate(stores, policy, user.token, now=exp)


async def test_refresh_token_expires_after_its_ttl(
    stores: Stores, settings: Settings, make_user: MakeUser
) -> None:
    """An expired refresh token cannot be rotated."""
    user = await make_user()
    policy = _policy(settings)
    exp = verify(user.refresh_token, key=policy.key, now=0, typ="refresh").expires_at
    with pytest.raises(InvalidToken, match="expired"):
        await service.refresh(stores, policy, refresh_token=user.refresh_token, now=exp)


async def test_refresh_rotates_the_token(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """Refresh returns a new working pair and the old refresh token then fails with 401."""
    user = await make_user()
    r = await _refresh(client, user.refresh_token)
    assert r.status_code == 200, r.text
    pair = r.json()
    assert pair["refresh_token"] != user.refresh_token
    assert pair["user"]["id"] == user.id
    me = await client.get("/v1/me", headers=_bearer(pair["access_token"]))
    assert me.status_code == 200
    _assert_invalid_token(await _refresh(client, user.refresh_token))


async def test_reusing_a_rotated_refresh_token_revokes_its_family(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Replaying a rotated refresh token kills the new one too, but not other logins."""
    user = await make_user()
    other_login = (await _login(client, user.phone)).json()["refresh_token"]
    rotated = await _refresh(client, user.refresh_token)
    assert rotated.status_code == 200, rotated.text
    _assert_invalid_token(await _refresh(client, user.refresh_token))
    _assert_invalid_token(await _refresh(client, rotated.json()["refresh_token"]))
    assert (await _refresh(client, other_login)).status_code == 200


async def test_rotation_records_the_successor(
    client: httpx.AsyncClient, stores: Stores, settings: Settings, make_user: MakeUser
) -> None:
    """The rotated refresh token's row is revoked and points at the token that replaced it."""
    user = await make_user()
    r = await _refresh(client, user.refresh_token)
    assert r.status_code == 200, r.text
    now = int(time.time())
    old = verify(user.refresh_token, key=settings.secret_key, now=now, typ="refresh")
    new = verify(r.json()["refresh_token"], key=settings.secret_key, now=now, typ="refresh")
    assert new.family == old.family
    row = await stores.pool.fetchrow(
        "SELECT revoked_at, replaced_by FROM refresh_tokens WHERE jti = $1", uuid.UUID(old.jti)
    )
    assert row is not None
    assert row["revoked_at"] is not None
    assert row["replaced_by"] == uuid.UUID(new.jti)


@pytest.mark.parametrize("which", ["access-token", "garbage"])
async def test_refresh_rejects_non_refresh_tokens(
    client: httpx.AsyncClient, make_user: MakeUser, which: str
) -> None:
    """An access token or a non-token is refused by /v1/auth/refresh with 401."""
    user = await make_user()
    token = user.token if which == "access-token" else "not.a.token"
    _assert_invalid_token(await _refresh(client, token))


async def test_logout_revokes_the_access_token_only(
    client: httpx.AsyncClient, stores: Stores, settings: Settings, make_user: MakeUser
) -> None:
    """Logout without a refresh token stops the access token at once; the refresh token lives."""
    user = await make_user()
    r = await client.post("/v1/auth/logout", json={}, headers=user.auth)
    assert r.status_code == 204, r.text
    _assert_invalid_token(await client.get("/v1/me", headers=user.auth))
    jti = verify(user.token, key=settings.secret_key, now=0, typ="access").jti
    assert (
        0 < await stores.redis.ttl(stores.keys.revoked_token(jti)) <= (settings.access_token_ttl_s)
    )
    assert (await _refresh(client, user.refresh_token)).status_code == 200


async def test_logout_with_refresh_token_revokes_it(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Logout with the login's refresh token revokes both tokens."""
    user = await make_user()
    r = await client.post(
        "/v1/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.auth
    )
    assert r.status_code == 204, r.text
    _assert_invalid_token(await client.get("/v1/me", headers=user.auth))
    _assert_invalid_token(await _refresh(client, user.refresh_token))


async def test_logout_refuses_another_users_refresh_token(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """One user cannot revoke another's login by sending its refresh token at logout."""
    user, victim = await make_user(), await make_user()
    r = await client.post(
        "/v1/auth/logout", json={"refresh_token": victim.refresh_token}, headers=user.auth
    )
    _assert_invalid_token(r)
    assert (await _refresh(client, victim.refresh_token)).status_code == 200


# --- account status ---------------------------------------------------------------------


async def _set_status(
    client: httpx.AsyncClient, admin: Account, user_id: int, status: str
) -> httpx.Response:
    return await client.put(
        f"/v1/users/{user_id}/status", json={"status": status}, headers=admin.auth
    )


@pytest.mark.parametrize("status", ["frozen", "closed"])
async def test_an_admin_cannot_freeze_or_close_their_own_account(
    client: httpx.AsyncClient, make_user: MakeUser, status: str
) -> None:
    """An admin's own account is 409 own_status and their token keeps working; another
    admin can do it."""
    me = await make_user("admin")
    r = await _set_status(client, me, me.id, status)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "own_status"
    assert (await client.get("/v1/me", headers=me.auth)).status_code == 200
    other = await make_user("admin")
    assert (await _set_status(client, other, me.id, status)).status_code == 200


@pytest.mark.parametrize("status", ["frozen", "closed"])
async def test_deactivating_stops_tokens_and_login(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser, status: str
) -> None:
    """A frozen or closed account's live access token is 401 at once; refresh and login fail."""
    user = await make_user()
    assert (await client.get("/v1/me", headers=user.auth)).status_code == 200
    r = await _set_status(client, admin, user.id, status)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == status
    _assert_invalid_token(await client.get("/v1/me", headers=user.auth))
    _assert_invalid_token(await _refresh(client, user.refresh_token))
    login = await _login(client, user.phone)
    assert login.status_code == 401, login.text
    assert _error(login)["code"] == "bad_credentials"


async def test_unfreezing_restores_login(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser
) -> None:
    """After unfreezing, the account can log in and use its new token."""
    user = await make_user()
    assert (await _set_status(client, admin, user.id, "frozen")).status_code == 200
    assert (await _login(client, user.phone)).status_code == 401
    r = await _set_status(client, admin, user.id, "active")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    login = await _login(client, user.phone)
    assert login.status_code == 200, login.text
    me = await client.get("/v1/me", headers=_bearer(login.json()["access_token"]))
    assert me.status_code == 200
    assert me.json()["status"] == "active"


async def test_setting_status_of_unknown_user_is_404(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """Freezing a user that does not exist is 404 user_not_found."""
    r = await _set_status(client, admin, 2**62, "frozen")
    assert r.status_code == 404, r.text
    assert _error(r)["code"] == "user_not_found"


# --- users ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/v1/users/{big}", None, "user_id"),
        ("PUT", "/v1/users/{big}/status", {"status": "frozen"}, "user_id"),
        ("GET", "/v1/addresses/{big}", None, "address_id"),
        ("DELETE", "/v1/me/addresses/{big}", None, "address_id"),
    ],
    ids=["get-user", "set-status", "get-address", "delete-address"],
)
async def test_ids_past_bigint_are_rejected(
    client: httpx.AsyncClient,
    admin: Account,
    make_user: MakeUser,
    method: str,
    path: str,
    body: dict[str, str] | None,
    field: str,
) -> None:
    """A path id beyond PostgreSQL's bigint range is 422 naming it, not a server error."""
    caller = admin if "/me/" not in path else await make_user()
    r = await client.request(method, path.format(big=2**63), json=body, headers=caller.auth)
    assert r.status_code == 422, r.text
    assert _error(r)["code"] == "invalid_field"
    assert _error(r)["field"] == field


@pytest.mark.parametrize("raw_id", ["²", "١"], ids=["superscript-two", "arabic-indic-one"])
async def test_non_ascii_digit_ids_are_rejected(
    client: httpx.AsyncClient, admin: Account, raw_id: str
) -> None:
    """A path id made of non-ASCII digits is 422 naming it, not a 500 or another user."""
    r = await client.get(f"/v1/users/{raw_id}", headers=admin.auth)
    assert r.status_code == 422, r.text
    assert _error(r)["code"] == "invalid_field"
    assert _error(r)["field"] == "user_id"


@pytest.mark.parametrize(
    ("viewer_role", "status"),
    [("customer", 404), ("worker", 404), ("merchant", 404), ("dispatcher", 200), ("admin", 200)],
)
async def test_user_visibility_by_role(
    client: httpx.AsyncClient, make_user: MakeUser, viewer_role: str, status: int
) -> None:
    """Anyone sees their own account; only staff see another's, others get 404."""
    viewer, other = await make_user(viewer_role), await make_user()
    own = await client.get(f"/v1/users/{viewer.id}", headers=viewer.auth)
    assert own.status_code == 200, own.text
    assert own.json()["id"] == viewer.id
    r = await client.get(f"/v1/users/{other.id}", headers=viewer.auth)
    assert r.status_code == status, r.text
    if status == 404:
        assert _error(r)["code"] == "user_not_found"
    else:
        assert r.json()["id"] == other.id
        assert r.json()["phone"] == other.phone


async def test_list_users_by_role(
    client: httpx.AsyncClient, make_user: MakeUser, admin: Account
) -> None:
    """?role=worker lists only workers (to staff), including new ones and no customers."""
    workers = [await make_user("worker"), await make_user("worker", "merchant")]
    customer = await make_user("customer")
    dispatcher = await make_user("dispatcher")
    after = min(w.id for w in workers) - 1
    for staff in (dispatcher, admin):
        r = await client.get(
            f"/v1/users?role=worker&after_id={after}&limit=500", headers=staff.auth
        )
        assert r.status_code == 200, r.text
        listed = r.json()
        assert listed, "expected at least the workers just created"
        assert all("worker" in u["roles"] for u in listed)
        ids = [u["id"] for u in listed]
        assert ids == sorted(ids)
        assert {w.id for w in workers} <= set(ids)
        assert customer.id not in ids
    r = await client.get("/v1/users?role=worker", headers=customer.auth)
    assert r.status_code == 403, r.text
    assert _error(r)["code"] == "forbidden"


async def test_admin_creates_a_dispatcher_who_can_dispatch(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser
) -> None:
    """An account the admin creates with ["dispatcher"] can call a dispatcher-only route."""
    customer = await make_user()
    assert (await client.get("/v1/users", headers=customer.auth)).status_code == 403
    phone = new_phone()
    r = await client.post(
        "/v1/users",
        json={"phone": phone, "password": PASSWORD, "name": "调度员", "roles": ["dispatcher"]},
        headers=admin.auth,
    )
    assert r.status_code == 201, r.text
    assert r.json()["roles"] == ["dispatcher"]
    login = await _login(client, phone)
    assert login.status_code == 200, login.text
    r = await client.get("/v1/users?limit=1", headers=_bearer(login.json()["access_token"]))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "roles",
    [pytest.param(["king"], id="unknown"), pytest.param([], id="empty")],
)
async def test_admin_create_user_rejects_bad_roles(
    client: httpx.AsyncClient, admin: Account, roles: list[str]
) -> None:
    """Unknown or no roles are 422 naming the roles field."""
    r = await client.post(
        "/v1/users",
        json={"phone": new_phone(), "password": PASSWORD, "name": "x", "roles": roles},
        headers=admin.auth,
    )
    assert r.status_code == 422, r.text
    assert _error(r)["field"] == "roles"


# --- addresses --------------------------------------------------------------------------

INSIDE_SQUARE = (22.53, 114.01)  # tests.helpers.SQUARE spans 22.52–22.54 N, 114.00–114.02 E


def _address(**change: Any) -> dict[str, Any]:
    return {"label": "家", "lat": INSIDE_SQUARE[0], "lng": INSIDE_SQUARE[1]} | change


@pytest.mark.usefixtures("live_city")
async def test_add_address_in_wgs84_is_stored_as_given(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A WGS-84 address keeps its coordinates; text is trimmed and the contact phone normalised."""
    customer = await make_user()
    contact = new_phone()
    body = _address(
        lat=22.531234,
        lng=114.011234,
        label=" 家 ",
        detail=" 3栋 1201 ",
        contact_name=" 张三 ",
        contact_phone=_dashed(contact),
    )
    r = await client.post("/v1/me/addresses", json=body, headers=customer.auth)
    assert r.status_code == 201, r.text
    a = r.json()
    assert (a["lat"], a["lng"]) == (22.531234, 114.011234)
    assert a["source_crs"] == "wgs84"
    assert (a["label"], a["detail"], a["contact_name"]) == ("家", "3栋 1201", "张三")
    assert a["contact_phone"] == contact
    assert a["user_id"] == customer.id
    listed = await client.get("/v1/me/addresses", headers=customer.auth)
    assert listed.status_code == 200
    assert listed.json() == [a]


@pytest.mark.usefixtures("live_city")
async def test_add_address_in_gcj02_is_converted(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """GCJ-02 input is stored as WGS-84, a few hundred metres from the given point."""
    customer = await make_user()
    lat, lng = 22.5330, 114.0150  # inside the test square once shifted to WGS-84
    r = await client.post(
        "/v1/me/addresses", json=_address(lat=lat, lng=lng, crs="gcj02"), headers=customer.auth
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["source_crs"] == "gcj02"
    want = gcj02_to_wgs84(lat, lng)
    assert a["lat"] == pytest.approx(want[0], abs=1e-9)
    assert a["lng"] == pytest.approx(want[1], abs=1e-9)
    assert 300 <= haversine_m(lat, lng, a["lat"], a["lng"]) <= 700


@pytest.mark.parametrize(
    ("lat_json", "lng_json", "status", "code", "field"),
    [
        pytest.param("91", "114.0", 422, "invalid_coordinate", "lat", id="lat-91"),
        pytest.param("-90.0001", "114.0", 422, "invalid_coordinate", "lat", id="lat-below-90"),
        pytest.param("22.5", "180.5", 422, "invalid_coordinate", "lng", id="lng-180.5"),
        pytest.param('"NaN"', "114.0", 422, "invalid_field", "lat", id="lat-NaN-string"),
        pytest.param('"Infinity"', "114.0", 422, "invalid_field", "lat", id="lat-inf-string"),
        pytest.param('"22.5"', "114.0", 422, "invalid_field", "lat", id="lat-numeric-string"),
        pytest.param("1e999", "114.0", 422, "invalid_field", "lat", id="lat-overflow"),
        pytest.param("22.5", "-1e400", 422, "invalid_field", "lng", id="lng-overflow"),
        pytest.param("true", "114.0", 422, "invalid_field", "lat", id="lat-bool"),
        pytest.param("NaN", "114.0", 400, "invalid_json", None, id="lat-NaN-literal"),
    ],
)
async def test_add_address_rejects_bad_coordinates(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    lat_json: str,
    lng_json: str,
    status: int,
    code: str,
    field: str | None,
) -> None:
    """Out-of-range, non-finite or non-numeric coordinates are refused and nothing is saved."""
    customer = await make_user()
    raw = f'{{"label": "家", "lat": {lat_json}, "lng": {lng_json}}}'
    r = await client.post(
        "/v1/me/addresses",
        content=raw.encode(),
        headers=customer.auth | {"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert _error(r)["code"] == code
    assert _error(r)["field"] == field
    assert (await client.get("/v1/me/addresses", headers=customer.auth)).json() == []


@pytest.mark.parametrize("contact_phone", ["12345678901", "0755-83765432", "1380013800x"])
async def test_add_address_rejects_bad_contact_phone(
    client: httpx.AsyncClient, make_user: MakeUser, contact_phone: str
) -> None:
    """A contact phone that is not a mainland mobile is 422 on contact_phone."""
    customer = await make_user()
    r = await client.post(
        "/v1/me/addresses", json=_address(contact_phone=contact_phone), headers=customer.auth
    )
    assert r.status_code == 422, r.text
    assert _error(r)["code"] == "invalid_field"
    assert _error(r)["field"] == "contact_phone"


def _moved(area: dict[str, Any], dlat: float, dlng: float) -> dict[str, Any]:
    """A GeoJSON polygon shifted by (dlat, dlng) degrees."""
    rings = [[[lng + dlng, lat + dlat] for lng, lat in ring] for ring in area["coordinates"]]
    return {"type": area["type"], "coordinates": rings}


async def test_address_gets_the_city_whose_area_holds_it(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser
) -> None:
    """A point inside a city's service area gets its city_id; a point outside is 422 outside_service_area and not saved."""
    # SQUARE moved to a spot of its own (Qinghai), so cities other tests put over Futian
    # neither capture these points nor are affected by this one.
    dlat, dlng = 14.0, -24.0
    city_id = f"t-{secrets.token_hex(3)}"
    r = await client.post(
        "/v1/cities",
        json={
            "id": city_id,
            "name_zh": "测试城",
            "name_en": "Test City",
            "timezone": "Asia/Shanghai",
            "currency": "CNY",
            "service_area": _moved(SQUARE, dlat, dlng),
        },
        headers=admin.auth,
    )
    assert r.status_code == 201, r.text
    customer = await make_user()
    inside = (INSIDE_SQUARE[0] + dlat, INSIDE_SQUARE[1] + dlng)
    outside = (inside[0] + 0.02, inside[1])  # 1 km north of the square's northern edge
    r = await client.post(
        "/v1/me/addresses", json=_address(lat=inside[0], lng=inside[1]), headers=customer.auth
    )
    assert r.status_code == 201, r.text
    assert r.json()["city_id"] == city_id
    r = await client.post(
        "/v1/me/addresses", json=_address(lat=outside[0], lng=outside[1]), headers=customer.auth
    )
    assert r.status_code == 422, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (
        "outside_service_area",
        "lat",
    )
    r = await client.get("/v1/me/addresses", headers=customer.auth)
    assert [a["city_id"] for a in r.json()] == [city_id]


@pytest.mark.usefixtures("live_city")
async def test_addresses_are_private_to_their_owner_and_staff(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Another customer can neither read nor delete an address (404); staff can read it."""
    owner, stranger, dispatcher = (
        await make_user(),
        await make_user(),
        await make_user("dispatcher"),
    )
    r = await client.post("/v1/me/addresses", json=_address(), headers=owner.auth)
    assert r.status_code == 201, r.text
    address = r.json()
    url = f"/v1/addresses/{address['id']}"

    r = await client.get(url, headers=stranger.auth)
    assert r.status_code == 404, r.text
    assert _error(r)["field"] == "address_id"
    r = await client.delete(f"/v1/me/addresses/{address['id']}", headers=stranger.auth)
    assert r.status_code == 404, r.text
    assert _error(r)["field"] == "address_id"

    mine = await client.get(url, headers=owner.auth)
    assert mine.status_code == 200
    assert mine.json() == address
    staff = await client.get(url, headers=dispatcher.auth)
    assert staff.status_code == 200
    assert staff.json() == address

    r = await client.delete(f"/v1/me/addresses/{address['id']}", headers=owner.auth)
    assert r.status_code == 204, r.text
    assert (await client.get(url, headers=owner.auth)).status_code == 404
    assert (await client.get("/v1/me/addresses", headers=owner.auth)).json() == []

"""Roles, scoped grants, their audit, and city operators limited to their cities (issue 18 §6)."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from api.app import endpoints
from doorstep.stores import Stores
from permissions.errors import InvalidPermissionInput
from permissions.rules import (
    PERMISSIONS,
    TEMPLATES,
    Scope,
    check_grant_scope,
    claim_of,
    granted_scope,
    parse_scope,
)
from tests.access import grant, login, new_city
from tests.helpers import Account, MakeUser
from tests.live import closed_code, make_worker, recv


def test_every_route_declares_a_known_permission() -> None:
    """Each route's permission is in the catalogue (an undeclared route of a new area is not)."""
    for ep in endpoints():
        assert ep.permission in PERMISSIONS, (ep.method, ep.path, ep.permission)
        assert ep.perm or ep.public, (ep.method, ep.path)


def test_templates_name_only_known_permissions() -> None:
    """Every role template is made of catalogued permissions and grantable somewhere."""
    for t in TEMPLATES.values():
        assert set(t.permissions) <= set(PERMISSIONS) - {"public", "self"}, t.name
        assert t.scopes


def test_claim_and_scope_rules() -> None:
    """A token's claim unions the grants' scopes per permission; unknown references give nothing."""
    claim = claim_of([(TEMPLATES["dispatcher"], "city:a"), (TEMPLATES["city_operator"], "city:b")])
    assert claim["orders.override"] == ["city:a", "city:b"]
    assert claim["analytics.read"] == ["city:b"]
    assert granted_scope(claim, "orders.read") == Scope(cities=frozenset({"a", "b"}))
    assert granted_scope(claim, "roles.grant") is None
    assert granted_scope({"orders.read": ["nonsense"]}, "orders.read") is None
    assert parse_scope("merchant:42") == ("merchant", 42)
    for bad in ("city:", "merchant:x", "everywhere", "city:Upper"):
        with pytest.raises(InvalidPermissionInput):
            parse_scope(bad)
    with pytest.raises(InvalidPermissionInput, match="granted with a scope of: city"):
        check_grant_scope(TEMPLATES["city_operator"], "platform")


async def test_openapi_shows_each_routes_permission(client: httpx.AsyncClient) -> None:
    """/openapi.json carries x-permission on every operation, and the 403 names it."""
    doc = (await client.get("/openapi.json")).json()
    for ep in endpoints():
        op = doc["paths"][ep.path][ep.method.lower()]
        assert op["x-permission"] == ep.permission
        if not ep.public:
            assert ep.permission in op["responses"]["403"]["description"]


async def test_a_grant_and_its_revocation_take_effect_at_once(
    client: httpx.AsyncClient, stores: Stores, make_user: MakeUser, admin: Account
) -> None:
    """A grant voids older tokens and the next login carries it; a revoke voids that token,
    also after Redis lost the cached token version (checked in PostgreSQL)."""
    city_a = await new_city(stores, "grant-a")
    city_b = await new_city(stores, "grant-b")
    user = await make_user("customer")
    r = await client.get("/v1/overrides", headers=user.auth)
    assert r.status_code == 403
    assert "orders.audit" in r.json()["error"]["message"]

    made = await grant(client, admin, user, "dispatcher", f"city:{city_a}")
    assert (await client.get("/v1/me", headers=user.auth)).status_code == 401  # older token
    user = await login(client, user)
    assert (
        await client.get(f"/v1/overrides?city_id={city_a}", headers=user.auth)
    ).status_code == 200
    r = await client.get(f"/v1/overrides?city_id={city_b}", headers=user.auth)
    assert r.status_code == 404
    assert r.json()["error"]["field"] == "city_id"

    mine = (await client.get("/v1/me/permissions", headers=user.auth)).json()
    held = {h["permission"]: h for h in mine["permissions"]}
    assert held["orders.override"]["scopes"] == [f"city:{city_a}"]
    assert held["orders.override"]["via"] == ["dispatcher"]
    assert held["orders.book"]["scopes"] == ["own"]  # the customer role's own
    assert [g["role"] for g in mine["grants"]] == ["dispatcher"]

    r = await client.delete(f"/v1/grants/{made['id']}", headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["revoked_by"] == admin.id
    assert (await client.get("/v1/me", headers=user.auth)).status_code == 401
    # Redis loses the cached version and the marker: PostgreSQL still refuses the token.
    await stores.redis.delete(stores.keys.token_version(user.id), stores.keys.auth_cache())
    assert (await client.get("/v1/me", headers=user.auth)).status_code == 401
    user = await login(client, user)
    assert (await client.get("/v1/overrides", headers=user.auth)).status_code == 403
    r = await client.delete(f"/v1/grants/{made['id']}", headers=admin.auth)
    assert r.status_code == 404  # revoked already

    audit = (await client.get(f"/v1/permission-audit?user_id={user.id}", headers=admin.auth)).json()
    assert [(a["action"], a["role"], a["actor_id"]) for a in audit] == [
        ("revoke", "dispatcher", admin.id),
        ("grant", "dispatcher", admin.id),
    ]


async def test_bad_grants_are_refused_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, admin: Account
) -> None:
    """A scope the role does not take, an unknown role, a repeated grant: clear 4xx."""
    user = await make_user("customer")
    cases = [
        ({"role": "city_operator", "scope": "platform"}, 422, "scope"),
        ({"role": "merchant_admin", "scope": "city:shenzhen"}, 422, "scope"),
        ({"role": "no_such_role", "scope": "platform"}, 404, "role"),
        ({"role": "finance", "scope": "city:Shenzhen"}, 422, "scope"),
    ]
    for body, status, field in cases:
        r = await client.post("/v1/grants", headers=admin.auth, json={"user_id": user.id, **body})
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["field"] == field
    await grant(client, admin, user, "finance", "platform")
    r = await client.post(
        "/v1/grants",
        headers=admin.auth,
        json={"user_id": user.id, "role": "finance", "scope": "platform"},
    )
    assert r.status_code == 409
    r = await client.post(
        "/v1/grants",
        headers=admin.auth,
        json={"user_id": 2**50, "role": "finance", "scope": "platform"},
    )
    assert r.status_code == 404


async def test_an_admin_made_role_is_granted_and_used(
    client: httpx.AsyncClient, stores: Stores, make_user: MakeUser, admin: Account
) -> None:
    """An admin makes a role of named permissions, grants it in a city, and its holder sees
    that city's analytics only; the role cannot be deleted while granted."""
    city_a = await new_city(stores, "role-a")
    city_b = await new_city(stores, "role-b")
    name = f"analyst_{city_a[-6:]}"
    bad = {"name": name, "title": "分析", "permissions": ["orders.fly"], "scopes": ["city"]}
    r = await client.post("/v1/roles", headers=admin.auth, json=bad)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "permissions[0]")
    r = await client.post("/v1/roles", headers=admin.auth, json={**bad, "name": "finance"})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "name")
    good = {**bad, "permissions": ["analytics.read"]}
    r = await client.post("/v1/roles", headers=admin.auth, json=good)
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/roles", headers=admin.auth, json=good)).status_code == 409
    roles = {x["name"]: x for x in (await client.get("/v1/roles", headers=admin.auth)).json()}
    assert {"admin", "customer", "city_operator", "merchant_dispatcher", name} <= set(roles)
    assert "orders.override" in roles["admin"]["permissions"]

    analyst = await make_user("customer")
    await grant(client, admin, analyst, name, f"city:{city_a}")
    analyst = await login(client, analyst)
    r = await client.get("/v1/analytics/summary", headers=analyst.auth)
    assert r.status_code == 200, r.text
    assert r.json()["city_id"] == city_a  # their one city, without asking
    r = await client.get(f"/v1/analytics/summary?city={city_b}", headers=analyst.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (404, "city")
    r = await client.get(f"/v1/analytics/breakdown?city={city_b}", headers=analyst.auth)
    assert r.status_code == 404
    assert (await client.get("/v1/orders", headers=analyst.auth)).status_code == 200  # own only
    assert (await client.get("/v1/overrides", headers=analyst.auth)).status_code == 403

    r = await client.delete(f"/v1/roles/{name}", headers=admin.auth)
    assert r.status_code == 409


async def test_city_operator_feed_only_in_their_city(
    live_app: tuple[str, object],
    stores: Stores,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
) -> None:
    """A city operator's dispatcher feed opens in their city and is 4404 in another."""
    city_a = await new_city(stores, "feed-a")
    city_b = await new_city(stores, "feed-b")
    operator = await make_user("customer")
    await grant(client, admin, operator, "city_operator", f"city:{city_a}")
    operator = await login(client, operator)
    address = live_app[0]
    ws = await connect(
        f"ws://{address}/v1/ws/cities/{city_b}/feed", additional_headers=operator.auth
    )
    error = await recv(ws)
    assert (error["type"], error["code"]) == ("error", "not_found")
    assert await closed_code(ws) == 4404
    ws = await connect(
        f"ws://{address}/v1/ws/cities/{city_a}/feed", additional_headers=operator.auth
    )
    snapshot = await recv(ws)
    assert snapshot["city_id"] == city_a
    await ws.close()
    customer = await make_user("customer")
    ws = await connect(
        f"ws://{address}/v1/ws/cities/{city_a}/feed", additional_headers=customer.auth
    )
    error = await recv(ws)
    assert "dispatch.console" in error["message"]
    assert await closed_code(ws) == 4403


async def test_a_city_operator_sets_their_citys_prices_and_bookings_charge_them(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
) -> None:
    """A city operator prices a service for their city (within 50 %–200 % of the catalog,
    not in another city); a booking there charges the city's price."""
    city_a = await new_city(stores, "price-a")
    city_b = await new_city(stores, "price-b")
    operator = await make_user("customer")
    await grant(client, admin, operator, "city_operator", f"city:{city_a}")
    operator = await login(client, operator)
    path = f"/v1/cities/{city_a}/prices/{instant_service}"
    r = await client.put(path, headers=operator.auth, json={"price_minor": 40000})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "price_minor")
    r = await client.put(path, headers=operator.auth, json={"price_minor": 12800})
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/v1/cities/{city_b}/prices/{instant_service}",
        headers=operator.auth,
        json={"price_minor": 12800},
    )
    assert r.status_code == 404
    listed = (await client.get(f"/v1/cities/{city_a}/prices")).json()
    mine = next(p for p in listed if p["service_code"] == instant_service)
    assert (mine["catalog_price_minor"], mine["price_minor"]) == (15000, 12800)

    city = (await client.get(f"/v1/cities/{city_a}")).json()
    south, west = city["bbox"][0], city["bbox"][1]
    await make_worker(stores, client, city_a)  # someone can serve it (else 409 at booking)
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": instant_service, "lat": south + 0.005, "lng": west + 0.005},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["city_id"], r.json()["price_minor"]) == (city_a, 12800)

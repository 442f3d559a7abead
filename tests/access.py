"""Helpers for the permission and merchant tests: cities, licences, logins, grants."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.stores import Stores
from merchants.rules import check_digit
from tests.helpers import PASSWORD, Account

_next_square = iter(range(1, 10_000))


def licence() -> str:
    """A valid unified social credit code (GB 32100), unique to this run."""
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    first = "914403" + "".join(secrets.choice(chars) for _ in range(11))
    return first + check_digit(first)


def square(lat: float, lng: float) -> dict[str, Any]:
    """A small square service area with its south-west corner at (lat, lng)."""
    d = 0.01
    ring = [[lng, lat], [lng + d, lat], [lng + d, lat + d], [lng, lat + d], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


async def new_city(stores: Stores, key: str) -> str:
    """A city of its own (an id that scope references accept), in its own square."""
    n = next(_next_square)
    city = catalog_service.build_city(
        id=f"{key}-{secrets.token_hex(3)}",
        name_zh=f"城{key}",
        name_en=f"City {key}",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=square(30.0 + (n % 50) * 0.02, 104.0 + (n // 50) * 0.02),
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    return city.id


async def login(client: httpx.AsyncClient, account: Account) -> Account:
    """The account with a fresh access token (it carries the user's current grants)."""
    r = await client.post("/v1/auth/login", json={"phone": account.phone, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(
        account.id,
        account.phone,
        tuple(body["user"]["roles"]),
        body["access_token"],
        body["refresh_token"],
    )


async def grant(
    client: httpx.AsyncClient, admin: Account, who: Account, role: str, scope: str
) -> dict[str, Any]:
    """Grant ``role`` in ``scope`` (201 expected); the grant."""
    r = await client.post(
        "/v1/grants", headers=admin.auth, json={"user_id": who.id, "role": role, "scope": scope}
    )
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found

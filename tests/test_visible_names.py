"""Names people see must show something and hold no bidi or invisible characters (issue 14)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import PASSWORD, Account, MakeUser, from_network, new_phone

BAD_NAMES = [
    pytest.param("\u200b", id="zero-width-space-only"),
    pytest.param("张三\u202e", id="rtl-override"),
    pytest.param("\u3164", id="hangul-filler"),
    pytest.param("张\u2066三", id="ltr-isolate"),
]


def _assert_422(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["field"] == field
    assert error["code"] == "invalid_field"


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_registration_refuses_invisible_or_bidi_names(
    client: httpx.AsyncClient, name: str
) -> None:
    """A customer's name of a zero-width space, a Hangul filler, or holding a bidi control is 422 at name."""
    r = await client.post(
        "/v1/auth/register",
        json={"phone": new_phone(), "password": PASSWORD, "name": name},
        headers=from_network(),
    )
    _assert_422(r, "name")


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_admin_created_accounts_refuse_such_names(
    client: httpx.AsyncClient, admin: Account, live_city: str, name: str
) -> None:
    """Staff, merchant and worker accounts made by an admin refuse them too (422 at name)."""
    r = await client.post(
        "/v1/users",
        headers=admin.auth,
        json={"phone": new_phone(), "password": PASSWORD, "name": name, "roles": ["merchant"]},
    )
    _assert_422(r, "name")
    r = await client.post(
        "/v1/workers",
        headers=admin.auth,
        json={
            "phone": new_phone(),
            "password": PASSWORD,
            "name": name,
            "city_id": live_city,
            "skills": [],
            "home": {"lat": 22.53, "lng": 114.01},
        },
    )
    _assert_422(r, "name")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contact_name", "\u200b"),
        ("contact_name", "王五\u202e"),
        ("label", "\u200b\u200b"),
        ("label", "家\u202e"),
        ("detail", "3栋\u202e1201"),
    ],
)
async def test_addresses_refuse_invisible_or_bidi_text(
    client: httpx.AsyncClient, make_user: MakeUser, field: str, value: str
) -> None:
    """An address's contact name, label or detail with a bidi control or nothing visible is 422 naming the field."""
    customer = await make_user()
    body = {"label": "家", "lat": 22.53, "lng": 114.01} | {field: value}
    r = await client.post("/v1/me/addresses", json=body, headers=customer.auth)
    _assert_422(r, field)


async def test_team_names_refuse_invisible_names(
    client: httpx.AsyncClient, admin: Account, make_user: MakeUser, live_city: str
) -> None:
    """A team named with a zero-width space is 422 at name."""
    merchant = await make_user("merchant")
    r = await client.post(
        "/v1/teams",
        headers=admin.auth,
        json={"name": "\u200b", "city_id": live_city, "merchant_id": merchant.id},
    )
    _assert_422(r, "name")

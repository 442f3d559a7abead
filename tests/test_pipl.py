"""PIPL rights (docs/privacy.md): a person exports their data and asks for their account's
deletion — frozen at once, anonymised after the cooling-off unless cancelled, what the
law and the ledger need kept — each step audited; bad input and repeats get clear 4xx."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx

from doorstep.stores import Stores
from privacy import pipl
from privacy.crypto import blind
from tests.helpers import PASSWORD, Account, MakeUser, new_phone

DETAIL = "南山区科技园1号 3栋402"


async def _customer_with_history(
    client: httpx.AsyncClient, make_user: MakeUser, service: str
) -> tuple[Account, dict[str, object]]:
    """A customer with a saved address and a cancelled order."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/me/addresses",
        headers=customer.auth,
        json={"label": "家", "lat": 22.531, "lng": 114.012, "detail": DETAIL},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": service,
            "lat": 22.531,
            "lng": 114.012,
            "address_detail": DETAIL,
            "contact_phone": customer.phone,
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    r = await client.post(
        f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={"reason": "不需要了"}
    )
    assert r.status_code == 200, r.text
    return customer, order


def _error(r: httpx.Response) -> tuple[int, str, str | None]:
    e = r.json()["error"]
    return r.status_code, e["code"], e.get("field")


async def _audited(stores: Stores, user_id: int) -> list[str]:
    rows = await stores.pool.fetch(
        "SELECT action FROM audit_log WHERE subject = $1 AND action LIKE 'privacy.%' ORDER BY seq",
        f"user:{user_id}",
    )
    return [r["action"] for r in rows]


async def test_export_holds_the_account_addresses_and_orders_and_is_audited(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    live_city: str,
) -> None:
    """GET /v1/me/export answers one JSON document with the caller's account (phone
    decrypted), addresses, orders, payments and the rest, and records the export in the
    audit log; without a token it is 401."""
    customer, order = await _customer_with_history(client, make_user, instant_service)
    r = await client.get("/v1/me/export", headers=customer.auth)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["format"] == pipl.EXPORT_FORMAT
    assert data["account"]["phone"] == customer.phone
    assert [a["detail"] for a in data["addresses"]] == [DETAIL]
    assert [(o["id"], o["address_detail"]) for o in data["orders"]] == [(order["id"], DETAIL)]
    for kind in ("payments", "refunds", "reviews", "emergency_contacts", "notifications"):
        assert isinstance(data[kind], list), kind
    assert await _audited(stores, customer.id) == ["privacy.export"]
    r = await client.get("/v1/me/export")
    assert r.status_code == 401
    r = await client.get("/v1/me/export?everything=1", headers=customer.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "everything"


async def test_deletion_freezes_at_once_and_bad_or_repeated_requests_get_4xx(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    live_city: str,
) -> None:
    """POST /v1/me/deletion without confirm is 422 naming `confirm`; with it the account is
    frozen and every token revoked at once (the same token again: 401; login: refused);
    cancelling with the code gives it back (login works), a second cancel is 404."""
    customer, _ = await _customer_with_history(client, make_user, instant_service)
    for body in ({}, {"confirm": False}, {"confirm": True, "why": "x"}, {"confirm": "yes"}):
        r = await client.post("/v1/me/deletion", headers=customer.auth, json=body)
        assert r.status_code in (400, 422), (body, r.text)
    r = await client.post("/v1/me/deletion", headers=customer.auth, json={"confirm": False})
    assert _error(r)[2] == "confirm"
    r = await client.post("/v1/me/deletion", headers=customer.auth, json={"confirm": True})
    assert r.status_code == 202, r.text
    accepted = r.json()
    due = datetime.fromisoformat(accepted["due_at"])
    asked = datetime.fromisoformat(accepted["requested_at"])
    assert due - asked == timedelta(days=7)
    assert accepted["status"] == "pending"
    assert (
        await stores.pool.fetchval("SELECT status FROM users WHERE id = $1", customer.id)
        == "frozen"
    )
    r = await client.get("/v1/me", headers=customer.auth)
    assert r.status_code == 401
    r = await client.post("/v1/me/deletion", headers=customer.auth, json={"confirm": True})
    assert r.status_code == 401
    r = await client.post("/v1/auth/refresh", json={"refresh_token": customer.refresh_token})
    assert r.status_code == 401
    r = await client.post("/v1/auth/login", json={"phone": customer.phone, "password": PASSWORD})
    assert r.status_code in (401, 403), r.text

    r = await client.post("/v1/deletion/cancel", json={"code": "not-the-code"})
    assert _error(r) == (404, "deletion_not_found", "code")
    r = await client.post("/v1/deletion/cancel", json={"code": ""})
    assert r.status_code == 422
    r = await client.post("/v1/deletion/cancel", json={"code": accepted["cancel_code"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    r = await client.post("/v1/deletion/cancel", json={"code": accepted["cancel_code"]})
    assert _error(r)[:2] == (404, "deletion_not_found")
    r = await client.post("/v1/auth/login", json={"phone": customer.phone, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert await _audited(stores, customer.id) == [
        "privacy.deletion_requested",
        "privacy.deletion_cancelled",
    ]
    # Nothing is anonymised for a cancelled request, even long after.
    await pipl.anonymise_due(stores, now=datetime.now(UTC) + timedelta(days=30))
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert r.json()["phone"] == customer.phone


async def test_staff_and_open_orders_are_refused_with_409(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """A dispatcher may not delete their own account (`staff_account`); a customer with an
    order not over may not yet (`orders_open`, naming it); neither is frozen."""
    dispatcher = await make_user("dispatcher")
    r = await client.post("/v1/me/deletion", headers=dispatcher.auth, json={"confirm": True})
    assert _error(r)[:2] == (409, "staff_account")
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": instant_service, "lat": 22.53, "lng": 114.01},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    r = await client.post("/v1/me/deletion", headers=customer.auth, json={"confirm": True})
    assert _error(r)[:2] == (409, "orders_open")
    assert str(order["id"]) in r.json()["error"]["message"]
    assert (await client.get("/v1/me", headers=customer.auth)).status_code == 200


async def test_anonymisation_after_the_cooling_off_keeps_orders_and_payments(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    live_city: str,
) -> None:
    """Once due, the job blanks the account (no phone, no index, a placeholder name,
    closed), removes its addresses, contacts and settings, empties the orders' personal
    fields and coarsens their coordinates while the orders stay; the phone can make a new
    account; the step is audited. Not before it is due."""
    customer, order = await _customer_with_history(client, make_user, instant_service)
    r = await client.put(
        "/v1/me/emergency-contacts",
        headers=customer.auth,
        json={"contacts": [{"name": "爸爸", "phone": new_phone()}]},
    )
    assert r.status_code == 200, r.text
    blob = secrets.token_hex(32)  # an upload of theirs (a photo), as files/ records it
    await stores.pool.execute(
        "INSERT INTO file_blobs (sha256, size_bytes, media_type, created_at) "
        "VALUES ($1, 10, 'image/jpeg', now())",
        blob,
    )
    await stores.pool.execute(
        "INSERT INTO files (owner_id, purpose, sha256, media_type, size_bytes, created_at) "
        "VALUES ($1, 'review_photo', $2, 'image/jpeg', 10, now())",
        customer.id,
        blob,
    )
    r = await client.post("/v1/me/deletion", headers=customer.auth, json={"confirm": True})
    assert r.status_code == 202, r.text
    due = datetime.fromisoformat(r.json()["due_at"])
    assert customer.id not in await pipl.anonymise_due(stores, now=due - timedelta(seconds=1))
    assert customer.id in await pipl.anonymise_due(stores, now=due + timedelta(seconds=1))

    pool = stores.pool
    user = await pool.fetchrow(
        "SELECT phone, phone_bidx, name, status, password_hash FROM users WHERE id = $1",
        customer.id,
    )
    assert user is not None
    assert (user["phone"], user["phone_bidx"], user["status"]) == ("", None, "closed")
    assert user["name"] == "已注销用户"
    assert user["password_hash"] == "!"
    row = await pool.fetchrow(
        "SELECT address_detail, contact_phone, notes, lat, lng, status FROM orders WHERE id = $1",
        order["id"],
    )
    assert row is not None
    assert (row["address_detail"], row["contact_phone"], row["status"]) == ("", "", "cancelled")
    assert (row["lat"], row["lng"]) == (22.53, 114.01)
    for table in ("addresses", "emergency_contacts", "notification_settings"):
        n = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", customer.id)
        assert n == 0, table
    assert not await pool.fetchval("SELECT count(*) FROM files WHERE owner_id = $1", customer.id)
    assert not await pool.fetchval(
        "SELECT count(*) FROM users WHERE phone_bidx = $1", blind("phone", customer.phone)
    )
    assert await _audited(stores, customer.id) == [
        "privacy.deletion_requested",
        "privacy.anonymised",
    ]
    r = await client.post("/v1/auth/login", json={"phone": customer.phone, "password": PASSWORD})
    assert r.status_code == 401
    # The phone is free for a new account (its owner's, or a number reassigned).
    r = await client.post(
        "/v1/auth/register",
        json={"phone": customer.phone, "name": "新用户", "password": "another long secret"},
    )
    assert r.status_code in (200, 202), r.text
    r = await client.post(
        "/v1/auth/login", json={"phone": customer.phone, "password": "another long secret"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] != customer.id
    assert customer.id not in await pipl.anonymise_due(stores, now=due + timedelta(days=1))

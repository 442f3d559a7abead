"""Merchants (商家): apply with a business licence, review, their back office, tenant
isolation (issue 18 §5)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dispatch import store as dispatch_store
from doorstep.stores import Stores
from merchants.errors import InvalidMerchantInput
from merchants.rules import check_licence_number, check_price, price_range
from tests.access import grant, licence, login, new_city
from tests.files_samples import jpeg
from tests.helpers import Account, MakeUser
from workforce import store as workforce_store


def test_licence_numbers_are_checked() -> None:
    """GB 32100: 18 characters of the code alphabet with a matching check character."""
    assert check_licence_number(" 91350100m000100y43 ") == "91350100M000100Y43"
    for bad, rule in [
        ("91350100M000100Y44", "check character"),
        ("91350100M000100Y4", "18-character"),
        ("91350100M000100I43", "not allowed"),
    ]:
        with pytest.raises(InvalidMerchantInput, match=rule) as info:
            check_licence_number(bad)
        assert info.value.field == "licence_number"


def test_merchant_prices_stay_within_the_catalogs_range() -> None:
    """A merchant's price is 70%–150% of the catalog's; outside it names price_minor."""
    assert price_range(10000) == (7000, 15000)
    assert check_price(7000, 10000) == 7000
    with pytest.raises(InvalidMerchantInput, match="7000–15000") as info:
        check_price(15001, 10000)
    assert info.value.field == "price_minor"


async def _worker(stores: Stores, make_user: MakeUser, city: str, team: int | None = None) -> int:
    worker = await make_user("worker")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker.id,
        city_id=city,
        skills=(),
        home_lat=30.0,
        home_lng=104.0,
        team_id=team,
    )
    return worker.id


async def _order(stores: Stores, city: str, customer: int, service: str) -> int:
    async with stores.pool.acquire() as conn:
        order = await dispatch_store.insert(
            conn,
            city_id=city,
            customer_id=customer,
            service_code=service,
            kind="instant",
            status="dispatching",
            lat=30.0,
            lng=104.0,
            duration_min=120,
            price_minor=15000,
            currency="CNY",
            start_code="123456",
        )
    return order.id


_sizes = iter(range(1, 1000))


async def _apply(
    client: httpx.AsyncClient, who: Account, city: str, **override: Any
) -> httpx.Response:
    r = await client.post(
        "/v1/files?purpose=business_licence",
        content=jpeg(60 + next(_sizes)),  # another picture: the same bytes are the same file
        headers=who.auth | {"content-type": "image/jpeg"},
    )
    assert r.status_code == 201, r.text
    body = {
        "name": "好帮手家政",
        "city_id": city,
        "licence_number": licence(),
        "licence_file_id": r.json()["id"],
    }
    return await client.post("/v1/merchants", headers=who.auth, json=body | override)


async def test_a_merchant_onboards_and_runs_its_back_office(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
) -> None:
    """Apply with a licence, be approved by the city's operator (not another city's), add
    staff, price a service, take a routed order, dispatch it to its own staff; another
    merchant and another city's workers stay out of reach (404)."""
    city = await new_city(stores, "shop")
    other_city = await new_city(stores, "shop-b")
    owner = await make_user("customer")

    assert (await client.get("/v1/me/merchant", headers=owner.auth)).status_code == 404
    r = await _apply(client, owner, city, licence_number="91350100M000100Y44")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "licence_number")
    r = await _apply(client, owner, city)
    assert r.status_code == 201, r.text
    merchant = r.json()
    assert merchant["status"] == "pending"
    assert merchant["id"] == owner.id
    assert (await _apply(client, owner, city)).status_code == 409
    assert (await client.get("/v1/me/merchant", headers=owner.auth)).json()["status"] == "pending"

    far_operator = await make_user("customer")
    await grant(client, admin, far_operator, "city_operator", f"city:{other_city}")
    far_operator = await login(client, far_operator)
    review = f"/v1/merchants/{owner.id}/review"
    r = await client.post(review, headers=far_operator.auth, json={"approve": True})
    assert r.status_code == 404
    operator = await make_user("customer")
    await grant(client, admin, operator, "city_operator", f"city:{city}")
    operator = await login(client, operator)
    pending = await client.get("/v1/merchants?status=pending", headers=operator.auth)
    assert [m["id"] for m in pending.json()] == [owner.id]
    licence_file = merchant["licence_file_id"]
    assert (await client.get(f"/v1/files/{licence_file}", headers=operator.auth)).status_code == 200
    stranger = await make_user("customer")
    assert (await client.get(f"/v1/files/{licence_file}", headers=stranger.auth)).status_code == 404
    r = await client.post(review, headers=operator.auth, json={"approve": False})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "reason")
    r = await client.post(review, headers=operator.auth, json={"approve": True})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert (
        await client.post(review, headers=operator.auth, json={"approve": True})
    ).status_code == 409

    assert (await client.get("/v1/me", headers=owner.auth)).status_code == 401  # roles changed
    owner = await login(client, owner)
    assert "merchant" in owner.roles
    mine = (await client.get("/v1/me/permissions", headers=owner.auth)).json()
    staff_perm = next(h for h in mine["permissions"] if h["permission"] == "merchant.staff")
    assert staff_perm["scopes"] == [f"merchant:{owner.id}"]

    base = f"/v1/merchants/{owner.id}"
    free_worker = await _worker(stores, make_user, city)
    far_worker = await _worker(stores, make_user, other_city)
    r = await client.post(f"{base}/staff", headers=owner.auth, json={"worker_id": far_worker})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "worker_id")
    r = await client.post(f"{base}/staff", headers=owner.auth, json={"worker_id": free_worker})
    assert r.status_code == 201, r.text
    staff = (await client.get(f"{base}/staff", headers=owner.auth)).json()
    assert [w["user_id"] for w in staff] == [free_worker]

    svc = f"{base}/services/{instant_service}"
    r = await client.put(svc, headers=owner.auth, json={"price_minor": 100})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "price_minor")
    r = await client.put(svc, headers=owner.auth, json={"price_minor": 13800})
    assert r.status_code == 200, r.text
    assert r.json()["catalog_price_minor"] == 15000

    customer = await make_user("customer")
    order_id = await _order(stores, city, customer.id, instant_service)
    r = await client.put(
        f"/v1/orders/{order_id}/merchant", headers=far_operator.auth, json={"merchant_id": owner.id}
    )
    assert r.status_code == 404  # not the far operator's city
    r = await client.put(
        f"/v1/orders/{order_id}/merchant", headers=operator.auth, json={"merchant_id": owner.id}
    )
    assert r.status_code == 200, r.text
    assert r.json()["merchant_id"] == owner.id
    due = await dispatch_store.open_orders(
        stores.pool, city, due_before=__import__("datetime").datetime.now().astimezone(), limit=10
    )
    assert order_id in [o.id for o in due]  # the engine offers it within the merchant's team

    # A second merchant in the same city, of the same name: it gets a team of its own (the
    # first's is not taken over) and sees nothing of the first.
    rival = await make_user("customer")
    assert (await _apply(client, rival, city)).status_code == 201
    r = await client.post(
        f"/v1/merchants/{rival.id}/review", headers=operator.auth, json={"approve": True}
    )
    assert r.status_code == 200
    rival = await login(client, rival)
    rival_team = (await client.get("/v1/teams", headers=rival.auth)).json()
    assert [t["name"] for t in rival_team] == [f"好帮手家政 · {rival.id}"]
    owner_teams = (await client.get("/v1/teams", headers=owner.auth)).json()
    assert [(t["name"], t["merchant_id"]) for t in owner_teams] == [("好帮手家政", owner.id)]
    rival_worker = await _worker(stores, make_user, city, rival_team[0]["id"])
    for path in ("staff", "services", "orders"):
        assert (await client.get(f"{base}/{path}", headers=rival.auth)).status_code == 404
    assert (await client.get(base, headers=rival.auth)).status_code == 404
    assert (await client.get(f"/v1/workers/{free_worker}", headers=rival.auth)).status_code == 404
    r = await client.post(
        f"{base}/orders/{order_id}/assign", headers=rival.auth, json={"worker_id": rival_worker}
    )
    assert r.status_code == 404

    # The merchant's own dispatcher: orders and dispatch, not prices.
    dispatcher = await make_user("customer")
    await grant(client, admin, dispatcher, "merchant_dispatcher", f"merchant:{owner.id}")
    dispatcher = await login(client, dispatcher)
    orders = (await client.get(f"{base}/orders", headers=dispatcher.auth)).json()
    assert [o["id"] for o in orders] == [order_id]
    assert (
        await client.put(svc, headers=dispatcher.auth, json={"price_minor": 13800})
    ).status_code == 403
    r = await client.post(
        f"{base}/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": rival_worker, "force": True},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (404, "worker_id")
    r = await client.post(
        f"{base}/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": free_worker, "force": True, "reason": "老客户指定"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["worker_id"], r.json()["status"]) == (free_worker, "assigned")

    # Overflow: a routed order the staff cannot serve goes back to the platform.
    second = await _order(stores, city, customer.id, instant_service)
    r = await client.put(
        f"/v1/orders/{second}/merchant", headers=operator.auth, json={"merchant_id": owner.id}
    )
    assert r.status_code == 200
    r = await client.post(f"{base}/orders/{second}/overflow", headers=rival.auth)
    assert r.status_code == 404
    r = await client.post(f"{base}/orders/{second}/overflow", headers=owner.auth)
    assert r.status_code == 200, r.text
    assert r.json()["merchant_id"] is None
    r = await client.post(f"{base}/orders/{second}/overflow", headers=owner.auth)
    assert r.status_code == 404  # no longer theirs

    audit = (
        await client.get(f"/v1/permission-audit?user_id={owner.id}", headers=admin.auth)
    ).json()
    assert [a["action"] for a in audit] == ["merchant.approve", "merchant.apply"]

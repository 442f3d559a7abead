"""The role templates reach the later areas' staff work, each within its scope (issue 18
§6): customer service moderates reviews of its city, finance sees its city's wallets and
withdrawals while the platform's money stays with a platform-wide grant, reviewers and
city operators review applications and quality of their cities only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from doorstep.stores import Stores
from permissions.rules import PLATFORM_ONLY, TEMPLATES, claim_of
from tests.access import grant, login, new_city
from tests.helpers import Account, MakeUser
from tests.live import make_worker


def test_a_platform_only_permission_travels_only_in_a_platform_grant() -> None:
    """finance in a city carries finance.read but not finance.platform; on the platform both."""
    city = claim_of([(TEMPLATES["finance"], "city:a")])
    assert "finance.read" in city
    assert not PLATFORM_ONLY & set(city)
    platform = claim_of([(TEMPLATES["finance"], "platform")])
    assert platform["finance.platform"] == ["platform"]


def test_every_template_names_the_new_staff_capabilities() -> None:
    """The templates grant payments and settlement (finance), onboarding and quality
    (reviewer), moderation and safety (customer service), and the city's share (operator)."""
    assert {"finance.read", "finance.withdrawals.review", "payments.refund"} <= set(
        TEMPLATES["finance"].permissions
    )
    assert {"onboarding.review", "quality.read", "quality.write"} <= set(
        TEMPLATES["reviewer"].permissions
    )
    assert {"reviews.moderate", "safety.alerts", "payments.read"} <= set(
        TEMPLATES["customer_service"].permissions
    )
    assert {"onboarding.review", "quality.write", "reviews.moderate", "safety.alerts"} <= set(
        TEMPLATES["city_operator"].permissions
    )


async def _rated_order(
    stores: Stores, client: httpx.AsyncClient, city: str, customer: Account, service: str
) -> int:
    worker = await make_worker(stores, client, city)
    order = await stores.pool.fetchval(
        "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
        "duration_min, price_minor, currency, worker_id, start_code, completed_at) VALUES "
        "($1, $2, $3, 'instant', 'completed', 30.0, 104.0, 60, 10000, 'CNY', $4, '123456', $5) "
        "RETURNING id",
        city,
        customer.id,
        service,
        worker.id,
        datetime.now(UTC),
    )
    r = await client.post(
        f"/v1/orders/{order}/rating",
        headers=customer.auth,
        json={"stars": 1, "text": "骂人的话，不该公开"},
    )
    assert r.status_code == 201, r.text
    return int(order)


async def test_customer_service_moderates_reviews_of_its_city_only(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
) -> None:
    """Without the grant 403; granted in city A it reads and hides A's review (gone from the
    worker's rating), B's review is 404; a platform-wide grant reaches B too."""
    city_a, city_b = await new_city(stores, "cs-a"), await new_city(stores, "cs-b")
    customer = await make_user("customer")
    in_a = await _rated_order(stores, client, city_a, customer, instant_service)
    in_b = await _rated_order(stores, client, city_b, customer, instant_service)
    agent = await make_user("customer")
    hide: dict[str, Any] = {"reason": "含辱骂内容"}
    r = await client.post(f"/v1/ratings/{in_a}/hide", headers=agent.auth, json=hide)
    assert r.status_code == 403
    assert "reviews.moderate" in r.json()["error"]["message"]

    await grant(client, admin, agent, "customer_service", f"city:{city_a}")
    agent = await login(client, agent)
    r = await client.get(f"/v1/orders/{in_a}/rating", headers=agent.auth)
    assert (r.status_code, r.json()["stars"]) == (200, 1)
    assert (await client.get(f"/v1/orders/{in_b}/rating", headers=agent.auth)).status_code == 404
    r = await client.post(f"/v1/ratings/{in_a}/hide", headers=agent.auth, json=hide)
    assert r.status_code == 200, r.text
    assert r.json()["hidden_reason"] == "含辱骂内容"
    worker = await stores.pool.fetchval("SELECT worker_id FROM orders WHERE id = $1", in_a)
    assert (
        await stores.pool.fetchval("SELECT rating_count FROM workers WHERE user_id = $1", worker)
        == 0
    )
    r = await client.post(f"/v1/ratings/{in_b}/hide", headers=agent.auth, json=hide)
    assert (r.status_code, r.json()["error"]["field"]) == (404, "order_id")
    assert (await client.get(f"/v1/orders/{in_a}/payment", headers=agent.auth)).status_code == 200
    assert (await client.get(f"/v1/orders/{in_b}/payment", headers=agent.auth)).status_code == 404
    r = await client.get(f"/v1/safety/alerts?city_id={city_b}", headers=agent.auth)
    assert r.status_code == 404
    assert (
        await client.get(f"/v1/safety/alerts?city_id={city_a}", headers=agent.auth)
    ).status_code == 200

    everywhere = await make_user("customer")
    await grant(client, admin, everywhere, "customer_service", "platform")
    everywhere = await login(client, everywhere)
    r = await client.post(f"/v1/ratings/{in_b}/hide", headers=everywhere.auth, json=hide)
    assert r.status_code == 200, r.text


async def test_finance_of_a_city_sees_its_wallets_not_the_platforms_money(
    client: httpx.AsyncClient, stores: Stores, make_user: MakeUser, admin: Account
) -> None:
    """A city's finance: its workers' wallets 200, another city's 404, its settlements only;
    settlement runs, reconciliation and commission rules 403 (platform-only); a platform
    finance grant runs them."""
    city_a, city_b = await new_city(stores, "fin-a"), await new_city(stores, "fin-b")
    w_a = await make_worker(stores, client, city_a)
    w_b = await make_worker(stores, client, city_b)
    clerk = await make_user("customer")
    await grant(client, admin, clerk, "finance", f"city:{city_a}")
    clerk = await login(client, clerk)
    r = await client.get(f"/v1/finance/wallets/worker/{w_a.id}", headers=clerk.auth)
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/finance/wallets/worker/{w_b.id}", headers=clerk.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (404, "payee_id")
    r = await client.get(f"/v1/finance/settlements?city_id={city_b}", headers=clerk.auth)
    assert r.status_code == 404
    r = await client.get("/v1/finance/settlements", headers=clerk.auth)
    assert r.status_code == 200
    assert {s["city_id"] for s in r.json()["items"]} <= {city_a}
    for method, path in (
        ("POST", "/v1/finance/settlements/run"),
        ("GET", "/v1/finance/reconciliations"),
        ("GET", "/v1/admin/commission-rules"),
    ):
        r = await client.request(method, path, headers=clerk.auth)
        assert r.status_code == 403, (path, r.text)
        assert "finance.platform" in r.json()["error"]["message"]
    held = (await client.get("/v1/me/permissions", headers=clerk.auth)).json()
    assert "finance.platform" not in {h["permission"] for h in held["permissions"]}

    chief = await make_user("customer")
    await grant(client, admin, chief, "finance", "platform")
    chief = await login(client, chief)
    assert (await client.post("/v1/finance/settlements/run", headers=chief.auth)).status_code == 200
    r = await client.get(f"/v1/finance/wallets/worker/{w_b.id}", headers=chief.auth)
    assert r.status_code == 200


async def test_a_city_reviewer_reviews_its_citys_applications_and_quality(
    client: httpx.AsyncClient, stores: Stores, make_user: MakeUser, admin: Account
) -> None:
    """The queue holds city A's applications only; B's application and B's worker's score
    are 404; A's worker's score and rankings answer."""
    city_a, city_b = await new_city(stores, "rev-a"), await new_city(stores, "rev-b")
    apps = {}
    for city in (city_a, city_b):
        applicant = await make_user("customer")
        apps[city] = await stores.pool.fetchval(
            "INSERT INTO applications (user_id, city_id, real_name, status, submitted_at, "
            "created_at, updated_at) VALUES ($1, $2, '张三', 'submitted', now(), now(), now()) "
            "RETURNING id",
            applicant.id,
            city,
        )
    reviewer = await make_user("customer")
    await grant(client, admin, reviewer, "reviewer", f"city:{city_a}")
    reviewer = await login(client, reviewer)
    r = await client.get("/v1/onboarding/applications?limit=200", headers=reviewer.auth)
    assert r.status_code == 200, r.text
    assert {a["city_id"] for a in r.json()} == {city_a}
    assert apps[city_a] in {a["id"] for a in r.json()}
    base = "/v1/onboarding/applications"
    assert (await client.get(f"{base}/{apps[city_a]}", headers=reviewer.auth)).status_code == 200
    assert (await client.get(f"{base}/{apps[city_b]}", headers=reviewer.auth)).status_code == 404
    r = await client.post(
        f"{base}/{apps[city_b]}/decision",
        headers=reviewer.auth,
        json={"decision": "reject", "reason": "不在本城"},
    )
    assert r.status_code == 404

    w_a = await make_worker(stores, client, city_a)
    w_b = await make_worker(stores, client, city_b)
    r = await client.get(f"/v1/quality/workers/{w_a.id}", headers=reviewer.auth)
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/quality/workers/{w_b.id}", headers=reviewer.auth)
    assert r.status_code == 404
    r = await client.post(
        "/v1/quality/events",
        headers=reviewer.auth,
        json={"worker_id": w_b.id, "kind": "complaint", "note": "外城"},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "worker_id")
    r = await client.get(f"/v1/quality/rankings?city_id={city_b}", headers=reviewer.auth)
    assert r.status_code == 404
    r = await client.get(f"/v1/quality/rankings?city_id={city_a}", headers=reviewer.auth)
    assert r.status_code == 200
    assert [x["worker_id"] for x in r.json()] == [w_a.id]

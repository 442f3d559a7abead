"""`doorstep seed`: the city and catalog alone, the demo accounts only when asked, and
seeding twice changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date

import asyncpg
import httpx
import pytest

from api.app import create_app
from catalog.areas import city_at
from doorstep.db import with_database
from doorstep.migrate import migrate
from doorstep.settings import Settings
from doorstep.stores import Stores
from files.blobs import local_store
from geo.coords import haversine_m
from geo.roadgraph import load_city_graph, load_futian_graph
from growth.service import Growth
from seeding.futian import CitySeed, build_city
from seeding.load import (
    ADMIN_PHONE,
    DEMO_PASSWORD,
    DISPATCHER_PHONE,
    FINANCE_PHONE,
    road_nodes_inside,
    seed,
    shenzhen,
)

TODAY = date(2026, 11, 22)
COUNTED = (
    "users",
    "merchants",
    "merchant_services",
    "role_grants",
    "permission_audit",
    "addresses",
    "workers",
    "worker_certificates",
    "worker_availability",
    "teams",
    "services",
    "categories",
    "skills",
    "certificate_kinds",
    "cities",
    "applications",
    "application_documents",
    "exams",
    "exam_questions",
    "courses",
    "skill_certificates",
    "coupon_templates",
    "coupons",
    "service_payment",
)


@asynccontextmanager
async def _own_database(server_urls: tuple[str, str], settings: Settings) -> AsyncIterator[Stores]:
    """Stores on a fresh, migrated database of their own, dropped afterwards."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_seed_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    own = replace(
        settings,
        database_url=with_database(server_urls[1], name),
        redis_prefix=f"{settings.redis_prefix}seed:{name}:",
    )
    conn = await asyncpg.connect(own.database_url)
    await migrate(conn)
    await conn.close()
    stores = await Stores.open(own)
    try:
        yield stores
    finally:
        await stores.close()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(scope="module")
async def seeded(server_urls: tuple[str, str], settings: Settings) -> AsyncIterator[Stores]:
    """Stores on a database of its own, seeded once with the demo accounts."""
    async with _own_database(server_urls, settings) as stores:
        await seed(stores, today=TODAY, demo_accounts=True, blobs=local_store(settings.data_dir))
        yield stores


async def _counts(stores: Stores) -> dict[str, int]:
    return {t: await stores.pool.fetchval(f"SELECT count(*) FROM {t}") for t in COUNTED}


async def test_the_demo_city_is_big_enough(seeded: Stores) -> None:
    """Shenzhen has ≥ 12 services in ≥ 4 categories, ≥ 200 workers and customers with addresses."""
    db = seeded.pool
    assert await db.fetchval("SELECT count(*) FROM services") >= 12
    assert await db.fetchval("SELECT count(DISTINCT category) FROM services") >= 4
    assert await db.fetchval("SELECT count(*) FROM workers WHERE city_id = 'shenzhen'") >= 200
    assert await db.fetchval("SELECT count(*) FROM users WHERE 'customer' = ANY(roles)") >= 100
    assert await db.fetchval("SELECT count(*) FROM addresses") >= 100
    assert await db.fetchval("SELECT count(*) FROM teams") >= 1
    # every service can be served by a few workers holding all its skills
    uncovered = await db.fetch(
        "SELECT s.code FROM services s WHERE (SELECT count(*) FROM workers w "
        "WHERE w.skills @> s.required_skills) < 3"
    )
    assert uncovered == []


async def test_the_demo_city_has_applicants_waiting_for_review(seeded: Stores) -> None:
    """Three submitted applications with their documents pending, exams and skills' certificate needs."""
    db = seeded.pool
    rows = await db.fetch(
        "SELECT a.id, a.identity_status, (SELECT count(*) FROM application_documents d "
        "WHERE d.application_id = a.id AND d.status = 'pending') AS pending "
        "FROM applications a WHERE a.status = 'submitted'"
    )
    assert len(rows) >= 3
    assert all(r["pending"] >= 5 and r["identity_status"] == "verified" for r in rows)
    assert await db.fetchval("SELECT count(*) FROM exams") >= 2
    assert (
        await db.fetchval(
            "SELECT certificate_kind FROM skill_certificates WHERE skill = 'electrical'"
        )
        == "electrician"
    )


async def test_seeding_twice_duplicates_nothing(seeded: Stores) -> None:
    """A second seed run leaves every table's row count as it was and reports no new account."""
    before = await _counts(seeded)
    report = await seed(seeded, today=TODAY, demo_accounts=True)
    assert report.new_accounts == 0
    assert await _counts(seeded) == before
    report = await seed(seeded, today=TODAY)  # without the demo accounts: nothing changes
    assert report.new_accounts == 0
    assert await _counts(seeded) == before


async def test_without_demo_only_the_city_and_catalog_are_seeded(
    server_urls: tuple[str, str], settings: Settings
) -> None:
    """By default seed writes the city and the catalog and not one account (no demo admin with its public password)."""
    async with _own_database(server_urls, settings) as stores:
        report = await seed(stores, today=TODAY)
        db = stores.pool
        assert await db.fetchval("SELECT count(*) FROM users") == 0
        assert await db.fetchval("SELECT count(*) FROM workers") == 0
        assert await db.fetchval("SELECT count(*) FROM teams") == 0
        assert await db.fetchval("SELECT count(*) FROM addresses") == 0
        assert await db.fetchval("SELECT id FROM cities") == "shenzhen"
        assert await db.fetchval("SELECT count(*) FROM services") == report.services >= 12
        assert await db.fetchval("SELECT count(*) FROM categories") == report.categories >= 4
        assert (report.workers, report.customers, report.teams, report.new_accounts) == (0, 0, 0, 0)
        assert await db.fetchval("SELECT count(*) FROM coupon_templates") == 0
        assert await db.fetchval("SELECT count(*) FROM service_payment") == 0


async def test_addresses_and_homes_are_on_the_road_network_inside_the_area(seeded: Stores) -> None:
    """Every seeded address and worker home lies in Futian's service area, within 50 m of a road node."""
    graph = load_futian_graph()
    rows = await seeded.pool.fetch(
        "SELECT lat, lng FROM addresses UNION ALL SELECT home_lat, home_lng FROM workers"
    )
    assert len(rows) > 300
    for r in rows:
        assert await city_at(seeded.pool, r["lat"], r["lng"]) == "shenzhen"
        index, distance_m = graph.nearest_node(r["lat"], r["lng"])
        assert distance_m <= 50
        assert haversine_m(r["lat"], r["lng"], graph.lat[index], graph.lng[index]) == pytest.approx(
            distance_m
        )


async def test_demo_accounts_can_log_in(seeded: Stores, settings: Settings) -> None:
    """The printed demo admin, dispatcher and finance logins work, with the right roles."""
    app = create_app(settings, seeded)
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for phone, role in (
            (ADMIN_PHONE, "admin"),
            (DISPATCHER_PHONE, "dispatcher"),
            (FINANCE_PHONE, "finance"),
        ):
            r = await c.post("/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.text
            assert r.json()["user"]["roles"] == [role]
            tokens[role] = r.json()["access_token"]
        workers = await c.get(
            "/v1/workers?city_id=shenzhen&limit=500",
            headers={"Authorization": f"Bearer {tokens['dispatcher']}"},
        )
        assert len(workers.json()) >= 200


async def test_homes_and_addresses_spread_over_the_whole_district(seeded: Stores) -> None:
    """Seeded people cover Futian end to end, not the old graph's western corner: over a
    third of them lie east of 114.04 E (the 2023 graph's edge), some east of the CBD."""
    rows = await seeded.pool.fetch(
        "SELECT lng FROM addresses UNION ALL SELECT home_lng FROM workers"
    )
    lngs = [r["lng"] for r in rows]
    assert sum(lng > 114.04 for lng in lngs) > len(lngs) / 3
    assert sum(lng > 114.06 for lng in lngs) > 20
    assert min(lngs) < 114.0


async def test_chengdu_is_seeded_on_its_own_network_beside_shenzhen(
    server_urls: tuple[str, str], settings: Settings
) -> None:
    """Seeding Chengdu next to Shenzhen gives a second city with its own 2nd-Ring area,
    its own people (no account shared but the admin and dispatcher), every home and
    address inside its area and within 50 m of a Chengdu road node."""
    async with _own_database(server_urls, settings) as stores:
        await seed(stores, today=TODAY, demo_accounts=True)
        report = await seed(stores, city_id="chengdu", today=TODAY, demo_accounts=True)
        db = stores.pool
        assert report.city == "chengdu"
        assert sorted(r["id"] for r in await db.fetch("SELECT id FROM cities")) == [
            "chengdu",
            "shenzhen",
        ]
        counts = dict(await db.fetch("SELECT city_id, count(*) FROM workers GROUP BY city_id"))
        assert counts == {"shenzhen": 240, "chengdu": 240}
        graph = load_city_graph("chengdu")
        rows = await db.fetch(
            "SELECT lat, lng FROM addresses WHERE city_id = 'chengdu' "
            "UNION ALL SELECT home_lat, home_lng FROM workers WHERE city_id = 'chengdu'"
        )
        assert len(rows) > 300
        for r in rows:
            assert await city_at(db, r["lat"], r["lng"]) == "chengdu"
            assert graph.nearest_node(r["lat"], r["lng"])[1] <= 50


async def test_the_demo_has_a_merchant_with_staff_and_a_second_city_with_its_operator(
    seeded: Stores, settings: Settings
) -> None:
    """The first team's merchant is approved with staff and prices; its dispatcher and
    Chengdu's city operator log in with their grants' scopes."""
    from seeding.access import CITY_OPERATOR_PHONE, MERCHANT_DISPATCHER_PHONE, SECOND_CITY

    db = seeded.pool
    merchant = await db.fetchrow("SELECT id, status, city_id FROM merchants")
    assert merchant is not None
    assert (merchant["status"], merchant["city_id"]) == ("approved", "shenzhen")
    staff = await db.fetchval(
        "SELECT count(*) FROM workers w JOIN teams t ON t.id = w.team_id WHERE t.merchant_id = $1",
        merchant["id"],
    )
    assert staff >= 5
    assert await db.fetchval("SELECT count(*) FROM merchant_services") == 3
    app = create_app(settings, seeded)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        wanted = {
            CITY_OPERATOR_PHONE: ("analytics.read", f"city:{SECOND_CITY}"),
            MERCHANT_DISPATCHER_PHONE: ("merchant.dispatch", f"merchant:{merchant['id']}"),
        }
        for phone, (perm, scope) in wanted.items():
            r = await c.post("/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            mine = (await c.get("/v1/me/permissions", headers=auth)).json()
            held = {h["permission"]: h["scopes"] for h in mine["permissions"]}
            assert held[perm] == [scope]
        staff_seen = await c.get(f"/v1/merchants/{merchant['id']}/orders", headers=auth)
        assert staff_seen.status_code == 200


async def test_the_demo_has_two_claimable_coupon_templates(seeded: Stores) -> None:
    """The demo seeds 新人立减20元 and 保洁85折, claimable in the app, once each."""
    rows = await seeded.pool.fetch(
        "SELECT name_zh, kind, claimable, active FROM coupon_templates "
        "WHERE name_zh = ANY($1) ORDER BY name_zh",
        ["新人立减20元", "保洁85折"],
    )
    assert [(r["name_zh"], r["kind"], r["claimable"], r["active"]) for r in rows] == [
        ("保洁85折", "percent", True, True),
        ("新人立减20元", "amount", True, True),
    ]


async def test_the_demo_grants_its_campaign_coupon_to_every_demo_customer_once(
    seeded: Stores, settings: Settings
) -> None:
    """Every seeded customer holds one 老客回馈 coupon (granted, not claimable), seen in
    the app's coupon list next to the claimable ones; a second seed grants none again."""
    from seeding.coupons import DEMO_GRANT

    db = seeded.pool
    template = await db.fetchrow(
        "SELECT id, claimable, issued FROM coupon_templates WHERE name_zh = $1",
        DEMO_GRANT.name_zh,
    )
    assert template is not None
    assert not template["claimable"]
    plan = _demo_plan()
    per_customer = await db.fetch(
        "SELECT customer_id, count(*) AS n, min(source) AS source, min(status) AS status "
        "FROM coupons WHERE template_id = $1 GROUP BY customer_id",
        template["id"],
    )
    assert len(per_customer) == len(plan.customers) == template["issued"] >= 100
    assert {(r["n"], r["source"], r["status"]) for r in per_customer} == {(1, "grant", "available")}
    app = create_app(settings, seeded)
    app.state.growth = Growth(seeded)  # set by the lifespan, which ASGITransport does not run
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        phone = plan.customers[0].phone  # the customer login `doorstep demo` prints
        r = await c.post("/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        mine = (await c.get("/v1/me/coupons", headers=auth)).json()
        assert [m["name_zh"] for m in mine] == [DEMO_GRANT.name_zh]
        claimable = (await c.get("/v1/coupons/claimable", headers=auth)).json()
        assert {t["name_zh"] for t in claimable} == {"新人立减20元", "保洁85折"}
    await seed(seeded, today=TODAY, demo_accounts=True)
    assert (
        await db.fetchval("SELECT issued FROM coupon_templates WHERE id = $1", template["id"])
        == template["issued"]
    )


def _demo_plan() -> CitySeed:
    """The people the ``seeded`` fixture wrote (Shenzhen, seed 7)."""
    return build_city(road_nodes_inside(shenzhen()), today=TODAY, seed=7)


async def test_the_demo_prepays_the_big_cleaning_jobs(seeded: Stores) -> None:
    """The demo seed makes 日常保洁3小时, 深度保洁 and 开荒保洁 prepaid (一口价); other services
    stay paid after the service; a mode changed by an operator is kept by a second seed."""
    db = seeded.pool
    modes = dict(await db.fetch("SELECT service_code, pay_mode FROM service_payment"))
    assert modes == {
        "daily_cleaning_3h": "prepaid",
        "deep_cleaning": "prepaid",
        "move_in_cleaning": "prepaid",
    }
    await db.execute(
        "UPDATE service_payment SET pay_mode = 'after_service' WHERE service_code = 'deep_cleaning'"
    )
    try:
        await seed(seeded, today=TODAY, demo_accounts=True)
        assert (
            await db.fetchval(
                "SELECT pay_mode FROM service_payment WHERE service_code = 'deep_cleaning'"
            )
            == "after_service"
        )
    finally:
        await db.execute(
            "UPDATE service_payment SET pay_mode = 'prepaid' WHERE service_code = 'deep_cleaning'"
        )

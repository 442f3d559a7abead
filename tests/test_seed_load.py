"""`doorstep seed`: the demo city in real stores, and seeding twice changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
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
from geo.coords import haversine_m
from geo.roadgraph import load_futian_graph
from seeding.load import ADMIN_PHONE, DEMO_PASSWORD, DISPATCHER_PHONE, seed

TODAY = date(2026, 11, 22)
COUNTED = (
    "users",
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
)


@pytest.fixture(scope="module")
async def seeded(server_urls: tuple[str, str], settings: Settings) -> AsyncIterator[Stores]:
    """Stores on a database of its own, seeded once."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_seed_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    own = replace(
        settings,
        database_url=with_database(server_urls[1], name),
        redis_prefix=f"{settings.redis_prefix}seed:",
    )
    conn = await asyncpg.connect(own.database_url)
    await migrate(conn)
    await conn.close()
    stores = await Stores.open(own)
    await seed(stores, today=TODAY)
    yield stores
    await stores.close()
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


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


async def test_seeding_twice_duplicates_nothing(seeded: Stores) -> None:
    """A second seed run leaves every table's row count as it was and reports no new account."""
    before = await _counts(seeded)
    report = await seed(seeded, today=TODAY)
    assert report.new_accounts == 0
    assert await _counts(seeded) == before


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
    """The printed demo admin and dispatcher logins work, with the right roles."""
    app = create_app(settings, seeded)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for phone, role in ((ADMIN_PHONE, "admin"), (DISPATCHER_PHONE, "dispatcher")):
            r = await c.post("/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.text
            assert r.json()["user"]["roles"] == [role]
        workers = await c.get(
            "/v1/workers?city_id=shenzhen&limit=500",
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        )
        assert len(workers.json()) >= 200

"""Write a generated city into the stores. Idempotent: seeding twice changes nothing.

Accounts are found by phone; catalog rows, worker profiles and certificates are
upserted; availability is replaced; a customer's addresses are written only when the
account is new, so a second run never duplicates them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from accounts.passwords import hash_password
from catalog import service as catalog_service
from catalog import store as catalog_store
from catalog.models import Category, CertificateKind, ChecklistItem, City, Service, Skill
from doorstep.db import Tx
from doorstep.stores import Stores
from geo.areas import load_bundled_district, parse_service_area
from geo.roadgraph import load_futian_graph
from seeding.futian import CitySeed, build_catalog, build_city
from workforce import store as workforce_store
from workforce.models import Window

log = logging.getLogger("doorstep.seed")

DEMO_PASSWORD = "doorstep-demo"
ADMIN_PHONE = "13800000000"
DISPATCHER_PHONE = "13800000001"
CITIES = ("shenzhen",)


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What a seed run wrote."""

    city: str
    services: int
    categories: int
    workers: int
    customers: int
    teams: int
    new_accounts: int


def shenzhen() -> City:
    """Shenzhen, served in Futian district (the area the bundled road graph covers)."""
    return catalog_service.build_city(
        id="shenzhen",
        name_zh="深圳",
        name_en="Shenzhen",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=load_bundled_district("福田区"),
        crs="wgs84",
    )


def road_nodes_inside(city: City) -> list[tuple[float, float]]:
    """Drivable road-graph nodes inside the city's service area."""
    area = parse_service_area(city.service_area)
    graph = load_futian_graph(drivable_only=True)
    return [
        (float(la), float(ln))
        for la, ln in zip(graph.lat, graph.lng, strict=True)
        if area.contains(float(la), float(ln))
    ]


async def _account(
    conn: Tx, phone: str, name: str, role: str, password_hash: str
) -> tuple[int, bool]:
    """The id of the account with this phone (created with ``role`` if new), and whether new."""
    new_id = await conn.fetchval(
        "INSERT INTO users (phone, name, password_hash, roles) VALUES ($1,$2,$3,$4) "
        "ON CONFLICT (phone) DO NOTHING RETURNING id",
        phone,
        name,
        password_hash,
        [role],
    )
    if new_id is not None:
        return int(new_id), True
    existing = await conn.fetchval(
        "UPDATE users SET roles = ARRAY(SELECT DISTINCT unnest(roles || $2::text[]) ORDER BY 1) "
        "WHERE phone = $1 RETURNING id",
        phone,
        [role],
    )
    return int(existing), False


async def seed_catalog(conn: Tx) -> tuple[int, int]:
    """Upsert skills, certificate kinds, categories and services; return (services, categories)."""
    skills, kinds, categories, services = build_catalog()
    for s in skills:
        await catalog_store.write_skill(conn, Skill(s.code, s.name_zh, s.name_en), upsert=True)
    for k in kinds:
        await catalog_store.write_certificate_kind(
            conn, CertificateKind(k.code, k.name_zh, k.name_en, k.validity_years), upsert=True
        )
    for c in categories:
        await catalog_store.write_category(
            conn, Category(c.code, c.name_zh, c.name_en, c.sort), upsert=True
        )
    for v in services:
        await catalog_store.write_service(
            conn,
            Service(
                code=v.code,
                category=v.category,
                name_zh=v.name_zh,
                name_en=v.name_en,
                description_zh=v.description_zh,
                description_en=v.description_en,
                price_minor=v.price_minor,
                currency="CNY",
                duration_min=v.duration_min,
                required_skills=v.required_skills,
                required_certificates=v.required_certificates,
                checklist=tuple(ChecklistItem(i.zh, i.en) for i in v.checklist),
                instant=v.instant,
                scheduled=v.scheduled,
                active=True,
            ),
            upsert=True,
        )
    return len(services), len(categories)


async def _seed_people(conn: Tx, city: City, plan: CitySeed, password_hash: str) -> int:
    new_accounts = 0
    for phone, name, role in (
        (ADMIN_PHONE, "平台管理员", "admin"),
        (DISPATCHER_PHONE, "调度员小周", "dispatcher"),
    ):
        new_accounts += (await _account(conn, phone, name, role, password_hash))[1]
    team_ids: dict[str, int] = {}
    for t in plan.teams:
        merchant_id, new = await _account(
            conn, t.merchant_phone, t.merchant_name, "merchant", password_hash
        )
        new_accounts += new
        team_ids[t.code] = await workforce_store.insert_team(
            conn, name=t.name, city_id=city.id, merchant_id=merchant_id, upsert=True
        )
    for w in plan.workers:
        user_id, new = await _account(conn, w.phone, w.name, "worker", password_hash)
        new_accounts += new
        team_id = team_ids[w.team_code] if w.team_code else None
        await workforce_store.upsert_worker(
            conn,
            user_id=user_id,
            city_id=city.id,
            skills=w.skills,
            home_lat=w.home_lat,
            home_lng=w.home_lng,
            team_id=team_id,
            rating_sum=w.rating_sum,
            rating_count=w.rating_count,
        )
        for c in w.certificates:
            await workforce_store.upsert_certificate(
                conn,
                user_id,
                kind=c.kind,
                number=c.number,
                issued_on=c.issued_on,
                expires_on=c.expires_on,
                status="verified",
            )
        await workforce_store.replace_availability(
            conn, user_id, tuple(Window(a.weekday, a.start_min, a.end_min) for a in w.availability)
        )
    for customer in plan.customers:
        user_id, new = await _account(
            conn, customer.phone, customer.name, "customer", password_hash
        )
        new_accounts += new
        if not new:
            continue
        for a in customer.addresses:
            await conn.execute(
                "INSERT INTO addresses (user_id, label, lat, lng, detail, city_id) "
                "VALUES ($1,$2,$3,$4,$5,$6)",
                user_id,
                a.label,
                a.lat,
                a.lng,
                a.detail,
                city.id,
            )
    return new_accounts


async def seed(
    stores: Stores, *, city_id: str = "shenzhen", today: date, seed: int = 7
) -> SeedReport:
    """Seed the demo city ``city_id`` in one transaction."""
    if city_id not in CITIES:
        raise ValueError(f"no demo data for city {city_id!r}; available: {', '.join(CITIES)}")
    city = shenzhen()
    plan = build_city(road_nodes_inside(city), today=today, seed=seed)
    password_hash = await hash_password(DEMO_PASSWORD)
    async with stores.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('doorstep-seed'))")
        await catalog_store.write_city(conn, city, upsert=True)
        services, categories = await seed_catalog(conn)
        new_accounts = await _seed_people(conn, city, plan, password_hash)
    report = SeedReport(
        city=city.id,
        services=services,
        categories=categories,
        workers=len(plan.workers),
        customers=len(plan.customers),
        teams=len(plan.teams),
        new_accounts=new_accounts,
    )
    log.info("seeded %s", report)
    return report

"""Write a generated city into the stores. Idempotent: seeding twice changes nothing.

By default only the city and the catalog are written: fit for a production database.
The demo accounts (an admin, a dispatcher, merchants, workers and customers, all with
the public password ``doorstep-demo``) come only with ``demo_accounts=True``
(``doorstep seed --demo``, and ``doorstep demo``), and with them the demo's coupons
(claimable templates, a campaign granted to every demo customer) and its prepaid
services (``seeding/coupons.py``, ``seeding/pay_modes.py``).

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
from files.blobs import BlobStore
from geo.areas import load_bundled_district, parse_service_area
from geo.roadgraph import graph_for_bbox
from growth.service import Growth
from privacy import crypto
from seeding import applicants
from seeding.access import CITY_OPERATOR_PHONE, MERCHANT_DISPATCHER_PHONE, seed_access
from seeding.chengdu import SEED_OFFSET, chengdu
from seeding.coupons import seed_coupons
from seeding.futian import CitySeed, build_catalog, build_city
from seeding.pay_modes import seed_pay_modes
from workforce import store as workforce_store
from workforce.models import Window

log = logging.getLogger("doorstep.seed")

DEMO_PASSWORD = "doorstep-demo"
ADMIN_PHONE = "13800000000"
DISPATCHER_PHONE = "13800000001"
FINANCE_PHONE = "13800000002"
CITIES = ("shenzhen", "chengdu")


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
    # One demo login per app besides the admin's and dispatcher's (empty without --demo):
    # customer, worker and merchant phones, all with DEMO_PASSWORD.
    logins: tuple[tuple[str, str], ...] = ()


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
    """Drivable road-graph nodes inside the city's service area (the bundled graph under
    its box: for Shenzhen the 2024 Futian + Shenzhen Bay network, 97 % of the district)."""
    area = parse_service_area(city.service_area)
    graph = graph_for_bbox(tuple(city.bbox))  # type: ignore[arg-type]
    if graph is None:
        raise ValueError(f"no bundled road graph under city {city.id!r}")
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
        "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
        "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (phone_bidx) DO NOTHING RETURNING id",
        crypto.seal("users.phone", phone),
        crypto.blind("phone", phone),
        name,
        password_hash,
        [role],
    )
    if new_id is not None:
        return int(new_id), True
    existing = await conn.fetchval(
        "UPDATE users SET roles = ARRAY(SELECT DISTINCT unnest(roles || $2::text[]) ORDER BY 1) "
        "WHERE phone_bidx = $1 RETURNING id",
        crypto.blind("phone", phone),
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
                crew_size=v.crew_size,
            ),
            upsert=True,
        )
    return len(services), len(categories)


async def _seed_people(
    conn: Tx, city: City, plan: CitySeed, password_hash: str
) -> tuple[int, list[int]]:
    """Write the people; (new accounts, the customers' ids)."""
    new_accounts = 0
    customer_ids: list[int] = []
    for phone, name, role in (
        (ADMIN_PHONE, "平台管理员", "admin"),
        (DISPATCHER_PHONE, "调度员小周", "dispatcher"),
        (FINANCE_PHONE, "财务小林", "finance"),
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
    if plan.teams:  # issue 18: a merchant with staff, a second city and its operator
        first = plan.teams[0]
        operator, new_op = await _account(
            conn, CITY_OPERATOR_PHONE, "成都运营小李", "customer", password_hash
        )
        shop_dispatcher, new_sd = await _account(
            conn, MERCHANT_DISPATCHER_PHONE, "商家调度小陈", "customer", password_hash
        )
        new_accounts += new_op + new_sd
        await seed_access(
            conn,
            city_id=city.id,
            merchant_id=await conn.fetchval(
                "SELECT merchant_id FROM teams WHERE id = $1", team_ids[first.code]
            ),
            merchant_name=first.name,
            merchant_phone=first.merchant_phone,
            operator_id=operator,
            dispatcher_id=shop_dispatcher,
        )
    for customer in plan.customers:
        user_id, new = await _account(
            conn, customer.phone, customer.name, "customer", password_hash
        )
        new_accounts += new
        customer_ids.append(user_id)
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
                crypto.seal("addresses.detail", a.detail),
                city.id,
            )
    return new_accounts, customer_ids


async def seed(
    stores: Stores,
    *,
    city_id: str = "shenzhen",
    today: date,
    seed: int = 7,
    demo_accounts: bool = False,
    blobs: BlobStore | None = None,
) -> SeedReport:
    """Seed the city ``city_id`` and the catalog in one transaction; with
    ``demo_accounts``, also the demo city's people, every one with the public password
    :data:`DEMO_PASSWORD` (never on a production database)."""
    if city_id not in CITIES:
        raise ValueError(f"no demo data for city {city_id!r}; available: {', '.join(CITIES)}")
    # Chengdu (seeding/chengdu.py) is the second real city: its own service area and
    # road network, its people drawn with another seed (other phones).
    city, seed = (chengdu(), seed + SEED_OFFSET) if city_id == "chengdu" else (shenzhen(), seed)
    plan = build_city(road_nodes_inside(city), today=today, seed=seed) if demo_accounts else None
    password_hash = await hash_password(DEMO_PASSWORD) if plan is not None else ""
    new_accounts = 0
    async with stores.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('doorstep-seed'))")
        await catalog_store.write_city(conn, city, upsert=True)
        services, categories = await seed_catalog(conn)
        if plan is not None:
            new_accounts, customer_ids = await _seed_people(conn, city, plan, password_hash)
            # growth/: the claimable templates, and the campaign's coupon to each customer
            await seed_coupons(conn, Growth(stores), customer_ids)
            await seed_pay_modes(conn)  # the big cleaning jobs prepaid (一口价)
    if plan is not None:  # onboarding: training content, applicants waiting for review
        await applicants.write_training(stores)
        homes = [
            (c.addresses[0].lat, c.addresses[0].lng) for c in plan.customers[:3] if c.addresses
        ]
        new_accounts += await applicants.write(
            stores,
            blobs,
            applicants.build(seed, homes or [(22.54, 114.05)]),
            city.id,
            password_hash,
        )
    report = SeedReport(
        city=city.id,
        services=services,
        categories=categories,
        workers=len(plan.workers) if plan else 0,
        customers=len(plan.customers) if plan else 0,
        teams=len(plan.teams) if plan else 0,
        new_accounts=new_accounts,
        logins=(
            (
                ("customer", plan.customers[0].phone),
                ("worker", plan.workers[0].phone),
                ("merchant", plan.teams[0].merchant_phone),
                ("city_operator", CITY_OPERATOR_PHONE),
                ("merchant_dispatcher", MERCHANT_DISPATCHER_PHONE),
            )
            if plan is not None and plan.customers and plan.workers and plan.teams
            else ()
        ),
    )
    log.info("seeded %s", report)
    return report

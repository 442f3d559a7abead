"""PostgreSQL access for the catalog.

``insert_*`` fail with :class:`AlreadyExists` on a taken code (the admin API);
``upsert_*`` overwrite (the seeder, so seeding twice changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from catalog.errors import AlreadyExists
from catalog.models import Category, CertificateKind, ChecklistItem, City, Service, Skill
from doorstep.db import Conn


def _city(r: asyncpg.Record) -> City:
    return City(
        id=r["id"],
        name_zh=r["name_zh"],
        name_en=r["name_en"],
        timezone=r["timezone"],
        currency=r["currency"],
        service_area=r["service_area"],
        bbox=tuple(r["bbox"]),
        active=r["active"],
    )


_CITY = "id, name_zh, name_en, timezone, currency, service_area, bbox, active"


async def write_city(db: Conn, city: City, *, upsert: bool) -> City:
    """Insert (or with ``upsert``, insert-or-replace) a city."""
    conflict = (
        "ON CONFLICT (id) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en, "
        "timezone = EXCLUDED.timezone, currency = EXCLUDED.currency, "
        "service_area = EXCLUDED.service_area, bbox = EXCLUDED.bbox, "
        "active = EXCLUDED.active, updated_at = now()"
        if upsert
        else ""
    )
    try:
        row = await db.fetchrow(
            f"INSERT INTO cities ({_CITY}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) {conflict} RETURNING {_CITY}",
            city.id,
            city.name_zh,
            city.name_en,
            city.timezone,
            city.currency,
            city.service_area,
            list(city.bbox),
            city.active,
        )
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"city {city.id!r} exists already", field="id") from None
    assert row is not None
    return _city(row)


async def update_city(db: Conn, city: City) -> City | None:
    """Replace a city's fields; None if it does not exist."""
    row = await db.fetchrow(
        "UPDATE cities SET name_zh=$2, name_en=$3, timezone=$4, currency=$5, service_area=$6, "
        f"bbox=$7, active=$8, updated_at=now() WHERE id=$1 RETURNING {_CITY}",
        city.id,
        city.name_zh,
        city.name_en,
        city.timezone,
        city.currency,
        city.service_area,
        list(city.bbox),
        city.active,
    )
    return _city(row) if row else None


async def cities(db: Conn) -> list[City]:
    """Every city, by id."""
    return [_city(r) for r in await db.fetch(f"SELECT {_CITY} FROM cities ORDER BY id")]


async def city(db: Conn, city_id: str) -> City | None:
    """One city."""
    row = await db.fetchrow(f"SELECT {_CITY} FROM cities WHERE id = $1", city_id)
    return _city(row) if row else None


async def cities_with_bbox_at(
    db: Conn, lat: float, lng: float
) -> list[tuple[str, Any, dict[str, Any]]]:
    """Active cities whose bounding box holds the point: (id, updated_at, service_area)."""
    rows = await db.fetch(
        "SELECT id, updated_at, service_area FROM cities WHERE active "
        "AND bbox[1] <= $1 AND $1 <= bbox[3] AND bbox[2] <= $2 AND $2 <= bbox[4] ORDER BY id",
        lat,
        lng,
    )
    return [(r["id"], r["updated_at"], r["service_area"]) for r in rows]


async def write_skill(db: Conn, s: Skill, *, upsert: bool) -> Skill:
    """Insert or upsert a skill."""
    conflict = (
        "ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en"
        if upsert
        else ""
    )
    try:
        await db.execute(
            f"INSERT INTO skills (code, name_zh, name_en) VALUES ($1,$2,$3) {conflict}",
            s.code,
            s.name_zh,
            s.name_en,
        )
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"skill {s.code!r} exists already", field="code") from None
    return s


async def skills(db: Conn) -> list[Skill]:
    """Every skill."""
    return [
        Skill(**dict(r))
        for r in await db.fetch("SELECT code, name_zh, name_en FROM skills ORDER BY code")
    ]


async def write_certificate_kind(db: Conn, k: CertificateKind, *, upsert: bool) -> CertificateKind:
    """Insert or upsert a certificate kind."""
    conflict = (
        "ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en, "
        "validity_years = EXCLUDED.validity_years"
        if upsert
        else ""
    )
    try:
        await db.execute(
            f"INSERT INTO certificate_kinds (code, name_zh, name_en, validity_years) VALUES ($1,$2,$3,$4) {conflict}",
            k.code,
            k.name_zh,
            k.name_en,
            k.validity_years,
        )
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"certificate kind {k.code!r} exists already", field="code") from None
    return k


async def certificate_kinds(db: Conn) -> list[CertificateKind]:
    """Every certificate kind."""
    rows = await db.fetch(
        "SELECT code, name_zh, name_en, validity_years FROM certificate_kinds ORDER BY code"
    )
    return [CertificateKind(**dict(r)) for r in rows]


async def write_category(db: Conn, c: Category, *, upsert: bool) -> Category:
    """Insert or upsert a category."""
    conflict = (
        "ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en, "
        "sort = EXCLUDED.sort"
        if upsert
        else ""
    )
    try:
        await db.execute(
            f"INSERT INTO categories (code, name_zh, name_en, sort) VALUES ($1,$2,$3,$4) {conflict}",
            c.code,
            c.name_zh,
            c.name_en,
            c.sort,
        )
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"category {c.code!r} exists already", field="code") from None
    return c


async def categories(db: Conn) -> list[Category]:
    """Every category in display order."""
    rows = await db.fetch("SELECT code, name_zh, name_en, sort FROM categories ORDER BY sort, code")
    return [Category(**dict(r)) for r in rows]


_SERVICE = (
    "code, category, name_zh, name_en, description_zh, description_en, price_minor, currency, "
    "duration_min, required_skills, required_certificates, checklist, instant, scheduled, active, "
    "crew_size"
)


def _service(r: asyncpg.Record) -> Service:
    d = dict(r)
    d["required_skills"] = tuple(d["required_skills"])
    d["required_certificates"] = tuple(d["required_certificates"])
    d["checklist"] = tuple(ChecklistItem(zh=i["zh"], en=i["en"]) for i in d["checklist"])
    return Service(**d)


async def write_service(db: Conn, s: Service, *, upsert: bool) -> Service:
    """Insert or upsert a service."""
    cols = [c.strip() for c in _SERVICE.split(",")]
    conflict = (
        "ON CONFLICT (code) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols[1:])
        + ", updated_at = now()"
        if upsert
        else ""
    )
    values = [
        s.code,
        s.category,
        s.name_zh,
        s.name_en,
        s.description_zh,
        s.description_en,
        s.price_minor,
        s.currency,
        s.duration_min,
        list(s.required_skills),
        list(s.required_certificates),
        [{"zh": i.zh, "en": i.en} for i in s.checklist],
        s.instant,
        s.scheduled,
        s.active,
        s.crew_size,
    ]
    try:
        row = await db.fetchrow(
            f"INSERT INTO services ({_SERVICE}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))}) "
            f"{conflict} RETURNING {_SERVICE}",
            *values,
        )
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"service {s.code!r} exists already", field="code") from None
    assert row is not None
    return _service(row)


async def update_service(db: Conn, s: Service) -> Service | None:
    """Replace a service's fields; None if it does not exist."""
    cols = [c.strip() for c in _SERVICE.split(",")]
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols[1:]))
    row = await db.fetchrow(
        f"UPDATE services SET {sets}, updated_at = now() WHERE code = $1 RETURNING {_SERVICE}",
        s.code,
        s.category,
        s.name_zh,
        s.name_en,
        s.description_zh,
        s.description_en,
        s.price_minor,
        s.currency,
        s.duration_min,
        list(s.required_skills),
        list(s.required_certificates),
        [{"zh": i.zh, "en": i.en} for i in s.checklist],
        s.instant,
        s.scheduled,
        s.active,
        s.crew_size,
    )
    return _service(row) if row else None


async def services(db: Conn, *, category: str | None, include_inactive: bool) -> list[Service]:
    """Services, optionally of one category."""
    return await search_services(db, ServiceFilter(category=category), include_inactive)


@dataclass(frozen=True, slots=True)
class ServiceFilter:
    """What a search for services asks: all fields optional (checked by
    :func:`catalog.service.service_filter`)."""

    q: str | None = None  # words, each in a name, description or category name (any case)
    category: str | None = None
    min_price: int | None = None  # minor units, inclusive
    max_price: int | None = None
    city_id: str | None = None  # some worker of this city has every required skill


async def search_services(db: Conn, f: ServiceFilter, include_inactive: bool) -> list[Service]:
    """Services matching every given part of ``f``, in category order then code."""
    words = [w for w in (f.q or "").split() if w]
    patterns = [
        "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words
    ]
    rows = await db.fetch(
        f"SELECT {_SERVICE} FROM services s WHERE ($1::text IS NULL OR category = $1) "
        "AND (active OR $2) "
        "AND ($3::bigint IS NULL OR price_minor >= $3) "
        "AND ($4::bigint IS NULL OR price_minor <= $4) "
        "AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM workers w "
        "  WHERE w.city_id = $5 AND w.skills @> s.required_skills)) "
        "AND NOT EXISTS (SELECT 1 FROM unnest($6::text[]) AS p(pat) WHERE NOT ("
        "  s.name_zh ILIKE p.pat OR s.name_en ILIKE p.pat OR s.description_zh ILIKE p.pat "
        "  OR s.description_en ILIKE p.pat OR s.code ILIKE p.pat OR EXISTS ("
        "    SELECT 1 FROM categories c WHERE c.code = s.category "
        "    AND (c.name_zh ILIKE p.pat OR c.name_en ILIKE p.pat)))) "
        "ORDER BY (SELECT sort FROM categories c WHERE c.code = s.category), code",
        f.category,
        include_inactive,
        f.min_price,
        f.max_price,
        f.city_id,
        patterns,
    )
    return [_service(r) for r in rows]


async def service(db: Conn, code: str) -> Service | None:
    """One service."""
    row = await db.fetchrow(f"SELECT {_SERVICE} FROM services WHERE code = $1", code)
    return _service(row) if row else None

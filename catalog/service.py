"""Catalog rules that need the stores: references between entries, service areas."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog import store
from catalog.errors import CatalogNotFound, InvalidCatalogInput
from catalog.models import City, Service
from doorstep.db import Conn
from geo.areas import parse_service_area
from geo.coords import Crs


def check_timezone(tz: str, field: str = "timezone") -> str:
    """An IANA time zone name such as ``Asia/Shanghai``."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCatalogInput(
            f"unknown time zone {tz!r}; use an IANA name like Asia/Shanghai", field=field
        ) from None
    return tz


def build_city(
    *,
    id: str,
    name_zh: str,
    name_en: str,
    timezone: str,
    currency: str,
    service_area: object,
    crs: Crs,
    active: bool = True,
) -> City:
    """A validated city; the service area is converted to WGS-84 and checked with shapely."""
    area = parse_service_area(service_area, crs=crs, field="service_area")
    return City(
        id=id,
        name_zh=name_zh,
        name_en=name_en,
        timezone=check_timezone(timezone),
        currency=currency,
        service_area=area.to_geojson(),
        bbox=(area.bbox.min_lat, area.bbox.min_lng, area.bbox.max_lat, area.bbox.max_lng),
        active=active,
    )


async def check_service_refs(db: Conn, s: Service) -> None:
    """The service's category, skills and certificate kinds must exist."""
    if not any(c.code == s.category for c in await store.categories(db)):
        raise InvalidCatalogInput(f"unknown category {s.category!r}", field="category")
    known = {k.code for k in await store.skills(db)}
    for i, skill in enumerate(s.required_skills):
        if skill not in known:
            raise InvalidCatalogInput(f"unknown skill {skill!r}", field=f"required_skills[{i}]")
    kinds = {k.code for k in await store.certificate_kinds(db)}
    for i, kind in enumerate(s.required_certificates):
        if kind not in kinds:
            raise InvalidCatalogInput(
                f"unknown certificate kind {kind!r}", field=f"required_certificates[{i}]"
            )
    check_crew_size(s.crew_size)
    if not (s.instant or s.scheduled):
        raise InvalidCatalogInput(
            "a service must be bookable instantly, scheduled, or both", field="instant"
        )


MAX_CREW_SIZE = 8  # the schema's CHECK (migration 0032)


def check_crew_size(size: int, field: str = "crew_size") -> int:
    """How many workers a service needs together: 1 (one worker) to :data:`MAX_CREW_SIZE`."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CREW_SIZE:
        raise InvalidCatalogInput(
            f"must be a whole number from 1 (one worker) to {MAX_CREW_SIZE}, not {size!r}",
            field=field,
        )
    return size


async def get_city(db: Conn, city_id: str) -> City:
    """The city or :class:`CatalogNotFound`."""
    found = await store.city(db, city_id)
    if found is None:
        raise CatalogNotFound(f"no city {city_id!r}", field="city_id")
    return found


async def get_service(db: Conn, code: str) -> Service:
    """The service or :class:`CatalogNotFound`."""
    found = await store.service(db, code)
    if found is None:
        raise CatalogNotFound(f"no service {code!r}", field="service_code")
    return found


MAX_QUERY_CHARS = 100
MAX_PRICE_MINOR = 10**9


def service_filter(
    *,
    q: str | None,
    category: str | None,
    min_price: int | None,
    max_price: int | None,
    city_id: str | None,
) -> store.ServiceFilter:
    """A search for services, checked: a short text, prices in order."""
    if q is not None:
        q = q.strip()
        if len(q) > MAX_QUERY_CHARS:
            raise InvalidCatalogInput(f"at most {MAX_QUERY_CHARS} characters", field="q")
        if "\x00" in q:
            raise InvalidCatalogInput("must not contain NUL", field="q")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidCatalogInput(f"must not be below min_price ({min_price})", field="max_price")
    return store.ServiceFilter(
        q=q or None,
        category=category,
        min_price=min_price,
        max_price=max_price,
        city_id=city_id,
    )


async def search_services(
    db: Conn, f: store.ServiceFilter, *, include_inactive: bool
) -> list[Service]:
    """Services matching ``f``; an unknown city is a 404 naming ``city_id``."""
    if f.city_id is not None:
        await get_city(db, f.city_id)
    return await store.search_services(db, f, include_inactive)

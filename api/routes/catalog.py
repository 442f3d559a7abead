"""Cities and service areas, skills, certificate kinds, categories and services."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.bodies import Input
from api.params import latitude, longitude
from api.routing import PUBLIC, Ctx, QueryParam, Router
from catalog import service as catalog
from catalog import store
from catalog.areas import city_at
from catalog.errors import CatalogNotFound
from catalog.models import Category, CertificateKind, ChecklistItem, City, Service, Skill
from catalog.service import MAX_CREW_SIZE, MAX_PRICE_MINOR
from doorstep.errors import InvalidInput
from geo.coords import to_wgs84, validate_lat_lng

router = Router("catalog")
ADMIN = frozenset({"admin"})

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,39}$", examples=["deep_cleaning"])]
CityId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,39}$", examples=["shenzhen"])]
NameZh = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
NameEn = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]


class CityIn(Input):
    """A city with its service area (GeoJSON Polygon/MultiPolygon/Feature)."""

    id: CityId
    name_zh: NameZh
    name_en: NameEn
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["Asia/Shanghai"])]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", examples=["CNY"])]
    service_area: dict[str, Any]
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    active: bool = True


class CityUpdateIn(Input):
    """Every field of a city but its id."""

    name_zh: NameZh
    name_en: NameEn
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    service_area: dict[str, Any]
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    active: bool = True


class SkillIn(Input):
    """A skill."""

    code: Code
    name_zh: NameZh
    name_en: NameEn


class CertificateKindIn(Input):
    """A certificate kind."""

    code: Code
    name_zh: NameZh
    name_en: NameEn
    validity_years: Annotated[int, msgspec.Meta(ge=1, le=50)]


class CategoryIn(Input):
    """A category."""

    code: Code
    name_zh: NameZh
    name_en: NameEn
    sort: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0


class ChecklistItemIn(Input):
    """One step of the service standard, in both languages."""

    zh: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    en: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class ServiceUpdateIn(Input):
    """Every field of a service but its code."""

    category: Code
    name_zh: NameZh
    name_en: NameEn
    price_minor: Annotated[int, msgspec.Meta(ge=0, le=100_000_000, description="price in fen")]
    duration_min: Annotated[int, msgspec.Meta(ge=15, le=60 * 24 * 31)]
    instant: bool
    scheduled: bool
    description_zh: Description = ""
    description_en: Description = ""
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "CNY"
    required_skills: Annotated[list[Code], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )
    required_certificates: Annotated[list[Code], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )
    checklist: Annotated[list[ChecklistItemIn], msgspec.Meta(max_length=30)] = msgspec.field(
        default_factory=list
    )
    active: bool = True
    # workers who do the job together (2 or more: a crew, offered and assigned together)
    crew_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_CREW_SIZE)] = 1


class ServiceIn(ServiceUpdateIn, kw_only=True):
    """A service."""

    code: Code


class Located(msgspec.Struct):
    """The city whose service area holds a point (``city_id`` null: outside every area)."""

    lat: float
    lng: float
    city_id: str | None


def _service(code: str, body: ServiceUpdateIn) -> Service:
    return Service(
        code=code,
        category=body.category,
        name_zh=body.name_zh,
        name_en=body.name_en,
        description_zh=body.description_zh,
        description_en=body.description_en,
        price_minor=body.price_minor,
        currency=body.currency,
        duration_min=body.duration_min,
        required_skills=tuple(dict.fromkeys(body.required_skills)),
        required_certificates=tuple(dict.fromkeys(body.required_certificates)),
        checklist=tuple(ChecklistItem(zh=i.zh, en=i.en) for i in body.checklist),
        instant=body.instant,
        scheduled=body.scheduled,
        active=body.active,
        crew_size=body.crew_size,
    )


@router.get(
    "/v1/cities", roles=PUBLIC, returns=list[City], summary="Cities with their service areas"
)
async def list_cities(ctx: Ctx) -> list[City]:
    return await store.cities(ctx.stores.pool)


@router.get("/v1/cities/{city_id}", roles=PUBLIC, returns=City, summary="One city")
async def get_city(ctx: Ctx) -> City:
    return await catalog.get_city(ctx.stores.pool, ctx.path_str("city_id"))


@router.post(
    "/v1/cities",
    perm="cities.edit",
    roles=ADMIN,
    body=CityIn,
    returns=City,
    status=201,
    errors={
        422: "an unknown time zone or currency, or a service area that is not a valid polygon",
        409: "a city with this id exists",
    },
    summary="Create a city; its service area is validated (admin)",
)
async def create_city(ctx: Ctx, body: CityIn) -> City:
    city = catalog.build_city(
        id=body.id,
        name_zh=body.name_zh,
        name_en=body.name_en,
        timezone=body.timezone,
        currency=body.currency,
        service_area=body.service_area,
        crs=body.crs,
        active=body.active,
    )
    return await store.write_city(ctx.stores.pool, city, upsert=False)


@router.put(
    "/v1/cities/{city_id}",
    errors={422: "an unknown time zone or currency, or a service area that is not a valid polygon"},
    perm="cities.edit",
    roles=ADMIN,
    body=CityUpdateIn,
    returns=City,
    summary="Replace a city's fields and service area (admin)",
)
async def update_city(ctx: Ctx, body: CityUpdateIn) -> City:
    city_id = ctx.path_str("city_id")
    city = catalog.build_city(
        id=city_id,
        name_zh=body.name_zh,
        name_en=body.name_en,
        timezone=body.timezone,
        currency=body.currency,
        service_area=body.service_area,
        crs=body.crs,
        active=body.active,
    )
    updated = await store.update_city(ctx.stores.pool, city)
    if updated is None:
        raise CatalogNotFound(f"no city {city_id!r}", field="city_id")
    return updated


@router.get(
    "/v1/locate",
    roles=PUBLIC,
    returns=Located,
    query=(
        latitude("latitude", required=True),
        longitude("longitude", required=True),
        QueryParam("crs", str, "wgs84 (default) or gcj02", choices=("wgs84", "gcj02")),
    ),
    summary="Which city's service area holds a point",
)
async def locate(ctx: Ctx) -> Located:
    values: dict[str, float] = {}
    for name in ("lat", "lng"):
        raw = ctx.request.query_params.get(name)
        if raw is None:
            raise InvalidInput("this query parameter is required", field=name)
        try:
            values[name] = float(raw)
        except ValueError:
            raise InvalidInput("must be a number", field=name) from None
    crs = ctx.query_str("crs", choices=frozenset({"wgs84", "gcj02"})) or "wgs84"
    validate_lat_lng(values["lat"], values["lng"])
    lat, lng = to_wgs84(values["lat"], values["lng"], "gcj02" if crs == "gcj02" else "wgs84")
    return Located(lat=lat, lng=lng, city_id=await city_at(ctx.stores.pool, lat, lng))


@router.get("/v1/skills", roles=PUBLIC, returns=list[Skill], summary="Skills")
async def list_skills(ctx: Ctx) -> list[Skill]:
    return await store.skills(ctx.stores.pool)


@router.post(
    "/v1/skills",
    perm="catalog.edit",
    roles=ADMIN,
    body=SkillIn,
    returns=Skill,
    status=201,
    errors={409: "a skill with this code exists"},
    summary="Add a skill (admin)",
)
async def create_skill(ctx: Ctx, body: SkillIn) -> Skill:
    return await store.write_skill(
        ctx.stores.pool, Skill(body.code, body.name_zh, body.name_en), upsert=False
    )


@router.get(
    "/v1/certificate-kinds",
    roles=PUBLIC,
    returns=list[CertificateKind],
    summary="Kinds of certificate workers can hold",
)
async def list_certificate_kinds(ctx: Ctx) -> list[CertificateKind]:
    return await store.certificate_kinds(ctx.stores.pool)


@router.post(
    "/v1/certificate-kinds",
    perm="catalog.edit",
    roles=ADMIN,
    body=CertificateKindIn,
    returns=CertificateKind,
    status=201,
    errors={409: "a certificate kind with this code exists"},
    summary="Add a certificate kind (admin)",
)
async def create_certificate_kind(ctx: Ctx, body: CertificateKindIn) -> CertificateKind:
    kind = CertificateKind(body.code, body.name_zh, body.name_en, body.validity_years)
    return await store.write_certificate_kind(ctx.stores.pool, kind, upsert=False)


@router.get("/v1/categories", roles=PUBLIC, returns=list[Category], summary="Service categories")
async def list_categories(ctx: Ctx) -> list[Category]:
    return await store.categories(ctx.stores.pool)


@router.post(
    "/v1/categories",
    perm="catalog.edit",
    roles=ADMIN,
    body=CategoryIn,
    returns=Category,
    status=201,
    errors={409: "a category with this code exists"},
    summary="Add a category (admin)",
)
async def create_category(ctx: Ctx, body: CategoryIn) -> Category:
    category = Category(body.code, body.name_zh, body.name_en, body.sort)
    return await store.write_category(ctx.stores.pool, category, upsert=False)


@router.get(
    "/v1/services",
    roles=PUBLIC,
    returns=list[Service],
    query=(
        QueryParam(
            "q", str, "words, each found in a name, description or category name", max_length=100
        ),
        QueryParam("category", str, "only this category's services", max_length=40),
        QueryParam(
            "min_price", int, "lowest price_minor (fen), inclusive", ge=0, le=MAX_PRICE_MINOR
        ),
        QueryParam(
            "max_price", int, "highest price_minor (fen), inclusive", ge=0, le=MAX_PRICE_MINOR
        ),
        QueryParam(
            "city_id", str, "only services some worker of this city is skilled for", max_length=40
        ),
        latitude("with lng: the city whose service area holds this point"),
        longitude("with lat"),
        QueryParam("crs", str, "of lat/lng (default wgs84)", choices=("wgs84", "gcj02")),
    ),
    errors={404: "no such city (city_id)"},
    summary="Bookable services, searched by text, category, price and place",
)
async def list_services(ctx: Ctx) -> list[Service]:
    def price(name: str) -> int | None:
        if ctx.request.query_params.get(name) is None:
            return None
        return ctx.query_int(name, 0, ge=0, le=catalog.MAX_PRICE_MINOR)

    city_id = ctx.query_str("city_id")
    point = _point(ctx)
    if point is not None:
        if city_id is not None:
            raise InvalidInput("give city_id or lat/lng, not both", field="lat")
        city_id = await city_at(ctx.stores.pool, *point)
        if city_id is None:
            return []  # nobody serves that place
    wanted = catalog.service_filter(
        q=ctx.query_str("q"),
        category=ctx.query_str("category"),
        min_price=price("min_price"),
        max_price=price("max_price"),
        city_id=city_id,
    )
    return await catalog.search_services(
        ctx.stores.pool, wanted, include_inactive=ctx.has_role("admin")
    )


def _point(ctx: Ctx) -> tuple[float, float] | None:
    """The WGS-84 point of ``lat``/``lng`` (both or neither), else None."""
    raw = {name: ctx.request.query_params.get(name) for name in ("lat", "lng")}
    if raw["lat"] is None and raw["lng"] is None:
        return None
    values: dict[str, float] = {}
    for name, text in raw.items():
        if text is None:
            raise InvalidInput("lat and lng go together", field=name)
        try:
            values[name] = float(text)
        except ValueError:
            raise InvalidInput("must be a number", field=name) from None
    crs = ctx.query_str("crs", choices=frozenset({"wgs84", "gcj02"})) or "wgs84"
    validate_lat_lng(values["lat"], values["lng"])
    return to_wgs84(values["lat"], values["lng"], "gcj02" if crs == "gcj02" else "wgs84")


@router.get("/v1/services/{service_code}", roles=PUBLIC, returns=Service, summary="One service")
async def get_service(ctx: Ctx) -> Service:
    return await catalog.get_service(ctx.stores.pool, ctx.path_str("service_code"))


@router.post(
    "/v1/services",
    perm="catalog.edit",
    roles=ADMIN,
    body=ServiceIn,
    returns=Service,
    status=201,
    errors={
        422: "a service must be bookable instantly, scheduled, or both; its category, skills and certificates must exist",
        409: "a service with this code exists",
    },
    summary="Add a service (admin)",
)
async def create_service(ctx: Ctx, body: ServiceIn) -> Service:
    svc = _service(body.code, body)
    await catalog.check_service_refs(ctx.stores.pool, svc)
    return await store.write_service(ctx.stores.pool, svc, upsert=False)


@router.put(
    "/v1/services/{service_code}",
    errors={
        422: "a service must be bookable instantly, scheduled, or both; its category, skills and certificates must exist"
    },
    perm="catalog.edit",
    roles=ADMIN,
    body=ServiceUpdateIn,
    returns=Service,
    summary="Replace a service's fields (admin)",
)
async def update_service(ctx: Ctx, body: ServiceUpdateIn) -> Service:
    svc = _service(ctx.path_str("service_code"), body)
    await catalog.check_service_refs(ctx.stores.pool, svc)
    updated = await store.update_service(ctx.stores.pool, svc)
    if updated is None:
        raise CatalogNotFound(f"no service {svc.code!r}", field="service_code")
    return updated

"""City sub-sites (城市分站): a city's own prices for catalog services, set by its operator."""

from __future__ import annotations

from typing import Annotated

import msgspec

from api.bodies import Input
from api.routing import PUBLIC, Ctx, Router
from catalog import city_prices
from catalog import service as catalog_service
from catalog import store as catalog_store
from catalog.city_prices import CityPrice
from catalog.errors import CatalogNotFound

router = Router("cities")
ADMIN = frozenset({"admin"})


class CityPriceIn(Input):
    """The city's price in fen (50 %–200 % of the catalog's); null: the catalog's again."""

    price_minor: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None


async def _city(ctx: Ctx) -> str:
    city_id = ctx.path_str("city_id")
    if await catalog_store.city(ctx.stores.pool, city_id) is None:
        raise CatalogNotFound(f"no city {city_id!r}", field="city_id")
    return city_id


@router.get(
    "/v1/cities/{city_id}/prices",
    roles=PUBLIC,
    returns=list[CityPrice],
    summary="A city's prices: every active service, the catalog's price and the city's own",
)
async def list_prices(ctx: Ctx) -> list[CityPrice]:
    return await city_prices.prices(ctx.stores.pool, await _city(ctx))


@router.put(
    "/v1/cities/{city_id}/prices/{service_code}",
    errors={422: "the price is outside 50 %–200 % of the catalog's"},
    perm="catalog.prices",
    roles=ADMIN,
    body=CityPriceIn,
    returns=CityPrice,
    summary="Set a city's own price for a service (its operator, or an admin); bookings there charge it",
)
async def put_price(ctx: Ctx, body: CityPriceIn) -> CityPrice:
    city_id = ctx.in_city(await _city(ctx))
    svc = await catalog_service.get_service(ctx.stores.pool, ctx.path_str("service_code"))
    if body.price_minor is not None:
        city_prices.check_city_price(body.price_minor, svc.price_minor)
    await city_prices.set_price(
        ctx.stores.pool, city_id, svc.code, body.price_minor, by=ctx.user.user_id
    )
    return CityPrice(city_id, svc.code, svc.price_minor, body.price_minor)

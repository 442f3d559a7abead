"""A city sub-site's own prices for catalog services (issue 18 §6): its operator sets
them within a range of the catalog's; booking in the city charges them.

Pure rule: :func:`check_city_price`; the rest reads and writes ``city_service_prices``
(migration 0022).
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.errors import InvalidCatalogInput
from doorstep.db import Conn

#: A city's price, as a share of the catalog's.
MIN_PERCENT = 50
MAX_PERCENT = 200


@dataclass(frozen=True, slots=True)
class CityPrice:
    """A service's price in one city beside the catalog's (``price_minor`` None: the
    city charges the catalog's)."""

    city_id: str
    service_code: str
    catalog_price_minor: int
    price_minor: int | None


def check_city_price(price_minor: int, catalog_price_minor: int, field: str = "price_minor") -> int:
    """A city's price within 50 %–200 % of the catalog's."""
    low = (catalog_price_minor * MIN_PERCENT + 99) // 100
    high = catalog_price_minor * MAX_PERCENT // 100
    if not low <= price_minor <= high:
        raise InvalidCatalogInput(
            f"must be within {low}–{high} fen ({MIN_PERCENT}%–{MAX_PERCENT}% of the catalog "
            f"price {catalog_price_minor})",
            field=field,
        )
    return price_minor


async def prices(db: Conn, city_id: str) -> list[CityPrice]:
    """Every active service with the city's price, if it has one."""
    rows = await db.fetch(
        "SELECT s.code, s.price_minor, c.price_minor AS city_price FROM services s "
        "LEFT JOIN city_service_prices c ON c.service_code = s.code AND c.city_id = $1 "
        "WHERE s.active ORDER BY s.code",
        city_id,
    )
    return [CityPrice(city_id, r["code"], r["price_minor"], r["city_price"]) for r in rows]


async def set_price(
    db: Conn, city_id: str, service_code: str, price_minor: int | None, *, by: int
) -> None:
    """Set the city's price (None: back to the catalog's)."""
    if price_minor is None:
        await db.execute(
            "DELETE FROM city_service_prices WHERE city_id = $1 AND service_code = $2",
            city_id,
            service_code,
        )
        return
    await db.execute(
        "INSERT INTO city_service_prices (city_id, service_code, price_minor, updated_by) "
        "VALUES ($1,$2,$3,$4) ON CONFLICT (city_id, service_code) DO UPDATE SET "
        "price_minor = EXCLUDED.price_minor, updated_by = EXCLUDED.updated_by, updated_at = now()",
        city_id,
        service_code,
        price_minor,
        by,
    )


async def price_in(db: Conn, city_id: str, service_code: str, catalog_price_minor: int) -> int:
    """What a booking of the service in the city costs."""
    found = await db.fetchval(
        "SELECT price_minor FROM city_service_prices WHERE city_id = $1 AND service_code = $2",
        city_id,
        service_code,
    )
    return catalog_price_minor if found is None else int(found)

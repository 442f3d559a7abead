"""A small city with a seeded history, for the analytics tests (not a test module)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.stores import Stores
from seeding.history_load import HistoryReport, load_history
from seeding.load import seed_catalog

# East Futian, on the bundled road graph (the pages tests' square; this city is inactive,
# so no booking finds it by position).
AREA = {
    "type": "Polygon",
    "coordinates": [
        [
            [114.022, 22.525],
            [114.038, 22.525],
            [114.038, 22.548],
            [114.022, 22.548],
            [114.022, 22.525],
        ]
    ],
}


@dataclass(frozen=True, slots=True)
class SeededCity:
    """The city, its history's report, and the range of days it covers."""

    city_id: str
    report: HistoryReport
    first_day: date
    last_day: date


async def seed_city(stores: Stores, city_id: str, *, orders: int, days: int) -> SeededCity:
    """A city (inactive, so no other test books in it) with ``orders`` over ``days`` days
    ending the day before yesterday (clear of the refresh's 5-minute overlap)."""
    city = catalog_service.build_city(
        id=city_id,
        name_zh="数据城",
        name_en="Analytics city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=AREA,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    await stores.pool.execute("UPDATE cities SET active = false WHERE id = $1", city_id)
    async with stores.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('doorstep-seed'))")
        await seed_catalog(conn)
    end_day = date.today() - timedelta(days=1)
    report = await load_history(
        stores, city_id=city_id, orders=orders, days=days, seed=3, end_day=end_day
    )
    return SeededCity(city_id, report, report.first_day, report.last_day)

"""The server's learned ETA range on real PostgreSQL and Redis: arrivals widen or narrow it,
every process sees them, a trip counts once, and a lost Redis is rebuilt from the orders."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity
from tracking.eta import EtaParams, eta_range
from tracking.eta_store import EtaStore

PARAMS = EtaParams()
BASE_S = 850.0  # a 14-minute trip: the middle of its band
ZONE = ZoneInfo("Asia/Shanghai")


def at_hour(hour: int) -> datetime:
    """Yesterday at ``hour`` in the city's time zone (any day: only the hour matters)."""
    day = datetime.now(ZONE).date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, 10, tzinfo=ZONE)


def ms(t: datetime) -> int:
    """Epoch milliseconds."""
    return int(t.timestamp() * 1000)


def store(stores: Stores) -> EtaStore:
    """A fresh EtaStore on the test's stores, as a server process builds one."""
    return EtaStore(stores.pool, stores.redis, stores.keys, PARAMS)


async def p90_at(eta: EtaStore, city: str, hour: int) -> float:
    """The p90 the server shows at ``hour`` for a 14-minute road ETA."""
    await eta.graph_for(city)
    return eta_range(BASE_S, eta.stats_for(city, ms(at_hour(hour))), PARAMS).p90_s


async def test_slow_arrivals_widen_the_p90_and_fast_ones_narrow_it(
    stores: Stores, engine_city: EngineCity
) -> None:
    """Trips 2.2-2.6x as slow as predicted at 08:00 raise that hour's p90 above the prior's
    (to > 2.4x the road ETA); trips on time at 14:00 bring that hour's below 1.3x."""
    eta, city, rng = store(stores), engine_city.id, random.Random(3)
    prior = await p90_at(eta, city, 8)
    assert prior == await p90_at(eta, city, 14)
    order = 10_000_000 + rng.randrange(10**9)  # the learned marker is per order id
    for i in range(60):
        await eta.learn(city, order + i, ms(at_hour(8)), BASE_S * rng.uniform(2.2, 2.6), BASE_S)
        await eta.learn(
            city, order + 100 + i, ms(at_hour(14)), BASE_S * rng.uniform(0.95, 1.05), BASE_S
        )
    rush, calm = await p90_at(eta, city, 8), await p90_at(eta, city, 14)
    assert rush > 2.4 * BASE_S
    assert rush > prior
    assert calm < 1.3 * BASE_S < prior
    assert eta.stats_for(city, ms(at_hour(8))).trips == 60
    # Another process learns of them when it reads the city (and every refresh_s after).
    other = store(stores)
    assert await p90_at(other, city, 8) == rush
    assert await p90_at(other, city, 14) == calm


async def test_a_trip_delivered_twice_counts_once(stores: Stores, engine_city: EngineCity) -> None:
    """The arrival event may be handled again: the order's trip is added once."""
    eta, city = store(stores), engine_city.id
    order = 20_000_000 + random.randrange(10**9)
    for _ in range(3):
        cal = await eta.learn(city, order, ms(at_hour(11)), 1.5 * BASE_S, BASE_S)
    assert cal.trips == 1


async def test_a_lost_redis_is_rebuilt_from_the_orders(
    stores: Stores,
    engine_city: EngineCity,
    make_user: MakeUser,
    worker_account: Account,
    instant_service: str,
    client: httpx.AsyncClient,
) -> None:
    """With the city's learned buckets gone from Redis, the next read rebuilds them from
    PostgreSQL's arrived orders: the p90 at their hour is what those trips say again."""
    city = engine_city.id
    customer = await make_user("customer")
    for i in range(30):
        departed = at_hour(19) + timedelta(minutes=i)
        await stores.pool.execute(
            "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
            "duration_min, price_minor, currency, worker_id, start_code, en_route_at, "
            "arrived_at, eta_predicted_s) VALUES ($1, $2, $3, 'instant', 'arrived', $4, $5, "
            "60, 10000, 'CNY', $6, '123456', $7, $8, $9)",
            city,
            customer.id,
            instant_service,
            *engine_city.here,
            worker_account.id,
            departed.astimezone(UTC),
            (departed + timedelta(seconds=2.5 * BASE_S)).astimezone(UTC),
            BASE_S,
        )
    await stores.redis.delete(stores.keys.eta_buckets(city), stores.keys.eta_layout(city))
    eta = store(stores)
    rebuilt = await p90_at(eta, city, 19)
    assert rebuilt > 2.4 * BASE_S
    assert eta.stats_for(city, ms(at_hour(19))).trips == 30
    assert await stores.redis.exists(stores.keys.eta_layout(city))

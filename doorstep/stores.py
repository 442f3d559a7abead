"""The open connections to PostgreSQL and Redis that every request uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from doorstep.db import create_pool, redact
from doorstep.keys import Keys
from doorstep.settings import Settings

log = logging.getLogger("doorstep.stores")

# What a store call raises when PostgreSQL or Redis is down or unreachable: the request
# could not be served now, through no fault of the caller (503, or websocket close 1013).
STORE_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,  # PostgreSQL is full: try again, not a 500
)


@dataclass(frozen=True, slots=True)
class Stores:
    """A PostgreSQL pool, a Redis client and the key builder for this deployment."""

    pool: asyncpg.Pool[Any]
    redis: Redis
    keys: Keys
    redis_url: str  # for connections of its own (tracking's ingest pipe)

    @classmethod
    async def open(cls, settings: Settings) -> Stores:
        """Connect to the stores named in ``settings`` (URLs must be set by now)."""
        if settings.database_url is None or settings.redis_url is None:
            raise ValueError("Stores.open needs both URLs; start the embedded stores first")
        from privacy import crypto  # personal data at rest: the process's keys

        crypto.install(crypto.DataKeys.of(settings))
        pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        # A blocking pool: under a burst (thousands of sockets connecting at once) a
        # request waits for a connection instead of failing with MaxConnectionsError.
        # After Redis restarts, every pooled connection is dead, and the first command on
        # each would fail ("Connection closed by server"): a command that could not be
        # sent is retried on a new connection, twice at most, a few ms apart. Only
        # connection errors are retried, never timeouts (the command may have run).
        pool_ = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_pool_max,
            timeout=10,
            retry=Retry(
                ExponentialBackoff(cap=0.1, base=0.01), 2, supported_errors=(RedisConnectionError,)
            ),
        )
        redis = Redis.from_pool(pool_)  # owns the pool: aclose() closes it
        log.info(
            "using PostgreSQL at %s and Redis at %s",
            redact(settings.database_url),
            redact(settings.redis_url),
        )
        return cls(
            pool=pool, redis=redis, keys=Keys(settings.redis_prefix), redis_url=settings.redis_url
        )

    async def close(self) -> None:
        """Close both connections."""
        await self.redis.aclose()
        await self.pool.close()

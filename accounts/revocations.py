"""Which access tokens are void: kept in PostgreSQL, cached in Redis, failing closed.

Two things void an access token before it expires: a logout (its ``jti`` is revoked)
and a freeze or close of its account (the user's token version is bumped; tokens carry
the version they were issued with). PostgreSQL holds both (``revoked_access_tokens``,
``users.token_version``/``token_version_until``, migration 0013); Redis caches them
(``revoked:<jti>`` until the token's expiry, ``token-version:<user>`` until every older
token has expired) beside a marker, ``auth-cache``, whose value is the run id of the
Redis server the cache was loaded into.

Issue 14: with only Redis holding them, a FLUSHALL brought every revoked token back.
Now the cache is trusted only while the marker holds the current run id:

- marker missing (Redis lost its data, or someone deleted the keys) or from another run
  (Redis restarted from an older snapshot, or failed over to a replica): reload from
  PostgreSQL — the revocations not yet expired and the recent version bumps, written in
  one MULTI with the marker last — then answer this check from PostgreSQL;
- Redis does not answer: answer from PostgreSQL (one query per check while it is down);
- PostgreSQL does not answer either: the store error propagates (HTTP 503, websocket
  close 1013). Nothing is ever accepted without one of the two stores saying so.

Writes (a logout, a freeze) go to Redis *inside* the PostgreSQL transaction, before its
commit: a Redis that cannot take the write aborts the action (503, nothing changed), so
PostgreSQL never holds a revocation that a live, loaded cache lacks. They are written to
Redis once more after the commit, for the case where Redis lost its data and a reload
read PostgreSQL between the first write and the commit. Reload writes never lower a
version (a Lua "set if greater"), so a reload racing a freeze cannot undo it.

The cache needs Redis to keep keys until their TTL (``maxmemory-policy noeviction``,
Redis's default; docs/operations.md): an evicted ``revoked:`` key under a live marker
would be a revoked token accepted.

What a check costs (every authenticated request, and a socket's open):
one MGET of three keys (marker, ``revoked:<jti>``, ``token-version:<user>``) — the
same single round trip as before this cache had a marker; plus, at most once a second
per process, an ``INFO server`` to learn Redis's run id. No PostgreSQL query while the
cache is valid. Measured in benchmarks/orders.py (auth is part of every request there).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from accounts import store
from accounts.errors import InvalidToken
from accounts.tokens import Claims
from doorstep.db import Conn
from doorstep.stores import Stores

log = logging.getLogger("doorstep.accounts")

RUN_ID_TTL_S = 1.0  # how long a process trusts the Redis run id it last read
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

# Set a version only if it is higher than the cached one (versions only grow).
_SET_MAX = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
return 1
"""


@dataclass
class _Process:
    """What one process knows about one Redis: its run id, and a reload lock."""

    run_id: str = ""
    read_at: float = float("-inf")
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_PROCESS: weakref.WeakKeyDictionary[Redis, _Process] = weakref.WeakKeyDictionary()


def _process(redis: Redis) -> _Process:
    found = _PROCESS.get(redis)
    if found is None:
        found = _PROCESS[redis] = _Process()
    return found


async def _run_id(redis: Redis, *, fresh: bool = False) -> str:
    """The Redis server's run id (changes on every restart); cached for a second."""
    proc = _process(redis)
    if fresh or time.monotonic() - proc.read_at > RUN_ID_TTL_S:
        try:
            info = await redis.info("server")
            proc.run_id = str(info.get("run_id", "unknown"))
        except ResponseError:  # INFO refused (a managed Redis's ACL): markers only
            proc.run_id = "unknown"
        proc.read_at = time.monotonic()
    return proc.run_id


def _decode(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _exat(at: datetime | int) -> int:
    return at if isinstance(at, int) else int(at.timestamp())


def _judge(claims: Claims, revoked: bool, version: int | None) -> None:
    if revoked:
        raise InvalidToken("token was revoked")
    if version is not None and claims.version != version:
        raise InvalidToken("token was issued before the account was frozen or closed")


async def check(stores: Stores, claims: Claims) -> None:
    """Refuse ``claims`` whose token was revoked or issued before a freeze or close."""
    redis, keys = stores.redis, stores.keys
    try:
        run_id = await _run_id(redis)
        marker, revoked, version = await redis.mget(
            keys.auth_cache(), keys.revoked_token(claims.jti), keys.token_version(claims.user_id)
        )
        if _decode(marker) != run_id:
            run_id = await _run_id(redis, fresh=True)  # restarted since we last asked?
            if _decode(marker) != run_id:
                await reload(stores)
                raise _AskPostgres
    except (RedisError, OSError, TimeoutError, _AskPostgres) as e:
        if not isinstance(e, _AskPostgres):
            log.warning("token check from PostgreSQL, Redis does not answer: %s", e)
        pg_version, pg_revoked = await store.token_state(stores.pool, claims.user_id, claims.jti)
        _judge(claims, pg_revoked, pg_version)
        return
    _judge(claims, revoked is not None, None if version is None else int(version))


class _AskPostgres(Exception):
    """The cache was just reloaded: answer this check from PostgreSQL."""


async def reload(stores: Stores) -> None:
    """Load every live revocation and recent version bump from PostgreSQL into Redis,
    then set the marker (one MULTI). Once per process at a time; skipped if another
    coroutine of this process reloaded meanwhile."""
    redis, keys = stores.redis, stores.keys
    proc = _process(redis)
    async with proc.reload_lock:
        run_id = await _run_id(redis, fresh=True)
        if _decode(await redis.get(keys.auth_cache())) == run_id:
            return
        now = datetime.now(UTC)
        revocations = await store.live_revocations(stores.pool, now)
        versions = await store.recent_version_bumps(stores.pool, now)
        async with redis.pipeline(transaction=True) as pipe:
            for jti, expires_at in revocations:
                pipe.set(keys.revoked_token(jti), b"1", exat=_exat(expires_at))
            for user_id, version, until in versions:
                pipe.eval(_SET_MAX, 1, keys.token_version(user_id), version, _exat(until))
            pipe.set(keys.auth_cache(), run_id)
            await pipe.execute()
        log.warning(
            "security cache reloaded from PostgreSQL into Redis (run %s): "
            "%d revoked tokens, %d token versions",
            run_id[:8],
            len(revocations),
            len(versions),
        )


async def _cache_revocation(stores: Stores, jti: str, expires_at: int) -> None:
    await stores.redis.set(stores.keys.revoked_token(jti), b"1", exat=expires_at)


async def _cache_version(stores: Stores, user_id: int, version: int, until: int) -> None:
    await stores.redis.eval(_SET_MAX, 1, stores.keys.token_version(user_id), version, until)


async def revoke_token(stores: Stores, claims: Claims, *, now: int) -> None:
    """Void one access token (logout) in PostgreSQL and in the cache."""
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.insert_revocation(
            conn,
            jti=claims.jti,
            user_id=claims.user_id,
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
            revoked_at=datetime.fromtimestamp(now, UTC),
        )
        await _cache_revocation(stores, claims.jti, claims.expires_at)  # before the commit
    await _after_commit(_cache_revocation(stores, claims.jti, claims.expires_at))


async def bump_version(conn: Conn, stores: Stores, user_id: int, *, now: int, ttl_s: int) -> int:
    """Void every token of a user (freeze, close), inside the caller's transaction: the
    new version goes to Redis before the caller commits. Call :func:`after_bump` after."""
    until = now + ttl_s
    version = await store.bump_token_version(conn, user_id, datetime.fromtimestamp(until, UTC))
    await _cache_version(stores, user_id, version, until)
    return version


async def after_bump(stores: Stores, user_id: int, version: int, *, now: int, ttl_s: int) -> None:
    """The second write of a version bump, after the commit (see the module docstring)."""
    await _after_commit(_cache_version(stores, user_id, version, now + ttl_s))


async def _after_commit(write: Coroutine[Any, Any, None]) -> None:
    try:
        await write
    except REDIS_ERRORS as e:  # committed: the first write (or a reload) has it
        log.warning("security cache: the write after commit failed: %s", e)

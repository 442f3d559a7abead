"""Revocations, token versions and login limits survive the loss of Redis (issue 14 item 1).

The app under test here has a Redis key prefix of its own, under the run's prefix, so
that "Redis lost its data" is simulated by deleting every key under that prefix (never
FLUSHALL: other test runs share this Redis) without touching the rest of the suite.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from accounts import revocations, store
from accounts.errors import InvalidToken
from accounts.tokens import verify
from api.app import create_app
from api.serving import uvicorn_options
from doorstep.embedded import free_port
from doorstep.keys import Keys
from doorstep.settings import Settings
from doorstep.stores import STORE_ERRORS, Stores
from tests.helpers import PASSWORD, Account, MakeUser, from_network, new_phone
from tests.live import closed_code, recv


def _now() -> int:
    return int(time.time())


def _ts(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def lose_redis(stores: Stores) -> int:
    """Delete every key under ``stores``' prefix, as a Redis that lost its data; how many."""
    deleted = 0
    async for key in stores.redis.scan_iter(match=f"{stores.keys.prefix}*", count=1000):
        deleted += await stores.redis.delete(key)
    return deleted


@pytest.fixture(scope="module")
async def loss_app(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, Stores]]:
    """(address, stores) of an app on its own uvicorn server and its own key prefix."""
    params = tmp_path_factory.mktemp("loss") / "params.toml"
    params.write_text("[gc]\nfreeze = false\n[engine]\nenabled = false\n")
    own = replace(
        settings,
        redis_prefix=f"{settings.redis_prefix}loss-{secrets.token_hex(3)}:",
        params_file=Path(params),
    )
    stores = await Stores.open(own)
    app = create_app(own, stores)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=port, log_level="warning"))
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}", stores
    finally:
        server.should_exit = True
        await task
        await lose_redis(stores)
        await stores.close()


@pytest.fixture
async def http(loss_app: tuple[str, Stores]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the loss app."""
    async with httpx.AsyncClient(base_url=f"http://{loss_app[0]}", timeout=30) as c:
        yield c


async def _freeze(http: httpx.AsyncClient, admin: Account, user_id: int) -> None:
    r = await http.put(f"/v1/users/{user_id}/status", headers=admin.auth, json={"status": "frozen"})
    assert r.status_code == 200, r.text


async def test_a_logged_out_token_stays_out_after_redis_loses_its_data(
    http: httpx.AsyncClient, loss_app: tuple[str, Stores], make_user: MakeUser
) -> None:
    """Logout, then every key of the app deleted from Redis: the old access token still gets 401."""
    user = await make_user()
    assert (await http.post("/v1/auth/logout", headers=user.auth, json={})).status_code == 204
    assert (await http.get("/v1/me", headers=user.auth)).status_code == 401
    assert await lose_redis(loss_app[1]) > 0
    r = await http.get("/v1/me", headers=user.auth)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_token"
    assert (await http.get("/v1/me", headers=user.auth)).status_code == 401  # from the cache


async def test_a_frozen_dispatcher_stays_out_after_redis_loses_its_data(
    http: httpx.AsyncClient, loss_app: tuple[str, Stores], make_user: MakeUser, admin: Account
) -> None:
    """A frozen dispatcher cannot list users (and their phones) once Redis has lost its data."""
    dispatcher = await make_user("dispatcher")
    assert (await http.get("/v1/users", headers=dispatcher.auth)).status_code == 200
    await _freeze(http, admin, dispatcher.id)
    assert (await http.get("/v1/users", headers=dispatcher.auth)).status_code == 401
    await lose_redis(loss_app[1])
    r = await http.get("/v1/users", headers=dispatcher.auth)
    assert r.status_code == 401, r.text
    assert "frozen" in r.json()["error"]["message"]
    assert (await http.get("/v1/me", headers=admin.auth)).status_code == 200  # others fine


async def test_a_frozen_workers_socket_is_refused_after_redis_loses_its_data(
    http: httpx.AsyncClient,
    loss_app: tuple[str, Stores],
    worker_account: Account,
    admin: Account,
) -> None:
    """A frozen worker's socket is refused with 4401 after Redis lost its data."""
    await _freeze(http, admin, worker_account.id)
    await lose_redis(loss_app[1])
    ws = await connect(f"ws://{loss_app[0]}/v1/ws/worker", additional_headers=worker_account.auth)
    error = await recv(ws)
    assert (error["type"], error["code"]) == ("error", "invalid_token")
    assert await closed_code(ws) == 4401


async def test_a_frozen_dispatchers_feed_is_refused_after_redis_loses_its_data(
    http: httpx.AsyncClient,
    loss_app: tuple[str, Stores],
    make_user: MakeUser,
    admin: Account,
    live_city: str,
) -> None:
    """The city feed refuses a frozen dispatcher's token after Redis lost its data."""
    dispatcher = await make_user("dispatcher")
    await _freeze(http, admin, dispatcher.id)
    await lose_redis(loss_app[1])
    ws = await connect(
        f"ws://{loss_app[0]}/v1/ws/cities/{live_city}/feed", additional_headers=dispatcher.auth
    )
    error = await recv(ws)
    assert (error["type"], error["code"]) == ("error", "invalid_token")
    assert await closed_code(ws) == 4401


async def test_login_slow_down_survives_redis_losing_its_data(
    http: httpx.AsyncClient, loss_app: tuple[str, Stores], make_user: MakeUser
) -> None:
    """A phone+network made to wait by failed logins still waits after Redis lost its data."""
    user = await make_user()
    net = from_network()
    body = {"phone": user.phone, "password": "wrong password 1"}
    statuses = [
        (await http.post("/v1/auth/login", json=body, headers=net)).status_code for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    await lose_redis(loss_app[1])
    r = await http.post("/v1/auth/login", json=body | {"password": PASSWORD}, headers=net)
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1


async def test_the_cache_is_reloaded_with_a_marker_and_then_used(
    loss_app: tuple[str, Stores], make_user: MakeUser, settings: Settings
) -> None:
    """After a loss one check reloads the cache (marker = Redis run id); later checks use it, not PostgreSQL."""
    stores = loss_app[1]
    user = await make_user()
    claims = verify(user.token, key=settings.secret_key, now=_now(), typ="access")
    await lose_redis(stores)
    await revocations.check(stores, claims)  # reloads, answers from PostgreSQL
    run_id = (await stores.redis.info("server"))["run_id"]
    assert await stores.redis.get(stores.keys.auth_cache()) == run_id.encode()
    # A revocation PostgreSQL has but this cache lacks (as only a bug could make) is not
    # seen while the cache is valid: proof that a valid cache costs no PostgreSQL query.
    async with stores.pool.acquire() as conn:
        await store.insert_revocation(
            conn,
            jti=claims.jti,
            user_id=claims.user_id,
            expires_at=_ts(claims.expires_at),
            revoked_at=_ts(_now()),
        )
    await revocations.check(stores, claims)
    # A marker from another Redis run (restarted from an older snapshot) is not trusted.
    await stores.redis.set(stores.keys.auth_cache(), "an-older-run")
    with pytest.raises(InvalidToken):
        await revocations.check(stores, claims)
    assert await stores.redis.get(stores.keys.revoked_token(claims.jti)) == b"1"


async def test_with_redis_unreachable_tokens_are_checked_in_postgresql(
    stores: Stores, make_user: MakeUser, settings: Settings
) -> None:
    """With no Redis answering, a revoked token is refused and a good one accepted, from PostgreSQL."""
    good, revoked = await make_user(), await make_user()
    good_claims = verify(good.token, key=settings.secret_key, now=_now(), typ="access")
    bad_claims = verify(revoked.token, key=settings.secret_key, now=_now(), typ="access")
    await revocations.revoke_token(stores, bad_claims, now=_now())
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    no_redis = replace(stores, redis=dead, keys=Keys(f"{stores.keys.prefix}dead:"))
    try:
        await revocations.check(no_redis, good_claims)
        with pytest.raises(InvalidToken):
            await revocations.check(no_redis, bad_claims)
    finally:
        await dead.aclose()


async def test_with_neither_store_answering_a_token_is_refused(
    stores: Stores, make_user: MakeUser, settings: Settings, database_url: str
) -> None:
    """With Redis and PostgreSQL both unreachable, checking a valid token raises a store error, never passes."""
    user = await make_user()
    claims = verify(user.token, key=settings.secret_key, now=_now(), typ="access")
    dead_redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await pool.close()  # a pool that cannot give a connection
    nothing = replace(stores, redis=dead_redis, pool=pool)
    try:
        with pytest.raises(STORE_ERRORS):
            await revocations.check(nothing, claims)
    finally:
        await dead_redis.aclose()


async def test_a_logout_redis_cannot_take_changes_nothing(
    stores: Stores, make_user: MakeUser, settings: Settings
) -> None:
    """A logout while Redis is unreachable fails as a whole: PostgreSQL records no revocation either."""
    user = await make_user()
    claims = verify(user.token, key=settings.secret_key, now=_now(), typ="access")
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(STORE_ERRORS):
            await revocations.revoke_token(replace(stores, redis=dead), claims, now=_now())
    finally:
        await dead.aclose()
    assert await store.token_state(stores.pool, claims.user_id, claims.jti) == (0, False)


async def test_registration_survives_as_a_limit_in_postgresql(
    http: httpx.AsyncClient, loss_app: tuple[str, Stores]
) -> None:
    """Registrations counted per network before a Redis loss still count after it."""
    net = from_network()
    for _ in range(10):
        r = await http.post(
            "/v1/auth/register",
            json={"phone": new_phone(), "password": PASSWORD, "name": "注册"},
            headers=net,
        )
        assert r.status_code == 202, r.text
    await lose_redis(loss_app[1])
    r = await http.post(
        "/v1/auth/register",
        json={"phone": new_phone(), "password": PASSWORD, "name": "注册"},
        headers=net,
    )
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) > 0

"""Losing Redis loses no order and no archived trail; the live index refills from the next fixes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from api.app import create_app
from api.serving import uvicorn_options
from doorstep.embedded import EmbeddedServer, free_port, start_valkey
from doorstep.settings import Settings
from doorstep.stores import Stores
from tests.helpers import Account, stop_server
from tests.live import DEST, next_of, open_worker, recv, send_acked
from tracking.archive import TrailArchiver


@pytest.fixture
async def own_redis(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Settings, Stores, list[Any]]]:
    """A Valkey of our own to kill, with an app on its own uvicorn server using it."""
    port = free_port()
    servers: list[EmbeddedServer] = [start_valkey(tmp_path / "first", port=port)]
    own = replace(settings, redis_url=f"redis://127.0.0.1:{port}/0")
    stores = await Stores.open(own)
    app = create_app(own, stores)
    http_port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, **uvicorn_options(host="127.0.0.1", port=http_port, log_level="warning")
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield own, stores, [f"127.0.0.1:{http_port}", app, servers, port, tmp_path]
    finally:
        await stop_server(server, task)
        await stores.close()
        for s in servers:
            s.stop()


def fix(seq: int, now: int) -> str:
    """A fix frame near the test destination."""
    return orjson.dumps(
        {
            "type": "fix",
            "seq": seq,
            "ts_ms": now + seq * 1000,
            "accuracy_m": 5.0,
            "lat": DEST[0] + seq * 1e-5,
            "lng": DEST[1],
        }
    ).decode()


async def test_losing_redis_loses_no_trail_and_the_index_refills(
    own_redis: tuple[Settings, Stores, list[Any]], worker_account: Account, live_city: str
) -> None:
    """Redis dies and comes back empty twice: unacked fixes are resent, archived once, resume survives."""
    _, stores, (address, app, servers, port, tmp) = own_redis
    keys, w = stores.keys, str(worker_account.id)
    worker, hello = await open_worker(address, worker_account)
    now = int(time.time() * 1000)
    assert (await send_acked(worker, orjson.loads(fix(1, now))))["seq"] == 1
    assert (await stores.redis.geopos(keys.geo(live_city, "available"), w))[0] is not None

    servers[0].stop()  # Redis is gone, with everything it held
    await worker.send(fix(2, now))
    error = await recv(worker)
    assert (error["type"], error["code"]) == ("error", "unavailable")  # not acked: the app keeps it

    servers.append(start_valkey(tmp / "second", port=port))  # back, empty
    assert await stores.redis.geopos(keys.geo(live_city, "available"), w) == [None]
    await worker.send(fix(2, now))  # the app resends what was not acked
    await worker.send(fix(3, now))
    ack = await next_of(worker, "ack")
    if ack["seq"] == 2:  # written in two batches: an ack each (else one covers both)
        ack = await next_of(worker, "ack")
    assert ack["seq"] == 3
    assert (await stores.redis.geopos(keys.geo(live_city, "available"), w))[0] is not None
    await worker.close()

    await app.state.tracking.archiver.flush()
    seqs = [
        r["seq"]
        for r in await stores.pool.fetch(
            "SELECT seq FROM trail_points WHERE worker_id = $1 ORDER BY seq", worker_account.id
        )
    ]
    assert seqs == [1, 2, 3]  # every fix archived exactly once
    servers[1].stop()  # lose Redis once more: the resume point must come from the archive
    servers.append(start_valkey(tmp / "third", port=port))
    worker, hello = await open_worker(address, worker_account)
    assert hello["resume_seq"] == 3
    await worker.send(fix(3, now))  # resent after the loss: not archived twice
    assert (await recv(worker))["rejected"] == [{"seq": 3, "reason": "duplicate"}]
    await worker.close()


async def test_pooled_connections_survive_a_redis_restart(
    settings: Settings, tmp_path: Path
) -> None:
    """After Redis restarts, commands on every stale pooled connection succeed (retried once)."""
    port = free_port()
    first = start_valkey(tmp_path / "first", port=port)
    stores = await Stores.open(replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))
    second: EmbeddedServer | None = None
    try:
        # Eight connections in the pool at once, each used and returned.
        await asyncio.gather(*(stores.redis.blpop(f"k{i}", 0.2) for i in range(8)))
        first.stop()
        second = start_valkey(tmp_path / "second", port=port)
        results = await asyncio.gather(
            *(stores.redis.blpop(f"k{i}", 0.2) for i in range(8)), return_exceptions=True
        )
        assert results == [None] * 8
        assert await stores.redis.set("after", "restart") is True
    finally:
        await stores.close()
        first.stop()
        if second is not None:
            second.stop()


async def test_with_redis_gone_requests_get_503_not_500(
    own_redis: tuple[Settings, Stores, list[Any]], worker_account: Account
) -> None:
    """While Redis is down a request that needs it (a logout) answers 503 unavailable with Retry-After and works again after; tokens are checked in PostgreSQL meanwhile."""
    _, _, (address, _, servers, port, tmp) = own_redis
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        assert (await http.get("/v1/me", headers=worker_account.auth)).status_code == 200
        servers[0].stop()
        r = await http.post("/v1/auth/logout", headers=worker_account.auth, json={})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
        assert r.headers["retry-after"] == "5"
        # The token check falls back to PostgreSQL (accounts/revocations.py): reads work.
        assert (await http.get("/v1/me", headers=worker_account.auth)).status_code == 200
        servers.append(start_valkey(tmp / "second", port=port))
        r = await http.post("/v1/auth/logout", headers=worker_account.auth, json={})
        assert r.status_code == 204, r.text
        assert (await http.get("/v1/me", headers=worker_account.auth)).status_code == 401


async def test_the_archive_resume_point_counts_only_fixes_that_could_come_again(
    live_app: tuple[str, Any], stores: Stores, worker_account: Account, live_city: str
) -> None:
    """With no state in Redis, resume_seq is the highest archived seq among fixes young enough to be taken again."""
    tracking = live_app[1].state.tracking
    now = int(time.time() * 1000)
    max_age = tracking.fix_params.max_age_ms
    row = (worker_account.id, 0, 22.5, 114.0, 5.0, None, None, 0, False, now)
    older = (row[0], now - max_age - 60_000, *row[2:7], 9, *row[8:])  # refused as too_old now
    newer = (row[0], now - max_age + 60_000, *row[2:7], 4, *row[8:])
    archiver = TrailArchiver(stores.pool)
    archiver.add([older])
    await archiver.flush()
    assert await tracking.resume_point(live_city, worker_account.id) == (0, "available")
    archiver.add([newer])
    await archiver.flush()
    assert await tracking.resume_point(live_city, worker_account.id) == (4, "available")

"""A change committed while Redis is down is answered as done, and its watchers are told
when Redis is back (issue 14, item 5: a committed cancel was answered 503 and nobody was
told)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import connect

from accounts import service as accounts
from api.app import create_app
from api.serving import uvicorn_options
from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.db import with_database
from doorstep.embedded import EmbeddedServer, free_port, start_valkey
from doorstep.migrate import migrate
from doorstep.settings import Settings
from doorstep.stores import Stores
from tests.conftest import RUN_ID
from tests.helpers import PASSWORD, SQUARE, new_phone
from tests.live import make_generalist

PARAMS = (
    "[engine]\nenabled = false\n[gc]\nfreeze = false\n"
    "[events]\nbackoff_base_s = 0.2\nbackoff_max_s = 1.0\npoll_s = 0.2\n"
)


@pytest.fixture
async def deployment(
    settings: Settings, database_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """A deployment of its own: its database, a Valkey to kill, an app on uvicorn."""
    admin_url = with_database(database_url, "postgres")
    name = f"doorstep_test_{RUN_ID}_outage_{secrets.token_hex(2)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    db_url = with_database(database_url, name)
    conn = await asyncpg.connect(db_url)
    await migrate(conn)
    await conn.close()
    port = free_port()
    servers: list[EmbeddedServer] = [start_valkey(tmp_path / "valkey", port=port)]
    params = tmp_path / "params.toml"
    params.write_text(PARAMS)
    own = replace(
        settings,
        redis_url=f"redis://127.0.0.1:{port}/0",
        database_url=db_url,
        params_file=params,
    )
    stores = await Stores.open(own)
    city = catalog_service.build_city(
        id="outage",
        name_zh="停电城",
        name_en="Outage city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    await make_generalist(stores, city.id)  # someone can serve it: instant bookings need one
    await stores.pool.execute(
        "INSERT INTO categories (code, name_zh, name_en) VALUES ('outage_cat', '保洁', 'Cleaning')"
    )
    await stores.pool.execute(
        "INSERT INTO services (code, category, name_zh, name_en, price_minor, currency, "
        "duration_min, instant, scheduled) VALUES ('outage_svc', 'outage_cat', '保洁', 'Cleaning', 15000, 'CNY', "
        "120, true, true)"
    )
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
        yield {
            "address": f"127.0.0.1:{http_port}",
            "app": app,
            "stores": stores,
            "servers": servers,
            "valkey_port": port,
            "tmp": tmp_path,
        }
    finally:
        server.should_exit = True
        await task
        await stores.close()
        for s in servers:
            s.stop()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_a_cancel_committed_with_redis_down_is_done_and_watchers_hear_it_later(
    deployment: dict[str, Any],
) -> None:
    """Redis killed: the cancel answers 200 (the database holds it), a retry says it is
    already cancelled, and the order socket gets the cancelled status once Redis is back."""
    stores: Stores = deployment["stores"]
    address = deployment["address"]
    phone = new_phone()
    await accounts.create_user(
        stores, phone=phone, name="顾客", password=PASSWORD, roles=["customer"]
    )
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
        r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await client.post(
            "/v1/orders",
            headers=auth,
            json={"service_code": "outage_svc", "lat": 22.53, "lng": 114.01},
        )
        assert r.status_code == 201, r.text
        order = r.json()
        watcher = await connect(
            f"ws://{address}/v1/ws/orders/{order['id']}", additional_headers=auth
        )
        snapshot = orjson.loads(await watcher.recv())
        assert snapshot["order"]["status"] == "confirmed"

        deployment["servers"][0].stop()  # Redis is gone
        r = await client.post(
            f"/v1/orders/{order['id']}/cancel", headers=auth, json={"reason": "plans changed"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        status = await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"])
        assert status == "cancelled"
        again = await client.post(
            f"/v1/orders/{order['id']}/cancel", headers=auth, json={"reason": "again"}
        )
        assert again.status_code == 409  # it is cancelled: the first answer was the truth

        deployment["servers"].append(
            start_valkey(deployment["tmp"] / "valkey", port=deployment["valkey_port"])
        )
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, "the watcher never heard of the cancellation"
            message = orjson.loads(await asyncio.wait_for(watcher.recv(), left))
            if message["type"] == "status":
                assert message["status"] == "cancelled"
                assert message["version"] > snapshot["order"]["version"]
                break
        await watcher.close()


async def test_an_override_committed_with_redis_down_is_answered_as_done(
    deployment: dict[str, Any],
) -> None:
    """Redis killed: a dispatcher's pin answers 200 and the database holds it and its
    audit row (the feed line after the commit is lost, not the answer)."""
    stores: Stores = deployment["stores"]
    address = deployment["address"]
    customer, dispatcher = new_phone(), new_phone()
    await accounts.create_user(
        stores, phone=customer, name="顾客", password=PASSWORD, roles=["customer"]
    )
    await accounts.create_user(
        stores, phone=dispatcher, name="调度", password=PASSWORD, roles=["dispatcher"]
    )
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
        tokens = {}
        for phone in (customer, dispatcher):
            r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[phone] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await client.post(
            "/v1/orders",
            headers=tokens[customer],
            json={"service_code": "outage_svc", "lat": 22.53, "lng": 114.01},
        )
        assert r.status_code == 201, r.text
        order = r.json()

        deployment["servers"][0].stop()  # Redis is gone
        r = await client.post(
            f"/v1/orders/{order['id']}/pin",
            headers=tokens[dispatcher],
            json={"pinned": True, "reason": "customer asked for this slot"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["order"]["pinned"] is True
        pinned = await stores.pool.fetchval("SELECT pinned FROM orders WHERE id = $1", order["id"])
        assert pinned is True
        audits = await stores.pool.fetchval(
            "SELECT count(*) FROM overrides WHERE order_id = $1 AND action = 'pin'",
            order["id"],
        )
        assert audits == 1


async def test_worker_sockets_are_told_to_resync_after_redis_comes_back(
    deployment: dict[str, Any],
) -> None:
    """Redis restarted under a server: pushes to its worker sockets may have been lost on
    its control channel, so each connected worker gets {"type": "resync"} once it is back."""
    from tests.helpers import Account
    from tests.live import open_worker
    from workforce import store as workforce_store

    stores: Stores = deployment["stores"]
    address = deployment["address"]
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id="outage",
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
        r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
    worker = Account(user.id, phone, user.roles, body["access_token"], body["refresh_token"])
    ws, _hello = await open_worker(address, worker)
    deployment["servers"][0].stop()  # Redis is gone
    await asyncio.sleep(0.5)
    deployment["servers"].append(
        start_valkey(deployment["tmp"] / "valkey", port=deployment["valkey_port"])
    )
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "the worker socket was never told to resync"
        message = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        if message["type"] == "resync":
            break
    await ws.close()

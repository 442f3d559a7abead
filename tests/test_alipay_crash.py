"""An Alipay notification is applied exactly once even when the server handling it is
killed with SIGKILL between its arrival and its acknowledgement: Alipay's redelivery (the
same notify_id) brings it again to the restarted server. The server runs with the
production configuration (DOORSTEP_ALIPAY_GATEWAY, app id, seller id and keys in the
environment) against the sandbox, which lives in the test's process and so outlives it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest

from accounts import service as accounts
from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.db import with_database
from doorstep.embedded import free_port
from doorstep.migrate import migrate
from doorstep.settings import Settings
from doorstep.stores import Stores
from ledger import store as ledger_store
from payments.alipay_sandbox import AlipaySandbox, AlipaySandboxConfig, AlipaySandboxServer
from payments.alipay_sign import private_pem, public_pem
from tests.alipay_live import APP_ID, SELLER_ID, make_keys
from tests.conftest import RUN_ID
from tests.helpers import PASSWORD, SQUARE, new_phone
from tests.live import make_generalist
from tests.test_payments_crash import PARAMS, _start


@pytest.fixture(scope="module")
async def alipay_crash_db(database_url: str) -> AsyncIterator[str]:
    """A database of its own for the server that is killed."""
    admin_url = with_database(database_url, "postgres")
    name = f"doorstep_test_{RUN_ID}_alipaycrash"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(database_url, name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    yield url
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def test_kill_9_between_an_alipay_notifications_arrival_and_its_ack_applies_it_once(
    settings: Settings, alipay_crash_db: str, tmp_path: Path
) -> None:
    """The server verifies Alipay's notification and waits on the order's lock (held by the test); SIGKILLed there, it applied and answered nothing. Alipay sends the same notify_id again; the restarted server applies it once: one capture, the order confirmed, the invariants hold."""
    assert settings.redis_url is not None
    keys = make_keys()
    sandbox = AlipaySandbox(
        AlipaySandboxConfig(
            app_id=APP_ID,
            seller_id=SELLER_ID,
            app_public_key=keys.app.public_key(),
            alipay_private_key=keys.alipay,
            # Alipay's 4m, 10m, 10m, 1h, 2h, 6h, 15h, scaled: a restart fits in it.
            retry_schedule_s=(1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
        )
    )
    gateway = AlipaySandboxServer(sandbox, free_port())
    await gateway.start()
    port = free_port()
    params = tmp_path / "params.toml"
    params.write_text(PARAMS)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": alipay_crash_db,
        "DOORSTEP_SECRET_KEY": settings.secret_key,
        "DOORSTEP_REDIS_PREFIX": f"{settings.redis_prefix}alipaycrash:",
        "DOORSTEP_DATA_DIR": str(tmp_path / "data"),
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_LOG_LEVEL": "WARNING",
        "DOORSTEP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DOORSTEP_RATE_LIMIT_EXEMPT": "127.0.0.1",
        "DOORSTEP_ALIPAY_GATEWAY": sandbox.gateway_url,
        "DOORSTEP_ALIPAY_APP_ID": APP_ID,
        "DOORSTEP_ALIPAY_SELLER_ID": SELLER_ID,
        "DOORSTEP_ALIPAY_APP_PRIVATE_KEY": private_pem(keys.app),
        "DOORSTEP_ALIPAY_PUBLIC_KEY": public_pem(keys.alipay.public_key()),
    }
    stores = await Stores.open(
        replace(settings, database_url=alipay_crash_db, redis_prefix=env["DOORSTEP_REDIS_PREFIX"])
    )
    proc = await _start(env, port)
    lock: asyncpg.Connection | None = None
    try:
        city = catalog_service.build_city(
            id="alipaycrash",
            name_zh="测试城",
            name_en="Crash city",
            timezone="Asia/Shanghai",
            currency="CNY",
            service_area=SQUARE,
            crs="wgs84",
        )
        await catalog_store.write_city(stores.pool, city, upsert=True)
        await make_generalist(stores, city.id)  # someone can serve it: instant bookings need one
        tokens = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for role in ("admin", "customer"):
                phone = new_phone()
                await accounts.create_user(
                    stores, phone=phone, name="测试", password=PASSWORD, roles=[role]
                )
                r = await c.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
                tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await c.post(
                "/v1/categories",
                headers=tokens["admin"],
                json={"code": "acrash", "name_zh": "维修", "name_en": "Repairs"},
            )
            assert r.status_code == 201, r.text
            r = await c.post(
                "/v1/services",
                headers=tokens["admin"],
                json={
                    "code": "acrash_fix",
                    "category": "acrash",
                    "name_zh": "维修",
                    "name_en": "Fix",
                    "price_minor": 9900,
                    "duration_min": 60,
                    "instant": True,
                    "scheduled": False,
                },
            )
            assert r.status_code == 201, r.text
            r = await c.put(
                "/v1/admin/services/acrash_fix/payment",
                headers=tokens["admin"],
                json={"pay_mode": "prepaid"},
            )
            assert r.status_code == 200, r.text
            r = await c.post(
                "/v1/orders",
                headers=tokens["customer"],
                json={"service_code": "acrash_fix", "lat": 22.53, "lng": 114.01},
            )
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
            r = await c.post(
                f"/v1/orders/{order_id}/pay",
                headers=tokens["customer"],
                json={"provider": "alipay", "channel": "precreate"},
            )
            assert r.status_code == 200, r.text
            out_trade_no = r.json()["out_trade_no"]
            assert r.json()["prepay"]["code_url"].startswith(gateway.url + "qr/")

        lock = await asyncpg.connect(alipay_crash_db)
        await lock.execute("BEGIN")
        await lock.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order_id)
        assert sandbox.pay(sandbox.book.trades[out_trade_no]) is None
        waiting = 0
        for _ in range(300):  # the server's handler waits on our lock: it is mid-notification
            waiting = await stores.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%FROM orders WHERE id%FOR %UPDATE%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the notification never reached the order's lock"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await lock.execute("ROLLBACK")
        await lock.close()
        lock = None
        assert await ledger_store.for_order(stores.pool, order_id) == []
        delivery = next(d for d in sandbox.deliveries if d.out_trade_no == out_trade_no)
        assert not delivery.acked

        proc = await _start(env, port)
        for _ in range(1200):  # the next try comes on the schedule
            if delivery.acked:
                break
            await asyncio.sleep(0.1)
        assert delivery.acked
        status = await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
        assert status == "confirmed"
        entries = await ledger_store.for_order(stores.pool, order_id)
        assert [e.kind for e in entries] == ["payment.captured"]
        assert await ledger_store.check(stores.pool) == []
        assert delivery.attempts[0].status is None  # the killed try got no answer
        assert delivery.params["notify_id"] == delivery.notify_id  # one notification, tried again
    finally:
        if lock is not None:
            await lock.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await stores.close()
        await gateway.stop()

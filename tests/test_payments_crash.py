"""A payment notification is applied exactly once even when the server handling it is
killed with SIGKILL between its arrival and its acknowledgement: WeChat Pay's
redelivery brings it again to the restarted server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
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
from payments import wechat_wire as wire
from payments.wechat_sandbox import SandboxKeys, WeChatSandbox, WeChatSandboxServer
from tests.conftest import RUN_ID
from tests.helpers import PASSWORD, SQUARE, dies_with_parent, new_phone
from tests.live import make_generalist

PARAMS = "[engine]\nenabled = false\n[events]\npoll_s = 0.2\nlease_retry_s = 0.5\n"


@pytest.fixture(scope="module")
async def crash_db(database_url: str) -> AsyncIterator[str]:
    """A database of its own for the server that is killed."""
    admin_url = with_database(database_url, "postgres")
    name = f"doorstep_test_{RUN_ID}_paycrash"
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


async def _start(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "doorstep",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=dies_with_parent(),
    )
    async with httpx.AsyncClient() as c:
        for _ in range(600):
            assert proc.returncode is None, "server process exited"
            try:
                if (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not become ready")


def _merchant_files(keys: SandboxKeys, url: str, folder: Path) -> Path:
    """The merchant's configuration as production has it: a TOML file and key files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "apiclient_key.pem").write_text(wire.private_pem(keys.merchant_key))
    (folder / "pub_key.pem").write_text(wire.public_pem(keys.platform_key.public_key()))
    (folder / "apiv3.key").write_text(keys.apiv3_key)
    config = folder / "wechatpay.toml"
    config.write_text(
        f'url = "{url}"\nmchid = "{keys.mchid}"\nappid = "{keys.appid}"\n'
        f'merchant_serial = "{keys.merchant_serial}"\nmerchant_key_file = "apiclient_key.pem"\n'
        f'platform_public_key_file = "pub_key.pem"\nplatform_key_id = "{keys.platform_key_id}"\n'
        'apiv3_key_file = "apiv3.key"\n'
    )
    return config


async def test_kill_9_between_a_notifications_arrival_and_its_ack_applies_it_once(
    settings: Settings, crash_db: str, tmp_path: Path
) -> None:
    """The server verifies a payment notification and waits on the order's lock (held by
    the test); it is SIGKILLed there: nothing was applied and nothing acknowledged. The
    sandbox redelivers; the restarted server applies it once: one ledger entry, the
    order confirmed, the invariants hold."""
    assert settings.redis_url is not None
    sandbox = WeChatSandbox(SandboxKeys.generate(), redelivery_s=(1.0,) * 30)
    gateway = WeChatSandboxServer(sandbox, free_port())
    await gateway.start()
    port = free_port()
    params = tmp_path / "params.toml"
    params.write_text(PARAMS)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": crash_db,
        "DOORSTEP_SECRET_KEY": settings.secret_key,
        "DOORSTEP_REDIS_PREFIX": f"{settings.redis_prefix}paycrash:",
        "DOORSTEP_DATA_DIR": str(tmp_path / "data"),
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_LOG_LEVEL": "WARNING",
        "DOORSTEP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DOORSTEP_WECHATPAY_CONFIG": str(
            _merchant_files(sandbox.keys, gateway.url, tmp_path / "wx")
        ),
        "DOORSTEP_RATE_LIMIT_EXEMPT": "127.0.0.1",
    }
    stores = await Stores.open(
        replace(settings, database_url=crash_db, redis_prefix=env["DOORSTEP_REDIS_PREFIX"])
    )
    proc = await _start(env, port)
    lock: asyncpg.Connection | None = None
    try:
        city = catalog_service.build_city(
            id="paycrash",
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
        for role in ("admin", "customer"):
            phone = new_phone()
            await accounts.create_user(
                stores, phone=phone, name="测试", password=PASSWORD, roles=[role]
            )
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                r = await c.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
                tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            r = await c.post(
                "/v1/categories",
                headers=tokens["admin"],
                json={"code": "crash", "name_zh": "维修", "name_en": "Repairs"},
            )
            assert r.status_code == 201, r.text
            r = await c.post(
                "/v1/services",
                headers=tokens["admin"],
                json={
                    "code": "crash_fix",
                    "category": "crash",
                    "name_zh": "维修",
                    "name_en": "Fix",
                    "price_minor": 8800,
                    "duration_min": 60,
                    "instant": True,
                    "scheduled": False,
                },
            )
            assert r.status_code == 201, r.text
            r = await c.put(
                "/v1/admin/services/crash_fix/payment",
                headers=tokens["admin"],
                json={"pay_mode": "prepaid"},
            )
            assert r.status_code == 200, r.text
            r = await c.post(
                "/v1/orders",
                headers=tokens["customer"],
                json={"service_code": "crash_fix", "lat": 22.53, "lng": 114.01},
            )
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
            assert r.json()["status"] == "awaiting_payment"
            r = await c.post(
                f"/v1/orders/{order_id}/pay",
                headers=tokens["customer"],
                json={"provider": "wechat", "channel": "native"},
            )
            assert r.status_code == 200, r.text
            out_trade_no = r.json()["out_trade_no"]

        lock = await asyncpg.connect(crash_db)
        await lock.execute("BEGIN")
        await lock.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order_id)
        await sandbox.complete_payment(out_trade_no, "success")
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
        for _ in range(600):
            if delivery.acked:
                break
            await asyncio.sleep(0.1)
        assert delivery.acked
        status = await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
        assert status == "confirmed"
        entries = await ledger_store.for_order(stores.pool, order_id)
        assert [e.kind for e in entries] == ["payment.captured"]
        assert await ledger_store.check(stores.pool) == []
        assert None in [s for _, s in delivery.attempts]  # the killed try got no answer
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

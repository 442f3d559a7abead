"""`doorstep serve --workers 2`: two worker processes behind one port share one sandbox per
payment provider, so payments notified to either worker are captured once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from accounts import service as accounts
from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.embedded import free_port
from doorstep.settings import Settings
from doorstep.stores import Stores
from ledger import store as ledger_store
from payments import alipay_gateway
from tests.conftest import RUN_ID
from tests.helpers import PASSWORD, SQUARE, dies_with_parent, new_phone
from tests.live import make_generalist

pytestmark = pytest.mark.timeout(300)


async def _ready(port: int, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(900):  # 90 s on a busy 2-core machine
            assert proc.returncode is None, "server process exited"
            try:
                if (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become ready")


def _workers(pid: int) -> list[int]:
    """The child processes of ``pid`` (uvicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_payments_by_both_providers_are_captured_once_with_two_workers(
    settings: Settings, tmp_path: Path
) -> None:
    """With no gateway configured, two workers get the supervisor's one WeChat Pay and one
    Alipay sandbox: every order paid at them is confirmed with one capture, the books hold."""
    assert settings.redis_url is not None
    assert settings.database_url is not None
    port = free_port()
    data = tmp_path / "data"
    params = tmp_path / "params.toml"
    params.write_text("[engine]\nenabled = false\n[payments]\nquery_after_s = 2\n")
    prefix = f"{settings.redis_prefix}workers:"
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "DOORSTEP_SECRET_KEY": settings.secret_key,
        "DOORSTEP_REDIS_PREFIX": prefix,
        "DOORSTEP_DATA_DIR": str(data),
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_LOG_LEVEL": "WARNING",
        "DOORSTEP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DOORSTEP_RATE_LIMIT_EXEMPT": "127.0.0.1",
    }
    for name in list(env):
        if name.startswith(("DOORSTEP_WECHATPAY", "DOORSTEP_ALIPAY")):
            del env[name]
    stores = await Stores.open(replace(settings, redis_prefix=prefix))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "doorstep", "serve", "--port", str(port), "--workers", "2"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=dies_with_parent(),
    )
    try:
        await _ready(port, proc)
        assert len(_workers(proc.pid)) >= 2
        city = catalog_service.build_city(
            id=f"wk{RUN_ID}",
            name_zh="测试城",
            name_en="Workers city",
            timezone="Asia/Shanghai",
            currency="CNY",
            service_area=SQUARE,
            crs="wgs84",
        )
        await catalog_store.write_city(stores.pool, city, upsert=True)
        await make_generalist(stores, city.id)
        tokens = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for role in ("admin", "customer"):
                phone = new_phone()
                await accounts.create_user(
                    stores, phone=phone, name="测试", password=PASSWORD, roles=[role]
                )
                r = await c.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
                tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
            category, service = f"wkc{RUN_ID}", f"wks{RUN_ID}"
            r = await c.post(
                "/v1/categories",
                headers=tokens["admin"],
                json={"code": category, "name_zh": "维修", "name_en": "Repairs"},
            )
            assert r.status_code == 201, r.text
            r = await c.post(
                "/v1/services",
                headers=tokens["admin"],
                json={
                    "code": service,
                    "category": category,
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
                f"/v1/admin/services/{service}/payment",
                headers=tokens["admin"],
                json={"pay_mode": "prepaid"},
            )
            assert r.status_code == 200, r.text
            wechat_url = json.loads((data / "wechat-sandbox.json").read_text())["url"]
            alipay_url = (data / alipay_gateway.URL_FILE).read_text().strip()
            orders = []
            for provider, channel, gateway in [
                *[("wechat", "native", wechat_url)] * 4,
                *[("alipay", "precreate", alipay_url)] * 4,
            ]:
                r = await c.post(
                    "/v1/orders",
                    headers=tokens["customer"],
                    json={"service_code": service, "lat": 22.53, "lng": 114.01},
                )
                assert r.status_code == 201, r.text
                order_id = r.json()["id"]
                r = await c.post(
                    f"/v1/orders/{order_id}/pay",
                    headers=tokens["customer"],
                    json={"provider": provider, "channel": channel},
                )
                assert r.status_code == 200, r.text
                paid = await c.post(
                    f"{gateway.rstrip('/')}/sandbox/pay",
                    json={"out_trade_no": r.json()["out_trade_no"]},
                )
                assert paid.status_code < 300, paid.text
                orders.append(order_id)
        for _ in range(600):
            statuses = [
                await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", o)
                for o in orders
            ]
            if all(s == "confirmed" for s in statuses):
                break
            await asyncio.sleep(0.1)
        assert statuses == ["confirmed"] * len(orders)
        for order_id in orders:
            entries = await ledger_store.for_order(stores.pool, order_id)
            assert [e.kind for e in entries] == ["payment.captured"]
        assert await ledger_store.check(stores.pool) == []
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await stores.close()

"""A store outage in a background loop logs one line and a count, not a traceback per
attempt (issue 14, item 7: the dispatch engine logged a traceback every 2 s)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import service as catalog_service
from catalog import store as catalog_store
from dispatch.engine import Engine, EngineParams
from doorstep.db import with_database
from doorstep.embedded import free_port, start_valkey
from doorstep.migrate import migrate
from doorstep.outage import Outage
from doorstep.settings import Settings
from doorstep.stores import Stores
from tests.conftest import RUN_ID
from tests.helpers import SQUARE
from tracking.service import Tracking


class Records(logging.Handler):
    """The records one logger emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_outage_is_one_line_then_a_count_when_it_ends() -> None:
    """Ten failures log one line; a reminder comes after remind_s; recovery logs the count."""
    log = logging.getLogger(f"test.outage.{secrets.token_hex(3)}")
    records = Records()
    log.addHandler(records)
    outage = Outage(log, "the loop", remind_s=60.0)
    for i in range(10):
        outage.failed(ConnectionError(f"refused\n(attempt {i})"), now_s=100.0 + 2 * i)
    assert [r.getMessage() for r in records.records] == [
        "the loop failed: ConnectionError: refused (attempt 0); retrying"
    ]
    outage.failed(ConnectionError("refused"), now_s=161.0)
    assert records.records[-1].getMessage() == (
        "the loop still failing after 61 s (11 failed attempts): ConnectionError: refused"
    )
    outage.succeeded(now_s=170.0)
    outage.succeeded(now_s=172.0)  # nothing more to say
    assert [r.getMessage() for r in records.records][2:] == [
        "the loop works again after 70 s (11 failed attempts)"
    ]
    assert not any(r.exc_info for r in records.records)
    assert (outage.ongoing, outage.failures, outage.outages) == (False, 0, 1)


@pytest.fixture
async def engine_stores(
    settings: Settings, database_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """Stores of their own (a database with one city, and a Valkey to kill)."""
    admin_url = with_database(database_url, "postgres")
    name = f"doorstep_test_{RUN_ID}_engine_outage_{secrets.token_hex(2)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    db_url = with_database(database_url, name)
    conn = await asyncpg.connect(db_url)
    await migrate(conn)
    await conn.close()
    port = free_port()
    valkey = start_valkey(tmp_path / "valkey", port=port)
    own = replace(settings, redis_url=f"redis://127.0.0.1:{port}/0", database_url=db_url)
    stores = await Stores.open(own)
    city = catalog_service.build_city(
        id="engine-outage",
        name_zh="停电城",
        name_en="Outage city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    servers = [valkey]
    try:
        yield {"stores": stores, "servers": servers, "port": port, "tmp": tmp_path}
    finally:
        await stores.close()
        for s in servers:
            s.stop()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _until(check: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def test_the_engine_logs_a_redis_outage_in_one_line_with_a_count(
    engine_stores: dict[str, Any],
) -> None:
    """Redis killed under a ticking engine: one warning line for many failed ticks, no
    traceback, and one line with the count once Redis is back and ticks work again."""
    stores: Stores = engine_stores["stores"]
    tracking = Tracking(stores)
    engine = Engine(stores, tracking, engine=EngineParams(tick_s=0.05, lease_ms=1000))
    records = Records()
    logger = logging.getLogger("doorstep")
    logger.addHandler(records)
    engine.start()
    try:
        await _until(lambda: engine.ticks >= 1, "a first tick")
        engine_stores["servers"].pop().stop()  # Redis is gone
        await _until(lambda: engine.outage.failures >= 20, "twenty failed ticks")
        failed = [r for r in records.records if r.name == "doorstep.dispatch.engine"]
        assert len(failed) == 1
        assert failed[0].getMessage().startswith("dispatch engine (PostgreSQL or Redis) failed:")
        assert failed[0].exc_info is None
        engine_stores["servers"].append(
            start_valkey(engine_stores["tmp"] / "valkey", port=engine_stores["port"])
        )
        await _until(lambda: not engine.outage.ongoing, "ticks working again")
    finally:
        await engine.stop()
        logger.removeHandler(records)
    lines = [r.getMessage() for r in records.records if r.name == "doorstep.dispatch.engine"]
    assert len(lines) == 2
    assert "works again after" in lines[1]
    assert not any(r.exc_info for r in records.records if r.name.startswith("doorstep.dispatch"))

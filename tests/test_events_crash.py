"""A committed event is never lost and its effect is applied exactly once, even when the
server process handling it is killed with SIGKILL and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from doorstep.db import create_pool, with_database
from doorstep.embedded import free_port
from doorstep.migrate import migrate
from doorstep.settings import Settings
from events import probe
from tests.conftest import RUN_ID
from tests.helpers import dies_with_parent

PARAMS = (
    "[engine]\nenabled = false\n"
    "[events]\nbatch = 50\npoll_s = 0.2\nlease_retry_s = 0.5\n"
    "[jobs]\nheartbeat_s = 1.0\nstalled_after_s = 3.0\n"
)


@pytest.fixture(scope="module")
async def crash_db(database_url: str) -> AsyncIterator[str]:
    """A database of its own: no other relay (the tests' app) may take over the consumers."""
    admin_url = with_database(database_url, "postgres")
    name = f"doorstep_test_{RUN_ID}_crash"
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
        for _ in range(300):
            assert proc.returncode is None, "server process exited"
            try:
                if (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not become ready")


async def test_kill_9_while_events_are_handled_loses_and_repeats_nothing(
    settings: Settings, crash_db: str, tmp_path: Path
) -> None:
    """300 probe events (20 ms each to handle); the server is SIGKILLed mid-stream and
    started again: every event's effect is recorded exactly once."""
    assert settings.redis_url is not None
    params = tmp_path / "params.toml"
    params.write_text(PARAMS)
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": crash_db,
        "DOORSTEP_SECRET_KEY": settings.secret_key,
        "DOORSTEP_REDIS_PREFIX": f"{settings.redis_prefix}crash:",
        "DOORSTEP_DATA_DIR": str(tmp_path / "data"),
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_LOG_LEVEL": "WARNING",
    }
    pool = await create_pool(crash_db, min_size=1, max_size=2)
    port = free_port()
    proc = await _start(env, port)
    try:
        ids = []
        async with pool.acquire() as conn, conn.transaction():
            for i in range(300):
                ids.append(await probe.send(conn, f"crash-{i}", hold_ms=20))

        async def handled() -> int:
            return int(
                await pool.fetchval(
                    "SELECT count(DISTINCT event_id) FROM event_probes WHERE event_id = ANY($1)",
                    ids,
                )
            )

        while await handled() < 60:
            assert proc.returncode is None
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        before_restart = await handled()
        assert before_restart < len(ids), "killed too late to prove anything"

        proc = await _start(env, port)
        for _ in range(600):
            if await handled() == len(ids):
                break
            await asyncio.sleep(0.1)
        rows = await pool.fetch(
            "SELECT event_id, count(*) AS n FROM event_probes WHERE event_id = ANY($1) "
            "GROUP BY event_id",
            ids,
        )
        counts = {r["event_id"]: r["n"] for r in rows}
        assert set(counts) == set(ids), f"lost: {sorted(set(ids) - set(counts))[:10]}"
        assert all(n == 1 for n in counts.values()), "an effect was applied twice"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await pool.close()

"""The embedded PostgreSQL and Valkey: real servers, persistent, never orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from doorstep.db import ensure_database
from doorstep.embedded import EmbeddedError, embedded_stores, start_valkey
from tests.helpers import processes_mentioning

pytestmark = pytest.mark.smoke


async def _write(redis_url: str, database_url: str) -> None:
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url)
    await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES ('pg')")
    await conn.close()
    redis = Redis.from_url(redis_url)
    await redis.set("kept", "valkey")
    await redis.aclose()


async def _read(redis_url: str, database_url: str) -> tuple[object, object]:
    conn = await asyncpg.connect(database_url)
    value = await conn.fetchval("SELECT v FROM kept")
    await conn.close()
    redis = Redis.from_url(redis_url)
    kept = await redis.get("kept")
    await redis.aclose()
    return value, kept


def test_data_survives_a_restart(tmp_path: Path) -> None:
    """What is written to both embedded stores is there after they are stopped and started again."""
    with embedded_stores(tmp_path, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url
        asyncio.run(_write(redis_url, database_url))
    assert processes_mentioning(str(tmp_path)) == []
    with embedded_stores(tmp_path, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url
        assert asyncio.run(_read(redis_url, database_url)) == ("pg", b"valkey")
    assert processes_mentioning(str(tmp_path)) == []


def test_only_the_stores_asked_for_are_started(tmp_path: Path) -> None:
    """Asking for Redis only starts no PostgreSQL (and the reverse holds by symmetry)."""
    with embedded_stores(tmp_path, redis=True, postgres=False) as (redis_url, database_url):
        assert redis_url is not None
        assert database_url is None
        assert not (tmp_path / "postgres").exists()


def test_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    """A second server on the same data dir fails with a message naming the holder."""
    first = start_valkey(tmp_path)
    try:
        with pytest.raises(EmbeddedError, match=f"in use by process {first.process.pid}"):
            start_valkey(tmp_path)
    finally:
        first.stop()


def test_a_killed_parent_leaves_no_server_behind(tmp_path: Path) -> None:
    """SIGKILL of the process that started the stores takes both servers down (PR_SET_PDEATHSIG)."""
    script = textwrap.dedent(f"""
        import pathlib, sys, time
        from doorstep.embedded import embedded_stores
        with embedded_stores(pathlib.Path({str(tmp_path)!r}), redis=True, postgres=True) as urls:
            print("ready", flush=True)
            time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        servers = processes_mentioning(str(tmp_path))
        assert len(servers) >= 2  # postgres (and its children) and valkey
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(str(tmp_path)) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()

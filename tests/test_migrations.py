"""Migrations: ordered, recorded, idempotent, safe from two processes at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from doorstep.db import with_database
from doorstep.migrate import Migration, MigrationError, discover, migrate


@pytest.fixture
async def fresh_db(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """An empty database, dropped after the test."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_mig_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield with_database(server_urls[1], name)
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def test_discover_finds_numbered_files_in_order() -> None:
    """The shipped migrations are numbered 1, 2, 3… without gaps."""
    found = discover()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(m.sql.strip() for m in found)


async def test_migrating_twice_applies_nothing_the_second_time(fresh_db: str) -> None:
    """The first run applies every migration; the second applies none and changes nothing."""
    conn = await asyncpg.connect(fresh_db)
    try:
        first = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in discover()]
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert await migrate(conn) == []
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            == tables
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["checksum"]) for r in rows] == [
            (m.version, m.checksum) for m in discover()
        ]
    finally:
        await conn.close()


async def test_two_concurrent_runners_apply_each_migration_once(fresh_db: str) -> None:
    """Two connections migrating at the same moment both succeed; each file is applied exactly once."""
    a, b = await asyncpg.connect(fresh_db), await asyncpg.connect(fresh_db)
    try:
        applied_a, applied_b = await asyncio.gather(migrate(a), migrate(b))
        versions = sorted(m.version for m in applied_a + applied_b)
        assert versions == [m.version for m in discover()]
        assert await a.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await a.close()
        await b.close()


async def test_an_edited_applied_migration_is_refused(fresh_db: str) -> None:
    """Changing the text of an applied migration is an error, not a silent skip."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn)
        edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in discover()]
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_a_database_newer_than_the_code_is_refused(fresh_db: str) -> None:
    """A recorded migration the code does not know means the code is older: refuse."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn)
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn, discover()[:-1])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_no_trace(fresh_db: str) -> None:
    """A migration that fails is rolled back whole and not recorded; the lock is released."""
    conn = await asyncpg.connect(fresh_db)
    try:
        broken = [*discover(), Migration(99, "broken", "CREATE TABLE half (x int); SELECT 1/0;")]
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert (
            await conn.fetchval("SELECT max(version) FROM schema_migrations")
            == discover()[-1].version
        )
        assert await migrate(conn) == []  # the advisory lock was released
    finally:
        await conn.close()

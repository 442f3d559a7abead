"""The tamper-evident audit log: a hash chain, append-only in PostgreSQL, verified by
``doorstep audit verify``, which names the entry changed or deleted."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from audit import store as audit_store
from audit.chain import GENESIS, Entry, canonical, link, verify
from doorstep.db import create_pool, with_database
from doorstep.migrate import migrate
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import book

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _chain(n: int) -> list[Entry]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        at = T0 + timedelta(seconds=i)
        detail = {"reason": f"r{i}", "n": i}
        h = link(prev, canonical(i, at, 7, "override.assign", f"order:{i}", detail))
        out.append(Entry(i, at, 7, "override.assign", f"order:{i}", detail, prev, h))
        prev = h
    return out


def test_an_intact_chain_verifies() -> None:
    """Five linked entries with their head verify, and the report names the head."""
    chain = _chain(5)
    report = verify(chain, (5, chain[-1].hash))
    assert report.ok
    assert report.checked == 5
    assert report.last_hash == chain[-1].hash


def test_a_changed_entry_is_named() -> None:
    """Changing entry 3's content (its reason) is found at entry 3 as changed."""
    chain = _chain(5)
    chain[2] = replace(chain[2], detail={"reason": "nothing to see", "n": 3})
    f = verify(chain, (5, chain[-1].hash)).finding
    assert f is not None
    assert (f.seq, f.problem) == (3, "changed")


def test_a_changed_entry_with_its_hash_recomputed_breaks_the_next_link() -> None:
    """Rehashing a changed entry 2 is found at entry 3, which no longer follows it."""
    chain = _chain(5)
    e = replace(chain[1], actor_id=99)
    chain[1] = replace(
        e, hash=link(e.prev_hash, canonical(e.seq, e.at, 99, e.action, e.subject, e.detail))
    )
    f = verify(chain, (5, chain[-1].hash)).finding
    assert f is not None
    assert (f.seq, f.problem) == (3, "relinked")


def test_a_deleted_entry_and_a_deleted_tail_are_named() -> None:
    """Entry 4 deleted: missing at 4; entries 4 and 5 deleted: the tail from 4 is gone."""
    chain = _chain(5)
    f = verify(chain[:3] + chain[4:], (5, chain[-1].hash)).finding
    assert f is not None
    assert (f.seq, f.problem) == (4, "missing")
    f = verify(chain[:3], (5, chain[-1].hash)).finding
    assert f is not None
    assert (f.seq, f.problem) == (4, "tail_removed")


async def test_concurrent_appends_form_one_chain(stores: Stores) -> None:
    """Twenty appends from twenty connections at once make consecutive, linked entries."""

    async def one(i: int) -> Entry:
        async with stores.pool.acquire() as conn, conn.transaction():
            return await audit_store.append(
                conn, actor_id=None, action="test.append", subject=f"test:{i}", detail={"i": i}
            )

    made = await asyncio.gather(*(one(i) for i in range(20)))
    seqs = sorted(e.seq for e in made)
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    report = await audit_store.check(stores.pool)
    assert report.ok, report.finding


async def test_the_log_refuses_update_and_delete(stores: Stores) -> None:
    """UPDATE and DELETE on audit_log are refused by the trigger; the entry is unchanged."""
    async with stores.pool.acquire() as conn, conn.transaction():
        e = await audit_store.append(conn, actor_id=None, action="test.x", subject="test:x")
    for sql in (
        "UPDATE audit_log SET subject = 'test:y' WHERE seq = $1",
        "DELETE FROM audit_log WHERE seq = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await stores.pool.execute(sql, e.seq)
    assert await stores.pool.fetchval("SELECT subject FROM audit_log WHERE seq = $1", e.seq) == (
        "test:x"
    )


async def test_overrides_and_freezes_are_chained(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    live_city: str,
    instant_service: str,
    worker_account: Account,
) -> None:
    """A dispatcher's assignment and an admin's freeze each add an entry to the chain."""
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book(client, customer, instant_service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker_account.id, "reason": "closest", "force": True},
    )
    assert r.status_code == 200, r.text
    [entry] = await audit_store.of_subject(stores.pool, f"order:{order['id']}")
    assert (entry.action, entry.actor_id, entry.detail["reason"]) == (
        "override.assign",
        dispatcher.id,
        "closest",
    )
    victim = await make_user("customer")
    r = await client.put(
        f"/v1/users/{victim.id}/status", headers=admin.auth, json={"status": "frozen"}
    )
    assert r.status_code == 200, r.text
    [entry] = await audit_store.of_subject(stores.pool, f"user:{victim.id}")
    assert (entry.action, entry.actor_id) == ("account.freeze", admin.id)
    assert (await audit_store.check(stores.pool)).ok


def _verify_cli(url: str, redis_url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DOORSTEP_DATA_DIR=str(tmp / "data"),
        REDIS_URL=redis_url,
        DATABASE_URL=url,
        DOORSTEP_SECRET_KEY="k" * 40,
    )
    return subprocess.run(
        [sys.executable, "-m", "doorstep", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_audit_verify_catches_a_row_changed_by_hand(
    server_urls: tuple[str, str], tmp_path: Path
) -> None:
    """`doorstep audit verify` passes an intact log (exit 0), then names entry 3 after a superuser changed it past the trigger, and entry 4 after it was deleted (exit 2)."""
    name = f"doorstep_audit_{secrets.token_hex(4)}"
    admin_url = with_database(server_urls[1], "postgres")
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_urls[1], name)
    try:
        raw = await asyncpg.connect(url)
        await migrate(raw)
        pool = await create_pool(url, min_size=1, max_size=2)
        for i in range(1, 6):
            async with pool.acquire() as c, c.transaction():
                await audit_store.append(
                    c,
                    actor_id=None,
                    action="override.assign",
                    subject=f"order:{i}",
                    detail={"reason": f"r{i}"},
                )
        await pool.close()
        out = await asyncio.to_thread(_verify_cli, url, server_urls[0], tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "audit log OK: 5 entries" in out.stdout
        # By hand, as the superuser, past the trigger:
        await raw.execute("SET session_replication_role = replica")
        await raw.execute(
            'UPDATE audit_log SET detail = \'{"reason": "nothing happened"}\' WHERE seq = 3'
        )
        out = await asyncio.to_thread(_verify_cli, url, server_urls[0], tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "TAMPERED at entry 3 (changed)" in out.stdout
        await raw.execute(
            'UPDATE audit_log SET detail = \'{"reason": "r3"}\' WHERE seq = 3; '
            "DELETE FROM audit_log WHERE seq = 4"
        )
        out = await asyncio.to_thread(_verify_cli, url, server_urls[0], tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "TAMPERED at entry 4 (missing)" in out.stdout
        await raw.close()
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

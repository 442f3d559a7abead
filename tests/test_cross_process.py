"""Two real server processes share live state through Redis: fan-out crosses processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from doorstep.embedded import free_port
from doorstep.settings import Settings
from tests.helpers import Account, MakeUser, dies_with_parent
from tests.live import DEST, book, closed_code, next_of, open_worker, recv, send_acked, watch


async def _ready(port: int, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(900):  # 90 s: two servers start at once on a busy 2-core machine
            assert proc.returncode is None, "server process exited"
            try:
                if (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become ready")


# Starting the two servers may take up to 90 s on a busy machine (it counts to the first
# test's time).
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
async def two_servers(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[tuple[str, str]]:
    """Two `doorstep serve` processes on this run's database and Redis prefix."""
    assert settings.redis_url is not None
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": database_url,
        "DOORSTEP_SECRET_KEY": settings.secret_key,
        "DOORSTEP_REDIS_PREFIX": settings.redis_prefix,
        "DOORSTEP_DATA_DIR": str(tmp_path_factory.mktemp("procs")),
        "DOORSTEP_LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    procs: list[asyncio.subprocess.Process] = []
    try:
        # Both at the same moment on one data dir, as a supervisor starts them: the files a
        # first start creates (keys, sandbox addresses) are published whole, once.
        for port in ports:
            procs.append(
                await asyncio.create_subprocess_exec(
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
            )
        for port, proc in zip(ports, procs, strict=True):
            await _ready(port, proc)
        yield f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        try:
            for proc in procs:  # a clean shutdown is part of what this proves
                assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            for proc in procs:  # never leave a server behind, even when that failed
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def test_a_customer_on_one_process_sees_fixes_ingested_by_another(
    two_servers: tuple[str, str], make_user: MakeUser, worker_account: Account, instant_service: str
) -> None:
    """Worker on process A, customer on process B: B's socket gets A's fixes and A's status changes."""
    a, b = two_servers
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    async with httpx.AsyncClient(base_url=f"http://{a}") as api_a:
        order = await book(api_a, customer, instant_service)
        r = await api_a.post(
            f"/v1/orders/{order['id']}/assign",
            headers=dispatcher.auth,
            json={"worker_id": worker_account.id, "reason": "nearest", "force": True},
        )
        assert r.status_code == 200, r.text
        worker, _ = await open_worker(a, worker_account)
        watcher, snap = await watch(b, order["id"], headers=customer.auth)
        assert snap["order"]["status"] == "assigned"
        now = int(time.time() * 1000)
        for seq in range(1, 4):
            fix = {
                "type": "fix",
                "seq": seq,
                "ts_ms": now + seq * 2000,
                "accuracy_m": 5.0,
                "lat": DEST[0] + 0.004 - seq * 1e-4,
                "lng": DEST[1],
            }
            await send_acked(worker, fix)  # job pushes may come first
            update = await next_of(watcher, "position")
            assert update["seq"] == seq
            assert update["eta"]["p50_s"] > 0
        r = await api_a.post(
            f"/v1/orders/{order['id']}/depart", headers=worker_account.auth, json={}
        )
        assert r.status_code == 200
        assert (await next_of(watcher, "status"))["status"] == "en_route"
        await watcher.close()
        await worker.close()


async def test_a_newer_socket_on_another_process_replaces_the_older(
    two_servers: tuple[str, str], worker_account: Account
) -> None:
    """One live socket per worker across processes: connecting on B closes the socket on A with 4001."""
    a, b = two_servers
    first, _ = await open_worker(a, worker_account)
    second, _ = await open_worker(b, worker_account)
    assert await closed_code(first) == 4001
    await second.send('{"type": "ping"}')
    assert (await recv(second)) == {"type": "pong"}
    await second.close()

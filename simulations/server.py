"""A Doorstep server of the simulator's own, as a subprocess, for one run.

It is started the way an operator would: ``python -m doorstep seed --demo`` (migrates,
then loads the demo city with its admin login), then ``python -m doorstep serve`` with a
params file (``DOORSTEP_PARAMS``) choosing the matching policy. Each server gets a fresh
database ``doorstep_sim_<rand>`` and Redis key prefix ``sim:<rand>:`` on the stores
given (``REDIS_URL``/``DATABASE_URL``, or embedded ones started by the CLI), and both are
dropped afterwards. The server's output goes to ``server-<label>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg
import httpx
from redis.asyncio import Redis

from doorstep.db import with_database
from doorstep.embedded import free_port
from seeding.load import ADMIN_PHONE, DEMO_PASSWORD

REPO = Path(__file__).resolve().parent.parent


def _child_setup() -> None:
    """In the child before exec: SIGTERM when the simulator dies (no orphan server)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class LocalServer:
    """A running server: its URL and the admin login the seed created."""

    url: str
    database: str
    admin_phone: str
    admin_password: str
    log_path: Path


def matching_lines(*, chain_s: float | None = None, rotation_s: float | None = None) -> str:
    """``[matching]`` lines setting ``chain_s`` and ``rotation_slack_s`` (None: not set, the
    defaults hold), for :func:`params_text`'s ``extra``."""
    return (f"chain_s = {float(chain_s)}\n" if chain_s is not None else "") + (
        f"rotation_slack_s = {float(rotation_s)}\n" if rotation_s is not None else ""
    )


def params_text(policy: str, extra: str = "") -> str:
    """The params file: the matching policy, anything else the caller adds."""
    return f'[matching]\npolicy = "{policy}"\n{extra}'


@contextlib.asynccontextmanager
async def local_server(
    stores: tuple[str, str],
    work_dir: Path,
    *,
    label: str,
    policy: str = "batch",
    params_extra: str = "",
    port: int | None = None,
) -> AsyncIterator[LocalServer]:
    """Start a seeded server on fresh storage; stop it and drop its storage afterwards."""
    redis_url, database_url = stores
    run = secrets.token_hex(4)
    db_name, prefix = f"doorstep_sim_{run}", f"sim:{run}:"
    params = work_dir / f"params-{label}.toml"
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(params.write_text, params_text(policy, params_extra))
    admin_conn = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await admin_conn.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await admin_conn.close()
    port = port or free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": with_database(database_url, db_name),
        "DOORSTEP_REDIS_PREFIX": prefix,
        "DOORSTEP_SECRET_KEY": secrets.token_urlsafe(48),
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_DATA_DIR": str(work_dir / "data"),
        "DOORSTEP_LOG_LEVEL": "WARNING",
        # The simulator registers and logs in hundreds of accounts from loopback.
        "DOORSTEP_RATE_LIMIT_EXEMPT": "127.0.0.1,::1",
    }
    log_path = work_dir / f"server-{label}.log"
    log = await asyncio.to_thread(log_path.open, "wb")
    proc: asyncio.subprocess.Process | None = None
    try:
        seed = await _start(["seed", "--demo"], env, log)
        if await asyncio.wait_for(seed.wait(), 300) != 0:
            raise RuntimeError(f"doorstep seed failed; see {log_path}")
        proc = await _start(["serve", "--port", str(port)], env, log)
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url, proc, log_path)
        yield LocalServer(url, db_name, ADMIN_PHONE, DEMO_PASSWORD, log_path)
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        await _drop(redis_url, database_url, db_name, prefix)


async def _start(
    args: list[str], env: dict[str, str], log: IO[bytes]
) -> asyncio.subprocess.Process:
    """``python -m doorstep ARGS``, its output to ``log``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "doorstep",
        *args,
        env=env,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_child_setup,
    )


async def _wait_ready(url: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
    deadline = time.monotonic() + 300  # a busy machine (8 servers starting at once took > 90 s)
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"the server exited; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url + "/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the server was not ready within 300 s; see {log_path}")


async def _drop(redis_url: str, database_url: str, db_name: str, prefix: str) -> None:
    conn = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}*", count=2000):
            batch.append(key)
            if len(batch) >= 2000:
                await redis.unlink(*batch)
                batch = []
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()

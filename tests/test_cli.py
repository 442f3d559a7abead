"""The ``doorstep`` command as a user runs it: help, demo lifecycle, external stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from doorstep.db import with_database
from doorstep.embedded import free_port
from tests.helpers import processes_mentioning

pytestmark = pytest.mark.smoke

COMMAND = [sys.executable, "-m", "doorstep"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ([], "serve"),
        (["serve"], "--workers"),
        (["migrate"], "concurrently"),
        (["seed"], "--city"),
        (["demo"], "--port"),
    ],
)
def test_every_command_has_help(args: list[str], expect: str) -> None:
    """`doorstep [COMMAND] --help` exits 0 and describes the options."""
    out = subprocess.run([*COMMAND, *args, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert expect in out.stdout


def _wait_ready(port: int, proc: subprocess.Popen[str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited before it was ready"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server never became ready")


def _run_until_ready(
    args: list[str], env: dict[str, str], port: int, stop: signal.Signals, log: Path
) -> tuple[int, str]:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*COMMAND, *args, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_ready(port, proc)
            proc.send_signal(stop)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, log.read_text()


def test_demo_starts_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    """`doorstep demo` on embedded stores: ready, Ctrl-C exits 0 leaving no process (nor its live city); a second run finds its data."""
    data = tmp_path / "data"
    env = _env(DOORSTEP_DATA_DIR=str(data))
    port = free_port()
    code, log = _run_until_ready(["demo"], env, port, signal.SIGINT, tmp_path / "first.log")
    assert code == 0, log
    assert f"http://127.0.0.1:{port}/docs" in log
    assert "PostgreSQL: embedded" in log
    assert "Redis: embedded Valkey" in log
    assert "240 workers" in log
    assert "Live city" in log
    assert processes_mentioning(str(data)) == []
    assert processes_mentioning(f"simulations.demo http://127.0.0.1:{port}") == []

    code, log = _run_until_ready(
        ["demo"], env, free_port(), signal.SIGTERM, tmp_path / "second.log"
    )
    assert code == 0, log
    assert "database schema is up to date" in log
    assert "(0 new accounts)" in log
    assert processes_mentioning(str(data)) == []


def test_serve_with_urls_uses_only_those_stores(
    tmp_path: Path, server_urls: tuple[str, str]
) -> None:
    """With REDIS_URL and DATABASE_URL set, no embedded server is started and nothing is written to the data dir."""
    import asyncio

    import asyncpg

    name = f"doorstep_cli_{os.getpid()}_{int(time.time())}"

    async def create_db(sql: str) -> None:
        conn = await asyncpg.connect(with_database(server_urls[1], "postgres"))
        await conn.execute(sql)
        await conn.close()

    asyncio.run(create_db(f'CREATE DATABASE "{name}"'))
    data = tmp_path / "data"
    env = _env(
        DOORSTEP_DATA_DIR=str(data),
        REDIS_URL=server_urls[0],
        DATABASE_URL=with_database(server_urls[1], name),
        DOORSTEP_SECRET_KEY="k" * 40,
        DOORSTEP_REDIS_PREFIX=f"cli-{name}:",
    )
    try:
        code, log = _run_until_ready(
            ["serve"], env, free_port(), signal.SIGINT, tmp_path / "serve.log"
        )
        assert code == 0, log
        assert "(from DATABASE_URL)" in log
        assert "(from REDIS_URL)" in log
        assert "embedded" not in log
        assert not (data / "postgres").exists()
        assert not (data / "valkey").exists()
    finally:
        asyncio.run(create_db(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    """A malformed setting stops the command with exit 1 and a message naming the variable."""
    env = _env(DOORSTEP_DATA_DIR=str(tmp_path), DOORSTEP_PORT="eighty")
    out = subprocess.run([*COMMAND, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == "doorstep: DOORSTEP_PORT: must be an integer, got 'eighty'"

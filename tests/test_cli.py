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

from doorstep.db import redact, with_database
from doorstep.embedded import free_port
from tests.helpers import dies_with_parent, processes_mentioning

pytestmark = pytest.mark.smoke

COMMAND = [sys.executable, "-m", "doorstep"]


def _by_phone(phone: str) -> str:
    """SQL for the roles of the account with this phone, found by its blind index under
    the keys the CLI derives from its secret key ("k" * 40)."""
    from privacy.crypto import DataKeys

    index = DataKeys.derived("k" * 40).index("phone", phone).hex()
    return f"SELECT roles FROM users WHERE phone_bidx = '\\x{index}'::bytea"


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
        (["seed"], "--demo"),
        (["create-admin"], "--phone"),
        (["worker"], "without serving HTTP"),
        (["audit"], "verify"),
        (["demo"], "--port"),
        (["sms-outbox"], "--phone"),
        (["ledger"], "invariants"),
        (["keys"], "rotate"),
        (["keys", "rotate"], "--batch"),
    ],
)
def test_every_command_has_help(args: list[str], expect: str) -> None:
    """`doorstep [COMMAND] --help` exits 0 and describes the options."""
    out = subprocess.run([*COMMAND, *args, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert expect in " ".join(out.stdout.split())  # argparse wraps at the terminal's width


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
            preexec_fn=dies_with_parent(),
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


def _admin_sql(server_urls: tuple[str, str], sql: str) -> None:
    """Run ``sql`` on the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(with_database(server_urls[1], "postgres"))
        await conn.execute(sql)
        await conn.close()

    asyncio.run(run())


def _scalar(url: str, sql: str) -> object:
    import asyncio

    import asyncpg

    async def run() -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.mark.timeout(300)
def test_seed_creates_demo_accounts_only_with_demo(
    tmp_path: Path, server_urls: tuple[str, str]
) -> None:
    """`doorstep seed` loads the city and catalog with no account; `doorstep seed --demo` adds the demo logins."""
    name = f"doorstep_cli_seed_{os.getpid()}_{int(time.time())}"
    _admin_sql(server_urls, f'CREATE DATABASE "{name}"')
    url = with_database(server_urls[1], name)
    env = _env(
        DOORSTEP_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=server_urls[0],
        DATABASE_URL=url,
        DOORSTEP_SECRET_KEY="k" * 40,
        DOORSTEP_REDIS_PREFIX=f"cli-{name}:",
    )
    try:
        out = subprocess.run(
            [*COMMAND, "seed"], env=env, capture_output=True, text=True, timeout=240
        )
        assert out.returncode == 0, out.stderr
        assert "no accounts" in out.stdout
        assert "13800000000" not in out.stdout + out.stderr
        assert "`doorstep seed --demo` adds" in out.stdout  # says how, and why not in production
        assert _scalar(url, "SELECT count(*) FROM users") == 0
        assert _scalar(url, "SELECT count(*) FROM services") != 0

        out = subprocess.run(
            [*COMMAND, "seed", "--demo"], env=env, capture_output=True, text=True, timeout=240
        )
        assert out.returncode == 0, out.stderr
        assert "demo logins (password 'doorstep-demo'): admin 13800000000" in out.stdout
        assert _scalar(url, _by_phone("13800000000")) == ["admin"]
    finally:
        _admin_sql(server_urls, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_create_admin_makes_the_first_admin(tmp_path: Path, server_urls: tuple[str, str]) -> None:
    """`doorstep create-admin` reads the password from stdin and creates an admin; a taken phone or a weak password exits 1 saying why."""
    from tests.helpers import new_phone

    name = f"doorstep_cli_admin_{os.getpid()}_{int(time.time())}"
    _admin_sql(server_urls, f'CREATE DATABASE "{name}"')
    url = with_database(server_urls[1], name)
    env = _env(
        DOORSTEP_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=server_urls[0],
        DATABASE_URL=url,
        DOORSTEP_SECRET_KEY="k" * 40,
        DOORSTEP_REDIS_PREFIX=f"cli-{name}:",
    )
    phone = new_phone()

    def create_admin(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, "create-admin", "--phone", phone],
            env=env,
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        out = create_admin("tiny")
        assert out.returncode == 1
        assert "password: must be" in out.stderr
        assert "Traceback" not in out.stderr
        out = create_admin("a long and private one")
        assert out.returncode == 0, out.stderr
        assert f"created admin {phone}" in out.stdout
        assert _scalar(url, _by_phone(phone)) == ["admin"]
        out = create_admin("another long password")
        assert out.returncode == 1
        assert "phone" in out.stderr
        assert "Traceback" not in out.stderr
        assert _scalar(url, "SELECT count(*) FROM users") == 1
    finally:
        _admin_sql(server_urls, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("redis://:s3cret-_x@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://postgres:s3cret@h:5432/d", "postgresql://postgres:***@h:5432/d"),
        ("postgresql://u:p@ss@h/d", "postgresql://u:***@h/d"),
        (
            "postgresql://u@h/d?sslmode=require&password=s3cret",
            "postgresql://u@h/d?sslmode=require&password=***",
        ),
        ("redis://h:6379/0?Password=s3cret&db=1", "redis://h:6379/0?Password=***&db=1"),
        ("redis://127.0.0.1:6379/0?mypassword=kept", "redis://127.0.0.1:6379/0?mypassword=kept"),
    ],
)
def test_store_urls_are_logged_without_their_password(url: str, logged: str) -> None:
    """doorstep.db.redact hides a URL's password, in the user part or a password= query parameter."""
    assert redact(url) == logged


def test_embedded_store_passwords_appear_in_no_log(tmp_path: Path) -> None:
    """`doorstep migrate` on embedded stores: the output and the servers' logs hold neither password."""
    data = tmp_path / "data"
    out = subprocess.run(
        [*COMMAND, "migrate"],
        env=_env(DOORSTEP_DATA_DIR=str(data), DOORSTEP_LOG_LEVEL="DEBUG"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    said = out.stdout + out.stderr + "".join(p.read_text() for p in (data / "logs").iterdir())
    assert "applied migrations" in said
    for name in ("postgres-password", "valkey-password"):
        password = (data / name).read_text().strip()
        assert len(password) >= 32
        assert password not in said
        assert f"password in {data / name}" in said
    assert processes_mentioning(str(data)) == []


def test_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    """A malformed setting stops the command with exit 1 and a message naming the variable."""
    env = _env(DOORSTEP_DATA_DIR=str(tmp_path), DOORSTEP_PORT="eighty")
    out = subprocess.run([*COMMAND, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == "doorstep: DOORSTEP_PORT: must be an integer, got 'eighty'"

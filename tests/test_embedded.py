"""The embedded PostgreSQL and Valkey: real servers, persistent, private, kept alive, never orphaned."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from websockets.asyncio.client import ClientConnection

from accounts import service as accounts
from api.app import create_app
from api.serving import uvicorn_options
from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.db import ensure_database, with_database
from doorstep.embedded import (
    EmbeddedError,
    _spawn,
    embedded_stores,
    free_port,
    postgres_bin_dir,
    start_valkey,
    valkey_server_path,
)
from doorstep.migrate import migrate
from doorstep.settings import Settings
from doorstep.stores import Stores
from doorstep.supervisor import RestartPolicy
from tests.helpers import PASSWORD, SQUARE, Account, new_phone, processes_mentioning
from tests.live import DEST, open_worker, recv
from workforce import store as workforce_store

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


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return parts._replace(
        netloc=f"{parts.username or ''}:{password}@{parts.hostname}:{parts.port}"
    ).geturl()


def _loose_modes(root: Path) -> list[str]:
    """Every directory not 0700 and every file not 0600 under ``root``."""
    loose = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in (*dirnames, *filenames))):
            try:
                st = os.lstat(name)
            except FileNotFoundError:
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
                loose.append(f"{stat.S_IMODE(st.st_mode):o} (want {want:o}) {name}")
    return loose


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


def test_each_store_needs_its_generated_password(tmp_path: Path) -> None:
    """The URLs carry passwords kept in the data dir (0600); without them PostgreSQL and Valkey refuse."""
    with embedded_stores(tmp_path, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url
        for url, name in ((database_url, "postgres-password"), (redis_url, "valkey-password")):
            kept = tmp_path / name
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600
            assert urlsplit(url).password == kept.read_text().strip()
            assert len(kept.read_text().strip()) >= 32

        async def refused() -> None:
            await ensure_database(database_url)
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(_without_password(database_url))
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(_with_password(database_url, "guess"))
            redis = Redis.from_url(_without_password(redis_url))
            with pytest.raises((AuthenticationError, ResponseError)):
                await redis.get("anything")
            await redis.aclose()

        asyncio.run(refused())


def test_they_listen_on_127_0_0_1_only(tmp_path: Path) -> None:
    """PostgreSQL listens on 127.0.0.1 with no Unix socket and one password rule; Valkey binds 127.0.0.1."""
    with embedded_stores(tmp_path, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url

        async def check() -> None:
            conn = await asyncpg.connect(with_database(database_url, "postgres"))
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("SHOW unix_socket_directories") == ""
            rules = await conn.fetch(
                "SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules"
            )
            assert [tuple(r) for r in rules] == [
                ("host", ["all"], ["all"], "127.0.0.1", "scram-sha-256")
            ]
            await conn.close()
            redis = Redis.from_url(redis_url)
            assert await redis.config_get("bind") == {"bind": "127.0.0.1"}
            assert await redis.config_get("unixsocket") == {"unixsocket": ""}
            await redis.aclose()

        asyncio.run(check())


def test_data_dirs_and_files_are_private(tmp_path: Path) -> None:
    """Every directory under the data dir is 0700 and every file 0600, the append-only files included."""
    with embedded_stores(tmp_path, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url
        asyncio.run(_write(redis_url, database_url))
        assert list((tmp_path / "valkey" / "appendonlydir").iterdir())
        assert _loose_modes(tmp_path) == []
    assert _loose_modes(tmp_path) == []


OLD_INITDB = "-U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync"
OLD_PG = ("-h", "127.0.0.1", "-c", "unix_socket_directories=")
OLD_VALKEY = ("--bind", "127.0.0.1", "--appendonly", "yes", "--save", "", "--daemonize", "no")


def _old_version_data_dir(data: Path) -> None:
    """A data dir as doorstep 0.x left it: PostgreSQL with ``trust`` and no password,
    Valkey with no password, files readable by all (the old flags, umask 022)."""
    data.mkdir(mode=0o755)
    logs = data / "logs"
    logs.mkdir(mode=0o755)
    pgdata = data / "postgres"
    pgdata.mkdir(mode=0o700)
    drop_root = os.geteuid() == 0
    log_path = logs / "postgres.log"
    init = _spawn(
        [str(postgres_bin_dir() / "initdb"), "-D", str(pgdata), *OLD_INITDB.split()],
        log_path=log_path,
        death_signal=signal.SIGKILL,
        drop_root=drop_root,
    )
    assert init.wait() == 0
    port = free_port()
    pg = _spawn(
        [str(postgres_bin_dir() / "postgres"), "-D", str(pgdata), "-p", str(port), *OLD_PG],
        log_path=log_path,
        death_signal=signal.SIGINT,
        drop_root=drop_root,
    )

    async def write_pg() -> None:
        url = f"postgresql://postgres@127.0.0.1:{port}/doorstep"
        for _ in range(200):
            try:
                await ensure_database(url)
                break
            except OSError:
                await asyncio.sleep(0.1)
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('pg')")
        await conn.close()

    asyncio.run(write_pg())
    pg.send_signal(signal.SIGINT)
    assert pg.wait(30) == 0
    vdir = data / "valkey"
    vdir.mkdir(mode=0o755)
    port = free_port()
    with open(logs / "valkey.log", "ab") as out:
        valkey = subprocess.Popen(
            [str(valkey_server_path()), "--port", str(port), "--dir", str(vdir), *OLD_VALKEY],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.umask(0o022),
        )

    async def write_valkey() -> None:
        redis = Redis.from_url(f"redis://127.0.0.1:{port}/0")
        for _ in range(200):
            try:
                await redis.set("kept", "valkey")
                break
            except RedisConnectionError:
                await asyncio.sleep(0.05)
        await redis.aclose()

    asyncio.run(write_valkey())
    valkey.terminate()
    assert valkey.wait(30) == 0
    for path in (logs / "postgres.log", logs / "valkey.log"):
        path.chmod(0o644)
    assert _loose_modes(data) != []  # the old version's state, as found in the field


def test_a_data_dir_of_an_earlier_version_gets_passwords_and_keeps_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trust, password-less data dir starts: both stores then need passwords, data kept, modes tightened, once."""
    data = tmp_path / "data"
    _old_version_data_dir(data)
    caplog.set_level(logging.INFO, logger="doorstep.embedded")
    with embedded_stores(data, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url
        assert urlsplit(database_url).password == (data / "postgres-password").read_text().strip()
        assert urlsplit(redis_url).password == (data / "valkey-password").read_text().strip()
        assert asyncio.run(_read(redis_url, database_url)) == ("pg", b"valkey")

        async def refused() -> None:
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(_without_password(database_url))
            redis = Redis.from_url(_without_password(redis_url))
            with pytest.raises((AuthenticationError, ResponseError)):
                await redis.get("kept")
            await redis.aclose()

        asyncio.run(refused())
        assert (data / "postgres" / "pg_hba.conf").read_text().count("trust") == 0
    assert _loose_modes(data) == []
    assert processes_mentioning(str(data)) == []
    migrated = [r for r in caplog.records if "now needs a password" in r.getMessage()]
    assert len(migrated) == 1
    assert (data / "postgres-password").read_text().strip() not in (
        data / "logs" / "postgres.log"
    ).read_text()

    caplog.clear()
    with embedded_stores(data, redis=True, postgres=True) as (again_redis, again_database):
        assert again_redis
        assert again_database
        assert asyncio.run(_read(again_redis, again_database)) == ("pg", b"valkey")
    assert [r for r in caplog.records if "now needs a password" in r.getMessage()] == []


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
        assert _pid(tmp_path / "valkey" / "valkey.pid") in servers
        assert _pid(tmp_path / "postgres" / "postmaster.pid") in servers
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


# --- a store that dies is started again ---------------------------------------------


def _pid(pid_file: Path) -> int:
    """The pid a server wrote to its pid file (0 while there is none)."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


VALKEY_PID = Path("valkey") / "valkey.pid"
POSTMASTER_PID = Path("postgres") / "postmaster.pid"


@dataclass
class Served:
    """An app on its own uvicorn server over supervised embedded stores."""

    http: httpx.AsyncClient
    address: str
    worker: Account


@asynccontextmanager
async def _served(data: Path, redis_url: str, database_url: str) -> AsyncIterator[Served]:
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url)
    await migrate(conn)
    await conn.close()
    params = data / "params.toml"
    # No shedding (as the suite's live_app): a loaded machine (the other test process on
    # schemathesis) delays this process's loop past 1 s, and fixes were shed as
    # "overloaded" instead of the "unavailable" of the killed store under test.
    params.write_text(
        "[gc]\nfreeze = false\n[engine]\nenabled = false\n[ingest]\nshed_above_ms = 0\n"
    )
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        data_dir=data,
        secret_key=secrets.token_urlsafe(48),
        params_file=params,
    )
    stores = await Stores.open(settings)
    city = catalog_service.build_city(
        id="kept",
        name_zh="测试城",
        name_en="Test city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="李师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city.id,
        skills=(),
        home_lat=DEST[0],
        home_lng=DEST[1],
        team_id=None,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, stores),
            **uvicorn_options(host="127.0.0.1", port=port, log_level="warning"),
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = await http.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
            assert r.status_code == 200, r.text
            body = r.json()
            worker = Account(
                user.id, phone, ("worker",), body["access_token"], body["refresh_token"]
            )
            yield Served(http, f"127.0.0.1:{port}", worker)
    finally:
        server.should_exit = True
        await task
        await stores.close()


async def _ready_again(http: httpx.AsyncClient, pid_file: Path, old_pid: int) -> int:
    """Wait until the server behind ``pid_file`` is a new process and /readyz says 200."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pid = _pid(pid_file)
        if pid not in (0, old_pid):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return pid
            except httpx.TransportError:
                pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{pid_file.parent.name} was not back within 90 s")


def _fix(seq: int) -> str:
    return orjson.dumps(
        {
            "type": "fix",
            "seq": seq,
            "ts_ms": int(time.time() * 1000),
            "accuracy_m": 5.0,
            "lat": DEST[0] + seq * 1e-5,
            "lng": DEST[1],
        }
    ).decode()


async def _acked(ws: ClientConnection, seq: int) -> None:
    """Send fix ``seq`` until it is acked (resending after an ``unavailable`` error)."""
    for _ in range(40):
        await ws.send(_fix(seq))
        frame = await recv(ws)
        while frame["type"] not in ("ack", "error"):
            frame = await recv(ws)
        if frame["type"] == "ack":
            assert frame["seq"] == seq, frame
            return
        assert frame["code"] == "unavailable", frame
        await asyncio.sleep(0.25)
    raise AssertionError(f"fix {seq} was never acked")


def _restarts(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "doorstep.embedded" and r.getMessage().startswith(f"{name} (pid")
    ]


def _kill_and_recover(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    pid_file: Path,
    check_after: Callable[[Served], Awaitable[None]],
) -> list[str]:
    caplog.set_level(logging.INFO, logger="doorstep.embedded")
    with embedded_stores(tmp_path, redis=True, postgres=True) as (redis_url, database_url):
        assert redis_url
        assert database_url

        async def run() -> None:
            async with _served(tmp_path, redis_url, database_url) as app:
                ws, _ = await open_worker(app.address, app.worker)
                await _acked(ws, 1)
                old = _pid(tmp_path / pid_file)
                os.kill(old, signal.SIGKILL)
                await _ready_again(app.http, tmp_path / pid_file, old)
                await _acked(ws, 2)  # tracking's own Redis connection is back too
                await ws.close()
                await check_after(app)
                me = await app.http.get("/v1/me", headers=app.worker.auth)
                assert me.status_code == 200, me.text

        asyncio.run(run())
    assert processes_mentioning(str(tmp_path)) == []
    return _restarts(caplog, "Valkey") + _restarts(caplog, "PostgreSQL")


def _one_restart(lines: list[str], name: str) -> None:
    """One line for the restart (after a line per attempt that failed, if any: PostgreSQL's
    old backends may still hold its shared memory for a moment)."""
    assert lines, "no restart was logged"
    assert all(line.startswith(f"{name} (pid ") for line in lines), lines
    assert "exited with code -9; restarted on 127.0.0.1:" in lines[-1]
    assert all("failed" in line for line in lines[:-1]), lines


@pytest.mark.timeout(300)
def test_a_killed_valkey_is_restarted_and_the_app_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL of the embedded Valkey: it is restarted on its port with its data; /readyz, sockets, logins work again; one log line."""

    async def refresh(app: Served) -> None:  # reads and writes both stores
        r = await app.http.post(
            "/v1/auth/refresh", json={"refresh_token": app.worker.refresh_token}
        )
        assert r.status_code == 200, r.text

    _one_restart(_kill_and_recover(tmp_path, caplog, VALKEY_PID, refresh), "Valkey")


@pytest.mark.timeout(300)
def test_a_killed_postgres_is_restarted_and_the_app_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL of the embedded PostgreSQL: restarted (crash recovery) on its port; /readyz and writes work again; one log line."""

    async def writes(app: Served) -> None:  # a login writes a refresh token to PostgreSQL
        r = await app.http.post(
            "/v1/auth/login", json={"phone": app.worker.phone, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text

    _one_restart(_kill_and_recover(tmp_path, caplog, POSTMASTER_PID, writes), "PostgreSQL")


def test_restart_delays_double_up_to_a_cap() -> None:
    """The n-th restart in a row waits first_delay × 2^(n-1), never more than max_delay."""
    policy = RestartPolicy(first_delay_s=0.5, max_delay_s=5.0)
    assert [policy.delay_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_store_that_keeps_dying_is_left_down_after_the_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed three times with a limit of two restarts in a row: restarted twice, then left down with an error."""
    caplog.set_level(logging.INFO, logger="doorstep.embedded")
    policy = RestartPolicy(first_delay_s=0.05, max_restarts=2, stable_s=3600, poll_s=0.05)
    pid_file = tmp_path / VALKEY_PID
    with embedded_stores(tmp_path, redis=True, postgres=False, restart=policy) as (url, _):
        assert url
        for _ in range(2):
            old = _pid(pid_file)
            os.kill(old, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while _pid(pid_file) in (0, old) and time.monotonic() < deadline:
                time.sleep(0.05)
        last = _pid(pid_file)
        os.kill(last, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            r.levelno == logging.ERROR for r in caplog.records
        ):
            time.sleep(0.05)
        assert _pid(pid_file) == last
        assert processes_mentioning(str(tmp_path)) == []
    lines = _restarts(caplog, "Valkey")
    assert len(lines) == 3, lines
    assert "restart 1 of at most 2 in a row" in lines[0]
    assert "restart 2 of at most 2 in a row" in lines[1]
    assert "not restarting it again" in lines[2]
    assert [r.levelname for r in caplog.records if r.getMessage() in lines] == [
        "WARNING",
        "WARNING",
        "ERROR",
    ]

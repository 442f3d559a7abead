"""Real stores for the tests, isolated per run.

With ``REDIS_URL`` and ``DATABASE_URL`` set (as CI does) the tests use those
servers; with either missing, real embedded servers are started for the session.
Each run gets a database of its own (created, migrated, dropped) and a Redis key
prefix of its own (its keys deleted at the end).
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from accounts import service as accounts
from api.app import create_app
from api.serving import uvicorn_options
from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.db import with_database
from doorstep.embedded import embedded_stores
from doorstep.migrate import migrate
from doorstep.settings import Settings, networks
from doorstep.stores import Stores
from tests.helpers import METRICS_TOKEN, PASSWORD, Account, MakeUser, new_phone, stop_server
from tests.live import EngineCity

RUN_ID = secrets.token_hex(4)


def pytest_configure(config: pytest.Config) -> None:
    """Argon2id at its lowest cost in the test process: at the production cost (t=3, 64 MiB,
    p=4; tests/test_accounts.py checks it in a process of its own) every account a test
    creates and logs in took ~0.4 s of CPU (12 tests of test_orders_api: 45 s of CPU at
    that cost, 9.5 s at this one). Servers the tests start as processes of their own
    (doorstep serve, demo) keep the production cost."""
    from accounts import passwords

    passwords.set_cost(time_cost=1, memory_kib=1024, parallelism=1)
    # Under --dist loadfile pytest-xdist hands out files in collection order, which
    # pytest_collection_modifyitems below makes longest first; its own reordering (by
    # number of tests) would put the two-test schemathesis file, the longest, last.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


# The longest files, in seconds (setup + call + teardown of their tests) in a whole run
# with -n 2 --dist loadfile on a loaded machine (2026-12-07, docs/architecture.md
# "Tests"). They go first, so that the two processes end together: in collection order
# test_schemathesis.py (~520 s) started near the end and ran alone for minutes.
SLOW_FILES = {
    "test_schemathesis.py": 520,
    "test_simulations.py": 180,
    "test_cli.py": 165,
    "test_access_matrix.py": 130,
    "test_engine.py": 80,
    "test_worker_wire.py": 80,
    "test_crew_overrides.py": 75,
    "test_pages.py": 65,
    "test_apps.py": 65,
    "test_chain_agents.py": 60,
    "test_alipay_crash.py": 58,
    "test_embedded.py": 53,
    "test_settlement_pages.py": 53,
    "test_payments_crash.py": 49,
    "test_seed_load.py": 49,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of SLOW_FILES first, longest first; the others after, in their order."""
    items.sort(key=lambda item: -SLOW_FILES.get(item.path.name, 0))


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(redis_url, database_url) of real servers: the environment's, or embedded ones."""
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url and database_url:
        yield redis_url, database_url
        return
    with (
        tempfile.TemporaryDirectory(prefix="doorstep-test-") as tmp,
        embedded_stores(Path(tmp), redis=not redis_url, postgres=not database_url) as (r, d),
    ):
        yield redis_url or r or "", database_url or d or ""


@pytest.fixture(scope="session")
async def database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A fresh, migrated database for this run, dropped afterwards."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_test_{RUN_ID}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_urls[1], name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    yield url
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture(scope="session")
def settings(
    server_urls: tuple[str, str], database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings pointing at this run's database and key prefix."""
    return Settings(
        redis_url=server_urls[0],
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        secret_key=secrets.token_urlsafe(48),
        redis_prefix=f"test:{RUN_ID}:",
        max_body_bytes=64 * 1024,
        # Session fixtures log in once: on a loaded machine the suite can outlast 15 min.
        access_token_ttl_s=4 * 3600,
        # Tests stand for clients on many networks with X-Forwarded-For from loopback
        # (tests.helpers.from_network); the rest of the suite, on loopback itself, is a
        # load tester to the login and registration limits.
        trusted_proxies=networks("127.0.0.0/8", "trusted_proxies"),
        rate_limit_exempt=networks("127.0.0.1", "rate_limit_exempt"),
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture(scope="session")
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """Open stores for the run; this run's Redis keys are deleted at the end."""
    opened = await Stores.open(settings)
    yield opened
    redis: Redis = opened.redis
    async for key in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
        await redis.delete(key)
    await opened.close()


@pytest.fixture(scope="session")
async def client(live_app: tuple[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app on its real uvicorn server."""
    async with httpx.AsyncClient(base_url=f"http://{live_app[0]}", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def make_user(stores: Stores, client: httpx.AsyncClient) -> MakeUser:
    """Create an account with ``roles`` directly and log it in over HTTP."""

    async def make(*roles: str, name: str = "测试用户") -> Account:
        phone = new_phone()
        user = await accounts.create_user(
            stores, phone=phone, name=name, password=PASSWORD, roles=list(roles or ("customer",))
        )
        r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return Account(user.id, phone, user.roles, body["access_token"], body["refresh_token"])

    return make


@pytest.fixture(scope="session")
async def admin(make_user: MakeUser) -> Account:
    """An admin for the session."""
    return await make_user("admin", name="管理员")


@pytest.fixture(scope="session")
async def live_app(
    settings: Settings, stores: Stores, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, Any]]:
    """A real uvicorn server on a free port, in this event loop: (base ws/http address, app)."""
    import asyncio

    import uvicorn

    from doorstep.embedded import free_port

    params = tmp_path_factory.mktemp("params") / "params.toml"
    params.write_text(
        "[socket]\nframes_per_s = 50.0\nburst_frames = 50.0\nflood_close_after_s = 1.0\n"
        # The test process is not a long-running server: its garbage is the tests'.
        "[gc]\nfreeze = false\n"
        # Tests tick the engine by hand: a background tick would race them for the
        # same orders (and count on /metrics between a test's two readings).
        "[engine]\nenabled = false\n"
        # Day plans: tiny instances, a small work budget (so a plan never depends on the
        # machine's load); the clock is only a safety cap, as in production.
        "[planner]\ntime_limit_s = 30.0\nbranch_limit = 5000\nbranches_per_job = 0\n"
        # Tests share this process's event loop and may hold it (planning, seeding):
        # that must not shed their fixes. tests/test_overload.py runs a server with it on.
        "[ingest]\nshed_above_ms = 0\n"
        # WeChat Pay's redelivery schedule (15 s … 6 h) a hundred times faster.
        "[payments]\nsandbox_redelivery_scale = 0.01\n"
    )
    port = free_port()  # before the app: the SMS sandbox posts its receipts to it
    app = create_app(replace(settings, params_file=params, port=port), stores)
    config = uvicorn.Config(
        app,
        **uvicorn_options(host="127.0.0.1", port=port, log_level="warning", ws_max_size=2**20),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    yield f"127.0.0.1:{port}", app
    await stop_server(server, task)


@pytest.fixture(scope="session")
async def live_city(stores: Stores) -> str:
    """A city (the test square in Futian) that workers of the live tests belong to."""
    from catalog import service as catalog_service
    from catalog import store as catalog_store
    from tests.helpers import SQUARE

    city = catalog_service.build_city(
        id=f"live-{RUN_ID}",
        name_zh="测试城",
        name_en="Live test city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    # Scheduled bookings are fitted into day plans: two workers without special skills,
    # available around the clock, give the city's bookings a place.
    from tests.live import make_generalist

    for _ in range(2):
        await make_generalist(stores, city.id)
    return city.id


@pytest.fixture
async def worker_account(stores: Stores, client: httpx.AsyncClient, live_city: str) -> Account:
    """A fresh worker with a profile in the live city, logged in."""
    from workforce import store as workforce_store

    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="李师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=live_city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    body = r.json()
    return Account(user.id, phone, user.roles, body["access_token"], body["refresh_token"])


@pytest.fixture(scope="session")
async def instant_service(client: httpx.AsyncClient, admin: Account) -> str:
    """A service bookable now, in a category of its own."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"cat_{tag}", "name_zh": "保洁", "name_en": "Cleaning"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"svc_{tag}",
            "category": f"cat_{tag}",
            "name_zh": "日常保洁",
            "name_en": "Cleaning",
            "price_minor": 15000,
            "duration_min": 120,
            "instant": True,
            "scheduled": True,
        },
    )
    assert r.status_code == 201, r.text
    return f"svc_{tag}"


_engine_cities = itertools.count()


@pytest.fixture
async def engine_city(stores: Stores) -> EngineCity:
    """A small city of its own per test (its area overlaps no other), so that the engine
    sees only that test's orders and workers."""
    n = next(_engine_cities)
    lat0, lng0 = 22.30 + (n % 20) * 0.012, 113.60 + (n // 20) * 0.012
    area = {
        "type": "Polygon",
        "coordinates": [
            [
                [lng0, lat0],
                [lng0 + 0.01, lat0],
                [lng0 + 0.01, lat0 + 0.01],
                [lng0, lat0 + 0.01],
                [lng0, lat0],
            ]
        ],
    }
    city = catalog_service.build_city(
        id=f"eng-{RUN_ID}-{n}",
        name_zh="派单城",
        name_en="Engine city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=area,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    return EngineCity(city.id, (lat0 + 0.005, lng0 + 0.005))


def _matrix_cells() -> int:
    """Cells the access matrix checked in this process (0 if it did not run here)."""
    import sys

    matrix = sys.modules.get("tests.test_access_matrix")
    return int(matrix.CELLS["checked"]) if matrix is not None else 0


_MATRIX_FROM_WORKERS: list[int] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its count to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["matrix_cells"] = _matrix_cells()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist: the controller collects each worker's count."""
    _MATRIX_FROM_WORKERS.append(int(getattr(node, "workeroutput", {}).get("matrix_cells", 0)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The access matrix's count of cells (tests/test_access_matrix.py), when it ran."""
    checked = _matrix_cells() + sum(_MATRIX_FROM_WORKERS)
    if checked:
        terminalreporter.write_line(
            f"access matrix: {checked} cells checked "
            "(route × role × own / other merchant / other city)"
        )

"""Schemathesis against /openapi.json: every check, as a customer and as an admin.

The run gets a server, a database and a Redis key prefix of its own (seeded with the
Shenzhen catalog and two accounts), so the fuzzer's writes (cities, services, frozen
accounts, cancelled orders) can never meet another test's rows, nor theirs its own.
The number of examples and the seed are fixed: the run is bounded and repeatable.

Statuses a route's own rules answer to schema-valid data (a password on the common
list, an unknown time zone, a window in the past) are declared on the route as
``errors={422: ...}`` and documented; only for those routes is 422 an accepted answer to
a schema-valid request (``positive_data_acceptance``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from accounts import service as accounts
from api.app import create_app, endpoints
from api.serving import uvicorn_options
from doorstep.db import with_database
from doorstep.embedded import free_port
from doorstep.migrate import migrate
from doorstep.settings import Settings
from doorstep.stores import Stores
from seeding.load import seed
from tests.conftest import RUN_ID
from tests.helpers import PASSWORD, dies_with_parent, new_phone

MAX_EXAMPLES = 5  # per operation and phase: the whole file stays near two minutes
SEED = 20261206
ST = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' default


@dataclass(frozen=True)
class Target:
    """The server under test and its accounts: role -> (phone, access token)."""

    base: str
    accounts: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
async def target(
    server_urls: tuple[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    """A server on its own database and Redis prefix, with the catalog and two accounts."""
    import uvicorn

    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_test_{RUN_ID}_st"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_urls[1], name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    params = tmp_path_factory.mktemp("st-params") / "params.toml"
    params.write_text(
        "[gc]\nfreeze = false\n[engine]\nenabled = false\n[planner]\ntime_limit_s = 0.2\n"
    )
    own = replace(
        settings,
        database_url=url,
        redis_prefix=f"{settings.redis_prefix}st:",
        data_dir=tmp_path_factory.mktemp("st-data"),
        params_file=params,
    )
    stores = await Stores.open(own)
    await seed(stores, today=date.today())
    people = {}
    for role in ("customer", "admin"):
        phone = new_phone()
        await accounts.create_user(
            stores, phone=phone, name=f"模糊测试{role}", password=PASSWORD, roles=[role]
        )
        people[role] = phone
    app = create_app(own, stores)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=port, log_level="error"))
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    tokens = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for role, phone in people.items():
            r = await c.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[role] = (phone, r.json()["access_token"])
    try:
        yield Target(base, tokens)
    finally:
        server.should_exit = True
        await task
        redis: Redis = stores.redis
        async for key in redis.scan_iter(match=f"{own.redis_prefix}*", count=1000):
            await redis.delete(key)
        await stores.close()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def config_toml() -> str:
    """Schemathesis' configuration: NUL-free text (PostgreSQL cannot store NUL; every
    route refuses it with 422 ``nul_character``), and 422 accepted for schema-valid data
    only on the routes that declare rules of their own."""
    lines = ["[generation]", "allow-x00 = false", ""]
    for ep in endpoints():
        if any(status == 422 for status, _ in ep.errors):
            statuses = ", ".join(f'"{s}"' for s in [*POSITIVE, "422"])
            lines += [
                "[[operations]]",
                f'include-method = "{ep.method}"',
                f'include-path = "{ep.path}"',
                f"checks.positive_data_acceptance.expected-statuses = [{statuses}]",
                "",
            ]
    return "\n".join(lines)


async def run_schemathesis(target: Target, role: str, workdir: Path) -> tuple[int, str]:
    """``st run`` with every check as ``role``; (exit code, its report)."""
    config = workdir / "schemathesis.toml"
    config.write_text(config_toml())
    phone, token = target.accounts[role]
    env = os.environ | {
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "DOORSTEP_ST_BASE": target.base,
        "DOORSTEP_ST_PHONE": phone,
        "DOORSTEP_ST_PASSWORD": PASSWORD,
        "DOORSTEP_ST_TOKEN": token,
    }
    proc = await asyncio.create_subprocess_exec(
        ST,
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{target.base}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "60",
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=dies_with_parent(),
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.timeout(600)  # 145 operations; the coverage phase alone took 225 s on a busy machine
@pytest.mark.parametrize("role", ["customer", "admin"])  # the admin last: it may freeze others
async def test_schemathesis_finds_no_failure(target: Target, role: str, tmp_path: Path) -> None:
    """Schemathesis' every check (server errors, response schemas, documented statuses and
    content types, schema-valid data accepted, invalid data refused, Allow on 405) passes
    on every operation of /openapi.json, as a customer and as an admin."""
    code, report = await run_schemathesis(target, role, tmp_path)
    summary = report[report.rfind("SUMMARY") :]
    print(f"schemathesis as {role}:\n{report}")  # shown with -s or -rP
    assert code == 0, report[-30_000:]
    assert "Tested: " in summary
    assert " failures" not in summary.splitlines()[-1], summary

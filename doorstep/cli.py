"""The ``doorstep`` command: serve, migrate, seed, demo.

This is the only module that exits the process or reads ``sys.argv``. Embedded
stores are started here, on the main thread, before any event loop, so their
parent-death signal is tied to the process's lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from doorstep import __version__
from doorstep.db import ensure_database, redact
from doorstep.embedded import EmbeddedError, embedded_stores
from doorstep.errors import DoorstepError
from doorstep.settings import Settings, from_env, load_secret_key

log = logging.getLogger("doorstep")


@contextmanager
def running_stores(settings: Settings) -> Iterator[Settings]:
    """Settings with both store URLs, starting embedded servers for the missing ones."""
    with embedded_stores(
        settings.data_dir, redis=settings.embedded_redis, postgres=settings.embedded_postgres
    ) as (redis_url, database_url):
        resolved = settings.with_stores(
            redis_url=settings.redis_url or redis_url or "",
            database_url=settings.database_url or database_url or "",
        )
        if not settings.embedded_postgres:
            log.info("PostgreSQL: %s (from DATABASE_URL)", redact(resolved.database_url or ""))
        if not settings.embedded_redis:
            log.info("Redis: %s (from REDIS_URL)", redact(resolved.redis_url or ""))
        yield resolved


async def _migrate(settings: Settings, *, create_database: bool) -> None:
    import asyncpg

    from doorstep.migrate import migrate

    assert settings.database_url is not None
    if create_database and await ensure_database(settings.database_url):
        log.info("created database %s", settings.database_url.rsplit("/", 1)[-1])
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    if applied:
        log.info("applied migrations: %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied))
    else:
        log.info("database schema is up to date")


async def _seed(settings: Settings, city: str, seed: int) -> None:
    from doorstep.stores import Stores
    from seeding.load import ADMIN_PHONE, DEMO_PASSWORD, DISPATCHER_PHONE
    from seeding.load import seed as run_seed

    stores = await Stores.open(settings)
    try:
        report = await run_seed(stores, city_id=city, today=date.today(), seed=seed)
    finally:
        await stores.close()
    print(
        f"seeded {report.city}: {report.categories} categories, {report.services} services, "
        f"{report.workers} workers in {report.teams} teams, {report.customers} customers "
        f"({report.new_accounts} new accounts)"
    )
    print(
        f"demo logins (password {DEMO_PASSWORD!r}): admin {ADMIN_PHONE}, "
        f"dispatcher {DISPATCHER_PHONE}"
    )


def _serve(
    settings: Settings, host: str, port: int, workers: int, *, access_log: bool = True
) -> None:
    import uvicorn

    assert settings.redis_url
    assert settings.database_url
    # Worker processes (``--workers`` > 1) read their settings from the environment.
    os.environ["REDIS_URL"] = settings.redis_url
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ["DOORSTEP_DATA_DIR"] = str(settings.data_dir)
    os.environ.setdefault(
        "DOORSTEP_SECRET_KEY", settings.secret_key or load_secret_key(settings.data_dir)
    )
    base = f"http://{host}:{port}"
    log.info("serving on %s  (docs %s/docs, readiness %s/readyz)", base, base, base)
    from api.serving import uvicorn_options

    common = uvicorn_options(
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        access_log=access_log,
    )
    if workers > 1:
        uvicorn.run("api.app:create_app_from_env", factory=True, workers=workers, **common)
    else:
        from api.app import create_app

        uvicorn.run(create_app(settings), **common)


@contextmanager
def demo_city(host: str, port: int, *, enabled: bool) -> Iterator[None]:
    """The demo's live city (``python -m simulations.demo``) as a child process while the
    server runs; stopped, and waited for, when the server stops."""
    if not enabled:
        yield
        return
    import subprocess

    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulations.demo",
            f"http://{local}:{port}",
            f"http://{host}:{port}",
        ],
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM if this process dies without stopping it."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="doorstep",
        description="Doorstep: real-time dispatch and tracking for on-demand home services. "
        "With no REDIS_URL / DATABASE_URL set, real embedded Valkey and PostgreSQL "
        "servers are started under DOORSTEP_DATA_DIR (default .doorstep/).",
    )
    p.add_argument("--version", action="version", version=f"doorstep {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def serving(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
        sp.add_argument("--port", type=int, default=None, help="port (default 8000)")

    s = sub.add_parser(
        "serve",
        help="run the API server (migrates first)",
        description="Run the HTTP/WebSocket server. Applies pending migrations first.",
    )
    serving(s)
    s.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending migrations. Safe to run twice or concurrently.",
    )
    sd = sub.add_parser(
        "seed",
        help="load the demo city (idempotent)",
        description="Load a demo city: catalog, workers, teams, customers. "
        "Running it again changes nothing.",
    )
    sd.add_argument("--city", default="shenzhen", choices=["shenzhen"], help="demo city")
    sd.add_argument("--seed", type=int, default=7, help="random seed for the generated people")
    d = sub.add_parser(
        "demo",
        help="stores + migrate + seed + serve, with a live simulated city",
        description="Start the stores, migrate, seed the demo city and serve it, with about "
        "100 simulated workers moving around Futian and an order every few seconds "
        "(simulations/scenarios/demo.toml; it prints tracking links as orders get workers).",
    )
    serving(d)
    d.add_argument(
        "--no-city", action="store_true", help="serve the seeded city without the simulation"
    )
    return p


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(argv: Sequence[str] | None = None) -> int:
    """Run a command; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = from_env()
    except DoorstepError as e:
        print(f"doorstep: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # SIGTERM stops like Ctrl-C: the `finally` blocks stop the embedded stores.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    try:
        with running_stores(settings) as resolved:
            asyncio.run(_migrate(resolved, create_database=settings.embedded_postgres))
            if args.command in ("seed", "demo"):
                asyncio.run(
                    _seed(resolved, getattr(args, "city", "shenzhen"), getattr(args, "seed", 7))
                )
            if args.command in ("serve", "demo"):
                live = args.command == "demo" and not args.no_city
                if args.command == "demo":
                    city = getattr(args, "city", "shenzhen")
                    print(
                        f"\n  Doorstep demo is up:  http://{host}:{port}/docs  "
                        f"(readiness http://{host}:{port}/readyz)\n"
                        f"  Dispatcher console:   http://{host}:{port}/console?city={city}\n"
                        + (
                            "  Live city: simulated workers and orders; tracking links follow.\n"
                            if live
                            else ""
                        )
                        + "  Ctrl-C stops it.\n",
                        flush=True,
                    )
                with demo_city(host, port, enabled=live):
                    # The live city makes hundreds of requests a minute: no line for each.
                    _serve(resolved, host, port, getattr(args, "workers", 1), access_log=not live)
    except KeyboardInterrupt:
        log.info("stopped")
        return 0
    except (DoorstepError, EmbeddedError) as e:
        print(f"doorstep: {e}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())

"""The ``doorstep`` command: serve, migrate, seed, create-admin, demo, audit verify.

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
from dataclasses import replace
from datetime import date

from doorstep import __version__
from doorstep.db import ensure_database, redact
from doorstep.embedded import EmbeddedError, embedded_stores
from doorstep.errors import DoorstepError, InvalidInput
from doorstep.settings import Settings, from_env, load_secret_key, networks

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
        plaintext = await conn.fetchval("SELECT count(*) FROM pii_plaintext")
    finally:
        await conn.close()
    if applied:
        log.info("applied migrations: %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied))
    else:
        log.info("database schema is up to date")
    if plaintext:  # a database from before migration 0030: encrypt before anything reads
        from doorstep.db import create_pool
        from privacy import crypto, rotation

        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            await rotation.encrypt_plaintext(pool, crypto.DataKeys.of(settings))
        finally:
            await pool.close()


async def _keys_rotate(settings: Settings, batch: int) -> int:
    """Re-encrypt personal data under the current key; print what was done."""
    from doorstep.db import create_pool
    from privacy import crypto, rotation

    assert settings.database_url is not None
    keys = crypto.DataKeys.of(settings)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        outcomes = await rotation.rotate(pool, keys, batch=batch)
    finally:
        await pool.close()
    for o in outcomes:
        print(
            f"{o.column:<28} {o.resealed:>8} re-encrypted to key {keys.current}"
            + ("  (resumed)" if o.resumed else "")
        )
    return 0


async def _work(settings: Settings) -> None:
    """A job worker alone (no HTTP), until interrupted."""
    import os

    from api import background
    from api.app import Tuning
    from doorstep.settings import load_secret_key
    from doorstep.stores import Stores
    from jobs import app as jobs_app
    from jobs.runner import JobRunner
    from notifications import gateway
    from notifications.service import Notifier
    from notifications.sms import AliyunLikeSms

    assert settings.database_url is not None
    tuning = Tuning.load(settings.params_file)
    stores = await Stores.open(settings)
    key = settings.secret_key or load_secret_key(settings.data_dir)
    sms_config = gateway.configured(settings, key)
    if sms_config is None:
        log.warning("no SMS gateway: set DOORSTEP_SMS_URL, or start a server first (its sandbox)")
    sms = AliyunLikeSms(sms_config) if sms_config else None
    notifier = Notifier(
        stores,
        presence=None,
        provider=sms,
        receipt_secret=sms_config.secret if sms_config else "",
    )
    from payments.gateway import worker_payments
    from settlement import gateway as payout_gateway
    from settlement.payouts import WeChatTransfers
    from settlement.service import Settlement

    payments = worker_payments(settings, stores, tuning.payments)
    payout_config = payout_gateway.configured(settings)
    if payout_config is None:
        log.warning("no payout channel: start a server first (its payout sandbox)")
    payouts = WeChatTransfers(payout_config) if payout_config else None
    from payments.gateway import configured as wechat_configured
    from settlement.wechat_bills import WeChatBills

    wechat = wechat_configured(settings)  # the bill API (a sandbox: the server mounted it)
    from settlement import alipay_bills
    from settlement.bills import BillSource

    bills: dict[str, BillSource] = {"wechat": WeChatBills(wechat)} if wechat is not None else {}
    bills |= alipay_bills.start(None, payments.providers.get("alipay"))  # the server mounted it
    settlement = Settlement(
        stores,
        tuning.settlement,
        payouts,
        appid=payout_config.appid if payout_config else "",
        bills=bills,
    )
    runner = JobRunner(
        jobs_app.build(settings.database_url, background.blueprints()),
        stores.pool,
        background.services(
            settings,
            stores,
            tuning.jobs,
            notifier,
            payments,
            safety=tuning.safety,
            settlement=settlement,
            aftersales_params=tuning.aftersales,
            growth_params=tuning.growth,
            membership=tuning.membership,
        ),
        tuning.jobs,
        name=f"worker-{os.getpid()}",
    )
    await runner.start()
    log.info("job worker running on queues %s", ", ".join(runner.queues))
    try:
        await asyncio.Event().wait()
    finally:
        await runner.stop()
        if sms is not None:
            await sms.close()
        if payouts is not None:
            await payouts.close()
        for source in bills.values():
            await source.close()
        await stores.close()


async def _ledger_check(settings: Settings) -> int:
    """Verify the ledger's invariants; print what fails; the exit code."""
    from doorstep.db import create_pool
    from ledger import store as ledger_store

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        violations = await ledger_store.check(pool)
        entries = await pool.fetchval("SELECT count(*) FROM ledger_entries")
    finally:
        await pool.close()
    for v in violations:
        print(f"VIOLATION {v.rule}: {v.detail}")
    print(f"ledger check: {entries} entries, {len(violations)} violation(s)")
    return 1 if violations else 0


async def _seed(settings: Settings, city: str, seed: int, *, demo: bool) -> dict[str, str]:
    """Seed; with ``demo``, the demo logins by role (all with the demo password)."""
    from doorstep.stores import Stores
    from seeding.load import ADMIN_PHONE, DEMO_PASSWORD, DISPATCHER_PHONE, FINANCE_PHONE
    from seeding.load import seed as run_seed

    stores = await Stores.open(settings)
    try:
        from files.blobs import local_store

        report = await run_seed(
            stores,
            city_id=city,
            today=date.today(),
            seed=seed,
            demo_accounts=demo,
            blobs=local_store(settings.data_dir),  # the applicants' document scans
        )
    finally:
        await stores.close()
    if not demo:
        print(
            f"seeded {report.city}: {report.categories} categories, {report.services} "
            "services; no accounts (`doorstep seed --demo` adds the demo city's people, "
            "all with a public password: never on a production database)"
        )
        return {}
    print(
        f"seeded {report.city}: {report.categories} categories, {report.services} services, "
        f"{report.workers} workers in {report.teams} teams, {report.customers} customers "
        f"({report.new_accounts} new accounts)"
    )
    logins = {
        "admin": ADMIN_PHONE,
        "dispatcher": DISPATCHER_PHONE,
        "finance": FINANCE_PHONE,
        **dict(report.logins),
    }
    print(
        f"demo logins (password {DEMO_PASSWORD!r}): "
        + ", ".join(f"{role} {phone}" for role, phone in logins.items())
    )
    return logins


def demo_banner(base: str, city: str, logins: dict[str, str], *, live: bool) -> str:
    """What ``doorstep demo`` prints once it serves: the apps, their links and logins."""
    from seeding.load import DEMO_PASSWORD

    def who(*roles: str) -> str:
        found = [f"{role} {logins[role]}" for role in roles if role in logins]
        return f"  (log in: {', '.join(found)})" if found else ""

    return (
        f"\n  Doorstep demo is up:  {base}/docs  (readiness {base}/readyz)\n"
        f"  Customer's app:       {base}/app{who('customer')}\n"
        f"  Worker's app:         {base}/worker{who('worker')}\n"
        f"  Back office:          {base}/admin{who('admin', 'merchant', 'finance', 'city_operator')}\n"
        f"  Dispatcher console:   {base}/console?city={city}{who('dispatcher')}\n"
        f"  Every demo login's password: {DEMO_PASSWORD}  (phone pages: open them at 360 × 800)\n"
        + "  Notifications:        each SMS the sandbox gateway sends is a 'sandbox SMS to …' "
        "line below;\n"
        "                        `doorstep sms-outbox` lists them; the customer's app has an "
        f"inbox tab (API: {base}/v1/me/inbox, live: /v1/ws/me)\n"
        + ("  Live city: simulated workers and orders; tracking links follow.\n" if live else "")
        + "  Ctrl-C stops it.\n"
    )


async def _seed_history(settings: Settings, args: argparse.Namespace) -> None:
    from doorstep.stores import Stores
    from seeding.history_load import load_history

    stores = await Stores.open(settings)
    try:
        r = await load_history(
            stores,
            city_id=args.city,
            orders=args.orders,
            days=args.days,
            seed=args.seed,
            end_day=date.today(),
        )
    finally:
        await stores.close()
    print(
        f"seeded {r.orders} orders in {r.city} from {r.first_day} to {r.last_day} "
        f"({r.customers} customers, {r.workers} workers): generated in {r.generate_s} s, "
        f"copied in {r.copy_s} s, rollups built in {r.rollup_s} s"
    )


def _read_password() -> str:
    """The new admin's password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password for the new admin: ")
        if getpass.getpass("again: ") != password:
            raise InvalidInput("the two entries differ", field="password")
        return password
    return sys.stdin.readline().rstrip("\r\n")


async def _create_admin(settings: Settings, phone: str, name: str, password: str) -> None:
    from accounts import service as accounts
    from doorstep.stores import Stores

    stores = await Stores.open(settings)
    try:
        user = await accounts.create_user(
            stores, phone=phone, name=name, password=password, roles=["admin"]
        )
    finally:
        await stores.close()
    print(f"created admin {user.phone} (user {user.id})")


def _serve(
    settings: Settings, host: str, port: int, workers: int, *, access_log: bool = True
) -> None:
    import uvicorn

    settings = replace(settings, host=host, port=port)  # the SMS gateway's receipts come here
    assert settings.redis_url
    assert settings.database_url
    os.environ.setdefault("DOORSTEP_PUBLIC_URL", settings.base_url)
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
        from api.app import Tuning
        from api.shared_sandboxes import SharedSandboxes

        # One sandbox per unconfigured payment provider for all the workers (a sandbox
        # per worker would get the others' notifications): api/shared_sandboxes.py.
        sandboxes = SharedSandboxes(settings, Tuning.load(settings.params_file).payments)
        os.environ.update(sandboxes.start())
        try:
            uvicorn.run("api.app:create_app_from_env", factory=True, workers=workers, **common)
        finally:
            sandboxes.stop()
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
        help="load a city and the service catalog (idempotent); --demo: and demo accounts",
        description="Load a city (its service area) and the service catalog. With --demo, "
        "also the demo city's people: an admin, a dispatcher, merchants, workers and "
        "customers, every one with the public password 'doorstep-demo' (never on a "
        "production database). Running it again changes nothing.",
    )
    sd.add_argument("--city", default="shenzhen", choices=["shenzhen", "chengdu"], help="city")
    sd.add_argument(
        "--demo",
        action="store_true",
        help="also create the demo accounts, with the public password 'doorstep-demo'",
    )
    sd.add_argument("--seed", type=int, default=7, help="random seed for the generated people")
    sh = sub.add_parser(
        "seed-history",
        help="load a past year of orders from the simulator's demand model (for analytics)",
        description="Generate orders from the simulator's demand model (hourly curve, hot "
        "spots, service mix, cancellations, ratings) over the days before today, with "
        "their customers, workers, events and ratings, write them with COPY and build the "
        "analytics rollups. Seeds the city first if it is missing. Never on a production "
        "database.",
    )
    sh.add_argument("--city", default="shenzhen", help="city id (default shenzhen)")
    sh.add_argument("--orders", type=int, default=1_000_000, help="how many (default 1000000)")
    sh.add_argument("--days", type=int, default=365, help="over how many days (default 365)")
    sh.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sub.add_parser(
        "worker",
        help="run a background job worker (no HTTP; several may run)",
        description="Run the job queue's tasks (reminders, clean-ups, periodic checks) "
        "without serving HTTP. The servers run one each already ([jobs] in_process); "
        "more workers share the work through PostgreSQL.",
    )
    lg = sub.add_parser(
        "ledger",
        help="the money ledger: `doorstep ledger check` verifies its invariants",
        description="check: recompute every balance from the ledger's lines and verify "
        "the invariants (each entry balances, accounts in the chart, reversals mirror, "
        "the whole sums to 0, no order's funds or payable overdrawn); exit 1 if any fails.",
    )
    lg.add_argument("action", choices=["check"], help="what to do")
    ca = sub.add_parser(
        "create-admin",
        help="create an admin account (the first one, on your own database)",
        description="Create an account with the admin role. The password is asked twice "
        "on a terminal, or read from the first line of standard input.",
    )
    ca.add_argument("--phone", required=True, help="the admin's mobile number (the login)")
    ca.add_argument("--name", default="管理员", help="display name (default 管理员)")
    d = sub.add_parser(
        "demo",
        help="stores + migrate + seed --demo + serve, with a live simulated city",
        description="Start the stores, migrate, seed the demo city with its demo accounts "
        "(seed --demo) and serve it, with about "
        "100 simulated workers moving around Futian and an order every few seconds "
        "(simulations/scenarios/demo.toml; it prints tracking links as orders get workers).",
    )
    serving(d)
    d.add_argument(
        "--no-city", action="store_true", help="serve the seeded city without the simulation"
    )
    au = sub.add_parser(
        "audit",
        help="check the tamper-evident audit log (audit verify)",
        description="The audit log is a hash chain (docs/safety.md). 'audit verify' "
        "re-hashes every entry and names the first one changed, deleted or relinked; "
        "exit code 0 if the chain holds, 2 if not.",
    )
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    au_sub.add_parser("verify", help="verify the whole chain and its head")
    ks = sub.add_parser(
        "keys",
        help="personal-data keys: rotate (re-encrypt), new (print a fresh key)",
        description="Personal data is encrypted at rest (docs/privacy.md). 'keys new' "
        "prints a fresh key for DOORSTEP_DATA_KEYS or DOORSTEP_BLIND_INDEX_KEY. 'keys "
        "rotate' re-encrypts every value not under the first key of DOORSTEP_DATA_KEYS "
        "(the others must still be listed), in batches; a stopped run resumes.",
    )
    ks_sub = ks.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kr = ks_sub.add_parser("rotate", help="re-encrypt under the current key (resumable)")
    kr.add_argument("--batch", type=int, default=500, help="rows a transaction (default 500)")
    ks_sub.add_parser("new", help="print a fresh random key (base64url, 32 bytes)")
    ob = sub.add_parser(
        "sms-outbox",
        help="list what the SMS sandbox gateway sent (newest first)",
        description="List the messages the sandbox SMS gateway of a running server "
        "(doorstep serve/demo without DOORSTEP_SMS_URL) received, newest first: time, "
        "phone, template and text. The gateway's address is read from the data dir.",
    )
    ob.add_argument("--phone", default=None, help="only messages to this phone")
    ob.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 500)")
    ob.add_argument(
        "--url", default=None, help="the sandbox's address (default: from the data dir)"
    )
    return p


def _sms_outbox(settings: Settings, url: str | None, phone: str | None, limit: int) -> int:
    """Print the sandbox gateway's outbox; the exit code."""
    import httpx

    from notifications.gateway import url_file

    if url is None:
        path = url_file(settings.data_dir)
        if not path.exists():
            print(
                f"doorstep: no SMS sandbox has run with the data dir {settings.data_dir} "
                "(start `doorstep serve` or `doorstep demo` first, or give --url)",
                file=sys.stderr,
            )
            return 1
        url = path.read_text().strip()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    params: dict[str, str | int] = {"limit": max(1, min(500, limit))}
    if phone:
        params["phone"] = phone
    try:
        r = httpx.get(f"{url.rstrip('/')}/outbox", params=params, timeout=10)
        rows = r.json()
    except (httpx.HTTPError, ValueError) as e:
        print(f"doorstep: the SMS sandbox at {url} did not answer: {e}", file=sys.stderr)
        return 1
    print(f"SMS sandbox {url} — {len(rows)} message(s), newest first")
    for row in rows:
        receipt = "delivered" if row.get("reported_at") else "sent"
        print(
            f"{row['received_at'][:19]}  {row['phone']}  {row['template_code']:<24} {receipt:<9} {row['text']}"
        )
    return 0


async def _audit_verify(settings: Settings) -> int:
    """Verify the audit chain; print what was found; the exit code (2: tampered)."""
    from audit import store as audit_store
    from doorstep.db import create_pool

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)  # jsonb codecs
    try:
        report = await audit_store.check(pool)
    finally:
        await pool.close()
    if report.finding is None:
        print(f"audit log OK: {report.checked} entries, head {report.last_seq} {report.last_hash}")
        return 0
    f = report.finding
    print(
        f"audit log TAMPERED at entry {f.seq} ({f.problem}): {f.message}; "
        f"{report.checked} entries before it verified"
    )
    return 2


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
    # Procrastinate logs every job's start and end at INFO (a line a second with the
    # periodic checks): its warnings and errors are kept, failures are on /metrics.
    # httpx logs every request at INFO ("HTTP Request: POST …"): the demo's simulated city
    # and the sandboxes' notifications made a line per call. Its warnings are kept.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    # SIGTERM stops like Ctrl-C: the `finally` blocks stop the embedded stores.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if args.command == "keys" and args.keys_command == "new":  # no stores needed
        from privacy.crypto import new_key

        print(new_key())
        return 0
    if args.command == "keys" and args.batch < 1:
        print("doorstep: --batch must be at least 1", file=sys.stderr)
        return 1
    if args.command == "sms-outbox":  # reads a running server's sandbox: no stores here
        return _sms_outbox(settings, args.url, args.phone, args.limit)
    host = getattr(args, "host", None) or settings.host
    password = ""
    if args.command == "create-admin":  # before the stores start: nothing to undo
        try:
            password = _read_password()
        except (DoorstepError, EOFError, KeyboardInterrupt) as e:
            print(f"doorstep: {e or 'no password given'}", file=sys.stderr)
            return 1
    port = getattr(args, "port", None) or settings.port
    try:
        with running_stores(settings) as resolved:
            asyncio.run(_migrate(resolved, create_database=settings.embedded_postgres))
            if args.command == "create-admin":
                asyncio.run(_create_admin(resolved, args.phone, args.name, password))
            logins: dict[str, str] = {}
            if args.command in ("seed", "demo"):
                logins = asyncio.run(
                    _seed(
                        resolved,
                        getattr(args, "city", "shenzhen"),
                        getattr(args, "seed", 7),
                        demo=args.command == "demo" or args.demo,
                    )
                )
            if args.command == "ledger":
                return asyncio.run(_ledger_check(resolved))
            if args.command == "seed-history":
                asyncio.run(_seed_history(resolved, args))
            if args.command == "worker":
                asyncio.run(_work(resolved))
            if args.command == "audit":
                return asyncio.run(_audit_verify(resolved))
            if args.command == "keys":
                return asyncio.run(_keys_rotate(resolved, args.batch))
            if args.command in ("serve", "demo"):
                live = args.command == "demo" and not args.no_city
                if live and not resolved.rate_limit_exempt:
                    # The live city registers its customers from loopback: without this,
                    # the registration limit (10 an hour per network) stops it.
                    resolved = replace(
                        resolved, rate_limit_exempt=networks("127.0.0.1,::1", "demo")
                    )
                if args.command == "demo":
                    city = getattr(args, "city", "shenzhen")
                    print(demo_banner(f"http://{host}:{port}", city, logins, live=live), flush=True)
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

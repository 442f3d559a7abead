"""Money under a storm: many customers paying at once through the WeChat Pay sandbox,
duplicate, out-of-order, late and missing notifications, cancellations and refunds at
the same time; then the books are checked.

One ``doorstep serve`` subprocess (its own database, configured with
``DOORSTEP_WECHATPAY_CONFIG`` for a sandbox gateway that runs in this process, as a
production server is configured for WeChat Pay). The storm, in this process:

1. customers book a prepaid service and pay it (Native); some pay twice at once;
2. the sandbox takes the payments with faults per trade: duplicate notifications,
   out of order (held until after the refund's), never (the server's query job must
   find them), late (paid as the order closes);
3. at the same time some customers cancel (before or while the notification arrives),
   finance refunds part of others (and repeats the same refund number);
4. a burst of genuine signed notifications posted straight at the server (first
   deliveries of trades paid with ``never``, then their duplicates), concurrently, for
   the throughput and latency of notification handling;
5. wait until every notification is acknowledged and every refund final, then count.

JSON on stdout: ``ledger_imbalance_fen``, ``double_captures``, ``lost_payments``,
``over_refunds``, ``ledger_violations`` (all must be 0), ``notifications_per_s`` and the
latency percentiles of the burst, and the storm's counts.

    python -m benchmarks.money --quick      # 150 customers, a burst of 600, about 2 min
    python -m benchmarks.money              # 600 customers, a burst of 3000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks import _fleet as f
from benchmarks import _harness as h
from payments import wechat_wire as wire
from payments.wechat_sandbox import SandboxKeys, WeChatSandbox, WeChatSandboxServer


def _merchant_files(keys: SandboxKeys, url: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "apiclient_key.pem").write_text(wire.private_pem(keys.merchant_key))
    (folder / "pub_key.pem").write_text(wire.public_pem(keys.platform_key.public_key()))
    (folder / "apiv3.key").write_text(keys.apiv3_key)
    config = folder / "wechatpay.toml"
    config.write_text(
        f'url = "{url}"\nmchid = "{keys.mchid}"\nappid = "{keys.appid}"\n'
        f'merchant_serial = "{keys.merchant_serial}"\nmerchant_key_file = "apiclient_key.pem"\n'
        f'platform_public_key_file = "pub_key.pem"\nplatform_key_id = "{keys.platform_key_id}"\n'
        'apiv3_key_file = "apiv3.key"\n'
    )
    return config


NOTIFY_PATH = "/v1/payments/wechat/notify"


class _Poster:
    """POSTs over a few kept-alive HTTP/1.1 connections, written and read by hand: the
    burst's client. httpx took ~3 ms of this process's CPU per request (measured
    2026-12-06), more than the server's handling, on the same 2 cores; this takes a
    tenth of that (``client_cpu_ms_per_notification``). ``--httpx`` uses httpx again."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(size):
            self.free.put_nowait(None)  # opened on first use
        self.open: list[asyncio.StreamWriter] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The status of ``POST path``; raises OSError/IncompleteReadError if the
        connection fails (it is dropped, a new one opened next time)."""
        conn = await self.free.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(h.LOOPBACK, self.port)
                self.open.append(conn[1])
            reader, writer = conn
            lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {h.LOOPBACK}:{self.port}\r\n"
                f"Content-Length: {len(body)}\r\n{lines}\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length, close = 0, False
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif line == b"connection: close":
                    close = True
            if length:
                await reader.readexactly(length)
            if close:
                writer.close()
                conn = None
            return status
        except BaseException:
            if conn is not None:
                conn[1].close()
            conn = None
            raise
        finally:
            self.free.put_nowait(conn)

    async def aclose(self) -> None:
        """Close every connection opened."""
        for writer in self.open:
            writer.close()


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (a ``--workers`` server's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def _postgres_cpu(only: set[int] | None = None) -> dict[int, float]:
    """CPU seconds (user + system) of each PostgreSQL process on the machine (the
    embedded or the local server, its backends and background processes), by pid; with
    ``only``, of those pids only (:func:`_backends`)."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (only is None or int(entry.name) in only):
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    out[int(entry.name)] = h.cpu_seconds([int(entry.name)])
            except OSError:
                continue
    return out


async def _backends(pool: Any) -> set[int]:
    """The pids of the backends connected to the benchmark's database (the server's pool
    and relay, this process's pool): its share of a PostgreSQL that other sessions'
    databases share, without their load (nor the WAL writer and checkpointer)."""
    rows = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return {int(r["pid"]) for r in rows}


def _postgres_cpu_between(a: dict[int, float], b: dict[int, float]) -> float:
    """The database's CPU seconds from snapshot ``a`` to ``b``: what each process still
    running at ``b`` used since ``a`` (all of it for one started since). A process gone
    by ``b`` is left out (its last moments are lost, never counted negative)."""
    return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())


async def _beside_paced(
    pool: Any, wall0: datetime, paced_s: float, checkpoints0: int
) -> dict[str, Any]:
    """Work of the database server and the server's jobs near the paced run, as seconds
    from its start, from 2 s before to 1 s after it: autovacuum and autoanalyze of the
    benchmark's tables (their last run), the server's ``payments:sweep`` job (the active
    query; it runs every 30 s and queries trades pending over ``query_after_s``: its
    events while it exists, and the second the latest was "due"), and
    the checkpoints (machine-wide: other databases' writes count) begun in the run and the
    last one's start. Each can take the CPU a notification waits for."""
    lo, hi = wall0 - timedelta(seconds=2), wall0 + timedelta(seconds=paced_s + 1)

    def off(t: datetime) -> float:
        return round((t - wall0).total_seconds(), 2)

    vac = []
    for r in await pool.fetch(
        "SELECT relname, last_autovacuum, last_autoanalyze FROM pg_stat_user_tables"
    ):
        for kind in ("last_autovacuum", "last_autoanalyze"):
            t = r[kind]
            if t is not None and lo <= t <= hi:
                vac.append([r["relname"], kind.removeprefix("last_"), off(t)])
    sweeps = [
        [str(r["type"]), off(r["at"])]
        for r in await pool.fetch(
            "SELECT e.type, e.at FROM procrastinate_events e JOIN procrastinate_jobs j "
            "ON j.id = e.job_id WHERE j.task_name = 'payments:sweep' "
            "AND e.type IN ('started', 'succeeded', 'failed') AND e.at BETWEEN $1 AND $2",
            lo,
            hi,
        )
    ]
    # A sweep that succeeded was deleted with its events (jobs/runner.py deletes finished
    # jobs); the deferral of the latest stays (procrastinate keeps only the newest): the
    # second it was due — it is deferred ~0.5 s after and starts later still, so one due
    # up to 2 s before the window is listed too.
    sweeps += [
        ["due", off(datetime.fromtimestamp(int(r["defer_timestamp"]), UTC))]
        for r in await pool.fetch(
            "SELECT defer_timestamp FROM procrastinate_periodic_defers "
            "WHERE task_name = 'payments:sweep' AND defer_timestamp BETWEEN $1 AND $2",
            int(lo.timestamp()) - 2,
            int(hi.timestamp()) + 1,
        )
    ]
    last_ckpt = await pool.fetchval("SELECT checkpoint_time FROM pg_control_checkpoint()")
    checkpoints = await pool.fetchval(
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
    )
    return {
        "autovacuum": sorted(vac, key=lambda x: x[2]),
        "payments_sweep": sorted(sweeps, key=lambda x: x[1]),
        "checkpoints_begun": int(checkpoints - checkpoints0),
        "last_checkpoint_s": off(last_ckpt),
    }


SWEEP_EVERY_S = 30  # payments/tasks.py: sweep's cron, at :00 and :30 s of the wall clock


async def _clear_of_sweep(pool: Any, need_s: float, max_wait_s: float = 45.0) -> float | None:
    """Wait until the server's ``payments:sweep`` cannot run in the next ``need_s``: no
    sweep job ``todo`` or ``doing``, the last :00/:30 mark's sweep deferred (its row in
    ``procrastinate_periodic_defers``; finished jobs are deleted, ``jobs/runner.py``) or
    the mark over 3 s ago, and the next mark more than ``need_s`` away. The seconds
    waited (0: at once), or None if ``max_wait_s`` passed first (then the run goes on)."""
    t0 = time.perf_counter()
    while True:
        now = time.time()
        since = now % SWEEP_EVERY_S
        last_mark = round(now - since)
        busy, deferred = await pool.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE task_name = "
            "'payments:sweep' AND status IN ('todo', 'doing')), "
            "EXISTS (SELECT 1 FROM procrastinate_periodic_defers "
            "WHERE task_name = 'payments:sweep' AND defer_timestamp >= $1)",
            last_mark,
        )
        if SWEEP_EVERY_S - since > need_s and not busy and (deferred or since > 3.0):
            return round(time.perf_counter() - t0, 2)
        if time.perf_counter() - t0 > max_wait_s:
            return None
        await asyncio.sleep(0.1)


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(data))


async def _gather_limited(n: int, coros: list[Any]) -> list[Any]:
    sem = asyncio.Semaphore(n)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def orchestrate(
    args: argparse.Namespace, redis_url: str, database_url: str
) -> dict[str, Any]:
    from accounts.passwords import hash_password
    from doorstep.db import create_pool
    from ledger import store as ledger_store

    rng = random.Random(args.seed)
    customers_n = args.customers or (150 if args.quick else 600)
    burst_n = args.burst or (200 if args.quick else 1000)
    db = h.BenchDatabase(database_url, redis_url)
    await db.create()
    work = Path(tempfile.mkdtemp(prefix="doorstep-bench-money-"))
    sandbox = WeChatSandbox(
        SandboxKeys.generate(), redelivery_s=(0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55)
    )
    gateway = WeChatSandboxServer(sandbox, h.free_port())
    await gateway.start()
    server: h.Server | None = None
    relay: h.Server | None = None
    pool = await create_pool(db.url, min_size=1, max_size=4)
    try:
        secret = h.bench_secret()  # before the accounts: their phones are sealed with its keys
        await f.create_city(db)
        async with pool.acquire() as conn:
            ids = await f.create_customers(
                conn,
                customers_n + burst_n * (2 if args.rate > 0 else 1),
                password_hash=await hash_password("x" * 12),
            )
            service = await f.create_service(conn)
            await conn.execute(
                "INSERT INTO service_payment (service_code, pay_mode) VALUES ($1, 'prepaid')",
                service,
            )
            staff = await conn.fetchval(
                "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
                "VALUES ($1, $2, '财务', 'x', ARRAY['finance']) RETURNING id",
                *h.sealed_phone(f"176{secrets.randbelow(10**8):08d}"),
            )
        tokens = f.tokens(ids, "customer", key=secret)
        [finance] = f.tokens([int(staff)], "finance", key=secret)
        port = h.free_port()
        params = work / "params.toml"
        common = (
            "[engine]\nenabled = false\n[gc]\nfreeze = true\n"
            "[payments]\nquery_after_s = 2\nrefund_query_after_s = 5\n"
        )
        apart = args.relay == "apart"
        # Relay apart: the server that takes the notifications runs no relay ([events]
        # in_process = false); a second `doorstep serve`, sent nothing, relays the events
        # (order.paid's consumers) — the topology docs/events.md describes for load.
        events_section = "[events]\n" + ("in_process = false\n" if apart else "")
        if args.gather_s is not None:
            events_section += f"gather_s = {args.gather_s}\n"
        if args.background_gather_s is not None:
            events_section += f"background_gather_s = {args.background_gather_s}\n"
        params.write_text(common + events_section)
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": db.url,
            "DOORSTEP_DATA_DIR": str(work / "data"),
            "DOORSTEP_SECRET_KEY": secret,
            "DOORSTEP_REDIS_PREFIX": db.prefix,
            "DOORSTEP_PARAMS": str(params),
            "DOORSTEP_LOG_LEVEL": "WARNING",
            "DOORSTEP_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DOORSTEP_WECHATPAY_CONFIG": str(
                _merchant_files(sandbox.keys, gateway.url, work / "wx")
            ),
            # 20 over all workers unless --pool says how many each
            "DOORSTEP_DB_POOL_MAX": str(args.pool or max(4, 20 // args.workers)),
        }
        argv = [sys.executable, "-m", "doorstep", "serve", "--port", str(port)]
        if args.workers > 1:
            argv += ["--workers", str(args.workers)]
        if args.profile:  # the server under cProfile, CPU-timed (stats written when it stops)
            argv[1:1] = ["-m", "benchmarks._cpuprofile", args.profile]
        elif args.profile_burst:  # the same, only while the burst runs
            argv[1:1] = ["-m", "benchmarks._cpuprofile", "--window", args.profile_burst]
        elif args.stall_probe:  # the server's event loop watched for stalls (_stallprobe)
            probe_out = str(Path(args.stall_probe) / "server-stalls.jsonl")
            argv[1:1] = ["-m", "benchmarks._stallprobe", probe_out]
        server = h.Server("money", argv, env, work, own_session=args.own_session)
        await server.wait_http(port, "/readyz", timeout_s=180)
        if apart:
            relay_params = work / "params-relay.toml"
            relay_params.write_text(common)
            relay_port = h.free_port()
            relay = h.Server(
                "money-relay",
                [sys.executable, "-m", "doorstep", "serve", "--port", str(relay_port)],
                {**env, "DOORSTEP_PARAMS": str(relay_params), "DOORSTEP_DB_POOL_MAX": "8"},
                work,
            )
            await relay.wait_http(relay_port, "/readyz", timeout_s=180)
        h.progress(f"server ready; {customers_n} customers in the storm, a burst of {burst_n}")
        base = f"http://127.0.0.1:{port}"
        # Idle connections dropped after 2 s, before uvicorn's 5 s keep-alive closes them:
        # with both at 5 s a request could go out on a connection the server was closing
        # (an httpx ReadError that stopped a run in the storm).
        http = httpx.AsyncClient(
            base_url=base,
            timeout=60,
            limits=httpx.Limits(max_connections=64, keepalive_expiry=2.0),
        )
        point = (22.53, 114.01)

        async def book(token: str) -> int:
            r = await http.post(
                "/v1/orders",
                headers={"Authorization": f"Bearer {token}"},
                json={"service_code": service, "lat": point[0], "lng": point[1]},
            )
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        async def pay(token: str, order_id: int) -> str | None:
            r = await http.post(
                f"/v1/orders/{order_id}/pay",
                headers={"Authorization": f"Bearer {token}"},
                json={"provider": "wechat", "channel": "native"},
            )
            return str(r.json()["out_trade_no"]) if r.status_code == 200 else None

        # --- 1. the storm's orders and trades --------------------------------------
        t0 = time.perf_counter()
        storm = tokens[:customers_n]
        orders = await _gather_limited(16, [book(t) for t in storm])
        twice = set(rng.sample(range(customers_n), customers_n // 10))
        trades: list[str | None] = await _gather_limited(
            16, [pay(t, o) for t, o in zip(storm, orders, strict=True)]
        )
        dup_pay = await _gather_limited(
            16, [pay(storm[i], orders[i]) for i in sorted(twice)]
        )  # a second tap of "pay": the same trade
        same_trade = sum(1 for i, n in zip(sorted(twice), dup_pay, strict=True) if n == trades[i])
        h.progress(
            f"{len(orders)} orders booked and given trades in {time.perf_counter() - t0:.1f} s"
        )

        # --- 2. faults and payments, 3. cancellations at the same time ---------------
        kinds = ["normal", "duplicate", "out_of_order", "never", "late"]
        weights = [45, 25, 10, 10, 10]
        plan = [rng.choices(kinds, weights)[0] for _ in orders]
        for no, kind in zip(trades, plan, strict=True):
            if no is not None and kind != "normal":
                sandbox.faults[no] = sandbox.default_faults.__class__(notify=kind, hold_s=2.0)  # type: ignore[arg-type]
        cancel_early = {i for i in range(customers_n) if rng.random() < 0.1}

        async def pay_at_sandbox(i: int) -> None:
            no = trades[i]
            if no is None:
                return
            if plan[i] == "late":  # the order closes as the payer pays
                await http.post(
                    f"/v1/orders/{orders[i]}/cancel",
                    headers={"Authorization": f"Bearer {storm[i]}"},
                    json={},
                )
                async with httpx.AsyncClient() as c:  # the server closes the trade; it lands anyway
                    await c.post(f"{gateway.url}/sandbox/pay", json={"out_trade_no": no})
                return
            if i in cancel_early:
                await asyncio.gather(
                    sandbox.complete_payment(no, "success"),
                    http.post(
                        f"/v1/orders/{orders[i]}/cancel",
                        headers={"Authorization": f"Bearer {storm[i]}"},
                        json={},
                    ),
                )
                return
            await sandbox.complete_payment(no, "success")

        t1 = time.perf_counter()
        await _gather_limited(32, [pay_at_sandbox(i) for i in range(customers_n)])
        # the "late" trades: pay them at the sandbox even though the order was cancelled
        for i in range(customers_n):
            no = trades[i]
            if plan[i] == "late" and no is not None:
                await sandbox.complete_payment(no, "success", force=True)
        h.progress(f"payments taken at the sandbox in {time.perf_counter() - t1:.1f} s")

        # --- finance refunds part of some paid orders, retrying the same number ------
        refused: list[str] = []

        async def after_sales(i: int) -> list[int]:
            out = []
            no = f"AFTERSALE{orders[i]}r1"  # 6..64 characters, whatever the id
            for amount in (5000, 5000, 5001):
                r = await http.post(
                    f"/v1/orders/{orders[i]}/refunds",
                    headers={"Authorization": f"Bearer {finance}"},
                    json={"out_refund_no": no, "amount_fen": amount, "reason": "售后"},
                )
                out.append(r.status_code)
                if r.status_code == 422 and len(refused) < 3:
                    refused.append(r.json()["error"]["message"])
            return out

        await asyncio.sleep(1.0)
        paid_ids = {
            int(r["order_id"])
            for r in await pool.fetch("SELECT order_id FROM payments WHERE status = 'paid'")
        }
        refundable = [
            i
            for i in range(customers_n)
            if orders[i] in paid_ids and i not in cancel_early and plan[i] != "late"
        ]
        chosen = rng.sample(refundable, min(len(refundable), customers_n // 7))
        statuses = await _gather_limited(16, [after_sales(i) for i in chosen])
        conflicts = sum(1 for s in statuses if s[2] == 409)
        answers_seen: dict[str, int] = {}
        for st in statuses:
            key = "/".join(str(x) for x in st)
            answers_seen[key] = answers_seen.get(key, 0) + 1

        # --- 4. the burst: first deliveries, then duplicates, posted concurrently ----
        paid_trades: list[str] = []  # the trades paid_bodies made, in order

        async def paid_bodies(some: list[str]) -> list[bytes]:
            """Orders booked and paid at the sandbox (not notified): the notifications."""
            b_orders = await _gather_limited(16, [book(t) for t in some])
            b_trades = await _gather_limited(
                16, [pay(t, o) for t, o in zip(some, b_orders, strict=True)]
            )
            out: list[bytes] = []
            for no in b_trades:
                if no is None:
                    continue
                sandbox.faults[no] = sandbox.default_faults.__class__(notify="never")
                await sandbox.complete_payment(no, "success")
                paid_trades.append(no)
                trade = sandbox.trades[no]
                out.append(
                    sandbox.notification_body(
                        "TRANSACTION.SUCCESS",
                        "transaction",
                        "支付成功",
                        sandbox._transaction(trade),
                    )
                )
            return out

        bodies = await paid_bodies(tokens[customers_n : customers_n + burst_n])
        latencies: list[float] = []
        answers: dict[str, int] = {}

        poster = _Poster(port, args.concurrency)
        posters = [poster]

        async def post(body: bytes, headers: dict[str, str], due: float = 0.0) -> None:
            """One delivery; its latency from ``due`` (when it was to be sent) if given."""
            for attempt in range(
                3
            ):  # a connection the server closed as it was reused: try again, as WeChat would
                if attempt:
                    headers = sandbox.notification_headers(body)
                started = time.perf_counter()
                try:
                    if args.httpx:
                        r = await http.post(NOTIFY_PATH, content=body, headers=headers)
                        status = r.status_code
                    else:
                        status = await poster.post(NOTIFY_PATH, body, headers)
                    break
                except (httpx.TransportError, OSError, asyncio.IncompleteReadError):
                    answers["transport_error"] = answers.get("transport_error", 0) + 1
            else:
                return
            latencies.append((time.perf_counter() - (due or started)) * 1000)
            answers[str(status)] = answers.get(str(status), 0) + 1

        wave = [*bodies, *bodies, *bodies]  # each trade's first delivery, then two duplicates
        # Each delivery signed beforehand (its own timestamp and nonce, as WeChat signs
        # every redelivery): the provider's RSA signing is its CPU, not the server's, and
        # would otherwise take this 2-core machine's time inside the measured window.
        signed = [(b, sandbox.notification_headers(b)) for b in wave]
        server_pids = _process_tree(server.pid)  # with --workers: the supervisor and workers
        if relay is not None:  # its CPU is the notifications' too (their events' consumers)
            server_pids += _process_tree(relay.pid)
        load_before = os.getloadavg()[0]
        if args.profile_burst:
            os.kill(server.pid, signal.SIGUSR1)
        cpu0, client0 = h.cpu_seconds(server_pids), time.process_time()
        own0 = _postgres_cpu(await _backends(pool))
        db0, machine = _postgres_cpu(), h.CpuMeter()
        t2 = time.perf_counter()
        first = await _gather_limited(
            args.concurrency, [post(b, hd) for b, hd in signed[: len(bodies)]]
        )
        first_s = time.perf_counter() - t2
        first_lat = list(latencies)
        cpu1, db1, machine_first = (
            h.cpu_seconds(server_pids),
            _postgres_cpu(),
            machine.cores_busy(),
        )
        own1 = _postgres_cpu(await _backends(pool))
        await _gather_limited(args.concurrency, [post(b, hd) for b, hd in signed[len(bodies) :]])
        burst_s = time.perf_counter() - t2
        cpu2, client1 = h.cpu_seconds(server_pids), time.process_time()
        db2, machine_burst = _postgres_cpu(), machine.cores_busy()
        if args.profile_burst:
            os.kill(server.pid, signal.SIGUSR2)
        load_after = os.getloadavg()[0]
        del first
        h.progress(f"burst: {len(wave)} notifications in {burst_s:.1f} s")

        # --- 4b. the same mix at a set rate (open loop): the latency at that rate --------
        paced: dict[str, Any] = {}
        if args.rate > 0:
            # Clear of the active query: the server sweeps every :00 and :30 s for trades
            # pending over query_after_s, which this benchmark sets to 2 s (for the storm's
            # never-notified trades); a sweep inside the paced run would query the paced
            # trades — paid at the sandbox moments before their notifications, which a
            # gateway delivers within seconds and production queries after 60 s — in the
            # measured window. So the paced trades are paid after a sweep if one is due
            # before the run would end.
            # The time the paced trades take to book and pay (~25 ms each here), to settle
            # and to post; a full run's (1,000 trades) is longer than the sweep's period,
            # so it can only be kept clear of the sweep for the first 27 s.
            rate_trades = len(tokens) - customers_n - burst_n
            need_s = 3.0 + 0.025 * rate_trades + args.settle_max_s + 3 * rate_trades / args.rate
            swept_wait_s = await _clear_of_sweep(pool, need_s=min(need_s, SWEEP_EVERY_S - 3.0))
            p_from = len(paid_trades)
            p_bodies = await paid_bodies(tokens[customers_n + burst_n :])
            p_trades = paid_trades[p_from:]
            p_signed = [
                (b, sandbox.notification_headers(b)) for b in [*p_bodies, *p_bodies, *p_bodies]
            ]
            burst_lat, latencies = latencies, []
            poster = _Poster(port, 64)  # as many connections as needed (WeChat opens them)
            posters.append(poster)

            firsts_lat: list[float] = []
            each: list[tuple[int, float, float]] = []  # (index, due, latency ms)

            async def at(i: int, body: bytes, headers: dict[str, str], t0: float) -> None:
                due = t0 + i / args.rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await post(body, headers, due)
                each.append((i, due, latencies[-1]))
                if i < len(p_bodies):
                    firsts_lat.append(latencies[-1])

            # Settle first: preparing the paced trades (200 bookings paid at the sandbox)
            # and the burst before leave the server's relay and PostgreSQL busy for a few
            # seconds; a rate's latency is measured from a steady state, so wait until
            # the server and the database use under 0.15 core for two 0.25 s windows in a
            # row (at most --settle-max-s), and say how long that took and what was busy.
            settle_t0, quiet, busy_cores = time.perf_counter(), 0, 0.0
            while args.settle_max_s > 0 and quiet < 2:
                a_cpu, a_db = h.cpu_seconds(server_pids), _postgres_cpu()
                await asyncio.sleep(0.25)
                b_cpu, b_db = h.cpu_seconds(server_pids), _postgres_cpu()
                busy_cores = (b_cpu - a_cpu + _postgres_cpu_between(a_db, b_db)) / 0.25
                quiet = quiet + 1 if busy_cores < 0.15 else 0
                if time.perf_counter() - settle_t0 > args.settle_max_s:
                    break
            settled_s = round(time.perf_counter() - settle_t0, 2)
            if args.renice:  # diagnostic: the server and its database's backends first
                for pid in [os.getpid(), *server_pids, *sorted(await _backends(pool))]:
                    with contextlib.suppress(OSError):
                        os.setpriority(os.PRIO_PROCESS, pid, args.renice)
            load_p = os.getloadavg()[0]
            own_p0 = _postgres_cpu(await _backends(pool))
            cpu_p0, db_p0, machine_p = h.cpu_seconds(server_pids), _postgres_cpu(), h.CpuMeter()
            watch = None
            if args.stall_probe:
                from benchmarks._stallwatch import Watch

                watch = Watch(
                    {"server": server_pids[0], "client": os.getpid()}
                    | {f"worker {p}": p for p in server_pids[1:]}
                )
                await watch.start(db.url)
            t3 = time.perf_counter() + 0.05
            ckpt0 = await pool.fetchval(
                "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
            )
            wall0 = await pool.fetchval("SELECT clock_timestamp()") + (
                timedelta(seconds=t3 - time.perf_counter())
            )
            await asyncio.gather(*(at(i, b, hd, t3) for i, (b, hd) in enumerate(p_signed)))
            paced_s = time.perf_counter() - t3
            beside = await _beside_paced(pool, wall0, paced_s, ckpt0)
            if watch is not None:
                await asyncio.sleep(0.2)
                await watch.stop()
                _write(
                    Path(args.stall_probe, "paced.json"),
                    {"t0": t3, "firsts": len(p_bodies), "each": each, **watch.result()},
                )
            cpu_p1, db_p1, machine_paced = (
                h.cpu_seconds(server_pids),
                _postgres_cpu(),
                machine_p.cores_busy(),
            )
            own_p1 = _postgres_cpu(await _backends(pool))
            paced = {
                "rate_offered_per_s": args.rate,
                # Waited before the paced run for the server and database to go quiet
                # (--settle-max-s; 0: not waited), and their busy cores when it ended.
                "settled_after_s": settled_s,
                # Waited for the server's 30-s sweep to pass before preparing the paced
                # trades (0: none was due before the run's end; None: gave up after 45 s,
                # the run went on; see _clear_of_sweep).
                "waited_for_sweep_s": swept_wait_s,
                "settle_busy_cores_at_start": round(busy_cores, 3),
                "notifications": len(p_signed),
                "handled_per_s": round(len(p_signed) / paced_s, 1),
                "latency_ms": {k: round(v, 1) for k, v in h.percentiles(latencies).items()},
                "first_delivery_latency_ms": {
                    k: round(v, 1) for k, v in h.percentiles(firsts_lat).items()
                },
                "server_cpu_ms_per_notification": round(
                    (cpu_p1 - cpu_p0) * 1000 / len(p_signed), 2
                ),
                "database_cpu_ms_per_notification": round(
                    _postgres_cpu_between(db_p0, db_p1) * 1000 / len(p_signed), 2
                ),
                # Only the backends of the benchmark's database (see _backends).
                "database_own_cpu_ms_per_notification": round(
                    _postgres_cpu_between(own_p0, own_p1) * 1000 / len(p_signed), 2
                ),
                "machine_cores_busy": machine_paced,
                "reniced": args.renice,
                "server_own_session": args.own_session,
                "events_gather_s": args.gather_s,
                "events_background_gather_s": args.background_gather_s,
                "pool_per_process": args.pool or max(4, 20 // args.workers),
                "load_average_1m": [round(load_p, 1), round(os.getloadavg()[0], 1)],
                # How the paced trades were captured: by their first delivery, as the
                # run means, or before it by the server's active query (the sweep).
                "captured_by_notification": await pool.fetchval(
                    "SELECT count(DISTINCT out_trade_no) FROM payment_notifications "
                    "WHERE kind = 'payment' AND outcome = 'applied' "
                    "AND out_trade_no = ANY($1::text[])",
                    p_trades,
                ),
                "trades": len(p_trades),
                # What else ran from 2 s before the paced run to 1 s after it, seconds
                # from its start (diagnostics for a run's tail: see _beside_paced).
                "beside": beside,
            }
            latencies = burst_lat
            h.progress(f"paced: {len(p_signed)} notifications in {paced_s:.1f} s")

        # --- 5. wait until everything is final ---------------------------------------
        deadline = time.monotonic() + args.settle_s
        while time.monotonic() < deadline:
            open_refunds = await pool.fetchval(
                "SELECT count(*) FROM refunds WHERE status IN ('requested', 'processing')"
            )
            unacked = sum(1 for d in sandbox.deliveries if not d.acked)
            paid_there = {
                no for no, t in sandbox.trades.items() if t.state in ("SUCCESS", "REFUND")
            }
            paid_here = {
                r["out_trade_no"]
                for r in await pool.fetch("SELECT out_trade_no FROM payments WHERE status = 'paid'")
            }
            missing = len(paid_there - paid_here)
            if open_refunds == 0 and unacked == 0 and missing == 0:
                break
            await asyncio.sleep(1.0)
        h.progress(
            f"settled (open refunds {open_refunds}, unacknowledged {unacked}, missing {missing})"
        )
        # The server's CPU while nobody calls it (its relay, job runner and GC still tick):
        # what the burst's windows would have cost anyway, subtracted for the net figures.
        idle0, idle_t0 = h.cpu_seconds(server_pids), time.perf_counter()
        await asyncio.sleep(args.idle_s)
        idle_rate = (h.cpu_seconds(server_pids) - idle0) / (time.perf_counter() - idle_t0)

        # --- the books -----------------------------------------------------------------
        total = await pool.fetchval(
            "SELECT coalesce(sum(debit_fen - credit_fen), 0) FROM ledger_lines"
        )
        per_entry = await pool.fetchval(
            "SELECT coalesce(sum(abs(d)), 0) FROM (SELECT sum(debit_fen - credit_fen) AS d "
            "FROM ledger_lines GROUP BY entry_id) x"
        )
        paid_there = {no for no, t in sandbox.trades.items() if t.state in ("SUCCESS", "REFUND")}
        captured = {
            r["out_trade_no"]: r["n"]
            for r in await pool.fetch(
                "SELECT p.out_trade_no, count(e.id) AS n FROM payments p JOIN ledger_entries e "
                "ON e.key = 'wechat:pay:' || p.provider_trade_no GROUP BY p.out_trade_no"
            )
        }
        lost = len([no for no in paid_there if captured.get(no, 0) == 0])
        double_entry = sum(1 for n in captured.values() if n > 1)
        kept_too_much = await pool.fetchval(
            "SELECT count(*) FROM (SELECT o.id, o.price_minor, "
            "  (SELECT coalesce(sum(amount_fen), 0) FROM payments WHERE order_id = o.id AND status = 'paid') "
            "  - (SELECT coalesce(sum(amount_fen), 0) FROM refunds WHERE order_id = o.id AND status <> 'closed') AS kept "
            "FROM orders o) x WHERE kept > price_minor"
        )
        over_here = await pool.fetchval(
            "SELECT count(*) FROM payments p WHERE (SELECT coalesce(sum(amount_fen), 0) "
            "FROM refunds r WHERE r.payment_id = p.id AND r.status <> 'closed') > p.amount_fen"
        )
        over_there = sum(
            1
            for t in sandbox.trades.values()
            if sum(r.amount for r in t.refunds if r.status != "CLOSED") > t.total
        )
        negative_funds = await pool.fetchval(
            "SELECT count(*) FROM (SELECT account, sum(credit_fen - debit_fen) AS held "
            "FROM ledger_lines WHERE account LIKE 'order_funds:%' GROUP BY account) x WHERE held < 0"
        )
        violations = await ledger_store.check(pool)
        counts = {
            r["status"]: r["n"]
            for r in await pool.fetch("SELECT status, count(*) AS n FROM orders GROUP BY status")
        }
        refunds = {
            f"{r['cause']}:{r['status']}": r["n"]
            for r in await pool.fetch(
                "SELECT cause, status, count(*) AS n FROM refunds GROUP BY cause, status"
            )
        }
        outcomes = {
            r["outcome"]: r["n"]
            for r in await pool.fetch(
                "SELECT outcome, count(*) AS n FROM payment_notifications GROUP BY outcome"
            )
        }
        await http.aclose()
        for one in posters:
            await one.aclose()
        return {
            "benchmark": "money",
            "quick": bool(args.quick),
            "ledger_imbalance_fen": int(abs(total)) + int(per_entry),
            "double_captures": int(double_entry) + int(kept_too_much),
            "lost_payments": lost,
            "over_refunds": int(over_here) + over_there + int(negative_funds),
            "ledger_violations": [f"{v.rule}: {v.detail}" for v in violations][:20],
            "notifications_per_s": round(len(wave) / burst_s, 1),
            "notify_latency_ms": {k: round(v, 1) for k, v in h.percentiles(latencies).items()},
            "first_deliveries_per_s": round(len(bodies) / first_s, 1),
            "first_delivery_latency_ms": {
                k: round(v, 1) for k, v in h.percentiles(first_lat).items()
            },
            # The server's own CPU per notification: what the rate would be on a free core
            # (the machine is shared; its load average is given beside).
            "server_cpu_ms_per_first_delivery": round(
                (cpu1 - cpu0) * 1000 / max(1, len(bodies)), 2
            ),
            "server_cpu_ms_per_duplicate": round(
                (cpu2 - cpu1) * 1000 / max(1, len(wave) - len(bodies)), 2
            ),
            # The same, less what the idle server burns in as long (its relay, jobs, GC).
            "server_idle_cpu_ms_per_s": round(idle_rate * 1000, 2),
            "server_cpu_ms_per_first_delivery_net": round(
                (cpu1 - cpu0 - idle_rate * first_s) * 1000 / max(1, len(bodies)), 2
            ),
            "server_cpu_ms_per_duplicate_net": round(
                (cpu2 - cpu1 - idle_rate * (burst_s - first_s))
                * 1000
                / max(1, len(wave) - len(bodies)),
                2,
            ),
            # PostgreSQL's CPU (all its processes on the machine) per notification, and how
            # many of the machine's cores were busy: the burst's first deliveries
            # saturate the machine when this nears its core count.
            "database_cpu_ms_per_first_delivery": round(
                _postgres_cpu_between(db0, db1) * 1000 / max(1, len(bodies)), 2
            ),
            # The same, of the backends of the benchmark's database only (a shared
            # PostgreSQL: other sessions' databases left out; see _backends).
            "database_own_cpu_ms_per_first_delivery": round(
                _postgres_cpu_between(own0, own1) * 1000 / max(1, len(bodies)), 2
            ),
            "database_cpu_ms_per_duplicate": round(
                _postgres_cpu_between(db1, db2) * 1000 / max(1, len(wave) - len(bodies)), 2
            ),
            "machine_cores_busy": {"first_deliveries": machine_first, "burst": machine_burst},
            # This process's CPU (the HTTP client) per notification of the burst: the
            # machine's share the server did not get.
            "client_cpu_ms_per_notification": round((client1 - client0) * 1000 / len(wave), 2),
            "server_processes": len(server_pids),
            "relay": args.relay,
            "load_average_1m": [round(load_before, 1), round(load_after, 1)],
            "paced": paced,
            "burst": {
                "notifications": len(wave),
                "concurrency": args.concurrency,
                "answers": answers,
            },
            "storm": {
                "customers": customers_n,
                "faults": {k: plan.count(k) for k in kinds},
                "second_pay_tap_same_trade": f"{same_trade}/{len(twice)}",
                "cancelled_while_paying": len(cancel_early),
                "after_sales_refunds": len(chosen),
                "refund_number_reused_409": f"{conflicts}/{len(chosen)}",
                "after_sales_answers": answers_seen,  # (first, same again, same number +1 fen)
                "after_sales_refused": refused,
                "orders_by_status": counts,
                "refunds": refunds,
                "notifications": outcomes,
                "deliveries_unacknowledged": unacked,
            },
            "machine": h.machine(),
        }
    finally:
        if relay is not None:
            relay.stop()
        if server is not None:
            server.stop()
        await pool.close()
        await gateway.stop()
        await db.drop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="150 customers and a burst of 200 trades")
    p.add_argument("--customers", type=int, default=0, help="customers in the storm")
    p.add_argument("--burst", type=int, default=0, help="trades whose notifications are burst")
    p.add_argument("--concurrency", type=int, default=32, help="notifications in flight")
    p.add_argument("--settle-s", type=float, default=120.0, help="how long to wait for quiet")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument(
        "--idle-s", type=float, default=5.0, help="how long the idle server's CPU is measured"
    )
    p.add_argument(
        "--profile", default="", help="run the server under cProfile, its stats to this file"
    )
    p.add_argument(
        "--profile-burst",
        default="",
        help="the same, profiling only the burst (one server process)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="then the same mix on as many new trades at this rate (0: not)",
    )
    p.add_argument(
        "--settle-max-s",
        type=float,
        default=0.0,
        help="before the paced run, wait (at most this long) for the server and the "
        "database to use under 0.15 core (0: start at once, as until 12-07)",
    )
    p.add_argument(
        "--stall-probe",
        default="",
        help="diagnostics into this directory: the server's event-loop stalls "
        "(benchmarks/_stallprobe.py) and, over the paced run, each notification's time "
        "and latency, the processes' CPU and run-queue wait, pg_stat_activity every 10 ms "
        "(benchmarks/_stallwatch.py)",
    )
    p.add_argument(
        "--gather-s",
        type=float,
        default=None,
        help="[events] gather_s for the server (default: the server's own default)",
    )
    p.add_argument(
        "--background-gather-s",
        type=float,
        default=None,
        help="[events] background_gather_s for the server (default: the server's own)",
    )
    p.add_argument(
        "--own-session",
        action="store_true",
        help="start the server in a session of its own (with sched_autogroup: its own "
        "scheduling group, apart from this client)",
    )
    p.add_argument(
        "--pool",
        type=int,
        default=0,
        help="the server's PostgreSQL pool size per process (0: 20 over all workers)",
    )
    p.add_argument(
        "--renice",
        type=int,
        default=0,
        help="diagnostic: before the paced run, set the server's processes and its "
        "database's backends (and this client) to this nice value (negative: ahead of the machine's other "
        "work; needs root) — does the tail follow who gets the cores?",
    )
    p.add_argument(
        "--httpx", action="store_true", help="post the burst with httpx (the client until 12-06)"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="server processes (doorstep serve --workers)"
    )
    p.add_argument(
        "--relay",
        choices=("in-server", "apart"),
        default="in-server",
        help="where order.paid's consumers run: in the server (default) or in a second "
        "`doorstep serve` that takes no requests ([events] in_process = false on the first)",
    )
    args = p.parse_args(argv)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    if args.profile_burst:
        args.profile_burst = str(Path(args.profile_burst).resolve())
    if args.stall_probe:
        args.stall_probe = str(Path(args.stall_probe).resolve())
        Path(args.stall_probe).mkdir(parents=True, exist_ok=True)
    with h.store_urls() as (redis_url, database_url):
        result = asyncio.run(orchestrate(args, redis_url, database_url))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()

"""Setup shared by ``fanout.py`` and ``orders.py``: a city, customers, a service, orders,
tokens, ``doorstep serve`` subprocesses, and child processes driven over stdin.

Builds on :mod:`benchmarks._harness` (stores, database, workers, meters) and never
changes it. Everything listens on loopback only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import _harness as h
from privacy import crypto

CITY_CENTER = (22.53, 114.01)  # on the bundled Futian road graph
SQUARE = {  # the tests' 2 km square in Futian, WGS-84
    "type": "Polygon",
    "coordinates": [
        [[114.00, 22.52], [114.02, 22.52], [114.02, 22.54], [114.00, 22.54], [114.00, 22.52]]
    ],
}
LOG_LEVEL = "warning"  # per-connection and per-request access lines would only add noise


def _run_tag(prefix: str) -> str:
    return prefix.split(":")[1]


async def create_city(db: h.BenchDatabase) -> str:
    """The Futian square as an active city; its id."""
    from catalog import service as catalog_service
    from catalog import store as catalog_store
    from doorstep.db import create_pool

    city = catalog_service.build_city(
        id=f"bench-{_run_tag(db.prefix)}",
        name_zh="压测城",
        name_en="Benchmark city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    pool = await create_pool(db.url, min_size=1, max_size=1)  # json codecs for the city
    try:
        async with pool.acquire() as conn:
            await catalog_store.write_city(conn, city, upsert=False)
            await create_generalists(conn, city.id, 2)
    finally:
        await pool.close()
    return city.id


async def create_generalists(conn: Any, city_id: str, n: int) -> list[int]:
    """``n`` workers in the city with no special skills, available around the clock: the
    city can serve instant bookings (otherwise they are refused, 409 nobody_can_serve)."""
    from workforce import store as workforce_store
    from workforce.models import Window

    run = int(secrets.token_hex(3), 16) % 900 + 100
    ids: list[int] = []
    for i in range(n):
        uid = int(
            await conn.fetchval(
                "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
                "VALUES ($1, $2, '压测阿姨', 'x', ARRAY['worker']) RETURNING id",
                *h.sealed_phone(f"175{run:03d}{i:05d}"),
            )
        )
        await workforce_store.upsert_worker(
            conn,
            user_id=uid,
            city_id=city_id,
            skills=(),
            home_lat=22.53,
            home_lng=114.01,
            team_id=None,
        )
        async with conn.transaction():
            await workforce_store.replace_availability(
                conn, uid, tuple(Window(d, 0, 1440) for d in range(7))
            )
        ids.append(uid)
    return ids


async def create_service(conn: Any) -> str:
    """A category and an instant-or-scheduled service in it (plain SQL); the service code."""
    tag = secrets.token_hex(3)
    await conn.execute(
        "INSERT INTO categories (code, name_zh, name_en) VALUES ($1, '保洁', 'Cleaning')",
        f"bench_cat_{tag}",
    )
    code = f"bench_svc_{tag}"
    await conn.execute(
        "INSERT INTO services (code, category, name_zh, name_en, price_minor, currency, "
        "duration_min, instant, scheduled) VALUES ($1, $2, '日常保洁', 'Cleaning', 15000, "
        "'CNY', 120, true, true)",
        code,
        f"bench_cat_{tag}",
    )
    return code


async def create_customers(conn: Any, n: int, *, password_hash: str) -> list[int]:
    """Insert ``n`` customer accounts (one COPY); their ids in insertion order."""
    run = int(secrets.token_hex(3), 16) % 900 + 100
    prefix = f"18{run:03d}"
    rows = [
        (*h.sealed_phone(f"{prefix}{i:06d}"), f"压测顾客{i}", password_hash, ["customer"])
        for i in range(n)
    ]
    async with conn.transaction():
        await conn.copy_records_to_table(
            "users",
            records=rows,
            columns=("phone", "phone_bidx", "name", "password_hash", "roles"),
        )
        return await h.ids_of(conn, [r[1] for r in rows])


def road_points(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` (order lat, lng, worker lat, lng): both on road-graph nodes of the bundled
    Futian graph inside the city square (so both snap within ``max_snap_m`` and every
    ETA is a road ETA), the worker 400–900 m from the address (outside the 60 m arrival
    fence). Deterministic; neighbouring indexes get different places."""
    import numpy as np

    from geo.roadgraph import load_futian_graph

    g = load_futian_graph()
    lat, lng = np.asarray(g.lat), np.asarray(g.lng)
    inside = np.flatnonzero((lat > 22.5215) & (lat < 22.5385) & (lng > 114.0015) & (lng < 114.0185))
    ky = 111_200.0
    kx = ky * float(np.cos(np.radians(CITY_CENTER[0])))
    out: list[tuple[float, float, float, float]] = []
    partners: dict[int, Any] = {}
    for i in range(n):
        a = int(inside[(i * 7919) % len(inside)])
        if a not in partners:
            d = np.hypot((lat[inside] - lat[a]) * ky, (lng[inside] - lng[a]) * kx)
            partners[a] = inside[(d >= 400) & (d <= 900)]
        choices = partners[a]
        b = int(choices[(i * 104_729) % len(choices)])
        out.append((float(lat[a]), float(lng[a]), float(lat[b]), float(lng[b])))
    return out


async def create_active_orders(
    conn: Any,
    *,
    city_id: str,
    service_code: str,
    customers: Sequence[int],
    workers: Sequence[int],
    points: Sequence[tuple[float, float, float, float]],
) -> list[int]:
    """One order ``en_route`` per (customer, worker) pair at ``points[i][:2]``,
    bulk-inserted; the order ids."""
    now = datetime.now(UTC)
    tag = secrets.token_hex(4)
    rows = []
    for i, (c, w) in enumerate(zip(customers, workers, strict=True)):
        lat, lng = points[i][0], points[i][1]
        rows.append(
            (
                city_id,
                c,
                service_code,
                "instant",
                "en_route",
                3,
                lat,
                lng,
                crypto.seal("orders.address_detail", f"压测路{i}号"),
                120,
                15000,
                "CNY",
                w,
                f"{i % 10**6:06d}",
                f"{tag}-{i}",
                now,
            )
        )
    async with conn.transaction():
        await conn.copy_records_to_table(
            "orders",
            records=rows,
            columns=(
                "city_id",
                "customer_id",
                "service_code",
                "kind",
                "status",
                "version",
                "lat",
                "lng",
                "address_detail",
                "duration_min",
                "price_minor",
                "currency",
                "worker_id",
                "start_code",
                "idempotency_key",
                "en_route_at",
            ),
        )
        got = await conn.fetch(
            "SELECT id, idempotency_key FROM orders WHERE idempotency_key LIKE $1", f"{tag}-%"
        )
    by_index = {int(r["idempotency_key"].rsplit("-", 1)[1]): int(r["id"]) for r in got}
    return [by_index[i] for i in range(len(rows))]


def tokens(user_ids: Sequence[int], role: str, *, key: str, ttl_s: int = 4 * 3600) -> list[str]:
    """An access token with the one role ``role`` for each user, signed with ``key``."""
    from accounts.tokens import issue

    now = int(time.time())
    return [
        issue(user_id=u, roles=(role,), typ="access", now=now, ttl_s=ttl_s, key=key)[0]
        for u in user_ids
    ]


async def redis_pid(redis_url: str) -> int | None:
    """The Redis server's pid if it runs on this machine (to meter its CPU)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("server")
    finally:
        await redis.aclose()
    return h.local_pid(int(info.get("process_id", 0)), ("redis", "valkey"))


def write_params(path: Path, *, frames_per_s: float = 1000.0, gc_freeze: bool = True) -> Path:
    """A params file: the dispatch engine off, the per-socket frame limit lifted, and the
    GC policy on (the default) or off (CPython's own collector)."""
    path.write_text(
        "[engine]\nenabled = false\n\n"
        f"[socket]\nframes_per_s = {frames_per_s}\nburst_frames = {frames_per_s}\n\n"
        f"[gc]\nfreeze = {'true' if gc_freeze else 'false'}\n"
    )
    return path


def doorstep_server(
    name: str,
    port: int,
    *,
    db: h.BenchDatabase,
    redis_url: str,
    secret: str,
    params: Path,
    work_dir: Path,
    gc_log: Path | None = None,
) -> h.Server:
    """``doorstep serve`` on ``port`` with this run's database, prefix, secret and params.

    With ``gc_log``, the server runs under :func:`serve_with_gc_log` (the same
    ``doorstep.cli`` entry point, plus a log of its garbage-collector pauses).
    """
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": db.url,
        "DOORSTEP_DATA_DIR": str(work_dir / "data"),
        "DOORSTEP_SECRET_KEY": secret,
        "DOORSTEP_REDIS_PREFIX": db.prefix,
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_LOG_LEVEL": LOG_LEVEL.upper(),
        **h.METRICS_ENV,
    }
    argv = [sys.executable, "-m", "doorstep", "serve", "--port", str(port)]
    if gc_log is not None:
        argv = [
            sys.executable,
            "-m",
            "benchmarks._fleet",
            "--gc-log",
            str(gc_log),
            "serve",
            "--port",
            str(port),
        ]
    return h.Server(name, argv, env, work_dir)


# --- garbage-collector pauses -----------------------------------------------------------


def log_gc_pauses(path: Path, *, min_ms: float = 1.0) -> None:
    """Append one JSON line per collection of generation 2, or of any generation that
    took at least ``min_ms``: ``{"t": start (epoch s), "gen": g, "ms": pause}``; for
    generation 2 also the objects tracked afterwards and the process's CPU ms (a pause
    much longer than its CPU time was the scheduler's, not the collector's)."""
    import gc

    out = path.open("a", buffering=1)
    start = [0.0, 0.0, 0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            start[0], start[1], start[2] = time.time(), time.perf_counter(), time.process_time()
            return
        ms = (time.perf_counter() - start[1]) * 1000
        gen = info["generation"]
        if gen == 2 or ms >= min_ms:
            entry: dict[str, Any] = {
                "t": round(start[0], 4),
                "gen": gen,
                "ms": round(ms, 2),
                "cpu_ms": round((time.process_time() - start[2]) * 1000, 2),
            }
            if gen == 2:  # how much a full collection had to walk (after the timing)
                entry["tracked"] = len(gc.get_objects())
            out.write(orjson.dumps(entry).decode() + "\n")

    gc.callbacks.append(callback)


def read_gc_log(path: Path) -> list[dict[str, Any]]:
    """The pauses :func:`log_gc_pauses` wrote (none if the file is missing)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    return [orjson.loads(line) for line in lines if line.strip()]


def gc_pauses_between(log: list[dict[str, Any]], t0: float, t1: float) -> dict[str, Any]:
    """Pauses that started in [t0, t1]: count, total and max ms (wall and the process's
    CPU), per generation; the full collections one by one."""
    out: dict[str, Any] = {}
    for gen in (0, 1, 2):
        found = [e for e in log if e["gen"] == gen and t0 <= e["t"] <= t1]
        if found:
            out[f"gen{gen}"] = {
                "count": len(found),
                "total_ms": round(sum(e["ms"] for e in found), 1),
                "max_ms": round(max(e["ms"] for e in found), 1),
                "total_cpu_ms": round(sum(e.get("cpu_ms", 0.0) for e in found), 1),
            }
    full = [e for e in log if e["gen"] == 2 and t0 <= e["t"] <= t1]
    if full:
        out["full_collections"] = [{k: e.get(k) for k in ("ms", "cpu_ms", "tracked")} for e in full]
    return out


def serve_with_gc_log(argv: list[str]) -> None:
    """``python -m benchmarks._fleet --gc-log PATH serve …``: run ``doorstep.cli`` with
    its GC pauses logged (the server's own ``[gc]`` policy decides what is collected)."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--gc-log", required=True)
    args, rest = p.parse_known_args(argv)
    log_gc_pauses(Path(args.gc_log))
    sys.argv = ["doorstep", *rest]
    from doorstep.cli import main

    main()


if __name__ == "__main__":
    serve_with_gc_log(sys.argv[1:])


async def scrape(port: int, names: Sequence[str]) -> dict[str, float]:
    """Counters from a server's ``/metrics`` (Prometheus text; ``_total`` suffix optional)."""
    status, body = await h.http_get(port, "/metrics", timeout_s=10.0)
    if status != 200:
        return {}
    wanted = set(names)
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        base = name.removesuffix("_total")
        if base in wanted:
            out[base] = float(value)
    return out


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of each of ``pids`` that is alive now."""
    out: dict[int, float] = {}
    for pid in pids:
        u = h.ProcMeter(pid).sample()
        if u.rss > 0:
            out[pid] = u.cpu_s
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two :func:`cpu_by_pid` readings by the processes alive at
    both (a process that exited in between takes its time with it, so it is left out)."""
    return sum(max(0.0, after[p] - before[p]) for p in before if p in after)


async def background_load(seconds: float = 2.0) -> float:
    """Busy cores on the machine while this benchmark runs nothing (other users' work)."""
    meter = h.CpuMeter()
    await asyncio.sleep(seconds)
    busy = meter.cores_busy()
    if busy > 0.2:
        h.progress(f"warning: the machine is busy with other work ({busy} cores)")
    return busy


async def wait_quiet(timeout_s: float, *, quiet_s: float = 3.0, below: float = 0.25) -> float:
    """Wait (at most ``timeout_s``) until other work uses < ``below`` cores for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    busy = 0.0
    while time.monotonic() < deadline:
        meter = h.CpuMeter()
        await asyncio.sleep(quiet_s)
        busy = meter.cores_busy()
        if busy < below:
            return busy
        h.progress(f"waiting for a quiet machine: {busy} cores busy with other work")
    return busy


def read_json(path: str) -> Any:
    """A JSON file's content (call through ``asyncio.to_thread`` from a coroutine)."""
    return orjson.loads(Path(path).read_bytes())


def run_loop(main: Awaitable[Any]) -> Any:
    """Run ``main`` on uvloop (as ``doorstep serve`` does), else asyncio."""

    async def wrapper() -> Any:
        return await main

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(wrapper())
    return uvloop.run(wrapper())


# --- child processes driven over stdin / stdout, one JSON line per command ------------

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_commands(ops: dict[str, Handler]) -> None:
    """In a child: read ``{"op": ..., ...}`` lines from stdin, answer each with one line."""
    h.raise_nofile()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    while line := await reader.readline():
        cmd = orjson.loads(line)
        op = cmd.pop("op")
        if op not in ops:
            break
        try:
            reply = await ops[op](cmd)
        except Exception as e:  # the orchestrator raises it
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(orjson.dumps(reply) + b"\n")
        out.flush()


class Child:
    """The orchestrator's handle on one child process (``argv``) speaking JSON lines."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid

    @classmethod
    async def start(cls, name: str, argv: Sequence[str]) -> Child:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**28,
            cwd=h.REPO,
            preexec_fn=h.child_setup,
        )
        return cls(name, proc)

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        """Send one command; its reply (raises on an error reply or a dead child)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps({"op": op, **kw}) + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited (rc {await self.proc.wait()})")
        reply: dict[str, Any] = orjson.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name} {op}: {reply['error']}")
        return reply

    async def stop(self) -> None:
        """Close its stdin (it exits), then kill it after 10 s; this pid only."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

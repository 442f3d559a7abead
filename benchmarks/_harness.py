"""Shared helpers for the benchmark scripts.

Stores (the environment's or embedded ones), a fresh database and Redis key prefix per
run, bulk worker accounts and their access tokens, server subprocesses, CPU/RSS
meters for a pid, percentiles and a description of the machine. Everything listens
on loopback only. Progress goes to stderr; the scripts print their JSON on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from doorstep.db import Tx, with_database
from doorstep.embedded import env_or_embedded_urls, free_port
from doorstep.migrate import migrate

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

__all__ = [
    "LOOPBACK",
    "REPO",
    "BenchDatabase",
    "CpuMeter",
    "ProcMeter",
    "Server",
    "Usage",
    "child_setup",
    "cores",
    "cpu_seconds",
    "create_workers",
    "free_port",
    "http_get",
    "http_get_json",
    "local_pid",
    "machine",
    "mint_access_tokens",
    "percentiles",
    "pids_named",
    "progress",
    "raise_nofile",
    "store_urls",
]


def progress(message: str) -> None:
    """One line of progress on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise this process's open-file limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentiles(
    samples: Sequence[float], ps: Sequence[float] = (50, 90, 99, 99.9)
) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` as ``{"p50": ..., "max": ...}`` (empty: {})."""
    if not samples:
        return {}
    data = sorted(samples)
    out: dict[str, float] = {}
    for p in ps:
        rank = max(1, math.ceil(p / 100 * len(data)))
        out[f"p{p:g}"] = data[rank - 1]
    out["max"] = data[-1]
    return out


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def source_revision() -> dict[str, Any]:
    """The commit measured and whether the work tree differs from it (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": os.environ.get("DOORSTEP_BENCH_REVISION"), "modified_files": None}
    return {"commit": commit, "modified_files": len(status.splitlines())}


def machine(packages: Sequence[str] = ()) -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, OS, Python, package versions."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_meminfo_kib("MemTotal") / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "source": source_revision(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --- stores ----------------------------------------------------------------------------


def store_urls() -> contextlib.AbstractContextManager[tuple[str, str]]:
    """``(redis_url, database_url)``: REDIS_URL / DATABASE_URL, or embedded servers
    (:func:`doorstep.embedded.env_or_embedded_urls`; main thread, before any event loop)."""
    return env_or_embedded_urls("doorstep-bench-")


@dataclass
class BenchDatabase:
    """A fresh, migrated database ``doorstep_bench_<rand>`` and a fresh Redis key prefix."""

    server_url: str
    redis_url: str
    name: str = ""
    url: str = ""
    prefix: str = ""

    async def create(self) -> None:
        """Create and migrate the database; pick the prefix."""
        run = secrets.token_hex(4)
        self.name = f"doorstep_bench_{run}"
        self.prefix = f"bench:{run}:"
        admin = await asyncpg.connect(with_database(self.server_url, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        self.url = with_database(self.server_url, self.name)
        conn = await asyncpg.connect(self.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop(self) -> int:
        """Drop the database and delete every key under the prefix; return keys deleted."""
        if self.name:
            admin = await asyncpg.connect(with_database(self.server_url, "postgres"))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await admin.close()
        deleted = 0
        if self.prefix:
            redis = Redis.from_url(self.redis_url)
            try:
                batch: list[bytes] = []
                async for key in redis.scan_iter(match=f"{self.prefix}*", count=5000):
                    batch.append(key)
                    if len(batch) >= 5000:
                        deleted += await redis.unlink(*batch)
                        batch = []
                if batch:
                    deleted += await redis.unlink(*batch)
            finally:
                await redis.aclose()
        return deleted


async def create_workers(
    conn: Tx,
    n: int,
    *,
    city_id: str,
    password_hash: str,
    home: tuple[float, float],
) -> list[int]:
    """Insert ``n`` worker accounts with profiles in ``city_id`` (two statements); their ids.

    Every account gets the same precomputed ``password_hash``: hashing per user would
    cost ~50 ms each.
    """
    run = int(secrets.token_hex(3), 16) % 900 + 100
    rows = [
        (*sealed_phone(f"19{run:03d}{i:06d}"), f"压测师傅{i}", password_hash, ["worker"])
        for i in range(n)
    ]
    async with conn.transaction():
        await conn.copy_records_to_table(
            "users",
            records=rows,
            columns=("phone", "phone_bidx", "name", "password_hash", "roles"),
        )
        user_ids = await ids_of(conn, [r[1] for r in rows])
        await conn.executemany(
            "INSERT INTO workers (user_id, city_id, home_lat, home_lng) VALUES ($1, $2, $3, $4)",
            [(u, city_id, home[0], home[1]) for u in user_ids],
        )
    return user_ids


def bench_secret() -> str:
    """A fresh server secret for a run, whose derived data keys (docs/privacy.md) become
    this process's: rows written here directly are sealed as the servers started with
    ``DOORSTEP_SECRET_KEY`` = it read them."""
    from privacy import crypto

    secret = secrets.token_urlsafe(48)
    crypto.install(crypto.DataKeys.derived(secret))
    return secret


def sealed_phone(phone: str) -> tuple[str, bytes]:
    """(``users.phone`` token, blind index) of a phone, with this process's keys."""
    from privacy import crypto

    return crypto.seal("users.phone", phone), crypto.blind("phone", phone)


async def ids_of(conn: Any, indexes: Sequence[bytes]) -> list[int]:
    """The ids of the users with these phone blind indexes, in their order."""
    got = await conn.fetch(
        "SELECT id, phone_bidx FROM users WHERE phone_bidx = ANY($1::bytea[])", list(indexes)
    )
    by_index = {bytes(r["phone_bidx"]): int(r["id"]) for r in got}
    return [by_index[i] for i in indexes]


def mint_access_tokens(user_ids: Sequence[int], *, key: str, ttl_s: int = 3600) -> list[str]:
    """An access token (roles ``worker``) for each user, signed with ``key``."""
    from accounts.tokens import issue

    now = int(time.time())
    return [
        issue(user_id=u, roles=("worker",), typ="access", now=now, ttl_s=ttl_s, key=key)[0]
        for u in user_ids
    ]


# --- processes -------------------------------------------------------------------------


class Server:
    """A server subprocess with its output in a log file; stopped by its own pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        own_session: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup,
            # A session of its own: with the kernel's autogroup scheduling, its own share of
            # the cores, as a service has its own cgroup in production.
            start_new_session=own_session,
        )
        self.pid = self.process.pid

    def tail(self, lines: int = 30) -> str:
        """The last lines of its log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def wait_http(self, port: int, path: str, timeout_s: float = 60.0) -> None:
        """Wait until ``GET path`` answers 200, or raise with the log's tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                status, _ = await http_get(port, path)
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; this pid only."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def child_setup() -> None:
    """In a child before exec: the hard open-file limit, and SIGTERM when the parent dies."""
    raise_nofile()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphans if we are killed


# /metrics needs a token (or an admin): the servers the benchmarks start get this one in
# their environment (METRICS_ENV), and http_get sends it on /metrics.
METRICS_TOKEN = secrets.token_urlsafe(32)
METRICS_ENV = {"DOORSTEP_METRICS_TOKEN": METRICS_TOKEN}


async def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """``GET http://127.0.0.1:port/path`` with HTTP/1.0; (status, body). On ``/metrics``
    with the benchmarks' metrics token."""
    auth = f"Authorization: Bearer {METRICS_TOKEN}\r\n" if path.startswith("/metrics") else ""

    async def get() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {LOOPBACK}\r\n{auth}\r\n".encode())
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    return await asyncio.wait_for(get(), timeout_s)


async def http_get_json(port: int, path: str) -> Any:
    """The JSON body of ``GET path`` (must answer 200)."""
    status, body = await http_get(port, path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status}")
    return orjson.loads(body)


# --- meters (Linux /proc: no dependency beyond the standard library) --------------------

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _meminfo_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _proc_cpu_rss(pid: int) -> tuple[float, int] | None:
    """CPU seconds (user + system) and RSS bytes of ``pid``; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK, int(statm.split()[1]) * _PAGE


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and RSS of a process at one moment."""

    t: float
    cpu_s: float
    rss: int


class ProcMeter:
    """CPU time and resident memory of one pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def sample(self) -> Usage:
        """CPU seconds and RSS now (zeros once the process is gone)."""
        cpu, rss = _proc_cpu_rss(self.pid) or (0.0, 0)
        return Usage(time.perf_counter(), cpu, rss)


def cores(a: Usage, b: Usage) -> float:
    """Average cores a process used between two samples."""
    return round((b.cpu_s - a.cpu_s) / max(b.t - a.t, 1e-9), 3)


def process_name(pid: int) -> str:
    """The executable name of ``pid`` ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def local_pid(pid: int, names: Sequence[str]) -> int | None:
    """``pid`` if it is a live process here whose name contains one of ``names``."""
    name = process_name(pid) if pid > 0 else ""
    return pid if name and any(n in name for n in names) else None


def pids_named(names: Sequence[str]) -> list[int]:
    """Pids of processes whose executable name is one of ``names`` (e.g. postgres)."""
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and process_name(int(e.name)) in names
    ]


def cpu_seconds(pids: Sequence[int]) -> float:
    """Total CPU seconds (user + system) of ``pids`` that still exist."""
    return sum((_proc_cpu_rss(pid) or (0.0, 0))[0] for pid in pids)


class CpuMeter:
    """Machine-wide CPU busy time (all cores), to tell a saturated machine."""

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._busy = self._busy_s()

    @staticmethod
    def _busy_s() -> float:
        # cpu  user nice system idle iowait irq softirq steal ...
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return (sum(v) - v[3] - v[4]) / _TICK

    def cores_busy(self) -> float:
        """Average busy cores since the meter was created."""
        return round((self._busy_s() - self._busy) / max(time.perf_counter() - self._t, 1e-9), 3)

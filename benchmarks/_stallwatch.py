"""What the machine and PostgreSQL did during a measured window (diagnostics, opt-in).

``benchmarks.money --stall-probe DIR`` starts a :class:`Watch` around its paced run.
A thread samples every ``every_s`` (10 ms): each watched process's CPU time and
run-queue wait (``/proc/PID/schedstat``, ns, so a 10 ms window is resolved), the
machine's ``/proc/stat`` line (steal included), the PostgreSQL processes' kernel wait
channels (``/proc/PID/wchan``: a backend in ``fdatasync`` shows where the kernel holds
it), the dirty and writeback memory and the disk's write counters; a task
samples ``pg_stat_activity`` (every non-idle backend's state and wait event) and the
WAL's insert and flush positions on its own connection. ``pg_stat_wal`` and ``pg_stat_bgwriter`` are read before and after. All
timestamps are ``time.perf_counter()`` (``CLOCK_MONOTONIC``, the server probe's too).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any


def _schedstat(pid: int) -> tuple[int, int] | None:
    try:
        run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return None
    return int(run), int(wait)


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def _io() -> list[int]:
    """Dirty and Writeback (kB, /proc/meminfo), then the busiest disk's writes completed,
    ms spent writing, in flight and ms doing I/O (/proc/diskstats)."""
    mem = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    disks = [
        line.split()
        for line in Path("/proc/diskstats").read_text().splitlines()
        if not line.split()[2].startswith(("loop", "zram", "ram", "dm-"))
    ]
    top = max(disks, key=lambda d: int(d[7]), default=["0"] * 14)
    return [
        int(mem["Dirty"].split()[0]),
        int(mem["Writeback"].split()[0]),
        int(top[7]),
        int(top[10]),
        int(top[11]),
        int(top[12]),
    ]


def _postgres_pids() -> dict[int, str]:
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    out[int(entry.name)] = cmd.strip()[:60]
            except OSError:
                continue
    return out


class Watch:
    """Samples from :meth:`start` to :meth:`stop`; :meth:`result` gives them."""

    def __init__(self, pids: dict[str, int], every_s: float = 0.01) -> None:
        self.pids = dict(pids)
        self.every_s = every_s
        self.proc: list[tuple[float, dict[str, tuple[int, int]], list[int]]] = []
        # (t, {pid: kernel wait channel} of the PostgreSQL processes not idle, _io())
        self.kernel: list[tuple[float, dict[str, str], list[int]]] = []
        self.activity: list[tuple[float, list[list[Any]]]] = []
        self.pg_before: dict[str, Any] = {}
        self.pg_after: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    async def start(self, database_url: str) -> None:
        import asyncpg

        for pid, cmd in _postgres_pids().items():
            self.pids.setdefault(f"pg {pid} {cmd}", pid)
        self._conn = await asyncpg.connect(database_url)
        self.pg_before = await self._pg_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._task = asyncio.create_task(self._activity())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            self._thread.join()
        self.pg_after = await self._pg_stats()
        await self._conn.close()

    async def _pg_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": time.perf_counter()}
        for view in ("pg_stat_wal", "pg_stat_bgwriter"):
            row = await self._conn.fetchrow(f"SELECT * FROM {view}")
            out[view] = {k: (v if isinstance(v, int | float) else str(v)) for k, v in row.items()}
        return out

    def _sample(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            got = {name: s for name, pid in self.pids.items() if (s := _schedstat(pid))}
            cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
            self.proc.append((t, got, cpu))
            chans = {
                str(pid): c
                for name, pid in self.pids.items()
                if name.startswith("pg ") and (c := _wchan(pid)) and c != "do_epoll_wait"
            }
            self.kernel.append((t, chans, _io()))
            time.sleep(max(0.0, self.every_s - (time.perf_counter() - t)))

    async def _activity(self) -> None:
        q = (
            "SELECT pid, backend_type, state, wait_event_type, wait_event, "
            "left(query, 70) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND coalesce(state, '') <> 'idle'"
        )
        lsn = (
            "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn, "
            "pg_current_wal_flush_lsn() - '0/0'::pg_lsn"
        )
        while True:
            t = time.perf_counter()
            rows = await self._conn.fetch(q)
            inserted, flushed = await self._conn.fetchrow(lsn)
            # the WAL's insert and flush positions, bytes: a row of its own, first
            wal = [-1, "wal", int(inserted), int(flushed), None, None]
            self.activity.append((t, [wal, *(list(r.values()) for r in rows)]))
            await asyncio.sleep(max(0.0, self.every_s - (time.perf_counter() - t)))

    def result(self) -> dict[str, Any]:
        return {
            "pids": self.pids,
            "proc": self.proc,
            "activity": self.activity,
            "kernel": self.kernel,
            "pg_before": self.pg_before,
            "pg_after": self.pg_after,
        }

"""Run a module with its event loop watched for stalls (diagnostics, opt-in).

    python -m benchmarks._stallprobe OUT.jsonl -m doorstep serve --port 8000

Every ``asyncio.run`` (uvicorn's too, uvloop or not) of the main thread gets a heartbeat task that sleeps 2 ms at a time;
when it wakes more than ``STALL_MS`` late the loop was held, and one JSON line says
when (``CLOCK_MONOTONIC``, the benchmark's ``time.perf_counter``), for how long, how
much CPU the loop's thread used in that time and how long it waited for a core
(``/proc/thread-self/schedstat``), what a watcher thread saw on the loop's stack
during it, and the collections of the garbage collector inside it. Every collection
above 1 ms gets a line too. Written as it happens, so a server stopped by a signal
loses nothing. Each payment notification gets a line too: when its handler started, how long it took,
how long it waited for a pooled connection, for its statements, for its COMMITs and for
Redis.
``benchmarks.money --stall-probe DIR`` runs its server so.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import os
import runpy
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any, TextIO

STALL_MS = 8.0
# STALLPROBE_STATEMENTS=1 in the environment: a line per statement too (its time, the
# asyncio task that sent it — "events-<consumer>" for the relay — and its text).
_EACH = os.environ.get("STALLPROBE_STATEMENTS") == "1"
BEAT_S = 0.002
# The phases of the payment notification being handled by this task (None: not one).
_NESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("stallprobe_in", default=False)
_PHASES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "stallprobe_phases", default=None
)


def _schedstat() -> tuple[int, int]:
    """This thread's CPU time and run-queue wait, ns (Linux)."""
    with open("/proc/thread-self/schedstat") as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


class Probe:
    """The heartbeat, the stack watcher and the collector's timer of one process."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.beat = time.perf_counter()
        self.loop_thread = 0
        self.samples: Counter[str] = Counter()
        self.gcs: list[tuple[float, int, float]] = []
        self.statements = 0  # asyncpg statements sent by this process (all its tasks)
        self.commits = 0
        self._gc_t0 = 0.0
        gc.callbacks.append(self._gc)

    def write(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(row) + "\n")
            self.out.flush()

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_t0 = now
            return
        took = (now - self._gc_t0) * 1000
        self.gcs.append((self._gc_t0, int(info["generation"]), took))
        if took > 1.0:
            self.write(
                {
                    "gc": int(info["generation"]),
                    "t": round(self._gc_t0, 4),
                    "ms": round(took, 2),
                    "collected": info.get("collected"),
                }
            )

    async def heartbeat(self) -> None:
        self.loop_thread = threading.get_ident()
        self.write({"pid": os.getpid(), "start": round(time.perf_counter(), 4)})
        run0, wait0 = _schedstat()
        beats = 0
        while True:
            beats += 1
            if beats % 50 == 0:  # ~every 0.1 s: the process's statements and COMMITs so far
                self.write(
                    {
                        "counts": round(time.perf_counter(), 4),
                        "statements": self.statements,
                        "commits": self.commits,
                    }
                )
            t0 = time.perf_counter()
            self.beat = t0
            await asyncio.sleep(BEAT_S)
            t1 = time.perf_counter()
            run1, wait1 = _schedstat()
            late = (t1 - t0 - BEAT_S) * 1000
            if late > STALL_MS:
                with self.lock:
                    stacks, self.samples = self.samples, Counter()
                gcs = [(g, round(ms, 2)) for (t, g, ms) in self.gcs if t >= t0]
                self.write(
                    {
                        "stall": round(t0 + BEAT_S, 4),
                        "ms": round(late, 2),
                        "cpu_ms": round((run1 - run0) / 1e6, 2),
                        "runqueue_ms": round((wait1 - wait0) / 1e6, 2),
                        "gc": gcs,
                        "stacks": stacks.most_common(6),
                    }
                )
            else:
                self.samples.clear()
            self.gcs.clear()
            run0, wait0 = run1, wait1

    def watch(self) -> None:
        """Every ms: if the loop is late, note the loop thread's innermost project frames."""
        while True:
            time.sleep(0.001)
            if not self.loop_thread or time.perf_counter() - self.beat < BEAT_S + 0.003:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-40:]
            names = [f"{os.path.basename(fs.filename)}:{fs.name}" for fs in stack]
            ours = [
                n for n, fs in zip(names, stack, strict=True) if "/lib/python" not in fs.filename
            ][-4:]
            key = " < ".join(reversed(names[-3:])) + " | " + " < ".join(reversed(ours))
            with self.lock:
                self.samples[key] += 1


def _time_phases(probe: Probe) -> None:
    """One line per payment notification: when its handler ran and where it waited —
    for a pooled connection, for its statements (COMMIT apart: the WAL flush)."""
    import asyncpg.connection
    import asyncpg.pool

    from payments.service import Payments

    def timed(fn: Any, key: str) -> Any:
        async def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
            if key == "sql" and not _NESTED.get():  # every statement of the process
                probe.statements += 1
                if args and str(args[0]).strip().upper().startswith("COMMIT"):
                    probe.commits += 1
                if _EACH:  # STALLPROBE_STATEMENTS=1: every statement, its task and text
                    task = asyncio.current_task()
                    probe.write(
                        {
                            "sql": round(time.perf_counter(), 5),
                            "task": task.get_name() if task is not None else "",
                            "q": " ".join(str(args[0]).split())[:70] if args else "",
                        }
                    )
            ph = _PHASES.get()
            if ph is None or ph.get("_in"):  # execute(query, *args) calls _execute
                token = _NESTED.set(True)
                try:
                    return await fn(self, *args, **kw)
                finally:
                    _NESTED.reset(token)
            t = time.perf_counter()
            ph["_in"] = key != "acquire"
            token = _NESTED.set(key != "acquire")
            try:
                return await fn(self, *args, **kw)
            finally:
                _NESTED.reset(token)
                ph["_in"] = False
                ms = (time.perf_counter() - t) * 1000
                k = key
                if key == "sql" and args and str(args[0]).strip().upper().startswith("COMMIT"):
                    k = "commit"
                ph[k + "_ms"] = ph.get(k + "_ms", 0.0) + ms
                ph[k + "_n"] = ph.get(k + "_n", 0) + 1
                if ms > ph.get("slowest_ms", 0.0):
                    ph["slowest_ms"] = ms
                    ph["slowest"] = k if k != "sql" else str(args[0]).strip()[:60]

        return wrapper

    pool_cls: Any = asyncpg.pool.Pool  # private methods wrapped: Any for the type checker
    pool_cls._acquire = timed(pool_cls._acquire, "acquire")
    conn: Any = asyncpg.connection.Connection
    conn._execute = timed(conn._execute, "sql")
    conn.execute = timed(conn.execute, "sql")
    import redis.asyncio.client

    redis_cls: Any = redis.asyncio.client.Redis
    redis_cls.execute_command = timed(redis_cls.execute_command, "redis")
    handle = Payments.notification

    async def notification(self: Any, *args: Any, **kw: Any) -> Any:
        ph: dict[str, Any] = {"t": round(time.perf_counter(), 5)}
        token = _PHASES.set(ph)
        try:
            ack, applied = await handle(self, *args, **kw)
        finally:
            _PHASES.reset(token)
        ph.pop("_in", None)
        ph["ms"] = round((time.perf_counter() - ph["t"]) * 1000, 3)
        ph["outcome"] = applied.outcome
        probe.write({"notification": ph})
        return ack, applied

    Payments.notification = notification  # type: ignore[method-assign]


def main() -> None:
    """Watch ``-m module args…``; lines to the first argument."""
    out, flag, module, *rest = sys.argv[1:]
    if flag != "-m":
        raise SystemExit("usage: python -m benchmarks._stallprobe OUT.jsonl -m module [args…]")
    sys.argv = [module, *rest]
    probe = Probe(open(out, "a", buffering=1))  # noqa: SIM115 - open while the process runs
    threading.Thread(target=probe.watch, name="stallprobe", daemon=True).start()
    _time_phases(probe)
    run = asyncio.Runner.run  # asyncio.run's and uvicorn's (uvloop too)

    async def beside(coro: Any) -> Any:
        beat = asyncio.create_task(probe.heartbeat(), name="stallprobe")
        try:
            return await coro
        finally:
            beat.cancel()

    def watched(self: asyncio.Runner, coro: Any, **kw: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            coro = beside(coro)
        return run(self, coro, **kw)

    asyncio.Runner.run = watched  # type: ignore[method-assign]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

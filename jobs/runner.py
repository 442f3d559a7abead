"""A job worker inside a process: ``doorstep serve``/``demo`` run one beside the server,
``doorstep worker`` runs one alone. Several may run against one database.

The worker is procrastinate's, supervised here: when it stops without being asked
(PostgreSQL went away, a side task failed), it is started again after a backoff, with
one log line per outage instead of a traceback per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import procrastinate
from procrastinate import JobContext
from procrastinate.worker import Worker

from jobs import store
from jobs.app import SERVICES

log = logging.getLogger("doorstep.jobs")


def describe(error: BaseException) -> str:
    """A one-line description of a failure."""
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


@dataclass(frozen=True, slots=True)
class JobParams:
    """Section ``[jobs]`` of the params file."""

    # Run a job worker in the server process (``doorstep serve``/``demo``).
    in_process: bool = True
    # Jobs one worker runs at once (they are coroutines on the event loop).
    concurrency: int = 8
    # Without a notification, look for due jobs this often (seconds).
    poll_s: float = 1.0
    # A worker sends a heartbeat this often; one silent for stalled_after_s is dead and
    # its running jobs are started again (jobs must be idempotent).
    heartbeat_s: float = 10.0
    stalled_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 256:
            raise ValueError("concurrency must be between 1 and 256")
        if not 0 < self.poll_s <= 60:
            raise ValueError("poll_s must be > 0 and <= 60")
        if not 0 < self.heartbeat_s < self.stalled_after_s:
            raise ValueError("heartbeat_s must be > 0 and < stalled_after_s")


Middleware = Callable[[Callable[[], Awaitable[Any]], JobContext, Worker], Awaitable[Any]]


def _recorder(pool: Any) -> Middleware:
    async def record(
        call_next: Callable[[], Awaitable[Any]], context: JobContext, _w: Worker
    ) -> Any:
        try:
            return await call_next()
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            job = context.job
            if job.id is not None:
                with contextlib.suppress(Exception):
                    await store.record_error(pool, job.id, job.attempts, describe(e))
            raise

    return record


class JobRunner:
    """One supervised procrastinate worker."""

    def __init__(
        self,
        app: procrastinate.App,
        pool: Any,
        services: Mapping[type[Any], Any],
        params: JobParams,
        *,
        name: str = "doorstep",
        queues: list[str] | None = None,
    ) -> None:
        self.app = app
        # Only the queues of tasks this app knows: a job of another deployment's (or a
        # test's) task is left to a worker that knows it, not failed as unknown.
        self.queues = queues or sorted({t.queue for t in app.tasks.values()})
        self.pool = pool
        self.services = dict(services)
        self.params = params
        self.name = name
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None
        self._worker: Worker | None = None
        self._stopping = False
        self._opened = False

    def _make_worker(self) -> Worker:
        return Worker(
            app=self.app,
            queues=self.queues,
            name=self.name,
            concurrency=self.params.concurrency,
            wait=True,
            fetch_job_polling_interval=self.params.poll_s,
            listen_notify=True,
            delete_jobs="successful",
            additional_context={SERVICES: self.services},
            install_signal_handlers=False,
            update_heartbeat_interval=self.params.heartbeat_s,
            stalled_worker_timeout=self.params.stalled_after_s,
            worker_middleware=[_recorder(self.pool)],
        )

    async def start(self) -> None:
        """Open procrastinate's connections and run the worker in the background."""
        await self.app.open_async()
        self._opened = True
        self._task = asyncio.create_task(self._supervise(), name="job-worker")

    async def _supervise(self) -> None:
        delay = 0.5
        outage_since: float | None = None
        while not self._stopping:
            self._worker = self._make_worker()
            started = time.monotonic()
            try:
                await self._worker.run()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("job worker stopped: %s; restarting", describe(e))
            if self._stopping:
                return
            if time.monotonic() - started > 30:
                delay = 0.5
            self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            if outage_since is not None and delay >= 10.0:
                log.warning(
                    "job worker still restarting after %.0f s", time.monotonic() - outage_since
                )
                outage_since = time.monotonic()

    async def stop(self) -> None:
        """Stop taking jobs, let running ones finish (a few seconds), close."""
        self._stopping = True
        if self._worker is not None:
            self._worker.stop()  # type: ignore[no-untyped-call]
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10.0)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        if self._opened:
            with contextlib.suppress(Exception):
                await self.app.close_async()
            self._opened = False


async def recover_stalled(pool: Any, params: JobParams) -> list[int]:
    """Start again the jobs of workers that stopped sending heartbeats."""
    ids = await store.recover_stalled(
        pool, heartbeat_s=params.stalled_after_s, now=datetime.now(UTC)
    )
    if ids:
        log.warning("restarted %d job(s) of stalled workers: %s", len(ids), ids[:20])
    return ids

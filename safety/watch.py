"""The trail detectors on the live path: per-process state, alerts off the hot path.

Tracking calls :meth:`TrailWatch.on_fix` synchronously for the last fix of every frame
of a worker who holds a job (``Tracking.on_job_fix``, set by the app): one
:func:`safety.trail.step` — a few distance computations — and nothing else. An
anomaly found is raised as an alert in a task of its own, so the ingest never waits on
PostgreSQL. The state lives in this process, next to the worker's socket (a worker's
socket is in one process at a time); a reconnect elsewhere starts the detectors afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from safety.trail import Anomaly, JobView, TrailParams, TrailState, step
from tracking.jobs import JobInfo

log = logging.getLogger("doorstep.safety.watch")

Raise = Callable[[int, str, Anomaly], Coroutine[Any, Any, object]]


class TrailWatch:
    """The detectors' state for the workers whose sockets this process holds."""

    def __init__(self, params: TrailParams, raise_alert: Raise) -> None:
        self.params = params
        self._raise = raise_alert
        self._states: dict[int, TrailState] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self.fixes = 0
        self.anomalies = 0

    def on_fix(
        self, worker_id: int, info: JobInfo, lat: float, lng: float, ts_ms: int, accuracy_m: float
    ) -> None:
        """Step the worker's detectors with a live fix; raise what they find."""
        if not self.params.enabled:
            return
        self.fixes += 1
        view = JobView(
            info.order_id,
            info.status,
            info.lat,
            info.lng,
            info.arrived_ms,
            info.duration_s,
            info.window_start_ms,
        )
        state, found = step(
            self._states.get(worker_id), view, ts_ms, lat, lng, accuracy_m, self.params
        )
        self._states[worker_id] = state
        for anomaly in found:
            self.anomalies += 1
            task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
                self._raise(worker_id, info.city_id, anomaly)
            )
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def forget(self, worker_id: int) -> None:
        """Drop a worker's state (their socket went away)."""
        self._states.pop(worker_id, None)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("raising a trail anomaly failed: %s", task.exception())

    async def stop(self) -> None:
        """Wait briefly for alerts being raised."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

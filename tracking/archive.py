"""The trail archive: accepted fixes are copied to PostgreSQL in batches (COPY).

Rows are buffered in memory straight from ingest (not read back from Redis), so losing
Redis loses no archived trail. The buffer is flushed every ``interval_s`` or when it
reaches ``batch_rows``, and on shutdown. If PostgreSQL is down the rows wait, up to
``max_buffered`` rows; past that the oldest are dropped and counted (never silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import asyncpg

from doorstep.db import Conn

log = logging.getLogger("doorstep.tracking.archive")

COLUMNS = (
    "worker_id",
    "ts",
    "lat",
    "lng",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "seq",
    "clamped",
    "received_at",
)
Row = tuple[int, datetime, float, float, float, float | None, float | None, int, bool, datetime]


class TrailArchiver:
    """Buffers trail rows and COPYs them to ``trail_points``."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        interval_s: float = 1.0,
        batch_rows: int = 5000,
        max_buffered: int = 500_000,
    ) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._batch_rows = batch_rows
        self._max_buffered = max_buffered
        self._rows: list[Row] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.archived = 0
        self.dropped = 0

    def add(self, rows: list[Row]) -> None:
        """Queue rows for the next COPY."""
        self._rows.extend(rows)
        if len(self._rows) > self._max_buffered:
            excess = len(self._rows) - self._max_buffered
            del self._rows[:excess]
            self.dropped += excess
            log.error("trail archive buffer full: dropped %d oldest rows", excess)
        if len(self._rows) >= self._batch_rows:
            self._wake.set()

    @property
    def buffered(self) -> int:
        """Rows waiting to be archived."""
        return len(self._rows)

    def start(self) -> None:
        """Run the periodic flush in the background."""
        self._task = asyncio.create_task(self._run(), name="trail-archiver")

    async def stop(self) -> None:
        """Stop the loop and flush what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as e:
                log.warning("trail archive flush failed, will retry: %s", e)
            except Exception:  # never let the loop die: the rows are kept for the next try
                log.exception("trail archive flush failed")

    async def flush(self) -> int:
        """COPY everything buffered now; returns the number of rows archived."""
        if not self._rows:
            return 0
        rows, self._rows = self._rows, []
        try:
            await self._pool.copy_records_to_table("trail_points", records=rows, columns=COLUMNS)
        except (ValueError, asyncpg.DataError):  # a row PostgreSQL cannot take: find it
            return await self._one_by_one(rows)
        except BaseException:
            self._rows[:0] = rows  # keep them, in order, for the next attempt
            raise
        self.archived += len(rows)
        return len(rows)

    async def _one_by_one(self, rows: list[Row]) -> int:
        """Archive rows singly, dropping (and counting) those PostgreSQL refuses."""
        done = 0
        for row in rows:
            try:
                await self._pool.copy_records_to_table(
                    "trail_points", records=[row], columns=COLUMNS
                )
            except (ValueError, asyncpg.DataError) as e:
                self.dropped += 1
                log.error("trail point refused by PostgreSQL, dropped: %s (%s)", row, e)
                continue
            done += 1
        self.archived += done
        return done


async def trail(
    db: Conn, worker_id: int, start: datetime, end: datetime, limit: int
) -> list[asyncpg.Record]:
    """Archived fixes of one worker in [start, end), oldest first."""
    return await db.fetch(
        "SELECT ts, lat, lng, accuracy_m, speed_mps, heading_deg, seq, clamped FROM trail_points "
        "WHERE worker_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts, seq LIMIT $4",
        worker_id,
        start,
        end,
        limit,
    )

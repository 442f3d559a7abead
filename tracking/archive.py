"""The trail archive: accepted fixes are copied to PostgreSQL in batches (COPY).

Rows are buffered in memory straight from ingest (not read back from Redis), so losing
Redis loses no archived trail. The buffer is flushed every ``interval_s`` or when it
reaches ``batch_rows``, and on shutdown. If PostgreSQL is down the rows wait, up to
``max_buffered`` rows; past that the oldest are dropped and counted (never silently).

Rows hold plain numbers (times in ms) and are encoded here in PostgreSQL's binary COPY
format with :mod:`struct`: building two ``datetime`` objects per fix for asyncpg's
``copy_records_to_table`` cost more than the rest of archiving a fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import struct
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
# worker_id, ts_ms (device time), lat, lng, accuracy_m, speed_mps, heading_deg, seq,
# clamped, received_ms (server time)
Row = tuple[int, int, float, float, float, float | None, float | None, int, bool, int]

_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, where PostgreSQL counts time from
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
# A row of 10 fields: (length, value) for each; speed and heading may be NULL (-1).
_HEAD = struct.Struct("!hiqiqidid if")  # count, worker_id, ts, lat, lng, accuracy
_SPEED = struct.Struct("!if")
_TAIL = struct.Struct("!iqi?iq")  # seq, clamped, received_at
_NULL = struct.pack("!i", -1)


def encode_row(row: Row) -> bytes:
    """One row in PostgreSQL's binary COPY format; struct.error / OverflowError for a
    value a column cannot hold."""
    worker, ts_ms, lat, lng, acc, speed, heading, seq, clamped, received_ms = row
    return b"".join(
        (
            _HEAD.pack(10, 8, worker, 8, (ts_ms - _PG_EPOCH_MS) * 1000, 8, lat, 8, lng, 4, acc),
            _NULL if speed is None else _SPEED.pack(4, speed),
            _NULL if heading is None else _SPEED.pack(4, heading),
            _TAIL.pack(8, seq, 1, clamped, 8, (received_ms - _PG_EPOCH_MS) * 1000),
        )
    )


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
        encoded = self._encode(rows)
        try:
            await self._copy(encoded)
        except asyncpg.DataError:  # a row PostgreSQL cannot take: find it
            return await self._one_by_one(encoded)
        except BaseException:
            self._rows[:0] = rows  # keep them, in order, for the next attempt
            raise
        self.archived += len(encoded)
        return len(encoded)

    def _encode(self, rows: list[Row]) -> list[bytes]:
        out = []
        for row in rows:
            try:
                out.append(encode_row(row))
            except (struct.error, OverflowError, TypeError) as e:
                self.dropped += 1
                log.error("trail point cannot be stored, dropped: %s (%s)", row, e)
        return out

    async def _copy(self, encoded: list[bytes]) -> None:
        if encoded:
            data = io.BytesIO(b"".join((_HEADER, *encoded, _TRAILER)))
            await self._pool.copy_to_table(
                "trail_points", source=data, columns=COLUMNS, format="binary"
            )

    async def _one_by_one(self, encoded: list[bytes]) -> int:
        """Archive rows singly, dropping (and counting) those PostgreSQL refuses."""
        done = 0
        for row in encoded:
            try:
                await self._copy([row])
            except asyncpg.DataError as e:
                self.dropped += 1
                log.error("trail point refused by PostgreSQL, dropped: %s", e)
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

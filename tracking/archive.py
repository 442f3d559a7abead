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
from dataclasses import dataclass
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
# A row: the field count, then (length, value) per field; a NULL is the length -1. One
# precompiled layout per combination of NULL speed and heading, so a row is one pack.
_ROW = {
    (speed, heading): struct.Struct(
        "!h iq iq id id if"
        + (" if" if speed else " i")
        + (" if" if heading else " i")
        + " iq i? iq"
    )
    for speed in (True, False)
    for heading in (True, False)
}
_WHO = struct.Struct("!q")  # worker_id, 6 bytes into a row (after the count and a length)
_SEQ = struct.Struct("!q")  # seq, 25 bytes before a row's end


def encode_row(row: Row) -> bytes:
    """One row in PostgreSQL's binary COPY format; struct.error or OverflowError for a
    value its column cannot hold."""
    worker, ts_ms, lat, lng, acc, speed, heading, seq, clamped, received_ms = row
    ts_us = (ts_ms - _PG_EPOCH_MS) * 1000
    received_us = (received_ms - _PG_EPOCH_MS) * 1000
    head = (10, 8, worker, 8, ts_us, 8, lat, 8, lng, 4, acc)
    tail = (8, seq, 1, clamped, 8, received_us)
    if speed is None:
        if heading is None:
            return _ROW[False, False].pack(*head, -1, -1, *tail)
        return _ROW[False, True].pack(*head, -1, 4, heading, *tail)
    if heading is None:
        return _ROW[True, False].pack(*head, 4, speed, -1, *tail)
    return _ROW[True, True].pack(*head, 4, speed, 4, heading, *tail)


@dataclass(frozen=True, slots=True)
class ArchiveParams:
    """The trail archive's COPYs (section ``[archive]`` of the params file)."""

    interval_s: float = 1.0  # buffered rows are COPYed at least this often ...
    batch_rows: int = 5000  # ... or as soon as this many are buffered
    max_buffered: int = 500_000  # PostgreSQL unreachable: past this the oldest rows go

    def __post_init__(self) -> None:
        if not 0.01 <= self.interval_s <= 60:
            raise ValueError(f"interval_s must be within 0.01..60, got {self.interval_s!r}")
        if self.max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {self.max_buffered!r}")
        if not 1 <= self.batch_rows <= self.max_buffered:
            raise ValueError(
                f"batch_rows must be within 1..max_buffered ({self.max_buffered}), "
                f"got {self.batch_rows!r}"
            )


class TrailArchiver:
    """Buffers trail rows (encoded as they come) and COPYs them to ``trail_points``."""

    def __init__(self, pool: asyncpg.Pool[Any], params: ArchiveParams | None = None) -> None:
        params = params or ArchiveParams()
        self._pool = pool
        self._interval_s = params.interval_s
        self._batch_rows = params.batch_rows
        self._max_buffered = params.max_buffered
        self._rows: list[bytes] = []  # encoded rows, oldest first
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.archived = 0
        self.dropped = 0

    def add(self, rows: list[Row]) -> None:
        """Queue rows for the next COPY; a row no column type can hold is dropped (counted)."""
        buffer = self._rows
        for row in rows:
            try:
                buffer.append(encode_row(row))
            except (struct.error, OverflowError, TypeError, ValueError) as e:
                self.dropped += 1
                log.error("trail point cannot be stored, dropped: %s (%s)", row, e)
        if len(buffer) > self._max_buffered:
            excess = len(buffer) - self._max_buffered
            del buffer[:excess]
            self.dropped += excess
            log.error("trail archive buffer full: dropped %d oldest rows", excess)
        if len(buffer) >= self._batch_rows:
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
            with contextlib.suppress(TimeoutError):  # not wait_for: see events.relay._wait
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as e:
                log.warning("trail archive flush failed, will retry: %s", e)
            except Exception:  # never let the loop die: the rows are kept for the next try
                log.exception("trail archive flush failed")

    async def flush(self) -> int:
        """COPY everything buffered now; returns the number of rows archived.

        If PostgreSQL refuses a row, the rows are copied one by one and the refused ones
        dropped (counted); if it cannot be reached, every row not yet archived is kept,
        in order, for the next flush.
        """
        if not self._rows:
            return 0
        rows, self._rows = self._rows, []
        try:
            await self._copy(rows)
        except asyncpg.DataError:
            return await self._one_by_one(rows)
        except BaseException:
            self._rows[:0] = rows
            raise
        self.archived += len(rows)
        return len(rows)

    async def _copy(self, rows: list[bytes]) -> None:
        data = io.BytesIO(b"".join((_HEADER, *rows, _TRAILER)))
        await self._pool.copy_to_table(
            "trail_points", source=data, columns=COLUMNS, format="binary"
        )

    async def _one_by_one(self, rows: list[bytes]) -> int:
        """Archive rows singly, dropping (and counting) those PostgreSQL refuses."""
        done = 0
        for i, row in enumerate(rows):
            try:
                await self._copy([row])
            except asyncpg.DataError as e:
                self.dropped += 1
                worker, seq = _WHO.unpack_from(row, 6)[0], _SEQ.unpack_from(row, len(row) - 25)[0]
                log.error("trail point of worker %s seq %s refused, dropped: %s", worker, seq, e)
                continue
            except BaseException:
                self._rows[:0] = rows[i:]  # unreachable: keep the rest for the next flush
                self.archived += done
                raise
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

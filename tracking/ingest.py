"""Batched writes of accepted fixes: everything submitted within one event-loop tick
(or, under load, within ``flush_interval_ms`` of the previous batch) goes to Redis in
one script call per city.

Writes for one worker are applied in submission order: only one flush is in flight at
a time, and what arrives meanwhile forms the next batch (so under load batches grow
and the per-fix cost falls). ``submit`` returns a future that resolves when the batch
holding it is in Redis; the socket acks after that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from doorstep.keys import Keys
from tracking import scripts

log = logging.getLogger("doorstep.tracking.ingest")

Last = tuple[
    float, float, int, float, float | str, float | str
]  # lat, lng, ts, acc, speed, heading
TrailPoint = tuple[float, float, int, float]
# Called once the batch holding a submission is written: with None, or the store's error.
Waiter = Callable[[BaseException | None], None]


@dataclass(frozen=True, slots=True)
class IngestParams:
    """The batched Redis writes (section ``[ingest]`` of the params file)."""

    # A batch waits to grow until this long after the previous one was sent: under load
    # fewer, larger script calls (each costs the server ~0.25 ms of CPU in redis-py,
    # whatever its size); when quiet, a fix is written at once.
    flush_interval_ms: int = 10
    max_batch: int = 2000  # submissions that send a batch before its interval is over
    trail_cap: int = 1000  # entries kept in each worker's trail stream (approximately)

    def __post_init__(self) -> None:
        if not 0 <= self.flush_interval_ms <= 1000:
            raise ValueError("flush_interval_ms must be within 0..1000")
        if self.max_batch < 1 or self.trail_cap < 1:
            raise ValueError("max_batch and trail_cap must be >= 1")


@dataclass(slots=True)
class _WorkerRecord:
    seq: int
    state: str
    last: Last | None
    trail: list[TrailPoint] = field(default_factory=list)

    def line(self, worker_id: int) -> str:
        """The record as the ingest script reads it (tracking/scripts.py)."""
        pts = orjson.dumps(self.trail).decode() if self.trail else ""
        last = self.last
        if last is None:
            return f"{worker_id}|{self.seq}|{self.state}|||||||{pts}\n"
        lat, lng, ts, acc, spd, hdg = last
        return (
            f"{worker_id}|{self.seq}|{self.state}|{lat!r}|{lng!r}|{ts}|{acc!r}|{spd}|{hdg}|{pts}\n"
        )


@dataclass(slots=True)
class _CityBatch:
    """One city's part of a batch: one script call, with its own outcome."""

    records: dict[int, _WorkerRecord] = field(default_factory=dict)
    publishes: list[tuple[str, bytes]] = field(default_factory=list)
    feed: list[dict[str, Any]] = field(default_factory=list)
    done: asyncio.Future[None] | None = None
    waiters: list[Waiter] = field(default_factory=list)
    fixes: int = 0


@dataclass(slots=True)
class _Batch:
    cities: dict[str, _CityBatch] = field(default_factory=dict)
    size: int = 0  # submissions


class IngestWriter:
    """Collects location writes and flushes them once per tick."""

    def __init__(self, redis: Redis, keys: Keys, params: IngestParams | None = None) -> None:
        params = params or IngestParams()
        self._redis = redis
        self._keys = keys
        self._trail_cap = params.trail_cap
        self._interval_s = params.flush_interval_ms / 1000
        self._max_batch = params.max_batch
        self._next_at = 0.0  # loop time before which the next batch waits to grow
        self._wake: asyncio.Future[None] | None = None  # ends that wait early (a full batch)
        self._ingest = redis.register_script(scripts.INGEST)
        self._batch = _Batch()
        self._flushing = False
        self._scheduled = False
        self._idle: asyncio.Event | None = None
        self.flushes = 0
        self.fixes_written = 0
        self.failures = 0

    def _city(self, city: str) -> _CityBatch:
        part = self._batch.cities.get(city)
        if part is None:
            part = self._batch.cities[city] = _CityBatch()
        return part

    def submit(
        self,
        city: str,
        worker_id: int,
        *,
        seq: int,
        state: str,
        last: Last | None,
        trail: list[TrailPoint],
        publishes: list[tuple[str, bytes]] | None = None,
        feed_item: dict[str, Any] | None = None,
        waiter: Waiter | None = None,
    ) -> asyncio.Future[None]:
        """Queue one worker's writes; the future resolves once they are in Redis.

        ``feed_item`` joins the one ``positions`` message the city's dispatcher feed
        gets for this batch. ``waiter`` is called, in submission order, when the city's
        part of the batch is written or has failed: cheaper than a callback on the
        future, which the event loop would schedule once per submission. ``trail`` is
        the caller's to give away: the writer may extend it.
        """
        part = self._city(city)
        rec = part.records.get(worker_id)
        if rec is None:
            part.records[worker_id] = _WorkerRecord(seq, state, last, trail)
        else:  # a second frame from the same worker in the same batch: merge, later wins
            rec.seq = seq
            rec.state = state
            if last is not None:
                rec.last = last
            rec.trail = rec.trail + trail
        if publishes:
            part.publishes.extend(publishes)
        if feed_item is not None:
            part.feed.append(feed_item)
        part.fixes += len(trail)
        if waiter is not None:
            part.waiters.append(waiter)
        return self._queued(part)

    def submit_publishes(
        self, city: str, publishes: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        """Queue PUBLISHes (no location writes) for the next batch."""
        part = self._city(city)
        part.publishes.extend(publishes)
        return self._queued(part)

    def _queued(self, part: _CityBatch) -> asyncio.Future[None]:
        batch = self._batch
        batch.size += 1
        if part.done is None:
            part.done = asyncio.get_running_loop().create_future()
        if not self._scheduled and not self._flushing:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        elif self._wake is not None and batch.size >= self._max_batch and not self._wake.done():
            self._wake.set_result(None)
        return part.done

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (or has failed)."""
        while self._flushing or self._scheduled or self._batch.cities:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

    def _start(self) -> None:
        self._scheduled = False
        if not self._flushing and self._batch.cities:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        batch: _Batch | None = None
        try:
            while self._batch.cities:
                wait_s = self._next_at - loop.time()
                if wait_s > 0 and self._batch.size < self._max_batch:
                    # Let the batch grow: fewer, larger calls. A full batch ends the wait.
                    self._wake = loop.create_future()
                    timer = loop.call_later(wait_s, _resolve, self._wake)
                    try:
                        await self._wake
                    finally:
                        timer.cancel()
                        self._wake = None
                self._next_at = loop.time() + self._interval_s
                batch, self._batch = self._batch, _Batch()
                await self._write(batch)
                batch = None
        finally:
            self._flushing = False
            if batch is not None:  # cancelled mid-write: nobody may wait forever
                stopped = ConnectionError("the ingest writer stopped")
                self._settle(batch, [stopped] * len(batch.cities))
            if self._idle is not None and not self._batch.cities:
                self._idle.set()
                self._idle = None

    async def _write(self, batch: _Batch) -> None:
        """One script call per city, all at once; each city's waiters get its outcome."""
        now = str(int(time.time() * 1000))
        calls = []
        for city, part in batch.cities.items():
            records = "".join([rec.line(w) for w, rec in part.records.items()])
            args: list[str | int | bytes] = [self._keys.city_tag(city), now, self._trail_cap]
            args.append(records)
            for channel, payload in part.publishes:
                args += (channel, payload)
            if part.feed:
                message = orjson.dumps({"type": "positions", "workers": part.feed})
                args += (self._keys.feed(city), message)
            calls.append(self._ingest(keys=[self._keys.presence(city)], args=args))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for (city, part), result in zip(batch.cities.items(), results, strict=True):
            if isinstance(result, BaseException):
                self.failures += 1
                log.warning("ingest flush for %s failed: %s", city, result)
            elif result != len(part.records):  # the script skipped a malformed record
                log.error("ingest script wrote %s of %d records", result, len(part.records))
            else:
                self.flushes += 1
                self.fixes_written += part.fixes
        self._settle(batch, results)

    @staticmethod
    def _settle(batch: _Batch, results: list[Any]) -> None:
        for part, result in zip(batch.cities.values(), results, strict=True):
            error = result if isinstance(result, BaseException) else None
            if part.done is not None and not part.done.done():
                if error is None:
                    part.done.set_result(None)
                else:
                    part.done.set_exception(error)
                    part.done.exception()  # mark retrieved: waiters may have gone
            for waiter in part.waiters:
                try:
                    waiter(error)
                except Exception:  # one waiter's failure never stops the others
                    log.exception("an ingest waiter failed")


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)

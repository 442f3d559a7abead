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
class _Batch:
    records: dict[str, dict[int, _WorkerRecord]] = field(default_factory=dict)
    publishes: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    feed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: asyncio.Future[None] | None = None
    waiters: list[Waiter] = field(default_factory=list)
    fixes: int = 0
    size: int = 0  # submissions


class IngestWriter:
    """Collects location writes and flushes them once per tick."""

    def __init__(self, redis: Redis, keys: Keys, params: IngestParams | None = None) -> None:
        params = params or IngestParams()
        self._redis = redis
        self._keys = keys
        self._trail_cap = params.trail_cap
        self._interval_s = params.flush_interval_ms / 1000
        self._max_records = params.max_batch
        self._next_at = 0.0  # loop time before which the next batch waits to grow
        self._ingest = redis.register_script(scripts.INGEST)
        self._batch = _Batch()
        self._flushing = False
        self._scheduled = False
        self.flushes = 0
        self.fixes_written = 0
        self.failures = 0

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
        gets for this batch. ``waiter`` is called, in submission order, when the batch
        is written or has failed: cheaper than a callback on the future, which the
        event loop would schedule once per submission.
        """
        batch = self._batch
        if batch.done is None:
            batch.done = asyncio.get_running_loop().create_future()
        workers = batch.records.setdefault(city, {})
        rec = workers.get(worker_id)
        if rec is None:
            workers[worker_id] = _WorkerRecord(seq, state, last, list(trail))
        else:  # a second frame from the same worker in the same tick: merge, later wins
            rec.seq = seq
            rec.state = state
            if last is not None:
                rec.last = last
            rec.trail.extend(trail)
        if publishes:
            batch.publishes.setdefault(city, []).extend(publishes)
        if feed_item is not None:
            batch.feed.setdefault(city, []).append(feed_item)
        batch.fixes += len(trail)
        batch.size += 1
        if waiter is not None:
            batch.waiters.append(waiter)
        if not self._scheduled and not self._flushing:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return batch.done

    def submit_publishes(
        self, city: str, publishes: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        """Queue PUBLISHes (no location writes) for the next batch."""
        batch = self._batch
        if batch.done is None:
            batch.done = asyncio.get_running_loop().create_future()
        batch.records.setdefault(city, {})
        batch.publishes.setdefault(city, []).extend(publishes)
        if not self._scheduled and not self._flushing:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return batch.done

    def _start(self) -> None:
        self._scheduled = False
        if not self._flushing and self._batch.done is not None:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._batch.done is not None:
                wait_s = self._next_at - loop.time()
                if wait_s > 0 and self._batch.size < self._max_records:
                    await asyncio.sleep(wait_s)  # let the batch grow: fewer, larger calls
                self._next_at = loop.time() + self._interval_s
                batch, self._batch = self._batch, _Batch()
                assert batch.done is not None
                error: BaseException | None = None
                try:
                    await self._write(batch)
                except Exception as e:  # Redis down: every waiter learns it
                    error = e
                    self.failures += 1
                    log.warning("ingest flush failed: %s", e)
                    if not batch.done.done():
                        batch.done.set_exception(e)
                        batch.done.exception()  # mark retrieved: waiters may have gone
                else:
                    self.flushes += 1
                    self.fixes_written += batch.fixes
                    if not batch.done.done():
                        batch.done.set_result(None)
                for waiter in batch.waiters:
                    try:
                        waiter(error)
                    except Exception:  # one waiter's failure never stops the others
                        log.exception("an ingest waiter failed")
        finally:
            self._flushing = False

    async def _write(self, batch: _Batch) -> None:
        now = str(int(time.time() * 1000))
        calls = []
        for city, workers in batch.records.items():
            records = "".join([rec.line(w) for w, rec in workers.items()])
            args: list[str | int | bytes] = [self._keys.city_tag(city), now, self._trail_cap]
            args.append(records)
            for channel, payload in batch.publishes.get(city, []):
                args += (channel, payload)
            feed = batch.feed.get(city)
            if feed:
                args += (
                    self._keys.feed(city),
                    orjson.dumps({"type": "positions", "workers": feed}),
                )
            calls.append(self._ingest(keys=[self._keys.presence(city)], args=args))
        await asyncio.gather(*calls)

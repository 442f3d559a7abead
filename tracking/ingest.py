"""Batched writes of accepted fixes: everything submitted within one event-loop tick
goes to Redis in one script call per city.

Writes for one worker are applied in submission order: only one flush is in flight at
a time, and what arrives meanwhile forms the next batch (so under load batches grow
and the per-fix cost falls). ``submit`` returns a future that resolves when the batch
holding it is in Redis; the socket acks after that.
"""

from __future__ import annotations

import asyncio
import logging
import time
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


@dataclass(slots=True)
class _WorkerRecord:
    seq: int
    state: str
    last: Last | None
    trail: list[TrailPoint] = field(default_factory=list)

    def encode(self, worker_id: int) -> list[Any]:
        return [worker_id, self.seq, self.state, self.last or False, self.trail]


@dataclass(slots=True)
class _Batch:
    records: dict[str, dict[int, _WorkerRecord]] = field(default_factory=dict)
    publishes: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    feed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: asyncio.Future[None] | None = None
    fixes: int = 0


class IngestWriter:
    """Collects location writes and flushes them once per tick."""

    def __init__(self, redis: Redis, keys: Keys, *, trail_cap: int = 1000) -> None:
        self._redis = redis
        self._keys = keys
        self._trail_cap = trail_cap
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
    ) -> asyncio.Future[None]:
        """Queue one worker's writes; the future resolves once they are in Redis.

        ``feed_item`` joins the one ``positions`` message the city's dispatcher feed
        gets for this batch.
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
        try:
            while self._batch.done is not None:
                batch, self._batch = self._batch, _Batch()
                assert batch.done is not None
                try:
                    await self._write(batch)
                except Exception as e:  # Redis down: every waiter learns it
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
        finally:
            self._flushing = False

    async def _write(self, batch: _Batch) -> None:
        now = str(int(time.time() * 1000))
        calls = []
        for city, workers in batch.records.items():
            records = [rec.encode(w) for w, rec in workers.items()]
            pubs = [(ch, p.decode()) for ch, p in batch.publishes.get(city, [])]
            feed = batch.feed.get(city)
            if feed:
                message = orjson.dumps({"type": "positions", "workers": feed}).decode()
                pubs.append((self._keys.feed(city), message))
            calls.append(
                self._ingest(
                    keys=[self._keys.presence(city)],
                    args=[
                        self._keys.city_tag(city),
                        now,
                        self._trail_cap,
                        orjson.dumps(records),
                        orjson.dumps(pubs),
                    ],
                )
            )
        await asyncio.gather(*calls)

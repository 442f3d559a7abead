"""Batched writes of accepted fixes: everything submitted within one event-loop tick
(or, under load, within ``flush_interval_ms`` of the previous batch) goes to Redis in
one script call per city.

Writes for one worker are applied in submission order: up to ``max_in_flight`` batches
are written at once, but a worker is never in two of them (its connection waits for
one write before the next), and what arrives meanwhile forms the next batch (so under
load batches grow and the per-fix cost falls). The calls go on a pipelined connection
of the writer's own (:mod:`tracking.redis_pipe`); a submission's waiter is called from
the reply's callback, and the socket acks there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hiredis
import orjson

from doorstep.keys import Keys
from tracking import scripts
from tracking.overload import OverloadParams
from tracking.redis_pipe import PipeScript, RedisPipe

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

    # While a batch is in flight, the next waits to grow until this long after the
    # previous one was sent: under load fewer, larger script calls (each has a fixed
    # cost in the server and in Redis); with nothing in flight it is written at once.
    flush_interval_ms: int = 10
    max_batch: int = 2000  # submissions that send a batch before its interval is over
    # Batches written at once. A worker's frames are never in two of them: its connection
    # waits for one group's write before it submits the next, so order is kept per worker.
    max_in_flight: int = 2
    # A batch not answered by then drops the connection: its waiters hear an error.
    write_timeout_ms: int = 5000
    trail_cap: int = 1000  # entries kept in each worker's trail stream (approximately)
    # Load shedding (tracking/overload.py): a batch that waited this long from its first
    # submission to Redis's answer, or an event loop this late, sheds frames of fixes
    # (``overloaded``, retry after ``shed_retry_after_ms``) until delays stay at or below
    # ``shed_resume_below_ms`` for ``shed_hold_ms``. 0 never sheds.
    shed_above_ms: float = 1000.0
    shed_resume_below_ms: float = 200.0
    shed_hold_ms: float = 1000.0
    shed_retry_after_ms: int = 2000

    def overload(self) -> OverloadParams:
        """The shedding rule's settings."""
        return OverloadParams(
            shed_above_ms=self.shed_above_ms,
            resume_below_ms=self.shed_resume_below_ms,
            hold_ms=self.shed_hold_ms,
            retry_after_ms=self.shed_retry_after_ms,
        )

    def __post_init__(self) -> None:
        self.overload()  # its own checks
        if not 0 <= self.flush_interval_ms <= 1000:
            raise ValueError("flush_interval_ms must be within 0..1000")
        if self.max_batch < 1 or self.trail_cap < 1 or self.max_in_flight < 1:
            raise ValueError("max_batch, max_in_flight and trail_cap must be >= 1")
        if self.write_timeout_ms < 100:
            raise ValueError("write_timeout_ms must be >= 100")


@dataclass(slots=True)
class _WorkerRecord:
    seq: int
    state: str
    last: Last | None
    trail: list[TrailPoint] = field(default_factory=list)

    def line(self, worker_id: int) -> bytes:
        """The record as the ingest script reads it (tracking/scripts.py). Positions to
        7 decimals (~1 cm), accuracy, speed and heading to 2: bytes %-formatting with a
        fixed precision costs a third of repr() in an f-string, and this runs per fix."""
        pts = orjson.dumps(self.trail) if self.trail else b""
        state = self.state.encode()
        last = self.last
        if last is None:
            return b"%d|%d|%b|||||||%b\n" % (worker_id, self.seq, state, pts)
        lat, lng, ts, acc, spd, hdg = last
        return b"%d|%d|%b|%.7f|%.7f|%d|%.2f|%b|%b|%b\n" % (
            worker_id,
            self.seq,
            state,
            lat,
            lng,
            ts,
            acc,
            b"" if isinstance(spd, str) else b"%.2f" % spd,
            b"" if isinstance(hdg, str) else b"%.2f" % hdg,
            pts,
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
    opened_at: float = 0.0  # time.monotonic() of the first submission
    settled: bool = False
    barriers: list[asyncio.Future[None]] = field(default_factory=list)


class IngestWriter:
    """Collects location writes and flushes them once per tick, on its own Redis pipe."""

    def __init__(self, pipe: RedisPipe, keys: Keys, params: IngestParams | None = None) -> None:
        params = params or IngestParams()
        self._pipe = pipe
        self._keys = keys
        self._trail_cap = params.trail_cap
        self._interval_s = params.flush_interval_ms / 1000
        self._timeout_s = params.write_timeout_ms / 1000
        self._max_batch = params.max_batch
        self._max_in_flight = params.max_in_flight
        self._next_at = 0.0  # loop time before which the next batch waits to grow
        self._wake: asyncio.Future[None] | None = None  # ends the flush loop's wait early
        self._script = PipeScript(scripts.INGEST)
        self._batch = _Batch()
        self._taken: _Batch | None = None  # the last batch taken for writing
        self._flushing = False
        self._scheduled = False
        self._in_flight = 0  # batches written, not yet answered
        self.flushes = 0
        self.fixes_written = 0
        self.failures = 0
        # Told, per batch written, how long it waited from its first submission until
        # Redis answered (ms): the load-shedding rule's measure of the backlog.
        self.on_delay: Callable[[float], None] | None = None

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
        future, which the event loop would schedule once per submission.
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
        batch = self._batch
        if not batch.size:
            batch.opened_at = time.monotonic()
        batch.size += 1
        if part.done is None:
            part.done = asyncio.get_running_loop().create_future()
        if not self._scheduled and not self._flushing:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        elif batch.size >= self._max_batch:
            self._wakeup()
        return part.done

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (or has failed)."""
        await self.barrier()

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once every write submitted so far has settled (written
        or failed); unlike :meth:`drain`, it does not wait for later submissions."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._batch.cities:
            self._batch.barriers.append(future)
        elif self._taken is not None and not self._taken.settled:  # batches settle in order
            self._taken.barriers.append(future)
        else:
            future.set_result(None)
        return future

    async def close(self) -> None:
        """Close the pipe (after :meth:`drain`)."""
        await self._pipe.close()

    def _start(self) -> None:
        self._scheduled = False
        if not self._flushing and self._batch.cities:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_loop())

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._batch.cities:
                full = self._in_flight >= self._max_in_flight
                # Nothing in flight: write now. Otherwise let the batch grow until the
                # interval is over (fewer, larger calls under load); a full batch, or a
                # batch answered, ends the wait.
                wait_s = self._next_at - loop.time() if self._in_flight else 0.0
                if full or (wait_s > 0 and self._batch.size < self._max_batch):
                    self._wake = loop.create_future()
                    timer = None if full else loop.call_later(wait_s, _resolve, self._wake)
                    try:
                        await self._wake
                    finally:
                        if timer is not None:
                            timer.cancel()
                        self._wake = None
                    continue
                self._next_at = loop.time() + self._interval_s
                batch, self._batch = self._batch, _Batch()
                self._taken = batch
                if not self._pipe.connected:
                    try:
                        await self._pipe.connect()
                    except (OSError, ConnectionError, TimeoutError) as e:
                        error = ConnectionError(f"Redis: {e}")
                        self._finished(batch, [error] * len(batch.cities), sent=False)
                        continue
                self._send(batch)
        finally:
            self._flushing = False

    def _send(self, batch: _Batch) -> None:
        """One script call per city, written at once; the last reply settles the batch."""
        loop = asyncio.get_running_loop()
        now = str(int(time.time() * 1000))
        parts = list(batch.cities.items())
        results: list[Any] = [None] * len(parts)
        pending = [len(parts)]
        self._in_flight += 1
        # A Redis that stops answering would hold the batch's acks forever: drop the
        # connection instead, which fails every command waiting on it.
        timer = loop.call_later(self._timeout_s, self._pipe.abort)

        def answered(i: int, reply: Any) -> None:
            results[i] = reply
            pending[0] -= 1
            if pending[0] == 0:
                timer.cancel()
                self._finished(batch, results)

        for i, (city, part) in enumerate(parts):
            records = b"".join([rec.line(w) for w, rec in part.records.items()])
            args: list[str | int | bytes] = [self._keys.city_tag(city), now, self._trail_cap]
            args.append(records)
            for channel, payload in part.publishes:
                args += (channel, payload)
            if part.feed:
                message = orjson.dumps({"type": "positions", "workers": part.feed})
                args += (self._keys.feed(city), message)
            self._script.run(
                self._pipe, [self._keys.presence(city)], args, functools.partial(answered, i)
            )

    def _finished(self, batch: _Batch, results: list[Any], *, sent: bool = True) -> None:
        """Every city of a batch answered (or failed): count, tell the waiters, free a slot."""
        outcomes: list[BaseException | None] = []
        for (city, part), result in zip(batch.cities.items(), results, strict=True):
            if isinstance(result, BaseException):
                error: BaseException | None = result
            elif isinstance(result, hiredis.ReplyError):
                error = ConnectionError(f"Redis refused the ingest script: {result}")
            else:
                error = None
            if error is not None:
                self.failures += 1
                log.warning("ingest flush for %s failed: %s", city, error)
            elif result != len(part.records):  # the script skipped a malformed record
                log.error("ingest script wrote %s of %d records", result, len(part.records))
            else:
                self.flushes += 1
                self.fixes_written += part.fixes
            outcomes.append(error)
        self._settle(batch, outcomes)
        batch.settled = True
        if self.on_delay is not None and batch.opened_at:
            self.on_delay((time.monotonic() - batch.opened_at) * 1000)
        for future in batch.barriers:
            if not future.done():
                future.set_result(None)
        if sent:
            self._in_flight -= 1
            self._wakeup()  # a slot is free

    @staticmethod
    def _settle(batch: _Batch, outcomes: list[BaseException | None]) -> None:
        for part, error in zip(batch.cities.values(), outcomes, strict=True):
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

"""The tracking runtime of one server process.

Owns the batched writer, the trail archiver, the pub/sub hub and the stale sweeper,
and knows which worker sockets this process holds. A worker has one live socket
across all processes: the registry key in Redis names the holder, and a newer
connection makes the older one close (locally, or through the holder's process
channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from catalog import store as catalog_store
from doorstep.outage import Outage
from doorstep.stores import Stores
from tracking import positions, scripts
from tracking.archive import ArchiveParams, Row, TrailArchiver
from tracking.eta import EtaParams
from tracking.eta_store import EtaStore
from tracking.fixes import Bounds, FixParams, widened_box
from tracking.geofence import ArrivalParams
from tracking.ingest import IngestParams, IngestWriter, Last, Waiter
from tracking.jobs import ActiveJob, JobInfo, on_fix, start_job
from tracking.live import RESYNC, LiveHub
from tracking.overload import OverloadGuard
from tracking.protocol import encode_ack
from tracking.redis_pipe import RedisPipe
from tracking.session import FrameResult, SocketParams, WorkerSession

JobSource = Callable[[int], Awaitable[JobInfo | None]]
ArrivalHook = Callable[[int, int, int], Coroutine[Any, Any, None]]  # order, worker, ts_ms
# worker, job, lat, lng, ts_ms, accuracy_m: called synchronously on the ingest path
JobFixHook = Callable[[int, JobInfo, float, float, int, float], None]

log = logging.getLogger("doorstep.tracking")

# How long a claim waits for the process holding the older socket to close it and
# answer that the older socket's writes in flight are in Redis.
KICK_ANSWER_S = 0.5
# Held-back feed positions are sent this many workers at a time (send_trailing_feed).
FEED_CHUNK = 500


class WorkerSocket(Protocol):
    """What the runtime needs of a connected worker socket."""

    conn_id: str

    async def send(self, payload: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass
class Counters:
    """Every stage counted (FIELD-NOTES: count received, rejected, indexed, delivered, dropped)."""

    frames: int = 0
    fixes_received: int = 0
    fixes_accepted: int = 0
    fixes_clamped: int = 0
    frames_throttled: int = 0
    frames_shed: int = 0  # frames of fixes dropped unread while overloaded
    frame_errors: int = 0
    sockets_replaced: int = 0
    stale_marked: int = 0

    def __post_init__(self) -> None:
        self.rejected: dict[str, int] = {}


@dataclass
class _Turns:
    """The claims (or the job reloads and state changes) of one worker in this process:
    they take turns."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    claims: int = 0  # running or waiting


class Tracking:
    """Everything location-related that one process runs."""

    def __init__(
        self,
        stores: Stores,
        *,
        fix_params: FixParams | None = None,
        socket_params: SocketParams | None = None,
        stale_after_s: float = 30.0,
        eta_params: EtaParams | None = None,
        arrival_params: ArrivalParams | None = None,
        ingest_params: IngestParams | None = None,
        archive_params: ArchiveParams | None = None,
    ) -> None:
        self.stores = stores
        self.keys = stores.keys
        self.fix_params = fix_params or FixParams()
        self._bounds: dict[str, tuple[float, Bounds | None]] = {}
        self.socket_params = socket_params or SocketParams()
        self.stale_after_s = stale_after_s
        self.process_id = secrets.token_hex(6)
        ingest_params = ingest_params or IngestParams()
        self.writer = IngestWriter(RedisPipe(stores.redis_url), stores.keys, ingest_params)
        # Load shedding: how far behind the ingest is (tracking/overload.py).
        self.overload = OverloadGuard(ingest_params.overload())
        self.writer.on_delay = self._observe_delay
        self.overloaded_frame = orjson.dumps(
            {
                "type": "error",
                "code": "overloaded",
                "message": "the server is overloaded: this frame was dropped unread; keep "
                "its fixes and send them again, oldest first, after retry_after_ms",
                "field": None,
                "retry_after_ms": ingest_params.shed_retry_after_ms,
            }
        )
        self.archiver = TrailArchiver(stores.pool, archive_params)
        self.hub = LiveHub(stores.redis)
        self.counters = Counters()
        self._set_state = stores.redis.register_script(scripts.SET_STATE)
        self._sweep = stores.redis.register_script(scripts.SWEEP_STALE)
        self._release = stores.redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )
        self._sockets: dict[int, WorkerSocket] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.eta_params = eta_params or EtaParams()
        self.arrival_params = arrival_params or ArrivalParams()
        # Set by the app: dispatch answers which job a worker holds and hears arrivals.
        self.job_source: JobSource | None = None
        self.on_arrival: ArrivalHook | None = None
        # Set by the app: the trail anomaly detectors (safety/watch.py), per job fix.
        self.on_job_fix: JobFixHook | None = None
        self._jobs: dict[int, ActiveJob] = {}
        self._sessions: dict[int, WorkerSession] = {}
        self._claim_turns: dict[int, _Turns] = {}
        # Job reloads and state changes of one worker in this process: they take turns.
        self._state_turns: dict[int, _Turns] = {}
        # Claims waiting for another process to close the older socket: by its conn id.
        self._kicks: dict[str, asyncio.Future[None]] = {}
        self._spawned: set[asyncio.Task[None]] = set()
        # Workers whose last position the feed's rate held back (sent by _feed_loop).
        self._feed_pending: dict[int, WorkerSession] = {}
        # This process's open sockets of signed-in users (order sockets, city feeds): how
        # to close each when the user's account is frozen or closed.
        self._viewers: dict[int, set[Callable[[], Awaitable[None]]]] = {}
        self.eta = EtaStore(stores.pool, stores.redis, stores.keys, self.eta_params)
        # Acks held back by [socket] ack_interval_ms: (due_ms, n, session, socket).
        self._acks: list[tuple[int, int, WorkerSession, WorkerSocket]] = []
        self._ack_n = itertools.count()

    async def start(self) -> None:
        """Connect the hub and start the background loops."""
        await self.hub.start()
        await self.hub.handle(self.keys.process_channel(self.process_id), self._on_control)
        await self.hub.handle(self.keys.revocations(), self._on_revoked)
        self.hub.on_resync(lambda: self._spawn(self._resync_workers()))
        self.archiver.start()
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="stale-sweeper"))
        self._tasks.append(asyncio.create_task(self._feed_loop(), name="feed-trailing"))
        if self.overload.params.shed_above_ms:
            self._tasks.append(asyncio.create_task(self._lag_loop(), name="loop-lag"))
        if self.socket_params.ack_interval_ms:
            self._tasks.append(asyncio.create_task(self._ack_loop(), name="acks"))

    async def stop(self) -> None:
        """Close sockets, stop loops, flush the archive."""
        for sock in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await sock.close(1001, "server shutting down")
        # A cancellation that lands inside a store call can come back as that call's
        # error (redis-py, asyncpg), which the loops catch and survive: the loops also
        # watch ``_stopping``, and a task is cancelled again until it is done.
        self._stopping = True
        for task in list(self._spawned):
            task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            while not task.done():
                await asyncio.wait({task}, timeout=1.0)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
        await self.hub.stop()
        try:  # what is in flight reaches Redis, and its fixes the archive buffer
            await asyncio.wait_for(self.writer.drain(), 5.0)
        except TimeoutError:
            log.warning("ingest writes still in flight at shutdown")
        await self.writer.close()
        await self.archiver.stop()

    # --- socket ownership -------------------------------------------------------------

    async def claim(self, worker_id: int, sock: WorkerSocket, session: WorkerSession) -> None:
        """Make ``sock`` the worker's only live socket; an older one is closed with 4001.

        Claims of one worker in this process take turns, so the registry key's order in
        Redis is the order here. When this process held the older socket, its writes in
        flight are in Redis before this returns: a resume point read afterwards covers
        every fix the older socket will ever acknowledge.
        """
        async with _turn(self._claim_turns, worker_id):
            await self._claim(worker_id, sock, session)

    async def _claim(self, worker_id: int, sock: WorkerSocket, session: WorkerSession) -> None:
        holder = f"{self.process_id}:{sock.conn_id}"
        old = await self.stores.redis.set(self.keys.worker_socket(worker_id), holder, get=True)
        previous = self._sockets.get(worker_id)
        before = self._sessions.get(worker_id)
        self._sockets[worker_id] = sock
        self._sessions[worker_id] = session
        if before is not None and before.feed_pending is not None:  # still goes out
            session.feed_pending = before.feed_pending
            self._feed_pending[worker_id] = session
        if old is None:
            return
        old_text = old.decode() if isinstance(old, bytes) else str(old)
        old_proc, _, old_conn = old_text.partition(":")
        self.counters.sockets_replaced += 1
        if old_proc == self.process_id:
            if previous is not None and previous.conn_id == old_conn:
                await previous.close(4001, "replaced by a newer connection")
                await self.writer.barrier()  # what it had in flight is written
        else:  # the holder's process closes it and answers once its writes landed
            answered = asyncio.get_running_loop().create_future()
            self._kicks[old_conn] = answered
            try:
                await self.stores.redis.publish(
                    self.keys.process_channel(old_proc),
                    orjson.dumps(
                        {
                            "op": "kick",
                            "worker": worker_id,
                            "conn": old_conn,
                            "from": self.process_id,
                        }
                    ),
                )
                # A process that is gone never answers: the claim goes on after a while.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered, KICK_ANSWER_S)
            finally:
                self._kicks.pop(old_conn, None)

    async def release(self, worker_id: int, sock: WorkerSocket) -> bool:
        """Forget ``sock``; True if it was still the worker's live socket."""
        self._forget(worker_id, sock)
        holder = f"{self.process_id}:{sock.conn_id}"
        released = await self._release(keys=[self.keys.worker_socket(worker_id)], args=[holder])
        return bool(released)

    async def went_offline(self, session: WorkerSession, sock: WorkerSocket) -> bool:
        """The worker's socket closed: :meth:`release` it and, if it was still the live
        one, take the worker out of the index (``offline``) once the fixes it took are
        written (one landing later would file the worker under their last state again
        until the stale sweep). False if a newer socket is live."""
        async with _turn(self._state_turns, session.worker_id):
            if not await self.release(session.worker_id, sock):
                return False
            await self.writer.barrier()
            await self.set_state(session.city_id, session.worker_id, "offline")
            return True

    def _forget(self, worker_id: int, sock: WorkerSocket) -> None:
        """Drop ``sock`` from this process's registry, with its session and job, if it is
        the registered one (a newer socket's stay)."""
        if self._sockets.get(worker_id) is sock:
            del self._sockets[worker_id]
            self._sessions.pop(worker_id, None)
            self._jobs.pop(worker_id, None)
            self._feed_pending.pop(worker_id, None)

    async def send_to_worker(self, worker_id: int, payload: dict[str, Any]) -> bool:
        """Push a message down the worker's socket, wherever it is; False if offline."""
        data = orjson.dumps(payload)
        sock = self._sockets.get(worker_id)
        if sock is not None:
            await sock.send(data)
            return True
        holder = await self.stores.redis.get(self.keys.worker_socket(worker_id))
        if holder is None:
            return False
        proc = (holder.decode() if isinstance(holder, bytes) else str(holder)).partition(":")[0]
        await self.stores.redis.publish(
            self.keys.process_channel(proc),
            orjson.dumps({"op": "send", "worker": worker_id, "payload": data.decode()}),
        )
        return True

    async def worker_online(self, worker_id: int) -> bool:
        """True if the worker's socket is open in some process: the registration
        :meth:`send_to_worker` delivers through (notifications send an offer by SMS
        when it is not)."""
        if worker_id in self._sockets:
            return True
        return bool(await self.stores.redis.exists(self.keys.worker_socket(worker_id)))

    async def publish_feed(self, city_id: str, payload: dict[str, Any]) -> None:
        """Send a message to the city's dispatcher feed."""
        await self.stores.redis.publish(self.keys.feed(city_id), orjson.dumps(payload))

    def local_socket(self, worker_id: int) -> WorkerSocket | None:
        """The worker's socket if this process holds it."""
        return self._sockets.get(worker_id)

    async def _on_control(self, data: bytes) -> None:
        msg = orjson.loads(data)
        if msg.get("op") == "kick":
            sock = self._sockets.get(int(msg["worker"]))
            if sock is not None and sock.conn_id == msg["conn"]:
                self._forget(int(msg["worker"]), sock)
                await sock.close(4001, "replaced by a newer connection")
            if msg.get("from"):  # not on the hub's loop: that would hold up live delivery
                self._spawn(self._answer_kick(str(msg["from"]), str(msg["conn"])))
        elif msg.get("op") == "kicked":
            answered = self._kicks.pop(str(msg["conn"]), None)
            if answered is not None and not answered.done():
                answered.set_result(None)
        elif msg.get("op") == "job":
            worker_id = int(msg["worker"])
            if worker_id in self._sockets:
                await self.load_job(worker_id)
        elif msg.get("op") == "send":
            sock = self._sockets.get(int(msg["worker"]))
            if sock is not None:
                await sock.send(msg["payload"].encode())

    async def _resync_workers(self) -> None:
        """After a Redis reconnect: control messages sent to this process meanwhile (offers,
        withdrawals, job changes) are lost, so every worker socket here reloads its job and
        is told ``{"type": "resync"}`` (the app re-reads its offers and job)."""
        for worker_id, sock in list(self._sockets.items()):
            try:
                if worker_id in self._sessions:
                    await self.load_job(worker_id)
                await sock.send(RESYNC)
            except Exception as e:  # the next worker still gets theirs
                log.warning("resync of worker %s failed: %s", worker_id, e)

    async def _answer_kick(self, process: str, conn: str) -> None:
        """Tell the process that replaced ``conn`` that its writes in flight are in Redis."""
        try:
            await self.writer.barrier()
            await self.stores.redis.publish(
                self.keys.process_channel(process), orjson.dumps({"op": "kicked", "conn": conn})
            )
        except Exception as e:  # the other side stops waiting after KICK_ANSWER_S
            log.warning("answering a kick failed: %s", e)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def watch_user(self, user_id: int, close: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Register a signed-in user's open socket; returns the function that forgets it."""
        self._viewers.setdefault(user_id, set()).add(close)

        def forget() -> None:
            closers = self._viewers.get(user_id)
            if closers is not None:
                closers.discard(close)
                if not closers:
                    del self._viewers[user_id]

        return forget

    async def _on_revoked(self, data: bytes) -> None:
        """A user's account was frozen or closed: close their sockets in this process."""
        user_id = int(data)
        sock = self._sockets.get(user_id)
        if sock is not None:
            await sock.close(4401, "this account was frozen or closed")
        for close in list(self._viewers.get(user_id, ())):
            with contextlib.suppress(Exception):
                await close()

    # --- state -------------------------------------------------------------------------

    async def resume_point(self, city_id: str, worker_id: int) -> tuple[int, str]:
        """The last processed sequence number and the chosen availability of a worker."""
        seq, _, pref = await self.resume_state(city_id, worker_id)
        return seq, pref

    async def resume_state(self, city_id: str, worker_id: int) -> tuple[int, int | None, str]:
        """A worker's sequence number (the highest accepted), the time of a fix at or
        before it (ms, None if unknown) and their chosen availability.

        If Redis lost the worker's state, the sequence number comes from the trail
        archive, so that an app resending after the loss never duplicates a fix.
        """
        live = await positions.read_one(self.stores.redis, self.keys, city_id, worker_id)
        chosen = live.pref if live is not None else None
        if live is not None and live.seq is not None:
            ts = live.position.ts_ms if live.position is not None else None
            return live.seq, ts, (chosen or "available")
        await self.archiver.flush()
        # Only a fix the filter would still take can be archived twice: one whose device
        # time is within max_age_ms of now (older ones are refused as too_old). So the
        # archive is read for those alone, over the (worker_id, ts) index.
        since_ms = int(time.time() * 1000) - self.fix_params.max_age_ms
        row = await self.stores.pool.fetchrow(
            "SELECT max(seq) AS seq, max(ts) AS ts FROM trail_points "
            "WHERE worker_id = $1 AND ts >= $2",
            worker_id,
            datetime.fromtimestamp(since_ms / 1000, UTC),
        )
        archived_ts = None
        if row is not None and row["ts"] is not None:
            archived_ts = int(row["ts"].timestamp() * 1000)
        seq_archived = row["seq"] if row is not None else None
        return int(seq_archived or 0), archived_ts, (chosen or "available")

    async def city_bounds(self, city_id: str) -> Bounds | None:
        """The city's bounding box widened by ``[fixes] city_margin_deg``: fixes outside
        it are refused (``outside_city``). None for a city not in the catalog. Kept for a
        minute, so a reconnect storm does not read the catalog once per worker."""
        now = time.monotonic()
        cached = self._bounds.get(city_id)
        if cached is not None and now - cached[0] < 60.0:
            return cached[1]
        city = await catalog_store.city(self.stores.pool, city_id)
        bounds = None if city is None else widened_box(city.bbox, self.fix_params.city_margin_deg)
        self._bounds[city_id] = (now, bounds)
        return bounds

    async def set_state(self, city_id: str, worker_id: int, state: str) -> str:
        """Move the worker to ``state`` in the geo index; tell the city's dispatcher feed."""
        old = await self._set_state(
            keys=[self.keys.presence(city_id)], args=[self.keys.city_tag(city_id), worker_id, state]
        )
        previous = old.decode() if isinstance(old, bytes) else str(old or "")
        if previous != state:
            await self.stores.redis.publish(
                self.keys.feed(city_id),
                orjson.dumps(
                    {
                        "type": "worker_state",
                        "id": worker_id,
                        "state": state,
                        "previous": previous or None,
                    }
                ),
            )
        return previous

    # --- ingest ------------------------------------------------------------------------

    def _observe_delay(self, delay_ms: float) -> None:
        self.overload.observe(delay_ms, time.monotonic() * 1000)

    async def _lag_loop(self) -> None:
        """Measure how late the event loop wakes a 100 ms timer: a loop this far behind
        sheds frames of fixes like a slow Redis does (:class:`OverloadGuard`)."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            start = loop.time()
            await asyncio.sleep(0.1)
            self._observe_delay((loop.time() - start - 0.1) * 1000)

    def written(self, session: WorkerSession, result: FrameResult, now_ms: int) -> None:
        """Count a frame whose write succeeded and queue its accepted fixes for the archive."""
        c = self.counters
        c.fixes_received += len(result.verdicts)
        c.fixes_accepted += result.accepted
        for _, reason in result.rejected:
            c.rejected[reason] = c.rejected.get(reason, 0) + 1
        if result.accepted:
            worker = session.worker_id
            rows: list[Row] = []
            for v in result.verdicts:
                if v.accepted:
                    f = v.fix
                    c.fixes_clamped += v.clamped
                    rows.append(
                        (
                            worker,
                            f.ts_ms,
                            f.lat,
                            f.lng,
                            f.accuracy_m,
                            f.speed_mps,
                            f.heading_deg,
                            f.seq,
                            v.clamped,
                            now_ms,
                        )
                    )
            self.archiver.add(rows)

    def submit(
        self,
        session: WorkerSession,
        result: FrameResult,
        now_ms: int,
        waiter: Waiter | None = None,
    ) -> Awaitable[None]:
        """Queue one frame's verdicts for the next batched Redis write, without waiting.

        The future resolves, and ``waiter`` is called, once the batch holding them is in
        Redis (or has failed with the store's error); then call :meth:`written`.
        """
        publishes: list[tuple[str, bytes]] = []
        job = self._jobs.get(session.worker_id)
        if job is not None and result.last is not None:
            publishes = self._job_fix(session, job, result, now_ms)
        feed_item = None
        if result.last is not None:
            if session.feed_due(now_ms):
                feed_item = _feed_item(session, result.last)
                session.feed_pending = None
            else:  # over the feed's rate: the trailing loop sends it when the interval ends
                session.feed_pending = result.last
                self._feed_pending[session.worker_id] = session
        return self.writer.submit(
            session.city_id,
            session.worker_id,
            seq=result.seq,
            state=session.state,
            last=result.last,
            trail=result.trail,
            publishes=publishes,
            feed_item=feed_item,
            waiter=waiter,
        )

    async def send_trailing_feed(self, now_ms: int, *, chunk: int = FEED_CHUNK) -> int:
        """Send each worker's last position held back by the feed's rate once its interval
        is over, so the dispatcher sees where a worker stopped; returns how many.

        ``chunk`` workers at a time, one message per city each, yielding to the event
        loop in between: with thousands of workers held back, one pass in one go held
        every socket for ~10 ms (8,000 workers, measured).
        """
        sent = 0
        pending = list(self._feed_pending.items())
        for start in range(0, len(pending), chunk):
            by_city: dict[str, list[dict[str, Any]]] = {}
            for worker_id, session in pending[start : start + chunk]:
                if self._feed_pending.get(worker_id) is not session:  # changed meanwhile
                    continue
                last = session.feed_pending
                if last is None or self._sessions.get(worker_id) is not session:
                    del self._feed_pending[worker_id]
                elif session.feed_due(now_ms):
                    del self._feed_pending[worker_id]
                    session.feed_pending = None
                    by_city.setdefault(session.city_id, []).append(_feed_item(session, last))
            for city, items in by_city.items():
                await self.publish_feed(city, {"type": "positions", "workers": items})
                sent += len(items)
            await asyncio.sleep(0)
        return sent

    async def _feed_loop(self) -> None:
        period = self.socket_params.feed_interval_ms / 1000 / 2
        outage = Outage(log, "trailing feed positions")  # one line per outage, with a count
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                await self.send_trailing_feed(int(time.time() * 1000))
            except Exception as e:  # keep going through store outages
                outage.failed(e, time.monotonic())
            else:
                outage.succeeded(time.monotonic())

    def _job_fix(
        self, session: WorkerSession, job: ActiveJob, result: FrameResult, now_ms: int
    ) -> list[tuple[str, bytes]]:
        assert result.last is not None
        lat, lng, ts, acc, _, _ = result.last
        job, update, event = on_fix(
            job,
            worker_id=session.worker_id,
            lat=lat,
            lng=lng,
            ts_ms=ts,
            accuracy_m=acc,
            seq=result.seq,
            stats=self.eta.stats_for(job.info.city_id, ts),
            eta_params=self.eta_params,
            arrival_params=self.arrival_params,
        )
        self._jobs[session.worker_id] = job
        if self.on_job_fix is not None:
            try:
                self.on_job_fix(session.worker_id, job.info, lat, lng, ts, acc)
            except Exception:  # the detectors never cost a fix
                log.exception("trail detectors failed for worker %s", session.worker_id)
        if (
            event == "arrived"
            and self.on_arrival is not None
            and job.info.status in ("assigned", "en_route")
        ):
            # Stamped with the server's clock, like every other status change.
            task: asyncio.Task[None] = asyncio.create_task(
                self.on_arrival(job.info.order_id, session.worker_id, now_ms)
            )
            self._tasks.append(task)
            task.add_done_callback(self._hook_done)
        if update is None:
            return []
        channel = self.keys.order_channel(job.info.city_id, job.info.order_id)
        return [(channel, orjson.dumps(update))]

    def _hook_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("arrival hook failed", exc_info=task.exception())

    # --- held-back acks ---------------------------------------------------------------

    def ack_later(self, session: WorkerSession, sock: WorkerSocket) -> None:
        """Send the session's pending ack when it falls due (``[socket] ack_interval_ms``)."""
        if not session.ack_queued:
            session.ack_queued = True
            heapq.heappush(self._acks, (session.ack_due_at(), next(self._ack_n), session, sock))

    async def send_due_acks(self, now_ms: int) -> int:
        """Send every held-back ack that is due; returns how many were sent."""
        sends = []
        heap = self._acks
        while heap and heap[0][0] <= now_ms:
            _, _, session, sock = heapq.heappop(heap)
            session.ack_queued = False
            if not session.ack_pending:  # acked meanwhile by a frame that was due at once
                continue
            if session.ack_due_at() > now_ms:
                self.ack_later(session, sock)
                continue
            sends.append(sock.send(encode_ack(*session.take_ack(now_ms))))
        if sends:
            await asyncio.gather(*sends)
        return len(sends)

    async def _ack_loop(self) -> None:
        period = max(0.02, min(0.25, self.socket_params.ack_interval_ms / 4000))
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                await self.send_due_acks(int(time.time() * 1000))
            except Exception:  # a socket's send never stops the others' acks
                log.exception("sending held-back acks failed")

    # --- jobs and ETA ------------------------------------------------------------------

    async def load_job(self, worker_id: int) -> ActiveJob | None:
        """Ask dispatch which job the worker holds and prepare its ETA (this process).

        Reloads of one worker take turns (the socket's open, live-push's job changes, a
        resync): each reads after the one before has set the state, so a read that began
        before a job ended cannot finish after the ending's reload and set the worker
        busy again — the last reload asked for reads what dispatch says now.
        """
        async with _turn(self._state_turns, worker_id):
            return await self._load_job(worker_id)

    async def start_state(self, session: WorkerSession) -> ActiveJob | None:
        """A newly connected worker's state: their preference, then busy while holding a
        job; in turn with the worker's reloads and state changes."""
        async with _turn(self._state_turns, session.worker_id):
            await self._put_state(session, session.preference)
            return await self._load_job(session.worker_id)

    async def _load_job(self, worker_id: int) -> ActiveJob | None:
        info = await self.job_source(worker_id) if self.job_source is not None else None
        await self._sync_state(worker_id, busy=info is not None)
        if info is None:
            self._jobs.pop(worker_id, None)
            return None
        current = self._jobs.get(worker_id)
        if current is not None and (current.info.order_id, current.info.lat, current.info.lng) == (
            info.order_id,
            info.lat,
            info.lng,
        ):
            job = ActiveJob(
                info=info, graph=current.graph, times=current.times, arrival=current.arrival
            )
        else:
            job = start_job(info, await self.eta.graph_for(info.city_id))
        self._jobs[worker_id] = job
        return job

    async def _sync_state(self, worker_id: int, *, busy: bool) -> None:
        """A connected worker is ``busy`` while holding a job, else their own preference."""
        session = self._sessions.get(worker_id)
        if session is None:
            return
        wanted = "busy" if busy else session.preference
        if wanted != session.state:
            await self._put_state(session, wanted)

    async def _put_state(self, session: WorkerSession, state: str) -> None:
        """Move a connected worker to ``state``; the caller holds the worker's turn.

        Each batched write of fixes carries the state its frame was taken in (the ingest
        script files the worker under it), so the frames taken before the change are
        written first: one still in flight would otherwise land after the change and put
        the worker back in the old state until their next fix. Frames taken from here on
        carry the new state.
        """
        session.state = state
        await self.writer.barrier()
        await self.set_state(session.city_id, session.worker_id, state)

    async def set_preference(self, session: WorkerSession, preference: str) -> None:
        """The worker chose to take jobs or pause; it takes effect unless they are busy."""
        async with _turn(self._state_turns, session.worker_id):
            session.preference = preference
            await self.stores.redis.hset(
                self.keys.worker_state(session.city_id, session.worker_id), "pref", preference
            )
            if session.state != "busy" and session.state != preference:
                await self._put_state(session, preference)

    def active_job(self, worker_id: int) -> ActiveJob | None:
        """The job this process tracks for a connected worker."""
        return self._jobs.get(worker_id)

    async def job_changed(self, worker_id: int) -> None:
        """Dispatch changed the worker's job: refresh it wherever their socket lives."""
        if worker_id in self._sockets:
            await self.load_job(worker_id)
            return
        holder = await self.stores.redis.get(self.keys.worker_socket(worker_id))
        if holder is not None:
            proc = (holder.decode() if isinstance(holder, bytes) else str(holder)).partition(":")[0]
            await self.stores.redis.publish(
                self.keys.process_channel(proc), orjson.dumps({"op": "job", "worker": worker_id})
            )

    async def publish_order(self, city_id: str, order_id: int, payload: dict[str, Any]) -> None:
        """Send an update to everyone watching the order, on any process; a status change
        also goes to the city's dispatcher feed (as an ``order`` message)."""
        await self.publish_orders([(city_id, order_id, payload)])

    async def publish_orders(self, updates: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        """:meth:`publish_order` for each ``(city_id, order_id, payload)`` in turn, in
        pipelines of up to 50 (a round trip to Redis per 50 order events, not per event;
        the event loop serves requests between them rather than building hundreds of
        commands at once)."""
        for at in range(0, len(updates), 50):
            async with self.stores.redis.pipeline(transaction=False) as pipe:
                for city_id, order_id, payload in updates[at : at + 50]:
                    pipe.publish(self.keys.order_channel(city_id, order_id), orjson.dumps(payload))
                    if payload.get("type") == "status":
                        pipe.publish(
                            self.keys.feed(city_id), orjson.dumps({**payload, "type": "order"})
                        )
                await pipe.execute()

    # --- staleness ---------------------------------------------------------------------

    async def sweep(self, city_ids: list[str], now_ms: int) -> dict[str, list[int]]:
        """Take workers silent for ``stale_after_s`` out of the index; alert each city's feed."""
        cutoff = now_ms - int(self.stale_after_s * 1000)
        found: dict[str, list[int]] = {}
        for city in city_ids:
            ids = await self._sweep(
                keys=[self.keys.presence(city)], args=[self.keys.city_tag(city), cutoff]
            )
            if ids:
                stale = [int(i) for i in ids]
                found[city] = stale
                self.counters.stale_marked += len(stale)
                await self.stores.redis.publish(
                    self.keys.feed(city),
                    orjson.dumps({"type": "stale", "ids": stale, "after_s": self.stale_after_s}),
                )
        return found

    async def _sweep_loop(self, interval_s: float = 1.0) -> None:
        cities: list[str] = []
        refreshed = 0.0
        outage = Outage(log, "stale sweep")  # one line per outage, with a count
        while not self._stopping:
            try:
                if time.monotonic() - refreshed > 60:
                    cities = [c.id for c in await catalog_store.cities(self.stores.pool)]
                    refreshed = time.monotonic()
                await self.sweep(cities, int(time.time() * 1000))
                await self.eta.refresh_due()  # arrivals other processes learned
            except Exception as e:  # keep sweeping through store outages
                outage.failed(e, time.monotonic())
            else:
                outage.succeeded(time.monotonic())
            await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def _turn(turns: dict[int, _Turns], worker_id: int) -> AsyncIterator[None]:
    """Wait for the worker's turn in ``turns`` and hold it; the entry goes with the last."""
    turn = turns.get(worker_id)
    if turn is None:
        turn = turns[worker_id] = _Turns()
    turn.claims += 1
    try:
        async with turn.lock:
            yield
    finally:
        turn.claims -= 1
        if not turn.claims:
            del turns[worker_id]


def _feed_item(session: WorkerSession, last: Last) -> dict[str, Any]:
    lat, lng, ts, acc, _, _ = last
    return {
        "id": session.worker_id,
        "lat": lat,
        "lng": lng,
        "ts_ms": ts,
        "accuracy_m": acc,
        "state": session.state,
    }

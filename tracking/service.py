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
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from catalog import store as catalog_store
from doorstep.stores import Stores
from tracking import scripts
from tracking.archive import Row, TrailArchiver
from tracking.fixes import FixParams
from tracking.ingest import IngestWriter
from tracking.live import LiveHub
from tracking.session import FrameResult, SocketParams, WorkerSession

log = logging.getLogger("doorstep.tracking")


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
    frame_errors: int = 0
    sockets_replaced: int = 0
    stale_marked: int = 0

    def __post_init__(self) -> None:
        self.rejected: dict[str, int] = {}


class Tracking:
    """Everything location-related that one process runs."""

    def __init__(
        self,
        stores: Stores,
        *,
        fix_params: FixParams | None = None,
        socket_params: SocketParams | None = None,
        stale_after_s: float = 30.0,
    ) -> None:
        self.stores = stores
        self.keys = stores.keys
        self.fix_params = fix_params or FixParams()
        self.socket_params = socket_params or SocketParams()
        self.stale_after_s = stale_after_s
        self.process_id = secrets.token_hex(6)
        self.writer = IngestWriter(stores.redis, stores.keys)
        self.archiver = TrailArchiver(stores.pool)
        self.hub = LiveHub(stores.redis)
        self.counters = Counters()
        self._set_state = stores.redis.register_script(scripts.SET_STATE)
        self._sweep = stores.redis.register_script(scripts.SWEEP_STALE)
        self._release = stores.redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )
        self._sockets: dict[int, WorkerSocket] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect the hub and start the background loops."""
        await self.hub.start()
        await self.hub.handle(self.keys.process_channel(self.process_id), self._on_control)
        self.archiver.start()
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="stale-sweeper"))

    async def stop(self) -> None:
        """Close sockets, stop loops, flush the archive."""
        for sock in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await sock.close(1001, "server shutting down")
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hub.stop()
        await self.archiver.stop()

    # --- socket ownership -------------------------------------------------------------

    async def claim(self, worker_id: int, sock: WorkerSocket) -> None:
        """Make ``sock`` the worker's only live socket; an older one is closed with 4001."""
        holder = f"{self.process_id}:{sock.conn_id}"
        old = await self.stores.redis.set(self.keys.worker_socket(worker_id), holder, get=True)
        previous = self._sockets.get(worker_id)
        self._sockets[worker_id] = sock
        if old is None:
            return
        old_text = old.decode() if isinstance(old, bytes) else str(old)
        old_proc, _, old_conn = old_text.partition(":")
        self.counters.sockets_replaced += 1
        if old_proc == self.process_id:
            if previous is not None and previous.conn_id == old_conn:
                await previous.close(4001, "replaced by a newer connection")
        else:
            await self.stores.redis.publish(
                self.keys.process_channel(old_proc),
                orjson.dumps({"op": "kick", "worker": worker_id, "conn": old_conn}),
            )

    async def release(self, worker_id: int, sock: WorkerSocket) -> bool:
        """Forget ``sock``; True if it was still the worker's live socket."""
        if self._sockets.get(worker_id) is sock:
            del self._sockets[worker_id]
        holder = f"{self.process_id}:{sock.conn_id}"
        released = await self._release(keys=[self.keys.worker_socket(worker_id)], args=[holder])
        return bool(released)

    def local_socket(self, worker_id: int) -> WorkerSocket | None:
        """The worker's socket if this process holds it."""
        return self._sockets.get(worker_id)

    async def _on_control(self, data: bytes) -> None:
        msg = orjson.loads(data)
        if msg.get("op") == "kick":
            sock = self._sockets.get(int(msg["worker"]))
            if sock is not None and sock.conn_id == msg["conn"]:
                del self._sockets[int(msg["worker"])]
                await sock.close(4001, "replaced by a newer connection")
        elif msg.get("op") == "send":
            sock = self._sockets.get(int(msg["worker"]))
            if sock is not None:
                await sock.send(msg["payload"].encode())

    # --- state -------------------------------------------------------------------------

    async def resume_point(self, city_id: str, worker_id: int) -> tuple[int, str]:
        """The last processed sequence number and the chosen availability of a worker."""
        seq, pref = await self.stores.redis.hmget(
            self.keys.worker_state(city_id, worker_id), ["seq", "pref"]
        )
        chosen = pref.decode() if isinstance(pref, bytes) else pref
        return int(seq or 0), (chosen or "available")

    async def set_state(
        self, city_id: str, worker_id: int, state: str, *, remember: bool = False
    ) -> str:
        """Move the worker to ``state`` in the geo index; tell the city's dispatcher feed."""
        old = await self._set_state(
            keys=[self.keys.presence(city_id)], args=[self.keys.city_tag(city_id), worker_id, state]
        )
        if remember:
            await self.stores.redis.hset(self.keys.worker_state(city_id, worker_id), "pref", state)
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

    def ingest(self, session: WorkerSession, result: FrameResult, now_ms: int) -> Awaitable[None]:
        """Archive and index one frame's verdicts; the awaitable completes once in Redis."""
        c = self.counters
        c.fixes_received += len(result.verdicts)
        c.fixes_accepted += result.accepted
        for _, reason in result.rejected:
            c.rejected[reason] = c.rejected.get(reason, 0) + 1
        if result.accepted:
            received = datetime.fromtimestamp(now_ms / 1000, UTC)
            rows: list[Row] = []
            for v in result.verdicts:
                if v.accepted:
                    f = v.fix
                    c.fixes_clamped += v.clamped
                    rows.append(
                        (
                            session.worker_id,
                            datetime.fromtimestamp(f.ts_ms / 1000, UTC),
                            f.lat,
                            f.lng,
                            f.accuracy_m,
                            f.speed_mps,
                            f.heading_deg,
                            f.seq,
                            v.clamped,
                            received,
                        )
                    )
            self.archiver.add(rows)
        feed_item = None
        if result.last is not None and session.feed_due(now_ms):
            lat, lng, ts, acc, _, _ = result.last
            feed_item = {
                "id": session.worker_id,
                "lat": lat,
                "lng": lng,
                "ts_ms": ts,
                "accuracy_m": acc,
                "state": session.state,
            }
        return self.writer.submit(
            session.city_id,
            session.worker_id,
            seq=result.ack_seq,
            state=session.state,
            moved_from=session.moved_from() if result.last is not None else "",
            last=result.last,
            trail=result.trail,
            feed_item=feed_item,
        )

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
        while True:
            try:
                if time.monotonic() - refreshed > 60:
                    cities = [c.id for c in await catalog_store.cities(self.stores.pool)]
                    refreshed = time.monotonic()
                await self.sweep(cities, int(time.time() * 1000))
            except Exception as e:  # keep sweeping through store outages
                log.warning("stale sweep failed: %s", e)
            await asyncio.sleep(interval_s)


ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]

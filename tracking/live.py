"""Live fan-out: one Redis pub/sub connection per process, multiplexed to sockets.

Each socket that watches a channel gets a :class:`Subscription` with a small bounded
queue. When a slow socket's queue is full the oldest message is dropped (and counted):
for live positions the latest state is what matters, and a slow socket must never slow
ingest or other sockets. If Redis goes away the hub reconnects with backoff and
subscribes again to every channel still watched.

Pub/sub keeps nothing: whatever was published while the hub was away is gone. So after a
reconnect every watcher gets :data:`RESYNC` (``{"type": "resync"}``) and re-reads what it
shows from the stores; a publisher's retry that landed before the hub was back is not lost
for the watcher that way (docs/protocol.md, "After a Redis outage").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger("doorstep.tracking.live")

Handler = Callable[[bytes], Awaitable[None] | None]

RESYNC = b'{"type":"resync"}'
"""Given to every watcher after the hub reconnected: messages may have been missed."""

MAX_BACKOFF_S = 1.0
"""The longest wait between reconnection attempts: watchers are blind while it lasts."""


class Subscription:
    """One watcher of one channel: a bounded queue that keeps the newest messages."""

    def __init__(self, hub: LiveHub, channel: str, maxlen: int) -> None:
        self.hub = hub
        self.channel = channel
        self._queue: collections.deque[bytes] = collections.deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0

    def push(self, message: bytes) -> None:
        """Deliver a message (called by the hub)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            self.hub.dropped += 1
        self._queue.append(message)
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next message, waiting if there is none; None once :meth:`end` was called."""
        while not self._queue:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self._ended:
            return None
        return self._queue.popleft()

    def end(self) -> None:
        """Make :meth:`get` return None from now on (the watcher went away)."""
        self._ended = True
        self._ready.set()

    async def close(self) -> None:
        """Stop watching."""
        await self.hub.unsubscribe(self)


class LiveHub:
    """The process's pub/sub connection and its watchers."""

    def __init__(self, redis: Redis, *, queue_len: int = 32) -> None:
        self._redis = redis
        self._queue_len = queue_len
        self._subs: dict[str, set[Subscription]] = {}
        self._handlers: dict[str, Handler] = {}
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._on_resync: list[Callable[[], None]] = []
        self.delivered = 0
        self.dropped = 0
        self.reconnects = 0

    async def start(self) -> None:
        """Connect and start reading."""
        self._task = asyncio.create_task(self._run(), name="live-hub")
        await asyncio.wait_for(self._connected.wait(), 10)

    async def stop(self) -> None:
        """Stop reading and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            if self._pubsub.connection is not None:
                self._pubsub.connection.deregister_connect_callback(self._reconnected)
            await self._pubsub.aclose()

    def channels(self) -> list[str]:
        """Every channel this process listens to."""
        return [*self._subs, *self._handlers]

    async def subscribe(self, channel: str) -> Subscription:
        """Watch ``channel``; the first watcher subscribes the process."""
        sub = Subscription(self, channel, self._queue_len)
        watchers = self._subs.setdefault(channel, set())
        watchers.add(sub)
        if len(watchers) == 1 and channel not in self._handlers and self._pubsub is not None:
            await self._safe(self._pubsub.subscribe(channel))
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop one watcher; the last one unsubscribes the process."""
        watchers = self._subs.get(sub.channel)
        if watchers is None:
            return
        watchers.discard(sub)
        if not watchers:
            del self._subs[sub.channel]
            if sub.channel not in self._handlers and self._pubsub is not None:
                await self._safe(self._pubsub.unsubscribe(sub.channel))

    async def handle(self, channel: str, handler: Handler) -> None:
        """Call ``handler`` for every message on ``channel`` (process control messages)."""
        self._handlers[channel] = handler
        if self._pubsub is not None:
            await self._safe(self._pubsub.subscribe(channel))

    async def _safe(self, op: Awaitable[object]) -> None:
        try:
            await op
        except (RedisError, OSError) as e:  # the reader loop will resubscribe after reconnecting
            log.warning("pub/sub command failed: %s", e)

    async def _run(self) -> None:
        backoff = 0.1
        lost = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                channels = self.channels()
                await pubsub.subscribe(*(channels or [f"__doorstep_idle_{id(self)}"]))
                if pubsub.connection is not None:  # redis-py reconnects by itself, too
                    pubsub.connection.register_connect_callback(self._reconnected)
                self._pubsub = pubsub
                self._connected.set()
                backoff = 0.1
                if lost:  # what was published while away is gone: watchers re-read
                    lost = False
                    self._resync()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg["type"] == "message":
                        await self._deliver(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                log.warning("pub/sub connection lost (%s); reconnecting in %.1f s", e, backoff)
                self._pubsub = None
                self.reconnects += 1
                lost = True
                if pubsub.connection is not None:  # it goes back to the pool: not ours now
                    pubsub.connection.deregister_connect_callback(self._reconnected)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _reconnected(self, _connection: object) -> None:
        """redis-py's pub/sub reconnected on its own (and subscribes again): re-read."""
        self.reconnects += 1
        log.warning("pub/sub connection re-established by the client; watchers resync")
        self._resync()

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every reconnect, as watchers get :data:`RESYNC` (for
        what travels on handled channels: a process's control messages)."""
        self._on_resync.append(callback)

    def _resync(self) -> None:
        for callback in self._on_resync:
            try:
                callback()
            except Exception:  # one owner's failure must not keep the watchers stale
                log.exception("resync callback failed")
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.push(RESYNC)

    async def _deliver(self, raw_channel: bytes | str, data: bytes) -> None:
        channel = raw_channel.decode() if isinstance(raw_channel, bytes) else raw_channel
        handler = self._handlers.get(channel)
        if handler is not None:
            try:
                result = handler(data)
                if result is not None:
                    await result
            except Exception:  # a bad control message must not stop live delivery
                log.exception("pub/sub handler for %s failed", channel)
        for sub in self._subs.get(channel, ()):
            sub.push(data)
            self.delivered += 1

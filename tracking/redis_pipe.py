"""One Redis connection for the ingest writes: commands pipelined, replies handled in the
connection's own callback.

The batched ingest write is one script call per city every few milliseconds under
load. Through redis-py each call costs the server ~0.24 ms of CPU (the client, its
pool with a lock and a timeout, a retry wrapper, a stream reader) and several event
loop iterations: under load each iteration takes milliseconds, so a write took tens of
milliseconds from send to acknowledgement (measured, benchmarks/README.md). Here a
command is packed by hiredis and written at once, and its reply is parsed by hiredis
in ``data_received`` and handed to the caller's callback there: one iteration, no task.

Only what ingest needs: RESP2, AUTH and SELECT from the URL, TLS for ``rediss://``,
EVALSHA with a fallback to EVAL after a script flush. Everything else uses redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

log = logging.getLogger("doorstep.tracking.redis_pipe")

Arg = str | bytes | int | float
OnReply = Callable[[Any], None]  # a reply, a hiredis.ReplyError, or a ConnectionError


class RedisPipe:
    """A pipelined Redis connection; :meth:`send` writes now, the callback gets the reply.

    Each TCP connection is its own :class:`_Connection` with its own queue of waiting
    callbacks and its own reply parser, so a reply can only reach a callback whose
    command was written on the same connection, however a reconnect and the end of
    the old connection interleave.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"a redis:// or rediss:// URL, got {parts.scheme!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.connect_timeout_s = connect_timeout_s
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.open

    async def connect(self) -> None:
        """Connect (and AUTH, SELECT) unless connected; raises ConnectionError or OSError."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                return
            loop = asyncio.get_running_loop()
            context = ssl.create_default_context() if self.tls else None
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port, ssl=context),
                self.connect_timeout_s,
            )
            old, self._conn = self._conn, conn
            if old is not None:  # a closing connection that has not ended yet
                old.abort()
            setup: list[tuple[Arg, ...]] = []
            if self.password is not None:
                auth: tuple[Arg, ...] = ("AUTH", self.password)
                if self.username is not None:
                    auth = ("AUTH", self.username, self.password)
                setup.append(auth)
            if self.db:
                setup.append(("SELECT", self.db))
            for command in setup:
                reply = await self.request(command)
                if isinstance(reply, hiredis.ReplyError | ConnectionError):
                    conn.abort()
                    raise ConnectionError(f"Redis refused {command[0]!s}: {reply}")

    def send(self, args: Sequence[Arg], on_reply: OnReply) -> None:
        """Write one command; ``on_reply`` gets its reply (or the connection's error)."""
        conn = self._conn
        if conn is None or not conn.open:
            on_reply(ConnectionError("not connected to Redis"))
            return
        conn.send(args, on_reply)

    async def request(self, args: Sequence[Arg]) -> Any:
        """One command, awaited (for the rare calls: set-up, tests)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def answered(reply: Any) -> None:
            if not future.done():
                future.set_result(reply)

        self.send(args, answered)
        return await future

    def abort(self) -> None:
        """Drop the connection now; every command waiting for a reply gets an error."""
        if self._conn is not None:
            self._conn.abort()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _Connection(asyncio.Protocol):
    """One TCP connection to Redis: callbacks wait here, in the order of their commands."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._reader: Any = hiredis.Reader()
        self._waiting: collections.deque[OnReply] = collections.deque()

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, args: Sequence[Arg], on_reply: OnReply) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            on_reply(ConnectionError("not connected to Redis"))
            return
        self._waiting.append(on_reply)
        # (hiredis' stub types the tuple as a 1-tuple; it takes any length)
        transport.write(hiredis.pack_command(cast(Any, tuple(args))))

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Close, and fail the callbacks still waiting (their replies will not be read)."""
        if self._transport is not None:
            self._transport.close()
        self._fail_waiting(ConnectionError("Redis connection closed"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as e:  # garbage from the server: start afresh
                log.error("Redis protocol error on the ingest connection: %s", e)
                self.abort()
                return
            if reply is False:
                return
            if not waiting:  # a reply to no command of ours: the stream is out of step
                log.error("Redis sent a reply nobody waits for; dropping the connection")
                self.abort()
                return
            callback = waiting.popleft()
            try:
                callback(reply)
            except Exception:
                log.exception("a Redis reply callback failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail_waiting(ConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def _fail_waiting(self, error: ConnectionError) -> None:
        waiting, self._waiting = self._waiting, collections.deque()
        for callback in waiting:
            try:
                callback(error)
            except Exception:
                log.exception("a Redis reply callback failed")


class PipeScript:
    """A Lua script run by EVALSHA on a :class:`RedisPipe`, by EVAL after a flush."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()

    def run(
        self, pipe: RedisPipe, keys: Sequence[Arg], args: Sequence[Arg], on_reply: OnReply
    ) -> None:
        """Run the script; ``on_reply`` gets its result, a ReplyError or a ConnectionError."""
        tail = (len(keys), *keys, *args)

        def answered(reply: Any) -> None:
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
                pipe.send(("EVAL", self.body, *tail), on_reply)  # loads it again too
            else:
                on_reply(reply)

        pipe.send(("EVALSHA", self.sha, *tail), answered)

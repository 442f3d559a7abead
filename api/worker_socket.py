"""The worker socket (``/v1/ws/worker``), served without ASGI: the hot path of ingest.

Every connected worker sends a frame of fixes every few seconds, and each frame is
validated, written to Redis in the tick's batch and acknowledged. Through an ASGI
endpoint a frame also costs a queue hop and a coroutine wake-up in uvicorn, Starlette's
receive and send, and a task step in the handler, twice (the frame and its ack). Here
the connection is an :class:`asyncio.Protocol`: websockets' sans-I/O
:class:`~websockets.server.ServerProtocol` parses the handshake and the frames, a frame
of fixes is handled synchronously (validated by the pure :class:`WorkerSession`, queued
for the batched write), and the ack is written from the write's completion callback.
No coroutine waits per socket or per frame. Opening (authentication, the Redis claim)
and the rare control messages (``state``, ``offer_reply``) run as tasks, and a
connection handles its frames strictly in order: while one is in flight, the next
wait in its inbox.

The messages, limits and close codes are those of docs/protocol.md; this module only
moves bytes. ``api.wsprotocol`` routes the upgrade requests for the worker path here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import struct
import time
from collections.abc import Coroutine
from typing import Any, cast
from urllib.parse import parse_qs

import orjson
from websockets.http11 import Request
from websockets.server import ServerProtocol

from accounts.service import TokenPolicy, authenticate
from api.wsframes import (
    FrameReader,
    ProtocolViolation,
    close_frame,
    ping_frame,
    pong_frame,
    text_frame,
)
from dispatch import offers
from doorstep.errors import DoorstepError
from doorstep.stores import STORE_ERRORS
from tracking.fixes import Track
from tracking.protocol import (
    PONG,
    CloseCode,
    FixesMsg,
    FixMsg,
    FrameError,
    OfferReplyMsg,
    PingMsg,
    StateMsg,
    encode_ack,
    encode_error,
    encode_hello,
    encode_state,
    parse_up,
)
from tracking.service import Tracking
from tracking.session import FrameResult, WorkerSession
from workforce import store as workforce_store

log = logging.getLogger("doorstep.api.worker_socket")

WORKER_PATH = "/v1/ws/worker"
INBOX_PAUSE = 32  # frames waiting in a connection before it stops reading its socket
CLOSE_TIMEOUT_S = 5.0  # after our close frame, how long the client has to answer it


class WorkerGateway:
    """What every worker connection of one process shares: the runtime, the token
    policy, and the keepalive sweep over the open connections."""

    def __init__(self, tracking: Tracking, policy: TokenPolicy) -> None:
        self.tracking = tracking
        self.policy = policy
        self.params = tracking.socket_params
        self.connections: set[WorkerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the keepalive sweep (pings quiet sockets, closes dead ones)."""
        if self.params.ping_interval_s:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="worker-keepalive")

    async def stop(self) -> None:
        """Stop the sweep and wait for the connections' closing work (their release)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for conn in list(self.connections):
            conn.shutdown()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5.0)

    def spawn(
        self,
        coro: Coroutine[Any, Any, None],
        name: str,
        also: set[asyncio.Task[None]] | None = None,
    ) -> None:
        """Run ``coro`` as a task the gateway waits for on shutdown (and ``also``: uvicorn's
        server tasks, so that uvicorn waits for it before the app's shutdown)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        for tasks in (self.tasks, also):
            if tasks is not None:
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    def sweep(self, now: float) -> None:
        """Ping every connection quiet for the interval; close those that never answered."""
        interval, timeout = self.params.ping_interval_s, self.params.ping_timeout_s
        if not interval:
            return
        for conn in list(self.connections):
            conn.keepalive(now, interval, timeout)

    async def _sweep_loop(self) -> None:
        interval = self.params.ping_interval_s
        period = max(0.05, min(5.0, interval / 4, self.params.ping_timeout_s / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            self.sweep(loop.time())


class WorkerConnection(asyncio.Protocol):
    """One worker's websocket, from the upgrade request to the closed TCP connection."""

    def __init__(
        self,
        gateway: WorkerGateway,
        *,
        connections: set[Any] | None = None,
        tasks: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.tracking = gateway.tracking
        self.conn_id = secrets.token_hex(6)
        # websockets answers the upgrade request; the frames after it are ours. No
        # extensions (no per-message deflate): a frame of fixes is ~100 bytes.
        self.handshake: ServerProtocol | None = ServerProtocol(logger=log)
        # Messages up to 4x the app-level limit reach the handler, which answers an
        # error frame and 1009; larger ones the frame reader refuses with 1009 itself.
        self.frames = FrameReader(4 * gateway.tracking.socket_params.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self._server_connections = connections
        self._server_tasks = tasks
        self.session: WorkerSession | None = None
        self.inbox: collections.deque[bytes] = collections.deque()
        self.busy = True  # until the hello is sent; then while a frame is in flight
        self.closing = False  # a close frame went out (or the transport is gone)
        self.lost = False
        self.claimed = False
        self.released = False
        self.read_paused = False
        self.write_paused = False
        self.open = False  # the handshake is done and no close frame went either way
        self.rx = True  # data arrived since the keepalive sweep last looked
        self.quiet_since = 0.0  # loop time at which the sweep last saw no data
        self.ping_sent_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # The frame of fixes being written: its result, the track before it, its time
        # and whether it asked for its ack at once.
        self._inflight: tuple[FrameResult, Track, int, bool] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.quiet_since = asyncio.get_running_loop().time()
        self.gateway.connections.add(self)
        if self._server_connections is not None:
            self._server_connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.closing = True
        self.gateway.connections.discard(self)
        if self._server_connections is not None:
            self._server_connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.inbox.clear()
        if self.claimed and not self.busy:
            self._release()
        # else: the opening task or the frame in flight releases when it ends

    def pause_writing(self) -> None:
        """The client does not read its acks: stop reading its frames until it does."""
        self.write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if len(self.inbox) < INBOX_PAUSE:
            self._resume_reading()

    def eof_received(self) -> bool | None:
        self.open = False
        self.closing = True
        return None  # the transport closes itself

    def data_received(self, data: bytes) -> None:
        self.rx = True  # anything from the client shows it is alive
        if self.handshake is not None:  # still the upgrade request
            self._upgrade(data)
            return
        try:
            messages = self.frames.feed(data)
        except ProtocolViolation as e:  # fail the connection (RFC 6455 §7.1.7)
            self._fail(e.code, e.reason)
            return
        for message in messages:
            kind = message.kind
            if kind == "text":
                self._message(message.data)
            elif kind == "ping":
                self._send_frame(pong_frame(message.data))
            elif kind == "pong":
                self.ping_sent_at = None
            elif kind == "close":
                self._closed_by_client(message.code)
            else:  # binary
                self.refuse(CloseCode.UNSUPPORTED_DATA, "binary_frame", "send JSON text frames")

    # --- the handshake and opening -------------------------------------------------------

    def _upgrade(self, data: bytes) -> None:
        """Answer the upgrade request (uvicorn passes it whole) and start the opening."""
        ws = self.handshake
        assert ws is not None
        assert self.transport is not None
        ws.receive_data(data)
        requests = [e for e in ws.events_received() if isinstance(e, Request)]
        if ws.handshake_exc is not None or not requests:
            out = b"".join(ws.data_to_send()) or (
                ws.reject(400, "Failed to open a WebSocket connection.\n").serialize()
            )
            self._end(out)
            return
        request = requests[0]
        response = ws.accept(request)
        ws.send_response(response)
        out = b"".join(ws.data_to_send())
        if response.status_code != 101:
            self._end(out)
            return
        self.handshake = None
        self.open = True
        self.transport.write(out)
        self.gateway.spawn(self._open(_token(request)), "worker-socket-open", self._server_tasks)

    def _end(self, last: bytes) -> None:
        """Write ``last`` and close the TCP connection."""
        self.closing = True
        self.open = False
        if self.transport is not None:
            if last:
                self.transport.write(last)
            self.transport.close()

    async def _open(self, token: str) -> None:
        """Authenticate, claim the worker's one live socket, say hello; then take frames."""
        try:
            await self._claim(token)
        except _Refused as r:
            self.refuse(r.close_code, r.error, r.message, r.field)
        except DoorstepError as e:  # the token's
            self.refuse(CloseCode.UNAUTHENTICATED, e.code, e.message, "authorization")
        except STORE_ERRORS as e:
            log.warning("worker socket refused, stores unavailable: %s", e)
            self.refuse(
                CloseCode.TRY_AGAIN_LATER,
                "unavailable",
                "the server's stores are unavailable; reconnect with backoff",
            )
        except Exception:
            log.exception("opening a worker socket failed")
            self.refuse(CloseCode.INTERNAL_ERROR, "internal_error", "the server failed; logged")
        self._done()

    async def _claim(self, token: str) -> None:
        if not token:
            raise _Refused(
                CloseCode.UNAUTHENTICATED,
                "unauthenticated",
                "send 'Authorization: Bearer <token>' or ?access_token=",
                "authorization",
            )
        tracking = self.tracking
        claims = await authenticate(
            tracking.stores, self.gateway.policy, token, now=int(time.time())
        )
        if "worker" not in claims.roles:
            raise _Refused(CloseCode.FORBIDDEN, "forbidden", "needs one of the roles: worker")
        worker = await workforce_store.worker(tracking.stores.pool, claims.user_id, detail=False)
        if worker is None:
            raise _Refused(
                CloseCode.NOT_FOUND,
                "worker_not_found",
                "this account has no worker profile; ask an admin to create one",
            )
        if self.lost:
            return
        city = worker.city_id
        resume_seq, preference = await tracking.resume_point(city, worker.user_id)
        session = WorkerSession(
            worker.user_id,
            city,
            preference,
            Track(last_seq=resume_seq),
            tracking.fix_params,
            tracking.socket_params,
        )
        session.preference = preference
        self.session = session
        await tracking.claim(worker.user_id, self, session)
        self.claimed = True
        await tracking.set_state(city, worker.user_id, preference)
        await tracking.load_job(worker.user_id)  # busy while holding a job
        limits = tracking.socket_params
        self.write(
            encode_hello(
                worker_id=worker.user_id,
                city_id=city,
                resume_seq=resume_seq,
                state=session.state,
                frames_per_s=limits.frames_per_s,
                max_frame_bytes=limits.max_frame_bytes,
            )
        )

    # --- frames ------------------------------------------------------------------------

    def _message(self, data: bytes) -> None:
        """A whole text message from the app: handle it now, or after the one in flight."""
        if self.closing:
            return
        if self.busy or self.inbox:
            self.inbox.append(data)
            if len(self.inbox) >= INBOX_PAUSE:
                self._pause_reading()
            return
        self._handle(data)

    def _done(self) -> None:
        """The frame in flight (or the opening) is finished: take the next ones."""
        self.busy = False
        while self.inbox and not self.busy and not self.closing:
            self._handle(self.inbox.popleft())
        if self.lost:
            self.inbox.clear()
            if self.claimed and not self.busy:
                self._release()
            return
        if not self.write_paused and len(self.inbox) < INBOX_PAUSE // 2:
            self._resume_reading()

    def _handle(self, data: bytes) -> None:
        session = self.session
        if session is None:  # refused while opening
            return
        try:
            self._handle_message(session, data)
        except Exception:  # a bug: the socket says so and closes; the server goes on
            log.exception("worker socket frame failed")
            self.refuse(CloseCode.INTERNAL_ERROR, "internal_error", "the server failed; logged")

    def _handle_message(self, session: WorkerSession, data: bytes) -> None:
        tracking = self.tracking
        counters = tracking.counters
        counters.frames += 1
        limits = session.socket_params
        if len(data) > limits.max_frame_bytes:
            self.refuse(
                CloseCode.TOO_BIG,
                "frame_too_large",
                f"a frame may be at most {limits.max_frame_bytes} bytes",
            )
            return
        verdict = session.admit(time.monotonic())
        if verdict != "ok":
            counters.frames_throttled += 1
            if verdict == "close":
                self.refuse(
                    CloseCode.POLICY_VIOLATION,
                    "flood",
                    "rate limit exceeded for too long; reconnect later",
                )
                return
            self.write(
                encode_error(
                    "rate_limited",
                    f"more than {limits.frames_per_s:g} frames/s; "
                    "this frame was dropped unread: send it again later",
                )
            )
            return
        try:
            msg = parse_up(data)
        except FrameError as e:
            counters.frame_errors += 1
            self.write(encode_error(e.code, e.message, e.field))
            return
        if isinstance(msg, FixesMsg | FixMsg):
            now_ms = int(time.time() * 1000)
            before = session.track
            result = session.fixes(msg.fixes if isinstance(msg, FixesMsg) else [msg], now_ms)
            try:
                tracking.submit(session, result, now_ms, self._written)
            except BaseException:
                session.track = before
                raise
            self.busy = True
            self._inflight = (result, before, now_ms, msg.ack)
        elif isinstance(msg, PingMsg):
            self.write(PONG)
        elif isinstance(msg, StateMsg):
            self._run(self._set_state(session, msg.state), "worker-socket-state")
        elif isinstance(msg, OfferReplyMsg):
            self._run(self._offer_reply(session, msg), "worker-socket-offer-reply")

    def _written(self, error: BaseException | None) -> None:
        """The batch holding the frame in flight is in Redis (ack it) or failed (roll the
        track back and say unavailable)."""
        inflight, self._inflight = self._inflight, None
        session = self.session
        if inflight is None or session is None:
            return
        result, before, now_ms, urgent = inflight
        tracking = self.tracking
        if error is not None:  # Redis is down: say so, do not ack; the app keeps its buffer
            session.track = before  # so that the resent frame is judged afresh
            self.write(
                encode_error(
                    "unavailable",
                    "location store unavailable; keep the fixes and send them again",
                )
            )
        else:
            tracking.written(session, result, now_ms)
            ack_ms = int(time.time() * 1000)
            if session.written(result, ack_ms, urgent=urgent):
                self.write(encode_ack(*session.take_ack(ack_ms)))
            elif not self.closing:
                tracking.ack_later(session, self)
        self._done()

    def _run(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A control message that needs the stores: the frames after it wait for it."""
        self.busy = True
        self.gateway.spawn(self._guarded(coro), name, self._server_tasks)

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except STORE_ERRORS as e:
            log.warning("worker socket message failed, stores unavailable: %s", e)
            self.write(
                encode_error("unavailable", "the server's stores are unavailable; send it again")
            )
        except Exception:
            log.exception("worker socket message failed")
            self.write(encode_error("internal_error", "the server failed; this is logged"))
        finally:
            self._done()

    async def _set_state(self, session: WorkerSession, state: str) -> None:
        await self.tracking.set_preference(session, state)
        self.write(encode_state(session.state))

    async def _offer_reply(self, session: WorkerSession, msg: OfferReplyMsg) -> None:
        self.write(await offer_reply(self.tracking, session, msg))

    # --- output and closing -------------------------------------------------------------

    async def send(self, payload: bytes) -> None:
        """A message from elsewhere in the server (an offer, a plan, a held-back ack)."""
        self.write(payload)

    def write(self, payload: bytes) -> None:
        """Send one JSON text frame, unless the connection is closing."""
        if self.closing or self.transport is None:
            return
        self.transport.write(text_frame(payload))

    def _send_frame(self, frame: bytes) -> None:
        if self.open and self.transport is not None:
            self.transport.write(frame)

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` (e.g. 4001 when a newer connection took over)."""
        self.close_now(code, reason)

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame; the TCP connection ends on the client's answer or a timeout."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self.inbox.clear()
        if self.open:
            self.transport.write(close_frame(code, reason))
        self._resume_reading()  # to read the client's close frame
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(CLOSE_TIMEOUT_S, self._abort)

    def _closed_by_client(self, code: int) -> None:
        """The client's close frame: echo it unless it answers ours; the server then
        closes the TCP connection (RFC 6455 §7.1.1)."""
        if self.open and not self.closing:
            self._end(close_frame(code))
        else:
            self._end(b"")

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: a close frame with ``code``, and the end."""
        log.info("worker socket failed: %s (%s)", reason, code)
        self._end(close_frame(code, reason) if self.open else b"")

    def refuse(self, code: int, error: str, message: str, field: str | None = None) -> None:
        """An error frame saying why, then the close code (docs/protocol.md)."""
        self.write(encode_error(error, message, field))
        self.close_now(code, message)

    def shutdown(self) -> None:
        """The server is stopping (uvicorn's shutdown, or the gateway's)."""
        if self.open and not self.closing:
            self.refuse(CloseCode.GOING_AWAY, "going_away", "server shutting down")
        elif not self.closing:
            self._end(b"")

    def keepalive(self, now: float, interval_s: float, timeout_s: float) -> None:
        """Called by the gateway's sweep: ping after ``interval_s`` without data, close
        after ``timeout_s`` more without any."""
        if self.rx:  # alive since the last sweep
            self.rx = False
            self.quiet_since = now
            self.ping_sent_at = None
            return
        if not self.open or self.closing:
            return
        if self.ping_sent_at is not None:
            if now - self.ping_sent_at > timeout_s:
                self._end(close_frame(CloseCode.INTERNAL_ERROR, "keepalive ping timeout"))
            return
        if now - self.quiet_since >= interval_s:
            self.ping_sent_at = now
            self._send_frame(ping_frame(struct.pack("!I", secrets.randbits(32))))

    def _abort(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = False
            self.transport.resume_reading()

    def _release(self) -> None:
        """The connection is gone: give up the worker's live socket (and take them offline)."""
        if self.released or self.session is None:
            return
        self.released = True
        self.gateway.spawn(
            _release(self.tracking, self.session, self), "worker-socket-release", self._server_tasks
        )


async def _release(tracking: Tracking, session: WorkerSession, conn: WorkerConnection) -> None:
    try:
        if await tracking.release(session.worker_id, conn):
            await tracking.set_state(session.city_id, session.worker_id, "offline")
    except STORE_ERRORS as e:  # presence expires on its own: the stale sweep takes them out
        log.warning("releasing worker %s's socket failed: %s", session.worker_id, e)


class _Refused(Exception):
    """The socket is refused while opening: the close code, the error frame's fields."""

    def __init__(self, close_code: int, error: str, message: str, field: str | None = None):
        super().__init__(message)
        self.close_code, self.error, self.message, self.field = close_code, error, message, field


def _token(request: Request) -> str:
    """The access token from ``Authorization: Bearer`` or ``?access_token=``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if token:
        return token
    _, _, query = request.path.partition("?")
    values = parse_qs(query).get("access_token", [])
    return values[0] if values else ""


async def offer_reply(tracking: Tracking, session: WorkerSession, msg: OfferReplyMsg) -> bytes:
    """Accept or reject an offer from the socket; the answer says how it went."""
    try:
        if msg.accept:
            order = await offers.accept(tracking.stores, tracking, msg.offer_id, session.worker_id)
            return orjson.dumps(
                {
                    "type": "offer_result",
                    "offer_id": msg.offer_id,
                    "ok": True,
                    "order_id": order.id,
                    "status": order.status,
                }
            )
        if not msg.reason.strip():
            return encode_error("missing_field", "say why you decline", "reason")
        await offers.reject(
            tracking.stores, tracking, msg.offer_id, session.worker_id, msg.reason.strip()
        )
        return orjson.dumps(
            {"type": "offer_result", "offer_id": msg.offer_id, "ok": True, "status": "rejected"}
        )
    except DoorstepError as e:
        return orjson.dumps(
            {
                "type": "offer_result",
                "offer_id": msg.offer_id,
                "ok": False,
                "error": {"code": e.code, "message": e.message, "field": e.field},
            }
        )

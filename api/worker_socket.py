"""The worker socket (``/v1/ws/worker``), served without ASGI: the hot path of ingest.

Every connected worker sends a frame of fixes every few seconds, and each frame is
validated, written to Redis in a batch and acknowledged. Through an ASGI endpoint a
frame also cost a queue hop and a coroutine wake-up in uvicorn, Starlette's receive and
send, and a task step in the handler, for the frame and again for its ack. Here the
connection is an :class:`asyncio.Protocol`: websockets' sans-I/O
:class:`~websockets.server.ServerProtocol` answers the upgrade request,
:mod:`api.wsframes` reads the frames, a frame of fixes is handled synchronously
(validated by the pure :class:`WorkerSession`, queued for the batched write) and the
ack is written from the batch's completion callback. No coroutine waits per socket or
per frame. Opening (authentication, the Redis claim) and the rare control messages
(``state``, ``offer_reply``) run as tasks. A connection takes its messages strictly in
order; frames that arrive while its write is in flight wait and then go together.

The messages, limits and close codes are those of docs/protocol.md. ``api.wsprotocol``
routes the upgrade requests for the worker path here.
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

from accounts.service import TokenPolicy, authenticate, check_current
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
from safety.errors import SafetyUnavailable
from safety.rules import check_position
from safety.service import SafetyDesk
from tracking.fixes import Track
from tracking.protocol import (
    PONG,
    CloseCode,
    FixesMsg,
    FixIn,
    FixMsg,
    FrameError,
    OfferReplyMsg,
    PingMsg,
    SosMsg,
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

    def __init__(self, tracking: Tracking, policy: TokenPolicy, *, offer_cooldown_s: int) -> None:
        self.tracking = tracking
        self.policy = policy
        self.safety: SafetyDesk | None = None  # set by the app: SOS over the socket
        self.offer_cooldown_s = offer_cooldown_s  # a declined offer keeps the worker away
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
    """One worker's websocket, from the upgrade request to the closed TCP connection.

    Messages are taken in order. Consecutive frames of fixes that arrive while a write
    is in flight form one *group*: validated in order, written in the next batch, and
    acknowledged together with one cumulative ack (docs/protocol.md). A control
    message (``state``, ``offer_reply``) waits for the group before it, and the frames
    after it wait for it.
    """

    def __init__(
        self,
        gateway: WorkerGateway,
        *,
        connections: set[Any] | None = None,
        tasks: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.tracking = gateway.tracking
        self.limits = gateway.tracking.socket_params
        self.counters = gateway.tracking.counters
        self.conn_id = secrets.token_hex(6)
        # websockets answers the upgrade request; the frames after it are ours. No
        # extensions (no per-message deflate): a frame of fixes is ~100 bytes.
        self.handshake: ServerProtocol | None = ServerProtocol(logger=log)
        # Messages up to 4x the app-level limit are read whole and refused with an error
        # frame and 1009; larger ones the frame reader refuses with 1009 itself.
        self.frames = FrameReader(4 * self.limits.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self._server_connections = connections
        self._server_tasks = tasks
        self.session: WorkerSession | None = None
        # Pushes (a job, an offer, a plan) that came between the claim and the hello: the
        # hello is the first frame, so they wait for it. None once the hello is written.
        self.before_hello: list[bytes] | None = []
        self.inbox: collections.deque[bytes] = collections.deque()
        # A control message taken after a group, waiting for the group's write.
        self._control: StateMsg | OfferReplyMsg | SosMsg | None = None
        self.inbox_bytes = 0
        self.busy = True  # opening; then while a group or a control message is in flight
        self.open = False  # upgraded, and no close frame sent or received
        self.closing = False  # our close frame went out, or the connection is ending
        self.lost = False
        self.claimed = False
        self.released = False
        self.read_paused = False
        self.write_paused = False
        self.rx = True  # data arrived since the keepalive sweep last looked
        self.quiet_since = 0.0  # loop time at which the sweep last saw no data
        self.ping_sent_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # The group being written: per frame its result, the time it was judged and
        # whether it asked for its ack at once; and the track before the first.
        self._group: list[tuple[FrameResult, int, bool]] = []
        self._group_before: Track | None = None
        self._group_first_seq = 0
        # After a failed write: fixes are taken again only from this seq on (a resend),
        # so that no later ack can cover the fixes that were not written.
        self.resend_from: int | None = None

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.quiet_since = asyncio.get_running_loop().time()
        self.gateway.connections.add(self)
        if self._server_connections is not None:
            self._server_connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.closing = True
        self.open = False
        self.gateway.connections.discard(self)
        if self._server_connections is not None:
            self._server_connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._clear_inbox()
        if not self.busy:
            self._release()
        # else: the opening task, the group or the control message in flight releases

    def pause_writing(self) -> None:
        """The client does not read what we send: stop reading its frames until it does."""
        self.write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._maybe_resume()

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
            if kind == "close":  # also the answer to ours
                self._closed_by_client(message.code)
                return
            if self.closing:
                continue
            if kind == "text":
                data = message.data
                if self.busy or self.inbox or len(data) > self.limits.max_frame_bytes:
                    self._message(data)
                else:  # nothing waiting before it: handle it now, no inbox
                    self._pump(data)
            elif kind == "ping":
                self._send_frame(pong_frame(message.data))
            elif kind == "pong":
                self.ping_sent_at = None
            else:  # binary
                self.refuse(CloseCode.UNSUPPORTED_DATA, "binary_frame", "send JSON text frames")
        if not self.busy and self.inbox:
            self._pump()

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
        self._pause_reading()  # nothing is read before the hello
        try:
            token = _token(request)
        except _Refused as r:
            self.busy = False
            self.refuse(r.close_code, r.error, r.message, r.field)
            return
        self.gateway.spawn(self._open(token), "worker-socket-open", self._server_tasks)

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
        finally:
            self._done()

    async def _claim(self, token: str) -> None:
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
        city = worker.city_id
        # Before the claim: from the claim on, pushes (a job, an offer) may come for this
        # socket, and the hello must still be its first frame.
        bounds = await tracking.city_bounds(city)
        if self.lost:  # gone while opening: never take the claim from a newer connection
            return
        session = WorkerSession(
            worker.user_id, city, "available", Track(), tracking.fix_params, tracking.socket_params
        )
        session.bounds = bounds
        self.session = session
        self.claimed = True  # before the await: a failure inside still releases
        # Claim first: an older socket of this worker here is closed and its writes in
        # flight land before the resume point is read, so a resend is never taken twice.
        await tracking.claim(worker.user_id, self, session)
        resume_seq, resume_ts, preference = await tracking.resume_state(city, worker.user_id)
        session.track = Track(last_seq=resume_seq, ts_ms=resume_ts)
        session.state = session.preference = preference
        # A freeze published while this socket was opening found no socket to close:
        # look at the token once more now that the socket is registered.
        await check_current(tracking.stores, claims)
        # The preference, then busy while holding a job: in turn with live-push's reloads.
        await tracking.start_state(session)
        self.write(
            encode_hello(
                worker_id=worker.user_id,
                city_id=city,
                resume_seq=resume_seq,
                state=session.state,
                frames_per_s=self.limits.frames_per_s,
                max_frame_bytes=self.limits.max_frame_bytes,
            )
        )
        held, self.before_hello = self.before_hello or [], None
        for payload in held:
            self.write(payload)

    # --- messages ------------------------------------------------------------------------

    def _message(self, data: bytes) -> None:
        """A whole text message from the app: into the inbox, in order."""
        if len(data) > self.limits.max_frame_bytes:
            self.tracking.counters.frames += 1
            self.refuse(
                CloseCode.TOO_BIG,
                "frame_too_large",
                f"a frame may be at most {self.limits.max_frame_bytes} bytes",
            )
            return
        self.inbox.append(data)
        self.inbox_bytes += len(data)
        if len(self.inbox) >= INBOX_PAUSE or self.inbox_bytes > 4 * self.limits.max_frame_bytes:
            self._pause_reading()

    def _done(self) -> None:
        """What was in flight (the opening, a group, a control message) is finished."""
        self.busy = False
        if self.lost:
            self._clear_inbox()
            self._release()
            return
        if (self.inbox or self._control is not None) and not self.closing:
            self._pump()
        self._maybe_resume()

    def _pump(self, first: bytes | None = None) -> None:
        """Take ``first`` (a message that found the inbox empty), then the inbox's messages
        in order, until one has to wait for the stores."""
        session = self.session
        if session is None:  # refused while opening
            self._clear_inbox()
            return
        try:
            if first is not None:
                control = self._take(session, first)
                if control is not None:
                    self._run_control(session, control)
            control, self._control = self._control, None
            if control is not None:  # its group is written: its turn
                self._run_control(session, control)
            while self.inbox and not self.busy and not self.closing:
                data = self.inbox.popleft()
                self.inbox_bytes -= len(data)
                control = self._take(session, data)
                if control is not None:  # waits for the group before it, if any
                    if self._group:
                        self._control = control  # taken once: counted and admitted once
                        break
                    self._run_control(session, control)
            if self._group and not self.busy:
                self._submit_group(session)
        except Exception:  # a bug: the socket says so and closes; the server goes on
            log.exception("worker socket frame failed")
            self.refuse(CloseCode.INTERNAL_ERROR, "internal_error", "the server failed; logged")
        self._maybe_resume()

    def _take(
        self, session: WorkerSession, data: bytes
    ) -> StateMsg | OfferReplyMsg | SosMsg | None:
        """Handle one message now if it can be (fixes join the group); a control message
        that needs the stores is returned to be run. An SOS is taken whatever the rate."""
        counters = self.counters
        counters.frames += 1
        verdict = session.admit(time.monotonic())
        if verdict != "ok" and b'"sos"' in data:  # never rate-limit an SOS away
            with contextlib.suppress(FrameError):
                sos = parse_up(data)
                if isinstance(sos, SosMsg):
                    return sos
        if verdict != "ok":
            counters.frames_throttled += 1
            if verdict == "close":
                self.refuse(
                    CloseCode.POLICY_VIOLATION,
                    "flood",
                    "rate limit exceeded for too long; reconnect later",
                )
                return None
            self.write(
                encode_error(
                    "rate_limited",
                    f"more than {self.limits.frames_per_s:g} frames/s; "
                    "this frame was dropped unread: send it again later",
                )
            )
            return None
        try:
            msg = parse_up(data)
        except FrameError as e:
            counters.frame_errors += 1
            self.write(encode_error(e.code, e.message, e.field))
            return None
        if isinstance(msg, FixesMsg | FixMsg):
            fixes: list[FixIn] = msg.fixes if isinstance(msg, FixesMsg) else [msg]
            if self.tracking.overload.shedding:  # behind: refuse instead of queueing
                counters.frames_shed += 1
                if self.resend_from is None or fixes[0].seq < self.resend_from:
                    self.resend_from = fixes[0].seq  # later fixes wait for these
                self.write(self.tracking.overloaded_frame)
                return None
            if self.resend_from is not None:
                if fixes[0].seq > self.resend_from:
                    self.write(_UNAVAILABLE_RESEND)
                    return None
                self.resend_from = None
            if not self._group:
                self._group_before = session.track
                self._group_first_seq = fixes[0].seq
            now_ms = int(time.time() * 1000)
            self._group.append((session.fixes(fixes, now_ms), now_ms, msg.ack))
            return None
        if isinstance(msg, PingMsg):
            self.write(PONG)
            return None
        return msg

    def _submit_group(self, session: WorkerSession) -> None:
        """Queue the group's frames for the next batched write; one waiter for them all."""
        tracking = self.tracking
        group = self._group
        last = len(group) - 1
        for i, (result, now_ms, _) in enumerate(group):
            tracking.submit(session, result, now_ms, self._written if i == last else None)
        self.busy = True

    def _written(self, error: BaseException | None) -> None:
        """The group's batch is in Redis (ack it) or failed (roll the track back, say
        unavailable and take fixes again only from the group's first)."""
        group, self._group = self._group, []
        before, self._group_before = self._group_before, None
        session = self.session
        try:
            if session is None or not group:
                return
            if error is not None:  # the app keeps these fixes and sends them again
                if before is not None:
                    session.track = before
                self.resend_from = self._group_first_seq
                self.write(_UNAVAILABLE)
                return
            tracking = self.tracking
            ack_ms = int(time.time() * 1000)
            due = False
            for result, now_ms, asked in group:
                tracking.written(session, result, now_ms)
                due = session.written(result, ack_ms, urgent=asked) or due
            if due:
                self.write(encode_ack(*session.take_ack(ack_ms)))
            elif not self.closing:
                tracking.ack_later(session, self)
        finally:
            self._done()

    def _run_control(self, session: WorkerSession, msg: StateMsg | OfferReplyMsg | SosMsg) -> None:
        """A control message needs the stores: the messages after it wait for it."""
        self.busy = True
        if isinstance(msg, StateMsg):
            coro = self._set_state(session, msg.state)
        elif isinstance(msg, SosMsg):
            coro = self._sos(session, msg)
        else:
            coro = self._offer_reply(session, msg)
        self.gateway.spawn(self._guarded(coro), "worker-socket-control", self._server_tasks)

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
        cooldown_s = self.gateway.offer_cooldown_s
        self.write(await offer_reply(self.tracking, session, msg, offer_cooldown_s=cooldown_s))

    async def _sos(self, session: WorkerSession, msg: SosMsg) -> None:
        job = self.tracking.active_job(session.worker_id)
        known = (session.city_id, job.info.order_id if job is not None else None)
        self.write(await sos_reply(self.gateway.safety, session, msg, known))

    # --- output and closing -------------------------------------------------------------

    async def send(self, payload: bytes) -> None:
        """A message from elsewhere in the server (an offer, a plan, a held-back ack)."""
        if self.before_hello is not None:
            self.before_hello.append(payload)
            return
        self.write(payload)

    def write(self, payload: bytes) -> None:
        """Send one JSON text frame, unless the connection is closing."""
        if self.open and not self.closing and self.transport is not None:
            self.transport.write(text_frame(payload))

    def _send_frame(self, frame: bytes) -> None:
        if self.open and not self.closing and self.transport is not None:
            self.transport.write(frame)

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` after an error frame saying why (4001: a newer connection
        took over; 1001: the server is stopping)."""
        self.refuse(code, _CLOSE_ERRORS.get(code, "closed"), reason)

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame; the TCP connection ends on the client's answer or a timeout."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self._clear_inbox()
        if self.open:
            self.transport.write(close_frame(code, reason))
        self.open = False  # nothing more goes out: no pong, no second close frame
        self._resume_reading()  # to read the client's close frame
        self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._abort)

    def refuse(self, code: int, error: str, message: str, field: str | None = None) -> None:
        """An error frame saying why, then the close code (docs/protocol.md)."""
        self.write(encode_error(error, message, field))
        self.close_now(code, message)

    def _closed_by_client(self, code: int) -> None:
        """The client's close frame: echo it unless it answers ours; the server then
        closes the TCP connection (RFC 6455 §7.1.1)."""
        self._end(close_frame(code) if self.open and not self.closing else b"")

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the websocket protocol: say why, close with ``code``, end."""
        log.info("worker socket failed: %s (%s)", reason, code)
        last = b""
        if self.open and not self.closing:
            last = text_frame(encode_error("protocol_error", reason)) + close_frame(code, reason)
        self._end(last)

    def _end(self, last: bytes) -> None:
        """Write ``last`` and close the TCP connection (aborted if it does not drain)."""
        self.open = False
        self._clear_inbox()
        if self.transport is None or self.lost:
            self.closing = True
            return
        if last:
            self.transport.write(last)
        self.transport.close()
        if not self.closing or self._close_timer is None:
            self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._abort)
        self.closing = True

    def shutdown(self) -> None:
        """The server is stopping (uvicorn's shutdown, or the gateway's)."""
        if self.open and not self.closing:
            self.refuse(CloseCode.GOING_AWAY, "going_away", "server shutting down")
        elif not self.lost:
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
                log.info("worker socket closed: no answer to a ping in %.0f s", timeout_s)
                reason = f"no answer to a ping in {timeout_s:g} s"
                self._end(
                    text_frame(encode_error("keepalive_timeout", reason))
                    + close_frame(CloseCode.INTERNAL_ERROR, reason)
                )
                self._abort()  # it does not read: do not wait for the close frame to drain
            return
        if now - self.quiet_since >= interval_s:
            self.ping_sent_at = now
            self._send_frame(ping_frame(struct.pack("!I", secrets.randbits(32))))

    def _abort(self) -> None:
        """End the TCP connection now, unsent data or not (a client that does not read)."""
        self.open = False
        self.closing = True
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def _clear_inbox(self) -> None:
        self.inbox.clear()
        self.inbox_bytes = 0
        self._control = None

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = True
            self.transport.pause_reading()

    def _maybe_resume(self) -> None:
        """Read again once the opening is done, the client reads and the inbox has room."""
        if (
            self.read_paused
            and not self.write_paused
            and (self.session is not None or self.closing)
            and len(self.inbox) < INBOX_PAUSE // 2
            and self.inbox_bytes <= 2 * self.limits.max_frame_bytes
        ):
            self._resume_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = False
            self.transport.resume_reading()

    def _release(self) -> None:
        """The connection is gone: give up the worker's live socket (and take them offline)."""
        if self.released or not self.claimed or self.session is None:
            return
        self.released = True
        self.gateway.spawn(
            _release(self.tracking, self.session, self), "worker-socket-release", self._server_tasks
        )


_CLOSE_ERRORS = {
    CloseCode.REPLACED: "replaced",
    CloseCode.GOING_AWAY: "going_away",
    CloseCode.UNAUTHENTICATED: "account_frozen",  # the only 4401 after opening
}
_UNAVAILABLE = encode_error(
    "unavailable", "location store unavailable; keep the fixes and send them again"
)
_UNAVAILABLE_RESEND = encode_error(
    "unavailable",
    "the fixes before this frame were not written: send them again first, oldest first",
    "fixes[0].seq",
)


async def _release(tracking: Tracking, session: WorkerSession, conn: WorkerConnection) -> None:
    try:
        await tracking.went_offline(session, conn)  # offline, if still the live socket
    except STORE_ERRORS as e:  # presence expires on its own: the stale sweep takes them out
        log.warning("releasing worker %s's socket failed: %s", session.worker_id, e)


class _Refused(Exception):
    """The socket is refused while opening: the close code, the error frame's fields."""

    def __init__(self, close_code: int, error: str, message: str, field: str | None = None):
        super().__init__(message)
        self.close_code, self.error, self.message, self.field = close_code, error, message, field


def _token(request: Request) -> str:
    """The access token from ``Authorization: Bearer`` or ``?access_token=``."""
    headers = request.headers.get_all("Authorization")
    if len(headers) > 1:
        raise _Refused(
            CloseCode.UNAUTHENTICATED,
            "unauthenticated",
            "send one Authorization header",
            "authorization",
        )
    scheme, _, token = (headers[0] if headers else "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token:
        _, _, query = request.path.partition("?")
        values = parse_qs(query).get("access_token", [])
        token = values[0] if values else ""
    if not token:
        raise _Refused(
            CloseCode.UNAUTHENTICATED,
            "unauthenticated",
            "send 'Authorization: Bearer <token>' or ?access_token=",
            "authorization",
        )
    return token


async def sos_reply(
    desk: SafetyDesk | None,
    session: WorkerSession,
    msg: SosMsg,
    known: tuple[str, int | None] | None = None,
) -> bytes:
    """Raise the worker's SOS from the socket (``known``: their city and the job this
    process tracks for them); ``sos_result`` says how it went."""
    try:
        if desk is None:
            raise SafetyUnavailable("SOS is not served by this process; use POST /v1/sos")
        check_position(msg.lat, msg.lng)
        result = await desk.sos(
            session.worker_id,
            ("worker",),
            order_id=msg.order_id,
            lat=msg.lat,
            lng=msg.lng,
            note=msg.note.strip(),
            source="worker_socket",
            known=known,
        )
    except DoorstepError as e:
        return orjson.dumps(
            {
                "type": "sos_result",
                "ok": False,
                "error": {"code": e.code, "message": e.message, "field": e.field},
            }
        )
    a = result.alert
    return orjson.dumps(
        {
            "type": "sos_result",
            "ok": True,
            "alert_id": a.id,
            "repeat": result.repeat,
            "repeats": a.repeats,
            "contacts_told": result.contacts_told,
        }
    )


async def offer_reply(
    tracking: Tracking, session: WorkerSession, msg: OfferReplyMsg, *, offer_cooldown_s: int
) -> bytes:
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
            tracking.stores,
            tracking,
            msg.offer_id,
            session.worker_id,
            msg.reason.strip(),
            cooldown_s=offer_cooldown_s,
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

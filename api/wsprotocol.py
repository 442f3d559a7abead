"""uvicorn's websocket protocol for Doorstep: one upgrade path served natively.

uvicorn hands every upgrade request to its ``ws`` protocol class. This one looks at the
request line: the worker socket (``/v1/ws/worker``) goes to
:class:`api.worker_socket.WorkerConnection`, every other path (the order socket, the
city feed) to uvicorn's own sans-I/O websockets protocol and from there to the ASGI
app, as before, with two changes (:class:`AsgiWebSocketProtocol`): messages are bounded
by ``[live_socket] max_frame_bytes`` (1009 above it, before the message is buffered),
and a text message that is not UTF-8 closes with 1007 and one log line, not uvicorn's
traceback. Every server of Doorstep runs uvicorn with it (``api.serving``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from api.worker_socket import WORKER_PATH, WorkerConnection, WorkerGateway
from tracking.protocol import encode_error
from tracking.session import LiveSocketParams

GATEWAY_STATE = "doorstep.worker_gateway"  # the lifespan state entry holding the gateway
LIVE_LIMITS_STATE = "doorstep.live_limits"  # ... and the order and feed sockets' limits

log = logging.getLogger("doorstep.api.sockets")


class AsgiWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol with the order and feed sockets' message size
    limit, and a quiet close for a text message that is not UTF-8."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(LIVE_LIMITS_STATE)
        if isinstance(limits, LiveSocketParams):
            # websockets refuses a larger message as its frames arrive: 1009, unbuffered.
            self.conn.max_message_size = limits.max_frame_bytes

    def send_receive_event_to_app(self) -> None:
        """uvicorn logs a traceback for a text message that is not UTF-8 (bad client
        input, not a server fault): check it here, say why and close with 1007."""
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError as e:
                self.frames = []
                path = self.scope["path"] if hasattr(self, "scope") else "?"
                log.info(
                    "websocket %s: a text message that is not UTF-8 (%s at byte %d); closed 1007",
                    path,
                    e.reason,
                    e.start,
                )
                self.conn.send_text(
                    encode_error("protocol_error", "a text frame that is not UTF-8")
                )
                self.conn.send_close(1007, "text frame not UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()


class WebSocketProtocol(asyncio.Protocol):
    """Chooses, from the upgrade request, which protocol serves the connection."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        """The upgrade request, whole (uvicorn passes the parsed request back in)."""
        assert self.transport is not None
        target = data.split(b" ", 2)[1] if data.count(b" ") >= 2 else b""
        path = unquote(target.partition(b"?")[0].decode("latin-1"))
        gateway = self.app_state.get(GATEWAY_STATE)
        protocol: asyncio.Protocol
        if path == WORKER_PATH and isinstance(gateway, WorkerGateway):
            protocol = WorkerConnection(
                gateway, connections=self.server_state.connections, tasks=self.server_state.tasks
            )
        else:
            protocol = AsgiWebSocketProtocol(self.config, self.server_state, self.app_state)
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(data)

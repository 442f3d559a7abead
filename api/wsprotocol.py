"""uvicorn's websocket protocol for Doorstep: one upgrade path served natively.

uvicorn hands every upgrade request to its ``ws`` protocol class. This one looks at the
request line: the worker socket (``/v1/ws/worker``) goes to
:class:`api.worker_socket.WorkerConnection`, every other path (the order socket, the
city feed) to uvicorn's own sans-I/O websockets protocol and from there to the ASGI
app, as before. Every server of Doorstep runs uvicorn with it (``api.serving``).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from api.worker_socket import WORKER_PATH, WorkerConnection, WorkerGateway

GATEWAY_STATE = "doorstep.worker_gateway"  # the lifespan state entry holding the gateway


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
            protocol = WebSocketsSansIOProtocol(
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(data)

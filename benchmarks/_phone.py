"""A light websocket client for the load generators: many "phones" in one process.

websockets' asyncio client wakes a reader task per message and awaits a drain per send:
in ``ingest.py`` the generator spent about 50 µs of CPU reading each ack on top of
sending the frame (2026-12-04), which on a 2-core machine is CPU the server under test
does not get. Here a connection is an :class:`asyncio.Protocol`: the upgrade request
is websockets' own (its sans-I/O ``ClientProtocol``), the 101 answer is checked, and
then frames are written and read directly: text frames masked as RFC 6455 requires,
server frames parsed in ``data_received``, pings answered, close frames echoed.

Benchmark code only: it trusts the server it measures (no limits on frame sizes).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _client_frame(opcode: int, payload: bytes) -> bytes:
    mask = random.getrandbits(32).to_bytes(4, "big")
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + mask + apply_mask(payload, mask)


class PhoneSocket(asyncio.Protocol):
    """One client websocket; ``on_text`` gets every text message from the server after the
    first (which resolves ``first``)."""

    def __init__(self, request: bytes, key: str, on_text: Callable[[bytes], None] | None) -> None:
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_code: int | None = None
        self._upgraded = False
        self._buf = b""

    @classmethod
    async def open(
        cls,
        url: str,
        headers: dict[str, str],
        on_text: Callable[[bytes], None] | None = None,
        *,
        timeout_s: float = 60.0,
    ) -> PhoneSocket:
        """Connect and upgrade; raises on a refused upgrade or a timeout."""
        uri = parse_uri(url)
        client = ClientProtocol(uri)
        request = client.connect()
        for name, value in headers.items():
            request.headers[name] = value
        client.send_request(request)
        raw = b"".join(client.data_to_send())
        key = request.headers["Sec-WebSocket-Key"]
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: cls(raw, key, on_text), uri.host, uri.port),
            timeout_s,
        )
        phone = proto
        try:
            await asyncio.wait_for(asyncio.shield(phone.opened), timeout_s)
        except BaseException:
            phone.abort()
            raise
        return phone

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = ConnectionError(f"connection lost (close code {self.close_code})")
        for fut in (self.opened, self.first):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: nobody may be waiting

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            response, buf = buf[:end], buf[end + 4 :]
            status = response.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" " or self._accept not in response:
                self.opened.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                self.abort()
                return
            self._upgraded = True
            self.opened.set_result(None)
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, length = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            stop = pos + head + length
            if stop > end:
                break
            payload = buf[pos + head : stop]
            pos = stop
            opcode = b0 & 0x0F
            if opcode == 0x1:
                if not self.first.done():
                    self.first.set_result(payload)
                elif self.on_text is not None:
                    self.on_text(payload)
            elif opcode == 0x9:  # ping
                self._write(_client_frame(0xA, payload))
            elif opcode == 0x8:  # close: echo it, the server ends the connection
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self._write(_client_frame(0x8, payload[:2]))
                self.closed = True
        self._buf = buf[pos:]

    # --- sending ------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        """One masked text frame."""
        self._write(_client_frame(0x1, payload))

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the server closes the TCP connection."""
        if not self.closed:
            self._write(_client_frame(0x8, code.to_bytes(2, "big")))
            self.closed = True

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

"""WebSocket frames of a server connection without extensions (RFC 6455 §5), sans I/O.

The worker socket reads frames with :class:`FrameReader` and writes them with the
``*_frame`` functions; websockets' ``ServerProtocol`` does its opening handshake. Why
not websockets for the frames as well: its generator-based parser costs 8.6 µs per
~100-byte frame here against 1.4 µs for this loop, on a path that runs for every fix
frame of every worker (measured: ``benchmarks/README.md``, the ingest section). The
parts that carry the rules are websockets' own: :func:`apply_mask` (its C speedup) and
:class:`~websockets.frames.Close` for close codes and reasons.

Pure: bytes in, messages (or a :class:`ProtocolViolation` with the close code) out.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from websockets.exceptions import ProtocolError
from websockets.frames import Close

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

Kind = Literal["text", "binary", "ping", "pong", "close"]


class Message(NamedTuple):
    """A whole message (fragments joined) or a control frame.

    For ``close``: ``code`` (1005 when the frame had none) and ``reason``.
    """

    kind: Kind
    data: bytes
    code: int = 0
    reason: str = ""


class ProtocolViolation(Exception):
    """The client broke the protocol; close with ``code`` (1002, 1007 or 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_KINDS: dict[int, Kind] = {0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}


class FrameReader:
    """Client → server frames: masked, RSV bits 0, fragments joined, sizes bounded.

    ``max_size`` bounds a message (all its fragments) and so every frame. After a
    ``close`` message, or after a :class:`ProtocolViolation`, further input is ignored.
    """

    __slots__ = ("_buf", "_frag", "_frag_kind", "_frag_size", "done", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._frag: list[bytes] | None = None  # the fragments of a message in progress
        self._frag_kind: Kind = "text"
        self._frag_size = 0
        self.done = False

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by ``data``; raises :class:`ProtocolViolation`."""
        if self.done:
            return []
        if not self._buf and self._frag is None and len(data) > 5:
            # The common case, read by itself: exactly one whole, unfragmented, masked
            # ASCII text frame (a frame of fixes, ~100-500 bytes).
            b0, b1 = data[0], data[1]
            if b0 == 0x81 and 0x80 <= b1 <= 0xFD and len(data) == b1 - 0x7A:
                payload = apply_mask(data[6:], data[2:6])
                if payload.isascii():
                    return [Message("text", payload)]
            elif b0 == 0x81 and b1 == 0xFE and len(data) > 8:
                length = (data[2] << 8) | data[3]
                if len(data) == length + 8 and length <= self.max_size:
                    payload = apply_mask(data[8:], data[4:8])
                    if payload.isascii():
                        return [Message("text", payload)]
        if self._buf:  # a frame began in an earlier read: append, do not copy it again
            self._buf += data
            buf: bytes | bytearray = self._buf
        else:
            buf = data
        out: list[Message] = []
        pos, end = 0, len(buf)
        try:
            while end - pos >= 2:
                b0, b1 = buf[pos], buf[pos + 1]
                if not b1 & 0x80:
                    raise ProtocolViolation(1002, "a client's frames must be masked")
                if b0 & 0x70:
                    raise ProtocolViolation(
                        1002, "reserved bits must be 0 (no extension was agreed)"
                    )
                length, head = b1 & 0x7F, 6
                if length == 126:
                    if end - pos < 4:
                        break
                    length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 8
                elif length == 127:
                    if end - pos < 10:
                        break
                    length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 14
                if length > self.max_size:
                    raise ProtocolViolation(1009, f"frame of {length} bytes, over {self.max_size}")
                stop = pos + head + length
                if stop > end:
                    break
                payload = apply_mask(
                    buf[pos + head : stop], bytes(buf[pos + head - 4 : pos + head])
                )
                pos = stop
                message = self._frame(b0 & 0x80, b0 & 0x0F, payload)
                if message is not None:
                    out.append(message)
                    if message.kind == "close":
                        self.done = True
                        break
        except ProtocolViolation:
            self.done = True
            raise
        if self.done or pos == end:
            self._buf = bytearray()
        elif buf is self._buf:
            del self._buf[:pos]
        else:
            self._buf = bytearray(buf[pos:])
        return out

    def _frame(self, fin: int, opcode: int, payload: bytes) -> Message | None:
        kind = _KINDS.get(opcode)
        if opcode == 0x0:  # a continuation
            if self._frag is None:
                raise ProtocolViolation(1002, "continuation frame without a message to continue")
            self._frag_size += len(payload)
            if self._frag_size > self.max_size:
                raise ProtocolViolation(1009, f"message over {self.max_size} bytes")
            self._frag.append(payload)
            if not fin:
                return None
            payload, kind = b"".join(self._frag), self._frag_kind
            self._frag = None
        elif kind is None:
            raise ProtocolViolation(1002, f"unknown opcode {opcode:#x}")
        elif opcode >= 0x8:  # control frames: whole, short, may come between fragments
            if not fin:
                raise ProtocolViolation(1002, "control frames must not be fragmented")
            if len(payload) > 125:
                raise ProtocolViolation(1002, "control frames carry at most 125 bytes")
            if kind == "close":
                return _close(payload)
            return Message(kind, payload)
        else:  # text or binary
            if self._frag is not None:
                raise ProtocolViolation(1002, "a new message began before the last one ended")
            if not fin:
                self._frag, self._frag_kind, self._frag_size = [payload], kind, len(payload)
                return None
        if kind == "text" and not payload.isascii():
            try:
                payload.decode()
            except UnicodeDecodeError as e:
                raise ProtocolViolation(1007, f"invalid UTF-8 at byte {e.start}") from None
        return Message(kind, payload)


def _close(payload: bytes) -> Message:
    try:
        close = Close.parse(payload)  # 1005 for an empty payload; checks code and UTF-8
    except ProtocolError as e:
        raise ProtocolViolation(1002, str(e)) from None
    except UnicodeDecodeError:
        raise ProtocolViolation(1007, "close reason is not valid UTF-8") from None
    return Message("close", payload, close.code, close.reason)


def _header(first: int, n: int) -> bytes:
    if n < 126:
        return bytes((first, n))
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big")
    return bytes((first, 127)) + n.to_bytes(8, "big")


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame (a server's frames are not masked)."""
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes((n,)) + payload
    return _header(0x81, n) + payload


def ping_frame(payload: bytes) -> bytes:
    """A ping (payload ≤ 125 bytes)."""
    return _header(0x89, len(payload)) + payload


def pong_frame(payload: bytes) -> bytes:
    """The pong answering a ping with ``payload``."""
    return _header(0x8A, len(payload)) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; 1005 (no code received) is sent as an empty close frame. The
    reason is cut to the 123 bytes a control frame leaves it, at a character boundary."""
    raw = reason.encode()
    if len(raw) > 123:
        reason = raw[:123].decode(errors="ignore")
    payload = b"" if code == 1005 else Close(code, reason).serialize()
    return _header(0x88, len(payload)) + payload

"""The sans-I/O websocket frames of the worker socket (api/wsframes.py), against RFC 6455."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from api.wsframes import (
    FrameReader,
    Kind,
    Message,
    ProtocolViolation,
    close_frame,
    ping_frame,
    pong_frame,
    text_frame,
)
from tests.helpers import client_frame

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX = 1000  # the readers' max_size in these tests


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """A close frame's payload: the code in two bytes, then the reason's bytes."""
    return code.to_bytes(2, "big") + reason


def violation(data: bytes, max_size: int = MAX) -> ProtocolViolation:
    """The violation that ``data`` makes a fresh reader raise (the reader is done after it)."""
    reader = FrameReader(max_size)
    with pytest.raises(ProtocolViolation) as info:
        reader.feed(data)
    assert reader.done
    return info.value


def server_frames(data: bytes) -> list[Frame]:
    """The frames in ``data`` as websockets' own client parses them (server frames)."""
    client = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    frames = [e for e in client.events_received() if isinstance(e, Frame)]
    assert client.parser_exc is None, client.parser_exc
    return frames


# --- reading -----------------------------------------------------------------------------


def test_one_text_frame() -> None:
    """One masked text frame comes out as one text message, unmasked."""
    reader = FrameReader(MAX)
    assert reader.feed(client_frame(TEXT, b'{"type": "ping"}')) == [
        Message("text", b'{"type": "ping"}')
    ]
    assert not reader.done


def test_several_frames_in_one_chunk() -> None:
    """Frames arriving in one chunk come out in order, each whole, with different masks."""
    chunk = (
        client_frame(TEXT, b"one", mask=b"\x00\x00\x00\x00")
        + client_frame(BINARY, b"\x00\xff", mask=b"\xff\xfe\xfd\xfc")
        + client_frame(PING, b"p", mask=b"wxyz")
        + client_frame(PONG, b"", mask=b"1234")
        + client_frame(TEXT, b"two")
    )
    assert FrameReader(MAX).feed(chunk) == [
        Message("text", b"one"),
        Message("binary", b"\x00\xff"),
        Message("ping", b"p"),
        Message("pong", b""),
        Message("text", b"two"),
    ]


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300])
def test_a_frame_split_at_every_byte_boundary(size: int) -> None:
    """A frame cut in two anywhere (in the header, the mask or the payload) is read once whole."""
    payload = bytes(i % 95 + 32 for i in range(size))
    data = client_frame(TEXT, payload) + client_frame(PING, b"after")
    whole = [Message("text", payload), Message("ping", b"after")]
    for cut in range(1, len(data)):
        reader = FrameReader(MAX)
        first = reader.feed(data[:cut])
        got = first + reader.feed(data[cut:])
        assert got == whole, cut
        assert all(type(m.data) is bytes for m in got)  # not a view of the reader's buffer
        assert first == ([whole[0]] if cut >= len(data) - 11 else []), cut


def test_a_frame_fed_one_byte_at_a_time() -> None:
    """Bytes fed one by one give each message exactly once, on its last byte."""
    payload = bytes(range(200))
    data = client_frame(BINARY, payload) + client_frame(TEXT, b"x" * 130)
    reader = FrameReader(MAX)
    got: list[tuple[int, Message]] = []
    for i in range(len(data)):
        got += [(i, m) for m in reader.feed(data[i : i + 1])]
    first_end = len(client_frame(BINARY, payload)) - 1
    assert got == [
        (first_end, Message("binary", payload)),
        (len(data) - 1, Message("text", b"x" * 130)),
    ]


def test_a_64_bit_length_frame_split_in_its_header() -> None:
    """A frame with a 64-bit length split anywhere in its 14-byte head is read whole."""
    payload = b"z" * 70_000
    data = client_frame(TEXT, payload)
    for cut in [*range(1, 15), 1000, len(data) - 1]:
        reader = FrameReader(100_000)
        assert reader.feed(data[:cut]) == []
        assert reader.feed(data[cut:]) == [Message("text", payload)], cut


@pytest.mark.parametrize(
    ("size", "head"),
    [
        (125, b"\x81\xfd"),
        (126, b"\x81\xfe\x00\x7e"),
        (65535, b"\x81\xfe\xff\xff"),
        (65536, b"\x81\xff\x00\x00\x00\x00\x00\x01\x00\x00"),
        (70_000, b"\x81\xff" + (70_000).to_bytes(8, "big")),
    ],
)
def test_7_16_and_64_bit_lengths(size: int, head: bytes) -> None:
    """Payloads at the edges of the 7-, 16- and 64-bit length encodings are read whole."""
    payload = b"a" * size
    data = client_frame(TEXT, payload)
    assert data.startswith(head + b"abcd")  # the helper encodes what the RFC says
    assert FrameReader(100_000).feed(data) == [Message("text", payload)]


def test_fragmented_text_with_a_ping_between_fragments() -> None:
    """A ping between fragments comes out at once, then the text, joined, when it ends."""
    reader = FrameReader(MAX)
    assert reader.feed(client_frame(TEXT, b'{"type": ', fin=False)) == []
    assert reader.feed(client_frame(PING, b"keep")) == [Message("ping", b"keep")]
    assert reader.feed(client_frame(CONT, b'"pi', fin=False)) == []
    assert reader.feed(client_frame(CONT, b'ng"}')) == [Message("text", b'{"type": "ping"}')]
    # and the next message starts afresh
    assert reader.feed(client_frame(TEXT, b"next")) == [Message("text", b"next")]


def test_fragments_in_one_chunk_and_a_character_split_between_them() -> None:
    """Fragments in one chunk join, and a UTF-8 character split across two of them is valid."""
    text = "李师傅".encode()
    chunk = (
        client_frame(TEXT, text[:4], fin=False)  # ends inside 师
        + client_frame(PONG, b"")
        + client_frame(CONT, b"", fin=False)  # empty fragments are allowed
        + client_frame(CONT, text[4:])
    )
    assert FrameReader(MAX).feed(chunk) == [Message("pong", b""), Message("text", text)]


def test_fragmented_binary_message() -> None:
    """A fragmented binary message comes out joined, of kind binary."""
    chunk = client_frame(BINARY, b"\x00\x01", fin=False) + client_frame(CONT, b"\x02")
    assert FrameReader(MAX).feed(chunk) == [Message("binary", b"\x00\x01\x02")]


def test_valid_non_ascii_text() -> None:
    """Text with non-ASCII UTF-8 (Chinese, an emoji, an accent) passes unchanged."""
    text = "上门服务 🧹 café".encode()
    assert FrameReader(MAX).feed(client_frame(TEXT, text)) == [Message("text", text)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(client_frame(CONT, b"x"), id="continuation-without-start"),
        pytest.param(client_frame(CONT, b"x", fin=False), id="unfinished-continuation-first"),
        pytest.param(
            client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"),
            id="new-text-while-fragmented",
        ),
        pytest.param(
            client_frame(BINARY, b"a", fin=False) + client_frame(TEXT, b"b", fin=False),
            id="new-message-while-fragmented",
        ),
        pytest.param(client_frame(TEXT, b"hi", mask=None), id="unmasked-text"),
        pytest.param(client_frame(PING, b"", mask=None), id="unmasked-ping"),
        pytest.param(client_frame(TEXT, b"hi", rsv=4), id="rsv1"),
        pytest.param(client_frame(TEXT, b"hi", rsv=2), id="rsv2"),
        pytest.param(client_frame(TEXT, b"hi", rsv=1), id="rsv3"),
        pytest.param(client_frame(3, b"hi"), id="opcode-3"),
        pytest.param(client_frame(7, b"hi"), id="opcode-7"),
        pytest.param(client_frame(0xB, b"hi"), id="opcode-0xB"),
        pytest.param(client_frame(0xF, b""), id="opcode-0xF"),
        pytest.param(client_frame(PING, b"p", fin=False), id="fragmented-ping"),
        pytest.param(client_frame(CLOSE, b"", fin=False), id="fragmented-close"),
        pytest.param(client_frame(PING, b"p" * 126), id="ping-over-125"),
        pytest.param(client_frame(PONG, b"p" * 126), id="pong-over-125"),
        pytest.param(client_frame(CLOSE, close_payload(1000, b"r" * 124)), id="close-over-125"),
        pytest.param(client_frame(CLOSE, b"\x03"), id="close-1-byte"),
        pytest.param(client_frame(CLOSE, close_payload(999)), id="close-999"),
        pytest.param(client_frame(CLOSE, close_payload(1004)), id="close-1004"),
        pytest.param(client_frame(CLOSE, close_payload(1005)), id="close-1005-in-frame"),
        pytest.param(client_frame(CLOSE, close_payload(1006)), id="close-1006"),
        pytest.param(client_frame(CLOSE, close_payload(1015)), id="close-1015"),
        pytest.param(client_frame(CLOSE, close_payload(2999)), id="close-2999"),
        pytest.param(client_frame(CLOSE, close_payload(5000)), id="close-5000"),
        pytest.param(client_frame(CLOSE, close_payload(0)), id="close-0"),
    ],
)
def test_protocol_errors_close_with_1002(data: bytes) -> None:
    """Each breach of the framing rules raises a violation with close code 1002."""
    assert violation(data).code == 1002


def test_a_violation_is_raised_from_the_header_alone() -> None:
    """An unmasked or reserved-bit frame is refused from its first two bytes, before its payload."""
    assert violation(client_frame(TEXT, b"x" * 500, mask=None)[:2]).code == 1002
    assert violation(client_frame(TEXT, b"x" * 500, rsv=4)[:2]).code == 1002


@pytest.mark.parametrize(
    ("data", "max_size"),
    [
        pytest.param(client_frame(TEXT, b"x" * 1001), 1000, id="text-frame"),
        pytest.param(client_frame(BINARY, b"x" * 1001), 1000, id="binary-frame"),
        pytest.param(client_frame(TEXT, b"x" * 126), 125, id="16-bit-length"),
        pytest.param(client_frame(TEXT, b"x" * 70_000)[:14], 65_536, id="64-bit-header-only"),
        pytest.param(
            b"\x81\xff" + (2**63 - 1).to_bytes(8, "big") + b"abcd", 1000, id="huge-length"
        ),
        pytest.param(
            client_frame(TEXT, b"x" * 600, fin=False) + client_frame(CONT, b"x" * 401),
            1000,
            id="two-fragments",
        ),
        pytest.param(
            b"".join(
                client_frame(BINARY if i == 0 else CONT, b"x" * 100, fin=False) for i in range(11)
            ),
            1000,
            id="eleven-unfinished-fragments",
        ),
    ],
)
def test_too_big_closes_with_1009(data: bytes, max_size: int) -> None:
    """A frame, or a fragmented message in all, over max_size raises 1009."""
    assert violation(data, max_size).code == 1009


def test_exactly_max_size_passes() -> None:
    """A frame, and a fragmented message, of exactly max_size bytes are read."""
    reader = FrameReader(MAX)
    assert reader.feed(client_frame(TEXT, b"x" * MAX)) == [Message("text", b"x" * MAX)]
    chunk = client_frame(TEXT, b"x" * 600, fin=False) + client_frame(CONT, b"x" * 400)
    assert reader.feed(chunk) == [Message("text", b"x" * MAX)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(client_frame(TEXT, b"\xff"), id="0xff"),
        pytest.param(client_frame(TEXT, b"ok \xc3\x28"), id="bad-continuation-byte"),
        pytest.param(client_frame(TEXT, "师".encode()[:2]), id="truncated-character"),
        pytest.param(client_frame(TEXT, b"\xed\xa0\x80"), id="surrogate"),
        pytest.param(client_frame(TEXT, b"\xc0\xaf"), id="overlong"),
        pytest.param(
            client_frame(TEXT, "师".encode()[:2], fin=False) + client_frame(CONT, b"!"),
            id="fragmented",
        ),
        pytest.param(client_frame(CLOSE, close_payload(1000, b"\xff")), id="close-reason"),
    ],
)
def test_invalid_utf8_closes_with_1007(data: bytes) -> None:
    """Text (whole or fragmented) or a close reason that is not UTF-8 raises 1007."""
    assert violation(data).code == 1007


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        (close_payload(1000, b"bye"), 1000, "bye"),
        (close_payload(1001), 1001, ""),
        (close_payload(4001, "换了新连接".encode()), 4001, "换了新连接"),
        (close_payload(3000), 3000, ""),
        (close_payload(4999), 4999, ""),
        (close_payload(1000, b"r" * 123), 1000, "r" * 123),
        (b"", 1005, ""),
    ],
)
def test_close_frames(payload: bytes, code: int, reason: str) -> None:
    """A close frame gives its code and reason; an empty one gives 1005."""
    reader = FrameReader(MAX)
    assert reader.feed(client_frame(CLOSE, payload)) == [Message("close", payload, code, reason)]
    assert reader.done


def test_input_after_a_close_is_ignored() -> None:
    """After a close, the rest of the chunk and later input yield nothing, even bad frames."""
    reader = FrameReader(MAX)
    chunk = (
        client_frame(TEXT, b"before")
        + client_frame(CLOSE, close_payload(1000))
        + client_frame(TEXT, b"after")
    )
    assert reader.feed(chunk) == [Message("text", b"before"), Message("close", b"\x03\xe8", 1000)]
    assert reader.feed(client_frame(TEXT, b"later")) == []
    assert reader.feed(client_frame(TEXT, b"unmasked", mask=None)) == []
    assert reader.done


def test_input_after_a_violation_is_ignored() -> None:
    """After a violation, valid frames and further violations yield nothing and raise nothing."""
    reader = FrameReader(MAX)
    with pytest.raises(ProtocolViolation):
        reader.feed(client_frame(TEXT, b"x", mask=None))
    assert reader.feed(client_frame(TEXT, b"fine")) == []
    assert reader.feed(client_frame(CONT, b"bad")) == []


def test_bytes_after_a_close_are_dropped() -> None:
    """A close in the middle of the buffer ends reading: the bytes after it are dropped."""
    reader = FrameReader(MAX)
    frame = client_frame(TEXT, b"after")
    assert reader.feed(client_frame(CLOSE, b"") + frame[:3]) == [Message("close", b"", 1005)]
    assert reader.feed(frame[3:]) == []


def test_the_violation_names_the_problem() -> None:
    """A violation's reason says what was wrong, for the close frame and the log."""
    assert "masked" in violation(client_frame(TEXT, b"x", mask=None)).reason
    assert "0x3" in violation(client_frame(3, b"x")).reason
    assert "1001" in violation(client_frame(TEXT, b"x" * 1001)).reason


# --- writing -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
def test_text_frames_parse_back_with_websockets(size: int) -> None:
    """text_frame gives one unmasked final text frame that websockets' client reads back."""
    payload = bytes(i % 26 + 97 for i in range(size))
    data = text_frame(payload)
    assert data[1] & 0x80 == 0  # a server's frames are not masked
    [frame] = server_frames(data)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)


def test_consecutive_text_frames_parse_back() -> None:
    """Builder output written back to back is read as separate frames, in order."""
    payloads = [b"", "一".encode() * 50, b"b" * 200, b"c" * 66_000]
    frames = server_frames(b"".join(text_frame(p) for p in payloads))
    assert [f.data for f in frames] == payloads


@pytest.mark.parametrize("payload", [b"", b"\x00\x00\x00\x01", b"p" * 125])
def test_ping_and_pong_frames_parse_back(payload: bytes) -> None:
    """ping_frame and pong_frame give control frames with the payload, as websockets reads them."""
    ping, pong = server_frames(ping_frame(payload) + pong_frame(payload))
    assert (ping.opcode, ping.fin, ping.data) == (Opcode.PING, True, payload)
    assert (pong.opcode, pong.fin, pong.data) == (Opcode.PONG, True, payload)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1002, "a client's frames must be masked"), (4401, "invalid token"), (1011, "é")],
)
def test_close_frames_parse_back(code: int, reason: str) -> None:
    """close_frame gives a close frame with the code and reason, as websockets reads it."""
    [frame] = server_frames(close_frame(code, reason))
    assert frame.opcode == Opcode.CLOSE
    assert Close.parse(frame.data) == Close(code, reason)


@pytest.mark.parametrize(
    "reason",
    [
        "服务器正在关闭" * 20,  # 3-byte characters: 123 is a boundary
        "a" + "服务器" * 50,  # 1 + 3k bytes: 123 falls inside a character
        "ab" + "服务器" * 50,  # 2 + 3k bytes: 123 falls inside a character
        "🧹" * 40,  # 4-byte characters
        "x" * 123 + "中",
    ],
)
def test_a_long_close_reason_is_cut_at_a_character_boundary(reason: str) -> None:
    """A reason over 123 bytes is cut to the longest prefix of whole characters that fits."""
    data = close_frame(1001, reason)
    [frame] = server_frames(data)
    assert len(frame.data) <= 125
    close = Close.parse(frame.data)  # valid UTF-8, or this raises
    assert close.code == 1001
    assert reason.startswith(close.reason)
    assert len(close.reason.encode()) <= 123
    assert len(reason[: len(close.reason) + 1].encode()) > 123  # no whole character more fits


def test_close_1005_is_an_empty_close_frame() -> None:
    """close_frame(1005) sends no code at all (1005 may not appear in a frame)."""
    assert close_frame(1005) == b"\x88\x00"
    assert close_frame(1005, "ignored") == b"\x88\x00"
    [frame] = server_frames(close_frame(1005))
    assert Close.parse(frame.data) == Close(1005, "")


def test_builders_round_trip_through_the_reader() -> None:
    """Builder frames, masked as a client would, are read back by FrameReader unchanged."""
    built: list[tuple[bytes, Kind]] = [
        (text_frame("定位".encode()), "text"),
        (ping_frame(b"1234"), "ping"),
        (pong_frame(b""), "pong"),
    ]
    for data, kind in built:
        [frame] = server_frames(data)
        masked = client_frame(data[0] & 0x0F, bytes(frame.data))
        assert FrameReader(MAX).feed(masked) == [Message(kind, bytes(frame.data))]

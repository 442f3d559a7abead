"""The worker socket on the wire: RFC 6455 framing, closing and keepalive, on a real server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.protocol import State
from websockets.utils import accept_key

from api.app import create_app
from api.serving import uvicorn_options
from doorstep.embedded import free_port
from doorstep.settings import Settings
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser, client_frame
from tests.live import closed_code, make_worker, open_worker, recv

PATH = "/v1/ws/worker"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def fix_text(seq: int) -> str:
    """A fresh, plausible fix frame in the live test city."""
    now = int(time.time() * 1000)
    return orjson.dumps(
        {"type": "fix", "seq": seq, "ts_ms": now, "lat": 22.53, "lng": 114.01, "accuracy_m": 6.0}
    ).decode()


def upgrade_request(
    address: str,
    headers: dict[str, str],
    *,
    path: str = PATH,
    drop: tuple[str, ...] = (),
    more: tuple[str, ...] = (),
) -> tuple[bytes, str]:
    """A valid upgrade request (minus the ``drop`` headers, plus the ``more`` header
    lines) and its Sec-WebSocket-Key."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    fields = {
        "Host": address,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        **headers,
    }
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items() if k not in drop]
    lines += more
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


@dataclass
class Raw:
    """A TCP connection to the server that writes and reads websocket frames by hand."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        """Write raw bytes (frames the test built)."""
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self, timeout_s: float = 5.0) -> tuple[int, bytes] | None:
        """The server's next frame as (opcode, payload), or None at EOF (fails after
        ``timeout_s``); checks that it is final, unmasked and has no RSV bits."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), timeout_s)
        except asyncio.IncompleteReadError as e:
            head = e.partial
        if len(head) < 2:
            assert head == b"", head  # EOF between frames, not inside one
            return None
        assert head[0] & 0xF0 == 0x80, head  # FIN, no RSV bits: the server never fragments
        assert head[1] & 0x80 == 0, head  # a server's frames are not masked
        n = head[1] & 0x7F
        if n >= 126:
            ext = await asyncio.wait_for(self.reader.readexactly(2 if n == 126 else 8), timeout_s)
            n = int.from_bytes(ext, "big")
        payload = await asyncio.wait_for(self.reader.readexactly(n), timeout_s)
        return head[0] & 0x0F, payload

    async def json(self) -> dict[str, Any]:
        """The next frame, which must be a JSON text frame."""
        got = await self.frame()
        assert got is not None
        assert got[0] == TEXT, got
        message: dict[str, Any] = orjson.loads(got[1])
        return message

    async def until_eof(self, timeout_s: float = 5.0) -> list[tuple[int, bytes]]:
        """Every frame up to the server closing the TCP connection."""
        frames = []
        deadline = time.monotonic() + timeout_s
        while (got := await self.frame(max(0.01, deadline - time.monotonic()))) is not None:
            frames.append(got)
        return frames

    async def close(self) -> None:
        """Close our end of the TCP connection."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def raw_connection(address: str) -> AsyncIterator[Raw]:
    """A plain TCP connection to the server, closed at the end."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    raw = Raw(reader, writer)
    try:
        yield raw
    finally:
        await raw.close()


async def upgrade(
    raw: Raw, address: str, headers: dict[str, str], path: str = PATH, more: tuple[str, ...] = ()
) -> None:
    """Perform the opening handshake by hand: a valid request, then a checked 101."""
    request, key = upgrade_request(address, headers, path=path, more=more)
    await raw.send(request)
    head = await asyncio.wait_for(raw.reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101 "), head
    fields = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    assert fields["upgrade"].lower() == "websocket"
    assert fields["sec-websocket-accept"] == accept_key(key)
    assert "sec-websocket-extensions" not in fields  # deflate declined: RSV1 stays 0


@contextlib.asynccontextmanager
async def raw_worker(address: str, worker: Account) -> AsyncIterator[Raw]:
    """A raw connection upgraded with the worker's token, its hello frame read."""
    async with raw_connection(address) as raw:
        await upgrade(raw, address, worker.auth)
        assert (await raw.json())["type"] == "hello"
        yield raw


def close_of(frame: tuple[int, bytes] | None) -> Close:
    """The code and reason of a server frame that must be a close frame."""
    assert frame is not None
    assert frame[0] == CLOSE, frame
    return Close.parse(frame[1])


async def answer_close_then_eof(raw: Raw) -> None:
    """Answer the server's close frame as the RFC says; the server then ends the TCP connection."""
    await raw.send(client_frame(CLOSE, b""))
    assert await raw.until_eof() == []


async def wait_offline(stores: Stores, city: str, worker: int) -> None:
    """Wait (up to 20 s) until Redis says the worker is offline."""
    key = stores.keys.worker_state(city, worker)
    for _ in range(400):
        if await stores.redis.hget(key, "state") == b"offline":
            break
        await asyncio.sleep(0.05)
    assert await stores.redis.hget(key, "state") == b"offline"


# --- frames --------------------------------------------------------------------------------


async def test_a_message_fragmented_by_the_client_is_one_frame(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """A fix sent in three fragments (websockets' client) is handled as one frame and acked."""
    ws, hello = await open_worker(live_app[0], worker_account)
    text = fix_text(hello["resume_seq"] + 1)
    await ws.send(iter([text[:5], text[5:20], text[20:]]))
    ack = await recv(ws)
    assert (ack["type"], ack["seq"], ack["accepted"]) == ("ack", hello["resume_seq"] + 1, 1)
    await ws.close()


async def test_a_ping_between_fragments_is_answered_before_the_message(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """On the wire: a ping between two fragments gets its pong at once, then the joined fix its ack."""
    async with raw_worker(live_app[0], worker_account) as raw:
        text = fix_text(1).encode()
        await raw.send(client_frame(TEXT, text[:10], fin=False))
        await raw.send(client_frame(PING, b"between"))
        assert await raw.frame() == (PONG, b"between")
        await raw.send(client_frame(CONT, text[10:]))
        ack = await raw.json()
        assert (ack["type"], ack["seq"], ack["accepted"]) == ("ack", 1, 1)


async def test_a_client_ping_is_answered_with_a_pong(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """A websocket ping from the client gets the matching pong, and the socket stays usable."""
    ws, _ = await open_worker(live_app[0], worker_account)
    for payload in (b"", b"\x00\x01\x02\x03", b"p" * 125):
        await asyncio.wait_for(await ws.ping(payload), 5)
    await ws.send('{"type": "ping"}')
    assert (await recv(ws)) == {"type": "pong"}
    await ws.close()


async def test_a_binary_frame_gets_an_error_then_close_1003(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """On the wire: binary gets a binary_frame error frame, then close 1003; the answer ends it."""
    async with raw_worker(live_app[0], worker_account) as raw:
        await raw.send(client_frame(BINARY, b"\x00\x01"))
        error = await raw.json()
        assert (error["type"], error["code"]) == ("error", "binary_frame")
        assert close_of(await raw.frame()).code == 1003
        await answer_close_then_eof(raw)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(client_frame(TEXT, b'{"type": "ping"}', mask=None), 1002, id="unmasked"),
        pytest.param(client_frame(TEXT, b'{"type": "ping"}', rsv=4), 1002, id="rsv1"),
        pytest.param(client_frame(CONT, b"x"), 1002, id="lone-continuation"),
        pytest.param(client_frame(0x3, b"x"), 1002, id="unknown-opcode"),
        pytest.param(client_frame(PING, b"p" * 126), 1002, id="long-ping"),
        pytest.param(client_frame(CLOSE, b"\x03"), 1002, id="short-close"),
        pytest.param(client_frame(CLOSE, (1005).to_bytes(2, "big")), 1002, id="close-1005"),
        pytest.param(client_frame(TEXT, b'{"type": "\xff"}'), 1007, id="invalid-utf8"),
        pytest.param(client_frame(CLOSE, b"\x03\xe8\xff"), 1007, id="invalid-utf8-reason"),
        pytest.param(  # only the head (4x the default max_frame_bytes, plus one): refused as is
            b"\x81\xff" + (4 * 65536 + 1).to_bytes(8, "big") + b"abcd", 1009, id="over-4x-max"
        ),
    ],
)
async def test_a_broken_frame_fails_the_connection(
    live_app: tuple[str, Any], worker_account: Account, frame: bytes, code: int
) -> None:
    """A frame breaking RFC 6455 gets a protocol_error frame and a close with the code, then TCP ends."""
    async with raw_worker(live_app[0], worker_account) as raw:
        await raw.send(frame)
        frames = await raw.until_eof()
        assert [f[0] for f in frames] == [TEXT, CLOSE], frames  # nothing more after the close
        error, close = orjson.loads(frames[0][1]), close_of(frames[1])
        assert (error["type"], error["code"]) == ("error", "protocol_error")
        assert close.code == code
        assert close.reason == error["message"]  # the same reason, for logs and for the app


async def test_a_whole_message_over_the_reader_limit_is_closed_with_1009(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """A 1 MB message sent in full (over 4x max_frame_bytes) still gets its close 1009, not a reset."""
    ws, _ = await open_worker(live_app[0], worker_account)
    with contextlib.suppress(ConnectionClosed):  # the server may close while we still send
        await ws.send("x" * 1_000_000)
    assert await closed_code(ws) == 1009


async def test_the_worker_is_released_after_a_broken_frame(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """A connection failed for an unmasked frame gives up the worker's socket: offline in Redis."""
    async with raw_worker(live_app[0], worker_account) as raw:
        await raw.send(client_frame(TEXT, fix_text(1).encode()))
        assert (await raw.json())["type"] == "ack"
        await raw.send(client_frame(TEXT, b'{"type": "ping"}', mask=None))
        assert close_of((await raw.until_eof())[-1]).code == 1002
    await wait_offline(stores, live_city, worker_account.id)
    assert await stores.redis.get(stores.keys.worker_socket(worker_account.id)) is None


# --- closing -------------------------------------------------------------------------------


async def test_a_client_close_completes_and_takes_the_worker_offline(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """ws.close(1000) is echoed with 1000; the worker leaves the geo index and presence."""
    ws, hello = await open_worker(live_app[0], worker_account)
    await ws.send(fix_text(hello["resume_seq"] + 1))
    assert (await recv(ws))["type"] == "ack"
    w = str(worker_account.id)
    keys, redis = stores.keys, stores.redis
    assert await redis.zscore(keys.geo(live_city, "available"), w) is not None
    assert await redis.zscore(keys.presence(live_city), w) is not None
    await asyncio.wait_for(ws.close(1000, "done for today"), 5)
    assert ws.state is State.CLOSED
    assert ws.protocol.close_rcvd is not None
    assert ws.protocol.close_rcvd.code == 1000  # the server echoed our code
    assert ws.protocol.close_rcvd_then_sent is False  # we started the closing handshake
    await wait_offline(stores, live_city, worker_account.id)
    assert await redis.zscore(keys.geo(live_city, "available"), w) is None
    assert await redis.zscore(keys.presence(live_city), w) is None
    assert await redis.get(keys.worker_socket(worker_account.id)) is None


@pytest.mark.parametrize(
    ("payload", "echo"),
    [
        pytest.param(b"", b"", id="empty"),
        pytest.param(b"\x03\xe8bye", b"\x03\xe8", id="1000-with-reason"),
        pytest.param(b"\x0f\xa0", b"\x0f\xa0", id="4000"),
    ],
)
async def test_the_server_echoes_a_client_close_and_ends_tcp(
    live_app: tuple[str, Any], worker_account: Account, payload: bytes, echo: bytes
) -> None:
    """On the wire: the client's close is answered with one close frame with its code, then EOF."""
    async with raw_worker(live_app[0], worker_account) as raw:
        await raw.send(client_frame(CLOSE, payload))
        assert await raw.until_eof() == [(CLOSE, echo)]


async def test_a_tcp_close_without_a_close_frame_takes_the_worker_offline(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """A client that just drops TCP (no close frame) is released: offline in Redis, socket key gone."""
    async with raw_worker(live_app[0], worker_account) as raw:
        await raw.send(client_frame(TEXT, fix_text(1).encode()))
        assert (await raw.json())["type"] == "ack"
    await wait_offline(stores, live_city, worker_account.id)
    assert await stores.redis.get(stores.keys.worker_socket(worker_account.id)) is None


@pytest.mark.parametrize(
    "breach",
    [
        pytest.param(client_frame(TEXT, b'{"type": "ping"}', mask=None), id="unmasked"),
        pytest.param(client_frame(TEXT, b"\xff"), id="invalid-utf8"),
        pytest.param(client_frame(CLOSE, b"\x03"), id="short-close"),
    ],
)
async def test_no_second_close_frame_after_the_servers_close(
    live_app: tuple[str, Any], worker_account: Account, breach: bytes
) -> None:
    """After its close frame the server sends nothing more (RFC 6455 §1.4), even for a broken frame."""
    async with raw_worker(live_app[0], worker_account) as raw:
        await raw.send(client_frame(BINARY, b"\x00"))
        assert (await raw.json())["code"] == "binary_frame"
        assert close_of(await raw.frame()).code == 1003  # the closing handshake has begun
        await raw.send(breach)  # the server fails the connection: it must just end TCP
        assert await raw.until_eof() == []


async def test_a_replaced_socket_is_told_why_before_4001(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """The older socket of a worker gets an error frame, then close 4001, when a newer one connects."""
    async with raw_worker(live_app[0], worker_account) as raw:
        newer, _ = await open_worker(live_app[0], worker_account)
        first = await raw.frame()
        second = await raw.frame() if first is not None and first[0] == TEXT else None
        await newer.close()
    assert first is not None
    assert first[0] == TEXT, first
    assert orjson.loads(first[1])["code"] == "replaced"
    assert close_of(second).code == 4001


@pytest.mark.parametrize(
    ("roles", "token", "error", "code"),
    [
        pytest.param(None, "", "unauthenticated", 4401, id="no-token"),
        pytest.param(None, "header", "invalid_token", 4401, id="bad-token"),
        pytest.param(("customer",), "header", "forbidden", 4403, id="customer"),
        pytest.param(("customer",), "query", "forbidden", 4403, id="customer-in-query"),
        pytest.param(("dispatcher",), "header", "forbidden", 4403, id="dispatcher"),
    ],
)
async def test_refusals_on_the_wire(
    live_app: tuple[str, Any],
    make_user: MakeUser,
    roles: tuple[str, ...] | None,
    token: str,
    error: str,
    code: int,
) -> None:
    """A refused upgrade gets an error frame, then a close with the code; answering it ends TCP."""
    address = live_app[0]
    access = (await make_user(*roles)).token if roles else "not-a-token"
    headers = {"Authorization": f"Bearer {access}"} if token == "header" else {}
    path = f"{PATH}?access_token={access}" if token == "query" else PATH
    async with raw_connection(address) as raw:
        await upgrade(raw, address, headers, path)
        frame = await raw.json()
        assert (frame["type"], frame["code"]) == ("error", error)
        close = close_of(await raw.frame())
        assert close.code == code
        assert close.reason == frame["message"][:123]
        await answer_close_then_eof(raw)


async def test_two_authorization_headers_are_refused(
    live_app: tuple[str, Any], worker_account: Account, make_user: MakeUser
) -> None:
    """Two Authorization headers (a worker's and another's) are refused with 4401, not guessed at."""
    address = live_app[0]
    other = await make_user("customer")
    async with raw_connection(address) as raw:
        await upgrade(
            raw, address, worker_account.auth, more=(f"Authorization: Bearer {other.token}",)
        )
        frame = await raw.json()
        assert (frame["type"], frame["code"]) == ("error", "unauthenticated")
        assert close_of(await raw.frame()).code == 4401
        await answer_close_then_eof(raw)


async def test_a_percent_encoded_worker_path_is_the_worker_socket(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """/v1/ws/%77orker is the same path as /v1/ws/worker: the worker socket says hello and acks."""
    address = live_app[0]
    async with raw_connection(address) as raw:
        await upgrade(raw, address, worker_account.auth, path="/v1/ws/%77orker")
        assert (await raw.json())["type"] == "hello"
        await raw.send(client_frame(TEXT, fix_text(1).encode()))
        assert (await raw.json())["type"] == "ack"


@pytest.mark.parametrize(
    ("drop", "extra", "status"),
    [
        pytest.param(("Sec-WebSocket-Key",), {}, 400, id="no-key"),
        pytest.param((), {"Sec-WebSocket-Key": "c2hvcnQ="}, 400, id="short-key"),
        pytest.param(("Sec-WebSocket-Version",), {}, 400, id="no-version"),
        pytest.param((), {"Sec-WebSocket-Version": "8"}, 400, id="version-8"),
    ],
)
async def test_a_bad_upgrade_request_gets_an_http_error_and_the_end(
    live_app: tuple[str, Any],
    worker_account: Account,
    drop: tuple[str, ...],
    extra: dict[str, str],
    status: int,
) -> None:
    """A broken upgrade request (even with a valid token) is answered in HTTP, then TCP ends."""
    address = live_app[0]
    request, _ = upgrade_request(address, {**worker_account.auth, **extra}, drop=drop)
    async with raw_connection(address) as raw:
        await raw.send(request)
        response = await asyncio.wait_for(raw.reader.read(), 5)  # all of it, up to EOF
    assert response.startswith(f"HTTP/1.1 {status} ".encode()), response


# --- keepalive -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def own_server(
    settings: Settings, stores: Stores, params: Path
) -> AsyncIterator[tuple[str, uvicorn.Server, asyncio.Task[None]]]:
    """An app with the ``params`` file on a uvicorn server of its own: (address, server, task)."""
    app = create_app(replace(settings, params_file=params), stores)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=port, log_level="warning"))
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}", server, task
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def pinging_server(settings: Settings, stores: Stores, tmp_path: Path) -> AsyncIterator[str]:
    """A server whose worker sockets are pinged after 0.3 s quiet and closed 0.6 s later."""
    params = tmp_path / "params.toml"
    params.write_text(
        "[socket]\nping_interval_s = 0.3\nping_timeout_s = 0.6\n[gc]\nfreeze = false\n"
    )
    async with own_server(settings, stores, params) as (address, _, _):
        yield address


async def test_keepalive_drops_a_silent_client_and_keeps_a_live_one(
    pinging_server: str,
    worker_account: Account,
    stores: Stores,
    client: httpx.AsyncClient,
    live_city: str,
) -> None:
    """A silent client is pinged, then gets keepalive_timeout and close 1011; one answering pings stays open."""
    other = await make_worker(stores, client, live_city)
    live, _ = await open_worker(pinging_server, other)
    async with raw_worker(pinging_server, worker_account) as raw:
        ping = await raw.frame()
        assert ping is not None
        assert ping[0] == PING
        assert len(ping[1]) <= 125
        rest = await raw.until_eof(timeout_s=4)  # we never answer: it must end
        assert [f[0] for f in rest] == [TEXT, CLOSE], rest
        error, close = orjson.loads(rest[0][1]), close_of(rest[1])
        assert (error["type"], error["code"]) == ("error", "keepalive_timeout")
        assert close.code == 1011
    await wait_offline(stores, live_city, worker_account.id)
    # The websockets client, connected first and as quiet, answered its pings: it is open
    # past the point where the silent one was cut off, and some pings later.
    await asyncio.sleep(1.0)
    assert live.state is State.OPEN
    await live.send('{"type": "ping"}')
    assert (await recv(live)) == {"type": "pong"}
    await live.close()


async def test_keepalive_pings_again_after_a_pong(
    pinging_server: str, worker_account: Account
) -> None:
    """A raw client that answers each ping with its pong is pinged again and never closed."""
    async with raw_worker(pinging_server, worker_account) as raw:
        payloads = []
        for _ in range(3):
            got = await raw.frame()
            assert got is not None
            assert got[0] == PING, got
            payloads.append(got[1])
            await raw.send(client_frame(PONG, got[1]))
        assert len(set(payloads)) == 3  # each ping is a new one
        await raw.send(client_frame(TEXT, b'{"type": "ping"}'))
        frame = await raw.frame()
        while frame is not None and frame[0] == PING:  # a ping may come first: answer it
            await raw.send(client_frame(PONG, frame[1]))
            frame = await raw.frame()
        assert frame == (TEXT, b'{"type":"pong"}')


# --- shutdown ------------------------------------------------------------------------------


async def test_a_server_shutdown_closes_with_1001_and_releases_the_worker(
    settings: Settings, stores: Stores, tmp_path: Path, worker_account: Account, live_city: str
) -> None:
    """Stopping the server sends going_away and close 1001; the answer ends TCP, the worker is offline."""
    params = tmp_path / "params.toml"
    params.write_text("[gc]\nfreeze = false\n")
    async with (
        own_server(settings, stores, params) as (address, server, task),
        raw_worker(address, worker_account) as raw,
    ):
        server.should_exit = True
        error = await raw.json()
        assert (error["type"], error["code"]) == ("error", "going_away")
        assert close_of(await raw.frame()).code == 1001
        await answer_close_then_eof(raw)
        await asyncio.wait_for(asyncio.shield(task), 5)  # the server stops once we are gone
    await wait_offline(stores, live_city, worker_account.id)

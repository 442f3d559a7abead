"""The order socket and the city feed: bounded messages, rate limits and quiet closes on bad input (issue 14, items 7 and 8)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import MakeUser
from tests.live import book, next_of, no_frame_of, recv, watch
from tracking.session import LiveSocketParams

LIMITS = LiveSocketParams()


class Records(logging.Handler):
    """Every log record of the server's loggers while the test runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture
def logs() -> Iterator[Records]:
    """The records of uvicorn's loggers (which do not propagate to the root) and Doorstep's."""
    handler = Records()
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "doorstep", "")]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)


@pytest.fixture(params=["order socket (share link)", "city feed"])
async def live_socket(
    request: pytest.FixtureRequest,
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> AsyncIterator[ClientConnection]:
    """An order socket opened through a share link, or a dispatcher's city feed; its
    snapshot read."""
    if request.param == "city feed":
        dispatcher = await make_user("dispatcher")
        ws = await connect(
            f"ws://{live_app[0]}/v1/ws/cities/{live_city}/feed",
            additional_headers=dispatcher.auth,
        )
        snap = await recv(ws)
    else:
        customer = await make_user("customer")
        order = await book(client, customer, instant_service)
        r = await client.post(f"/v1/orders/{order['id']}/share", headers=customer.auth)
        assert r.status_code in (200, 201), r.text
        ws, snap = await watch(live_app[0], order["id"], share=r.json()["token"])
    assert snap["type"] == "snapshot"
    yield ws
    await ws.close()


async def _until_closed(ws: ClientConnection) -> tuple[int, list[dict[str, Any]]]:
    """Read until the server closes: its close code and the frames before it."""
    frames: list[dict[str, Any]] = []
    try:
        for _ in range(10_000):
            frames.append(await recv(ws))
    except ConnectionClosed as e:
        return (e.rcvd.code if e.rcvd is not None else 1006), frames
    raise AssertionError("the server never closed the socket")


async def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_no_traceback(
    live_socket: ClientConnection, logs: Records
) -> None:
    """Invalid UTF-8 in a text frame: an error frame, close 1007, and no traceback in the logs."""
    ws = live_socket
    await ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
    code, frames = await _until_closed(ws)
    assert code == 1007
    assert [(f["type"], f["code"]) for f in frames] == [("error", "protocol_error")]
    assert logs.tracebacks() == []


async def test_a_message_over_the_size_limit_closes_with_1009(
    live_socket: ClientConnection, logs: Records
) -> None:
    """A message of max_frame_bytes is answered; one byte more closes the socket with 1009."""
    ws = live_socket
    body = '{"type": "ping", "pad": "%s"}'
    fits = body % ("x" * (LIMITS.max_frame_bytes - len(body % "")))
    assert len(fits) == LIMITS.max_frame_bytes
    await ws.send(fits)
    assert (await recv(ws))["type"] == "pong"
    await ws.send(fits + " ")
    code, _ = await _until_closed(ws)
    assert code == 1009
    assert logs.tracebacks() == []


async def test_a_ping_flood_is_rate_limited_then_closed_with_1008(
    live_socket: ClientConnection,
) -> None:
    """Pings beyond the burst get one rate_limited error and no pong; sending on closes with 1008."""
    ws = live_socket
    sent = 2 * int(LIMITS.burst_frames + LIMITS.frames_per_s * LIMITS.flood_close_after_s) + 50
    with contextlib.suppress(ConnectionClosed):  # the server may close before the last
        for _ in range(sent):
            await ws.send('{"type": "ping"}')
    code, frames = await _until_closed(ws)
    assert code == 1008
    pongs = sum(f["type"] == "pong" for f in frames)
    errors = [f["code"] for f in frames if f["type"] == "error"]
    assert errors == ["rate_limited", "flood"]
    # the burst, and what the bucket refilled while the pings were being sent
    assert LIMITS.burst_frames <= pongs < sent / 2


async def test_the_order_socket_pushes_each_status_version_once(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """A status redelivered (same version) or older than one sent is not pushed again."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    ws, snap = await watch(live_app[0], order["id"], headers=customer.auth)
    version = snap["order"]["version"]
    tracking = live_app[1].state.tracking
    channel = tracking.keys.order_channel(order["city_id"], order["id"])

    def status(v: int, name: str) -> bytes:
        return orjson.dumps(
            {"type": "status", "order_id": order["id"], "status": name, "version": v}
        )

    for message in (
        status(version, "confirmed"),  # what the snapshot showed
        status(version + 1, "dispatching"),
        status(version + 1, "dispatching"),  # redelivered
        status(version, "confirmed"),  # late
        status(version + 2, "offered"),
    ):
        await tracking.stores.redis.publish(channel, message)
    first = await next_of(ws, "status")
    second = await next_of(ws, "status")
    assert [first["version"], second["version"]] == [version + 1, version + 2]
    await no_frame_of(ws, "status")
    await ws.close()

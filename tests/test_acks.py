"""Held-back acks (``[socket] ack_interval_ms``): fewer ack frames, nothing unacknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn

from api.app import create_app
from api.serving import uvicorn_options
from doorstep.embedded import free_port
from doorstep.settings import Settings
from doorstep.stores import Stores
from tests.helpers import Account, stop_server
from tests.live import DEST, open_worker, recv, send_acked
from tracking.fixes import FixParams, Track
from tracking.session import FrameResult, SocketParams, WorkerSession


def _session(interval_ms: int) -> WorkerSession:
    return WorkerSession(
        1, "c", "available", Track(), FixParams(), SocketParams(ack_interval_ms=interval_ms)
    )


def _result(seq: int, accepted: int = 1, rejected: list[tuple[int, str]] | None = None) -> Any:
    return FrameResult([], accepted, rejected or [], None, [], seq, seq)


@pytest.mark.parametrize(
    ("interval", "frames", "due"),
    [
        # (ms since start, seq, rejected?, urgent?) -> is the ack due at once?
        (0, [(0, 1, False, False), (10, 2, False, False)], [True, True]),
        (1000, [(5000, 1, False, False), (5100, 2, False, False)], [True, False]),
        (1000, [(5000, 1, False, False), (5100, 2, True, False)], [True, True]),
        (1000, [(5000, 1, False, False), (5100, 2, False, True)], [True, True]),
        (1000, [(5000, 1, False, False), (6000, 2, False, False)], [True, True]),
    ],
)
def test_when_an_ack_is_due(
    interval: int, frames: list[tuple[int, int, bool, bool]], due: list[bool]
) -> None:
    """An ack goes at once when the interval has passed, on a rejection, or when asked for."""
    s = _session(interval)
    got = []
    for now, seq, rejected, urgent in frames:
        r = _result(seq, rejected=[(seq, "low_accuracy")] if rejected else None)
        ok = s.written(r, now, urgent=urgent)
        got.append(ok)
        if ok:
            s.take_ack(now)
    assert got == due


def test_a_held_back_ack_covers_every_frame_since_the_last() -> None:
    """The pending ack carries the highest seq, the sum accepted and every rejection."""
    s = _session(1000)
    assert s.written(_result(1), 5000)
    assert s.take_ack(5000) == (1, 1, [])
    assert not s.written(_result(3, accepted=2), 5100)
    assert not s.written(_result(4, accepted=0), 5200)
    assert s.ack_pending
    assert s.ack_due_at() == 6000
    assert s.take_ack(6000) == (4, 2, [])
    assert not s.ack_pending


Start = Callable[[int], Awaitable[str]]


@pytest.fixture
async def acks_every(settings: Settings, stores: Stores, tmp_path: Path) -> AsyncIterator[Start]:
    """Start servers whose worker sockets ack at most every N ms; stopped at the end."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(interval_ms: int) -> str:
        params = tmp_path / f"params-{interval_ms}.toml"
        params.write_text(
            f"[socket]\nframes_per_s = 50.0\nack_interval_ms = {interval_ms}\n"
            "[gc]\nfreeze = false\n"
        )
        app = create_app(replace(settings, params_file=params), stores)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=port, log_level="warning"))
        )
        running.append((server, asyncio.create_task(server.serve())))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.02)
        return f"127.0.0.1:{port}"

    yield start
    for server, task in running:
        await stop_server(server, task)


def _fix(seq: int, now: int, *, ack: bool = False) -> str:
    body: dict[str, Any] = {
        "type": "fix",
        "seq": seq,
        "ts_ms": now + seq * 1000,
        "accuracy_m": 5.0,
        "lat": DEST[0] + seq * 1e-4,
        "lng": DEST[1],
    }
    if ack:
        body["ack"] = True
    return orjson.dumps(body).decode()


async def test_frames_within_the_interval_share_one_ack(
    acks_every: Start, worker_account: Account, live_city: str, stores: Stores
) -> None:
    """Three quick frames get two acks: the first at once, one later covering the other two."""
    ws, hello = await open_worker(await acks_every(400), worker_account)
    base = hello["resume_seq"]
    now = int(time.time() * 1000) - 10_000
    # The first frame goes through send_acked: a server just started may still shed it
    # (its startup made the event loop late), and the app sends a shed frame again.
    first = await send_acked(ws, orjson.loads(_fix(base + 1, now)))
    assert (first["type"], first["seq"], first["accepted"]) == ("ack", base + 1, 1)
    await ws.send(_fix(base + 2, now))
    await ws.send(_fix(base + 3, now))
    later = await recv(ws)
    assert (later["type"], later["seq"], later["accepted"]) == ("ack", base + 3, 2)
    seq = await stores.redis.hget(stores.keys.worker_state(live_city, worker_account.id), "seq")
    assert seq is not None
    assert int(seq) == base + 3
    await ws.close()


async def test_a_frame_asking_for_an_ack_is_acked_at_once(
    acks_every: Start, worker_account: Account, live_city: str
) -> None:
    """``"ack": true`` gets its ack without waiting for the interval, covering held frames."""
    # With a 60 s interval only the asked-for ack can arrive while the test waits.
    ws, hello = await open_worker(await acks_every(60_000), worker_account)
    base = hello["resume_seq"]
    now = int(time.time() * 1000) - 10_000
    assert (await send_acked(ws, orjson.loads(_fix(base + 1, now))))["seq"] == base + 1
    await ws.send(_fix(base + 2, now))
    await ws.send(_fix(base + 3, now, ack=True))
    ack = await recv(ws)
    assert (ack["seq"], ack["accepted"]) == (base + 3, 2)
    await ws.close()

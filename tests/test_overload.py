"""Load shedding on the worker socket (issue 14, item 12): a server that is behind refuses
frames of fixes with ``overloaded`` instead of queueing them, and takes them again, in
order, once it has caught up (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from api.app import create_app
from api.serving import uvicorn_options
from doorstep.embedded import free_port
from doorstep.settings import Settings
from doorstep.stores import Stores
from tests.helpers import METRICS_AUTH, Account
from tests.live import next_of, open_worker
from tests.test_worker_socket import fix


@pytest.fixture
async def shedding_app(
    settings: Settings, stores: Stores, tmp_path: Path
) -> AsyncIterator[tuple[str, Any]]:
    """A server of its own with load shedding on (the shared test server has it off)."""
    params = tmp_path / "params.toml"
    params.write_text(
        "[gc]\nfreeze = false\n[engine]\nenabled = false\n"
        "[ingest]\nshed_above_ms = 1000.0\nshed_resume_below_ms = 200.0\n"
        "shed_hold_ms = 1000.0\nshed_retry_after_ms = 2000\n"
    )
    port = free_port()
    app = create_app(replace(settings, params_file=params, port=port), stores)
    server = uvicorn.Server(
        uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=port, log_level="warning"))
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task


async def _calm(tracking: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while tracking.overload.shedding:
        assert time.monotonic() < deadline, "the server never stopped shedding"
        await asyncio.sleep(0.05)


async def test_a_late_event_loop_sheds_fixes_until_it_catches_up(
    shedding_app: tuple[str, Any], worker_account: Account
) -> None:
    """A loop blocked 1.3 s sheds the next frames of fixes (overloaded, retry_after_ms, seq
    unmoved); once calm, fixes after the shed ones wait for them, and the resend is acked."""
    address, app = shedding_app
    tracking = app.state.tracking
    await _calm(tracking)
    before = tracking.counters.frames_shed
    ws, _ = await open_worker(address, worker_account)
    await ws.send(orjson.dumps({"type": "fix", **fix(1)}).decode())
    assert (await next_of(ws, "ack"))["seq"] == 1
    time.sleep(1.3)  # noqa: ASYNC251 - the point: the server's event loop is stuck
    deadline = time.monotonic() + 5
    while not tracking.overload.shedding:  # the loop-lag probe sees it on its next wake
        assert time.monotonic() < deadline, "a 1.3 s stall did not start shedding"
        await asyncio.sleep(0.01)
    await ws.send(orjson.dumps({"type": "fix", **fix(2, dlat=1e-5)}).decode())
    shed = await next_of(ws, "error")
    assert shed["code"] == "overloaded"
    assert shed["retry_after_ms"] == 2000
    await ws.send(orjson.dumps({"type": "fix", **fix(3, dlat=2e-5)}).decode())
    assert (await next_of(ws, "error"))["code"] == "overloaded"
    assert tracking.counters.frames_shed - before == 2
    await _calm(tracking)
    await ws.send(orjson.dumps({"type": "fix", **fix(3, dlat=2e-5)}).decode())
    skipped = await next_of(ws, "error")  # 2 was shed: it must come first
    assert (skipped["code"], skipped["field"]) == ("unavailable", "fixes[0].seq")
    both = [fix(2, dlat=1e-5), fix(3, dlat=2e-5)]
    await ws.send(orjson.dumps({"type": "fixes", "fixes": both}).decode())
    ack = await next_of(ws, "ack")
    assert (ack["seq"], ack["accepted"]) == (3, 2)
    await ws.close()
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        metrics = (await client.get("/metrics", headers=METRICS_AUTH)).text
    shed_line = next(x for x in metrics.splitlines() if x.startswith("doorstep_ws_frames_shed"))
    assert float(shed_line.split()[-1]) >= 2


async def test_control_messages_are_never_shed(
    shedding_app: tuple[str, Any], worker_account: Account
) -> None:
    """While shedding fixes, a ping is still answered and a state change still taken."""
    address, app = shedding_app
    tracking = app.state.tracking
    await _calm(tracking)
    ws, _ = await open_worker(address, worker_account)
    time.sleep(1.3)  # noqa: ASYNC251 - the point: the server's event loop is stuck
    deadline = time.monotonic() + 5
    while not tracking.overload.shedding:
        assert time.monotonic() < deadline, "a 1.3 s stall did not start shedding"
        await asyncio.sleep(0.01)
    await ws.send(orjson.dumps({"type": "ping"}).decode())
    assert (await next_of(ws, "pong"))["type"] == "pong"
    await ws.send(orjson.dumps({"type": "state", "state": "unavailable"}).decode())
    assert (await next_of(ws, "state"))["state"] == "unavailable"
    await ws.close()
    await _calm(tracking)

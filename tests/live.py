"""Helpers for tests that talk to the live server over websockets and HTTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from accounts import service as accounts
from dispatch.plans import DayPlans
from doorstep.stores import Stores
from events.relay import Relay
from tests.helpers import PASSWORD, Account, MakeUser, new_phone
from workforce import store as workforce_store
from workforce.models import Window

DEST = (22.5300, 114.0100)  # inside the live test city (the Futian square), on the road graph


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next frame as JSON (fails the test after 15 s: generous for a loaded machine)."""
    frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
    return frame


async def drain(ws: ClientConnection) -> None:
    """Read frames until the connection closes (at most 100, 5 s each)."""
    for _ in range(100):
        await asyncio.wait_for(ws.recv(), 5)


async def open_worker(address: str, account: Account) -> tuple[ClientConnection, dict[str, Any]]:
    """A connected worker socket and its hello frame."""
    ws = await connect(f"ws://{address}/v1/ws/worker", additional_headers=account.auth)
    hello = await recv(ws)
    assert hello["type"] == "hello"
    return ws, hello


async def closed_code(ws: ClientConnection) -> int:
    """Wait until the server closes the socket; its close code."""
    with pytest.raises(ConnectionClosed) as info:
        await drain(ws)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def book(
    client: httpx.AsyncClient, customer: Account, service: str, at: tuple[float, float] = DEST
) -> dict[str, Any]:
    """An instant order at ``at``."""
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": service,
            "lat": at[0],
            "lng": at[1],
            "address_detail": "景田北街3号 5栋1203",
        },
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def watch(
    address: str, order_id: int, *, headers: dict[str, str] | None = None, share: str | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    """An order socket and its snapshot."""
    query = f"?share={share}" if share else ""
    ws = await connect(
        f"ws://{address}/v1/ws/orders/{order_id}{query}", additional_headers=headers or {}
    )
    return ws, await recv(ws)


async def next_of(ws: ClientConnection, kind: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """The next frame of ``kind``, skipping others."""
    deadline = time.monotonic() + timeout_s
    while True:
        frame: dict[str, Any] = orjson.loads(
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        )
        if frame["type"] == kind:
            return frame


async def send_acked(
    ws: ClientConnection, frame: dict[str, Any], timeout_s: float = 15.0
) -> dict[str, Any]:
    """Send a worker's fix frame and wait for its ack (other frames skipped), as the app
    does: a frame the server shed unread (``overloaded``, a busy machine) is sent again
    after its ``retry_after_ms``."""
    deadline = time.monotonic() + timeout_s
    text = orjson.dumps(frame).decode()
    await ws.send(text)
    while True:
        got: dict[str, Any] = orjson.loads(
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        )
        if got["type"] == "ack":
            return got
        if got["type"] == "error" and got.get("code") == "overloaded":
            await asyncio.sleep(got.get("retry_after_ms", 1000) / 1000)
            await ws.send(text)


async def no_frame_of(ws: ClientConnection, kind: str, within_s: float = 0.5) -> None:
    """Fail if a frame of ``kind`` arrives within ``within_s``."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            return
        assert frame["type"] != kind, frame


def walk(
    seq0: int, start: tuple[float, float], end: tuple[float, float], steps: int, t0_ms: int
) -> list[dict[str, Any]]:
    """Fixes every 2 s on a straight line from ``start`` to ``end`` (about 5 m/s)."""
    out = []
    for i in range(steps + 1):
        f = i / steps
        out.append(
            {
                "seq": seq0 + i,
                "ts_ms": t0_ms + i * 2000,
                "accuracy_m": 6.0,
                "lat": start[0] + (end[0] - start[0]) * f,
                "lng": start[1] + (end[1] - start[1]) * f,
            }
        )
    return out


@dataclass(frozen=True)
class EngineCity:
    """A test city of its own and a point at its centre."""

    id: str
    here: tuple[float, float]

    def __str__(self) -> str:
        return self.id


async def make_worker(
    stores: Stores,
    client: httpx.AsyncClient,
    city: str,
    *,
    skills: tuple[str, ...] = (),
    rating: tuple[int, int] = (0, 0),
) -> Account:
    """A worker in ``city``, available around the clock today and tomorrow."""
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="周师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=skills,
        home_lat=22.5,
        home_lng=114.0,
        team_id=None,
        rating_sum=rating[0],
        rating_count=rating[1],
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, user.id, tuple(Window(d, 0, 1440) for d in range(7))
        )
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    body = r.json()
    return Account(user.id, phone, user.roles, body["access_token"], body["refresh_token"])


async def worker_profile(stores: Stores, make_user: MakeUser, city: str) -> Account:
    """A fresh worker (logged in) with a profile in ``city`` and no skills."""
    account = await make_user("worker", name="张师傅")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=account.id,
        city_id=city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    return account


async def make_generalist(stores: Stores, city: str) -> int:
    """A worker in ``city`` with no special skills, available around the clock (no login)."""
    user = await accounts.create_user(
        stores, phone=new_phone(), name="全能阿姨", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, user.id, tuple(Window(d, 0, 1440) for d in range(7))
        )
    return user.id


async def online(address: str, worker: Account, at: tuple[float, float]) -> ClientConnection:
    """Connect the worker and send one fresh fix at ``at``."""
    ws, _ = await open_worker(address, worker)
    await ws.send(
        orjson.dumps(
            {
                "type": "fix",
                "seq": int(time.time() * 1000),
                "ts_ms": int(time.time() * 1000),
                "lat": at[0],
                "lng": at[1],
                "accuracy_m": 5.0,
            }
        ).decode()
    )
    ack = await recv(ws)
    assert ack["accepted"] == 1, ack
    return ws


async def book_here(
    client: httpx.AsyncClient, customer: Account, service: str, at: tuple[float, float]
) -> dict[str, Any]:
    """An instant order at ``at``."""
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": service, "lat": at[0], "lng": at[1]},
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def status_of(stores: Stores, order_id: int) -> str:
    """The order's status in PostgreSQL."""
    return str(await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id))


class SettledPlans:
    """The app's day plans, waited on the way a test needs: order changes reach the day
    plans as events, so first every event is delivered, then the re-plans are awaited."""

    def __init__(self, app: Any) -> None:
        self.runtime: DayPlans = app.state.plans
        self.relay: Relay = app.state.relay

    async def idle(self) -> None:
        """Every event delivered and every background re-plan done."""
        await self.relay.drain()
        await self.runtime.idle()

    @property
    def solves(self) -> int:
        """Full solves run by the app's process."""
        return self.runtime.solves

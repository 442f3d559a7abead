"""The customer's ETA of a chained order (接力单) while its worker finishes the job before
(dispatch/next_eta.py, docs/protocol.md): the snapshot's ``chained`` block and the
``chained`` message, on real stores; the live ETA takes over once the worker is free."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from dispatch.engine import Engine
from dispatch.next_eta import chained_eta
from doorstep.stores import Stores
from tests.chain_setup import chained_offer, on_site
from tests.helpers import Account, MakeUser
from tests.live import (
    EngineCity,
    book_here,
    make_worker,
    next_of,
    no_frame_of,
    online,
    send_acked,
    watch,
)

DRIVE = {"p50_s": 300, "p90_s": 420, "method": "road", "base_s": 250}


def test_the_whole_eta_is_the_time_left_of_the_job_before_plus_the_drive() -> None:
    """Ten minutes before the job before ends, the range is 600 s + the drive's p50 and p90."""
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    block, eta = chained_eta(
        DRIVE, now + timedelta(minutes=10), now, by_worker=True, distance_m=1234.0
    )
    assert (block.departs_in_s, block.by, block.distance_m) == (600, "worker", 1200)
    assert (eta.p50_s, eta.p90_s, eta.base_s, eta.method) == (900, 1020, 850, "road")
    assert block.drive.p50_s == 300


def test_past_the_expected_end_the_worker_leaves_any_moment() -> None:
    """A job before that overran its expected end adds no wait: the ETA is the drive alone."""
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    block, eta = chained_eta(
        DRIVE, now - timedelta(minutes=5), now, by_worker=False, distance_m=40.0
    )
    assert (block.departs_in_s, block.by, block.distance_m) == (0, "duration", 0)
    assert (eta.p50_s, eta.p90_s) == (300, 420)


async def chained_pair(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    city: EngineCity,
    service: str,
    *,
    ends_in_s: int,
) -> tuple[Account, Account, ClientConnection, dict[str, Any], dict[str, Any]]:
    """A worker in service on ``first`` (expected to end in ``ends_in_s``) who accepted a
    chained offer of ``second``, ~680 m away: (worker, customer, worker socket, first, second)."""
    here = city.here
    there = (here[0] - 0.0045, here[1] + 0.0045)
    worker = await make_worker(stores, client, city.id)
    ws = await online(live_app[0], worker, (here[0] + 0.0002, here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, await make_user("customer"), service, here)
    await on_site(client, stores, dispatcher, worker, first, ends_in_s=ends_in_s)
    second = await book_here(client, customer, service, there)
    engine: Engine = live_app[1].state.engine
    r = await chained_offer(stores, engine, second["id"], worker, first["id"], client)
    assert r.status_code == 200, r.text
    return worker, customer, ws, first, second


async def test_the_customer_of_a_chained_order_sees_the_departure_and_the_eta_after_it(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """The snapshot says the worker is finishing a job nearby, leaving at its expected end (by
    the duration), with the ETA = that wait + the drive, and neither their position nor a route."""
    worker, customer, ws, _first, second = await chained_pair(
        live_app, client, make_user, stores, engine_city, instant_service, ends_in_s=600
    )
    before = time.time()
    sock, snap = await watch(live_app[0], second["id"], headers=customer.auth)
    after = time.time()
    assert snap["order"]["status"] == "assigned"
    assert snap["worker"]["id"] == worker.id
    chained = snap["chained"]
    assert chained is not None
    assert chained["by"] == "duration"
    departs = datetime.fromisoformat(chained["departs_at"]).timestamp()
    assert departs - after - 1 <= chained["departs_in_s"] <= departs - before + 1
    assert 500 <= chained["departs_in_s"] <= 600
    assert chained["distance_m"] == 700  # ~680 m, to 100 m
    drive = chained["drive"]
    assert 0 < drive["p50_s"] <= drive["p90_s"]
    assert snap["eta"] == {
        "p50_s": chained["departs_in_s"] + drive["p50_s"],
        "p90_s": chained["departs_in_s"] + drive["p90_s"],
        "method": drive["method"],
        "base_s": chained["departs_in_s"] + drive["base_s"],
    }
    assert snap["position"] is None  # at another customer's home: not shown
    assert snap["route"] is None
    await sock.close()
    await ws.close()


async def test_a_new_estimate_of_the_job_before_is_pushed_and_the_live_eta_takes_over_after_it(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """ "About 25 min left" on the job before reaches the chained order's watchers as a
    ``chained`` message by the worker's estimate; once that job is completed the worker's
    fixes bring the usual live ETA, and a new snapshot has no ``chained``."""
    worker, customer, ws, first, second = await chained_pair(
        live_app, client, make_user, stores, engine_city, instant_service, ends_in_s=120
    )
    sock, snap = await watch(live_app[0], second["id"], headers=customer.auth)
    assert snap["chained"]["by"] == "duration"
    r = await client.post(
        f"/v1/orders/{first['id']}/time-left", headers=worker.auth, json={"minutes_left": 25}
    )
    assert r.status_code == 200, r.text
    pushed = await next_of(sock, "chained")
    assert pushed["order_id"] == second["id"]
    assert pushed["worker_id"] == worker.id
    assert pushed["chained"]["by"] == "worker"
    expected = datetime.fromisoformat(r.json()["expected_end_at"])
    assert datetime.fromisoformat(pushed["chained"]["departs_at"]) == expected
    assert 24 * 60 <= pushed["chained"]["departs_in_s"] <= 25 * 60
    assert (
        pushed["eta"]["p50_s"]
        == pushed["chained"]["departs_in_s"] + (pushed["chained"]["drive"]["p50_s"])
    )
    r = await client.post(f"/v1/orders/{first['id']}/complete", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    tracking = live_app[1].state.tracking
    here = engine_city.here
    for _ in range(200):  # the completion's event hands the worker's job to this order
        job = tracking.active_job(worker.id)
        if job is not None and job.info.order_id == second["id"]:
            break
        await asyncio.sleep(0.05)
    job = tracking.active_job(worker.id)
    assert job is not None
    assert job.info.order_id == second["id"]
    ts = int(time.time() * 1000)
    fix = {"type": "fix", "seq": ts, "ts_ms": ts, "lat": here[0], "lng": here[1], "accuracy_m": 5}
    assert (await send_acked(ws, fix))["accepted"] == 1
    position = await next_of(sock, "position")
    assert position is not None
    assert position["eta"]["p50_s"] > 0  # the live ETA from where the worker is now
    fresh, snap = await watch(live_app[0], second["id"], headers=customer.auth)
    assert snap["chained"] is None
    assert snap["eta"] is not None
    assert snap["position"] is not None
    await fresh.close()
    await sock.close()
    await ws.close()


async def test_the_time_left_of_a_job_with_nothing_chained_pushes_nothing_and_bad_input_names_the_field(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """An estimate on a job with no chained order is accepted and pushes no ``chained``; 0 minutes is 422 naming minutes_left."""
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await book_here(client, customer, instant_service, engine_city.here)
    await on_site(client, stores, dispatcher, worker, order, ends_in_s=600)
    sock, snap = await watch(live_app[0], order["id"], headers=customer.auth)
    assert snap["chained"] is None
    r = await client.post(
        f"/v1/orders/{order['id']}/time-left", headers=worker.auth, json={"minutes_left": 0}
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "minutes_left"
    r = await client.post(
        f"/v1/orders/{order['id']}/time-left", headers=worker.auth, json={"minutes_left": 5}
    )
    assert r.status_code == 200, r.text
    await no_frame_of(sock, "chained", within_s=1.0)
    await sock.close()


def test_a_scheduled_chained_order_is_not_promised_before_its_window() -> None:
    """A job before ending early does not bring a scheduled order's window forward: p50 and p90 are at least the time until the window opens; an instant one is unchanged."""
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    ends, window = now + timedelta(minutes=10), now + timedelta(minutes=40)
    _, eta = chained_eta(DRIVE, ends, now, by_worker=True, distance_m=900.0, window_start=window)
    assert (eta.p50_s, eta.p90_s, eta.base_s) == (2400, 2520, 850)  # the range's width kept
    _, late = chained_eta(
        DRIVE, ends, now, by_worker=True, distance_m=900.0, window_start=now + timedelta(minutes=16)
    )
    assert (late.p50_s, late.p90_s) == (960, 1080)  # the window opens inside the range
    _, instant = chained_eta(DRIVE, ends, now, by_worker=True, distance_m=900.0)
    assert (instant.p50_s, instant.p90_s) == (900, 1020)

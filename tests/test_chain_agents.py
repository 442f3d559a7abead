"""The simulator's worker agent and chained orders (接力单), against the real server and
stores: on site it reports the time its job really takes (the scenario's scaled duration),
so it is offered the next job when its end is near; it accepts the chained offer and sets
off for that job only once the current one is completed (docs/simulation.md,
docs/dispatch.md#chained-orders)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.sparse import csr_matrix

from dispatch.engine import Engine
from doorstep.stores import Stores
from geo.roadgraph import RoadGraph
from simulations.agents import OrderWatch, WorkerAgent, World
from simulations.client import Api
from simulations.demand import Booking, WorkerPlan
from simulations.motion import Router
from simulations.scenario import parse_scenario
from tests.chain_setup import chaining
from tests.helpers import PASSWORD, MakeUser
from tests.live import EngineCity, book_here, make_worker

TIME_SCALE = 240.0  # a 2-hour job takes 24-36 wall seconds on site


def one_node_router(at: tuple[float, float]) -> Router:
    """Roads that are one point at the test city's centre: every trip there is a few steps."""
    empty = csr_matrix((1, 1), dtype=np.float64)
    graph = RoadGraph(
        np.array([1], dtype=np.int64), np.array([at[0]]), np.array([at[1]]), empty, empty.copy()
    )
    return Router(graph)


def watch_of(order: dict[str, Any], customer: Any, index: int) -> OrderWatch:
    """What the simulator would know of a booking it placed (the start code above all)."""
    booking = Booking(
        index=index,
        at_s=0.0,
        customer=0,
        service_code=order["service_code"],
        lat=order["lat"],
        lng=order["lng"],
        scheduled=False,
        lead_s=0.0,
        window_s=0.0,
        cancel_after_s=None,
        stars=None,
        share_link=False,
    )
    return OrderWatch(booking, int(order["id"]), customer, 0.0, str(order["start_code"]))


async def until(check: Any, timeout_s: float, what: str) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


@pytest.mark.timeout(300)
async def test_an_agent_reports_its_time_left_takes_a_chained_job_and_does_it_after_the_current(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A simulated worker on a job reports its scaled time left (so the job, 2 hours by the
    catalogue, ends within chaining's 5 min), is offered and accepts the next job chained to
    it, never sets off for it early (no 409 current_job_first), and does it after completing
    the first: its set-off follows the first's completion."""
    here = engine_city.here
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    scenario = parse_scenario(
        {
            "name": "chain-agent",
            "seed": 1,
            "duration_min": 10,
            "time_scale": TIME_SCALE,
            "workers": {
                "count": 1,
                "fix_interval_s": [1.0, 1.0],
                "accept_share": 1.0,
                "ignore_share": 0.0,
                "accept_delay_s": [0.2, 0.5],
                "manual_arrive_share": 1.0,
                "start_delay_s": [0.2, 0.5],
                "disconnects_per_hour": 0.0,
            },
            "demand": {"orders_per_min": 1.0, "customers": 1},
        }
    )
    api = Api(f"http://{live_app[0]}")
    world = World(api, scenario, one_node_router(here), tag="chain-agent")
    session = await api.login(worker.phone, PASSWORD)
    plan = WorkerPlan(0, here[0], here[1], ((0.0, 3600.0),), (), 1.0, seed=5)
    agent = WorkerAgent(world, plan, session, worker.id)
    world.workers[worker.id] = agent
    run = asyncio.create_task(agent.run())
    try:
        first = await book_here(client, customer, instant_service, here)
        world.watches[first["id"]] = watch_of(first, None, 0)

        async def online() -> bool:
            return agent.ws is not None

        await until(online, 30, "the agent online")

        async def fixing() -> bool:
            return world.fixes_acked > 0

        await until(fixing, 30, "the agent's first fix acknowledged")
        r = await client.post(
            f"/v1/orders/{first['id']}/assign",
            headers=dispatcher.auth,
            json={"worker_id": worker.id, "reason": "test", "force": True},
        )
        assert r.status_code == 200, r.text
        told = await until(
            lambda: stores.pool.fetchval(
                "SELECT expected_end_at FROM orders WHERE id = $1 AND status = 'in_service'",
                first["id"],
            ),
            60,
            "the agent in service with its time left told",
        )
        assert (told - datetime.now(UTC)).total_seconds() <= 90  # not the catalogue's 2 h
        second = await book_here(client, customer, instant_service, here)
        world.watches[second["id"]] = watch_of(second, None, 1)
        engine: Engine = live_app[1].state.engine
        report = await chaining(engine, live_app, 300.0).tick(engine_city.id, datetime.now(UTC))
        assert (report.offered, report.chained) == (1, 1), report.decisions
        await until(
            lambda: stores.pool.fetchval(
                "SELECT worker_id FROM orders WHERE id = $1 AND status = 'assigned'", second["id"]
            ),
            30,
            "the chained job accepted",
        )
        assert await stores.pool.fetchval(
            "SELECT status FROM orders WHERE id = $1", first["id"]
        ) in ("in_service", "completed")
        done = await until(
            lambda: stores.pool.fetchrow(
                "SELECT en_route_at, completed_at FROM orders WHERE id = $1 "
                "AND status = 'completed'",
                second["id"],
            ),
            120,
            "the chained job completed",
        )
        first_done = await stores.pool.fetchval(
            "SELECT completed_at FROM orders WHERE id = $1", first["id"]
        )
        assert first_done is not None
        assert done["en_route_at"] >= first_done
        assert agent.offers["chained_received"] == agent.offers["chained_accepted"] == 1
        assert world.counts["chained_held"] == world.counts["chained_taken_up"] == 1
        assert world.counts["time_left_reported"] == 2
        assert world.problems == []
        refused = [k for k in api.calls if k[2] == 409]
        assert refused == []  # never a current_job_first (nor any other conflict)
    finally:
        world.stopping.set()
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await api.close()

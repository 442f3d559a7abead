"""Chained orders (接力单) in the engine, on real stores: a worker whose job on site ends
soon is offered the next job; accepting it makes it their next; it starts when the
current one completes (docs/dispatch.md#chained-orders)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatch import at_risk, store
from dispatch.engine import Engine
from doorstep.stores import Stores
from tests.chain_setup import chained_offer, chaining, on_site
from tests.helpers import MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online, status_of


@pytest.fixture
def engine(live_app: tuple[str, Any]) -> Engine:
    """The app's engine (its loop is off in tests: we tick by hand)."""
    engine: Engine = live_app[1].state.engine
    return engine


async def test_a_worker_ending_soon_next_door_gets_the_next_job_which_starts_when_theirs_ends(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Chaining on: the busy worker next door is offered the order (the offer names their
    job, the decision says chained), accepts it as their next job, cannot get a second
    one, cannot set off before their job is done, and the job is theirs to do after it."""
    here = engine_city.here
    busy = await make_worker(stores, client, engine_city.id)
    free = await make_worker(stores, client, engine_city.id)
    ws_busy = await online(live_app[0], busy, (here[0] + 0.0005, here[1]))
    ws_free = await online(live_app[0], free, (here[0] + 0.009, here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, here)
    await on_site(client, stores, dispatcher, busy, first, ends_in_s=30)
    second = await book_here(client, customer, instant_service, here)
    chain = chaining(engine, live_app, 300.0)
    order2 = await store.get(stores.pool, second["id"])
    assert order2 is not None
    preview = await chain.preview(order2, datetime.now(UTC))  # the console's candidates
    assert preview.worker_id == busy.id
    assert {c.worker_id: c.candidate.chain is not None for c in preview.candidates} == {
        busy.id: True,
        free.id: False,
    }
    report = await chain.tick(engine_city.id, datetime.now(UTC))
    assert (report.offered, report.chained) == (1, 1)
    offer = await next_of(ws_busy, "offer")
    assert (offer["order_id"], offer["after_order_id"]) == (second["id"], first["id"])
    (decision,) = [d for d in report.decisions if d.order_id == second["id"]]
    assert decision.worker_id == busy.id
    chosen = decision.chosen
    assert chosen is not None
    assert chosen.candidate.chain is not None
    assert chosen.candidate.chain.order_id == first["id"]
    assert chosen.eta_s is not None
    assert chosen.eta_s >= 30 - 5  # the time left of their job (the tick ran a moment later)
    r = await client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=busy.auth)
    assert r.status_code == 200, r.text
    assert await status_of(stores, second["id"]) == "assigned"
    assert await status_of(stores, first["id"]) == "in_service"
    current = await store.active_for_worker(stores.pool, busy.id)
    assert current is not None
    assert current.id == first["id"]
    events = (await client.get(f"/v1/orders/{second['id']}/events", headers=dispatcher.auth)).json()
    assert "chained: next after order" in events[-1]["reason"]
    # Not set off before the current job is done.
    r = await client.post(f"/v1/orders/{second['id']}/depart", headers=busy.auth, json={})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "current_job_first"
    # No second chained job: not a candidate, and a chained accept is refused.
    third = await book_here(client, customer, instant_service, here)
    report = await chain.tick(engine_city.id, datetime.now(UTC))
    (decision,) = [d for d in report.decisions if d.order_id == third["id"]]
    assert busy.id not in {c.worker_id for c in decision.candidates}
    to_free = await next_of(ws_free, "offer")
    assert to_free["order_id"] == third["id"]
    r = await client.post(  # declined: the order is offerable again
        f"/v1/offers/{to_free['offer_id']}/reject", headers=free.auth, json={"reason": "busy"}
    )
    assert r.status_code == 204
    r = await chained_offer(stores, chain, third["id"], busy, first["id"], client)
    assert r.status_code == 409
    assert "already holds" in r.json()["error"]["message"]
    # The current job completes: the chained one is now the job (tracking takes it up).
    r = await client.post(f"/v1/orders/{first['id']}/complete", headers=busy.auth, json={})
    assert r.status_code == 200, r.text
    current = await store.active_for_worker(stores.pool, busy.id)
    assert current is not None
    assert current.id == second["id"]
    tracking = live_app[1].state.tracking
    for _ in range(200):  # the completion's event reloads the worker's job
        job = tracking.active_job(busy.id)
        if job is not None and job.info.order_id == second["id"]:
            break
        await asyncio.sleep(0.05)
    job = tracking.active_job(busy.id)
    assert job is not None
    assert job.info.order_id == second["id"]
    r = await client.post(f"/v1/orders/{second['id']}/depart", headers=busy.auth, json={})
    assert r.status_code == 200, r.text
    await ws_busy.close()
    await ws_free.close()


async def test_chaining_off_offers_only_free_workers(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """With chaining off (``chain_s`` 0; 300 by default) a worker on a job ending soon is not
    a candidate: the free worker farther away gets the offer."""
    engine = chaining(engine, live_app, 0.0)
    here = engine_city.here
    busy = await make_worker(stores, client, engine_city.id)
    free = await make_worker(stores, client, engine_city.id)
    ws_busy = await online(live_app[0], busy, (here[0] + 0.0005, here[1]))
    ws_free = await online(live_app[0], free, (here[0] + 0.009, here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, here)
    await on_site(client, stores, dispatcher, busy, first, ends_in_s=30)
    await next_of(ws_busy, "job")  # the worker is busy in the index
    second = await book_here(client, customer, instant_service, here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    (decision,) = [d for d in report.decisions if d.order_id == second["id"]]
    assert decision.worker_id == free.id
    assert report.chained == 0
    offer = await next_of(ws_free, "offer")
    assert (offer["order_id"], offer["after_order_id"]) == (second["id"], None)
    await ws_busy.close()
    await ws_free.close()


async def test_a_chained_job_is_judged_at_risk_with_the_time_left_of_the_job_on_site(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Active reassignment adds the time left of the worker's job on site to a chained job's
    ETA: next door but 4 min from free, with a 2 min SLA the chained job goes back to dispatch."""
    here = engine_city.here
    busy = await make_worker(stores, client, engine_city.id)
    ws_busy = await online(live_app[0], busy, (here[0] + 0.0005, here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, here)
    await on_site(client, stores, dispatcher, busy, first, ends_in_s=240)
    second = await book_here(client, customer, instant_service, here)
    await chaining(engine, live_app, 300.0).tick(engine_city.id, datetime.now(UTC))
    offer = await next_of(ws_busy, "offer")
    assert offer["after_order_id"] == first["id"]
    r = await client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=busy.auth)
    assert r.status_code == 200, r.text
    tracking = live_app[1].state.tracking
    roomy = at_risk.RiskParams(stale_s=180.0, instant_sla_s=3600, cooldown_s=180)
    assert await at_risk.check(stores, tracking, engine_city.id, datetime.now(UTC), roomy) == {
        "reassign": 0,
        "alert": 0,
    }
    tight = replace(roomy, instant_sla_s=120)
    done = await at_risk.check(stores, tracking, engine_city.id, datetime.now(UTC), tight)
    assert done["reassign"] == 1
    assert await status_of(stores, second["id"]) == "dispatching"
    assert await status_of(stores, first["id"]) == "in_service"
    await ws_busy.close()

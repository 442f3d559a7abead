"""Day plans plan a merchant's scheduled orders onto the merchant's team first, and hand
them to the platform's workers only as the merchant's overflow rule says (issue 18 §5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from dispatch import plan_store
from dispatch import store as dispatch_store
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, build
from doorstep.stores import Stores
from tests.access import licence
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, SettledPlans
from tests.planning import ZONE, book_window, make_service, planned_worker, tomorrow_at
from workforce import store as workforce_store

H = 3600


def _straight(points: Any) -> tuple[np.ndarray, np.ndarray]:
    n = len(points)
    secs = np.full((n, n), 100, dtype=np.int64)
    np.fill_diagonal(secs, 0)
    return secs, secs * 5


def test_a_merchants_job_needs_its_teams_token_unless_a_worker_holds_it() -> None:
    """Only workers on the merchant's teams carry merchant:<id>; an open merchant job needs it, a held one does not."""
    staff = WorkerDay(1, frozenset(), ((0, 24 * H),), (0.0, 0.0), merchant_id=42)
    rival = WorkerDay(2, frozenset(), ((0, 24 * H),), (0.0, 0.0), merchant_id=43)
    platform = WorkerDay(3, frozenset(), ((0, 24 * H),), (0.0, 0.0))
    jobs = (
        DayJob(7, 0.0, 0.0, H, (9 * H, 10 * H), merchant_id=42),
        DayJob(8, 0.0, 0.0, H, (9 * H, 10 * H)),
        DayJob(9, 0.0, 0.0, H, (8 * H, 8 * H), worker_id=3, started=True, merchant_id=42),
    )
    inputs = DayInputs("c", date(2030, 1, 7), 0, -H, (staff, rival, platform), jobs)
    built = build(inputs, _straight)
    mine, anyone, held = built.problem.jobs
    w_staff, w_rival, w_platform = built.problem.workers
    assert [mine.skills <= w.skills for w in (w_staff, w_rival, w_platform)] == [
        True,
        False,
        False,
    ]
    assert all(anyone.skills <= w.skills for w in (w_staff, w_rival, w_platform))
    assert "merchant:42" not in held.skills


@pytest.fixture
def plans(live_app: tuple[str, Any]) -> SettledPlans:
    """The app's day-plans runtime, awaited after its events."""
    return SettledPlans(live_app[1])


async def _merchant_offering(
    stores: Stores, make_user: MakeUser, city: str, service: str
) -> tuple[Account, int]:
    """An approved merchant of ``city`` offering ``service``, with a team of its own."""
    owner = await make_user("merchant")
    await stores.pool.execute(
        "INSERT INTO merchants (id, name, city_id, licence_number, status) "
        "VALUES ($1, $2, $3, $4, 'approved')",
        owner.id,
        f"商家{owner.id}",
        city,
        licence(),
    )
    team = await workforce_store.insert_team(
        stores.pool, name=f"团队{owner.id}", city_id=city, merchant_id=owner.id, upsert=False
    )
    await stores.pool.execute(
        "INSERT INTO merchant_services (merchant_id, service_code, price_minor) VALUES ($1,$2,$3)",
        owner.id,
        service,
        10000,
    )
    return owner, team


async def _plan_of(stores: Stores, city: str, day: date) -> plan_store.StoredPlan:
    plan = await plan_store.latest(stores.pool, city, day)
    assert plan is not None
    return plan


async def _setup(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    city: EngineCity,
    *,
    staff_hours: tuple[int, int],
) -> tuple[date, Account, Account, Account, int, Account]:
    """A platform worker at the door, a merchant's staff member 400 m away working
    ``staff_hours``, and an order booked for 09:00–10:00 (planned on the platform's
    worker). (day, owner, platform worker, staff member, order id, customer)."""
    day = (
        tomorrow_at("09:00").astimezone(ZONE).date()
    )  # the engine's plan check looks at today and tomorrow
    service = await make_service(client, admin)
    owner, team = await _merchant_offering(stores, make_user, city.id, service)
    here = city.here
    platform = await planned_worker(stores, client, city.id, here)
    staff = await planned_worker(
        stores, client, city.id, (here[0], here[1] + 0.004), hours=staff_hours
    )
    await stores.pool.execute("UPDATE workers SET team_id = $2 WHERE user_id = $1", staff.id, team)
    customer = await make_user("customer")
    r = await book_window(client, customer, service, here, day, "09:00", "10:00")
    assert r.status_code == 201, r.text
    order_id = int(r.json()["id"])
    return day, owner, platform, staff, order_id, customer


async def test_routing_a_planned_order_to_a_merchant_replans_it_onto_the_team(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """Planned on the nearer platform worker, the order is routed to a merchant: the route event re-plans the day and the merchant's staff member gets it."""
    day, owner, platform, staff, order_id, customer = await _setup(
        client, make_user, admin, stores, engine_city, staff_hours=(8 * 60, 18 * 60)
    )
    await plans.idle()
    assert (await _plan_of(stores, engine_city.id, day)).worker_of(order_id) == platform.id
    r = await client.put(
        f"/v1/orders/{order_id}/merchant", headers=admin.auth, json={"merchant_id": owner.id}
    )
    assert r.status_code == 200, r.text
    await plans.idle()
    plan = await _plan_of(stores, engine_city.id, day)
    assert plan.worker_of(order_id) == staff.id
    assert plan.reason == f"order {order_id}: route"
    events = (await client.get(f"/v1/orders/{order_id}/events", headers=customer.auth)).json()
    assert events[-1]["action"] == "route"


async def test_a_merchants_order_its_team_cannot_fit_waits_then_overflows_in_the_plan(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """The staff member works afternoons only: after routing the order is left out of the plan (not given to the idle platform worker); once merchant_overflow_s has passed since routing, the engine's plan check overflows it, with an event saying so, and plans it on the platform's worker."""
    day, owner, platform, _staff, order_id, customer = await _setup(
        client, make_user, admin, stores, engine_city, staff_hours=(14 * 60, 18 * 60)
    )
    r = await client.put(
        f"/v1/orders/{order_id}/merchant", headers=admin.auth, json={"merchant_id": owner.id}
    )
    assert r.status_code == 200, r.text
    await plans.idle()
    plan = await _plan_of(stores, engine_city.id, day)
    assert plan.worker_of(order_id) is None
    assert order_id in [d["order_id"] for d in plan.dropped]
    order = await dispatch_store.get(stores.pool, order_id)
    assert order is not None
    assert order.merchant_id == owner.id
    runtime = plans.runtime
    now = datetime.now(UTC)
    assert await runtime.ensure_planned(engine_city.id, now) == 0  # dropped, not due yet

    # Routed merchant_overflow_s ago (moved back in the database, as time would have).
    await stores.pool.execute(
        "UPDATE orders SET merchant_routed_at = merchant_routed_at - make_interval(secs => $2) "
        "WHERE id = $1",
        order_id,
        float(runtime.merchant_overflow_s + 1),
    )
    later = now + timedelta(seconds=runtime.params.check_every_s)  # the next check
    assert await runtime.ensure_planned(engine_city.id, later) == 1
    await plans.idle()
    plan = await _plan_of(stores, engine_city.id, day)
    assert plan.worker_of(order_id) == platform.id
    order = await dispatch_store.get(stores.pool, order_id)
    assert order is not None
    assert order.merchant_id is None
    events = (await client.get(f"/v1/orders/{order_id}/events", headers=customer.auth)).json()
    (overflow,) = [e for e in events if e["action"] == "overflow"]
    assert str(owner.id) in overflow["reason"]
    assert "day plans" in overflow["reason"]

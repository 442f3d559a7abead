"""Day plans across midnight: an overnight job (夜间陪护, a 22:00–02:00 nanny shift) belongs to
the plan of the day its window opens, on a worker whose shift runs on past midnight."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from dispatch import plan_store
from dispatch import service as dispatch_service
from dispatch import store as dispatch_store
from dispatch.booking import BookingParams
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, build, current_plan, overnight
from dispatch.plans import DayPlans
from dispatch.service import Caller
from doorstep.stores import Stores
from matching import planner
from matching.planner import PlannerParams
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, SettledPlans, next_of, online
from tests.planning import (
    at,
    book_window,
    day_after_tomorrow,
    make_service,
    planned_worker,
    stops_of,
)
from workforce import store as workforce_store
from workforce.models import DayException, Window

H = 3600
DAY = 24 * H


def _straight(points: Any) -> tuple[np.ndarray, np.ndarray]:
    """600 s between any two different points (pure tests)."""
    n = len(points)
    secs = np.full((n, n), 600, dtype=np.int64)
    np.fill_diagonal(secs, 0)
    return secs, secs * 5


# ---- pure ---------------------------------------------------------------------------------


def test_a_shift_to_midnight_goes_on_into_the_next_days_window_from_midnight() -> None:
    """22:00–24:00 then 00:00–04:00 is one overnight shift, as far as the day's jobs need it."""
    evening, early = [(8 * H, 12 * H), (22 * H, DAY)], [(0, 4 * H), (9 * H, 12 * H)]
    assert overnight(evening, early, DAY, DAY + 3 * H) == ((8 * H, 12 * H), (22 * H, DAY + 3 * H))
    assert overnight(evening, early, DAY, DAY + 9 * H) == ((8 * H, 12 * H), (22 * H, DAY + 4 * H))
    assert overnight(evening, early, DAY, DAY) == ((8 * H, 12 * H), (22 * H, DAY))  # no need
    assert overnight([(22 * H, DAY - 60)], early, DAY, DAY + 3 * H) == ((22 * H, DAY - 60),)
    assert overnight(evening, [(H, 4 * H)], DAY, DAY + 3 * H)[-1] == (22 * H, DAY)


def test_the_planner_plans_a_job_crossing_midnight_the_same_way_every_time() -> None:
    """A 23:00–01:00 window with two hours of service is planned on the overnight worker only, ending after midnight, and solving again gives the same plan."""
    windows = overnight([(22 * H, DAY)], [(0, 4 * H)], DAY, DAY + 3 * H)
    night = WorkerDay(1, frozenset(), windows, (0.0, 0.0))
    days = WorkerDay(2, frozenset(), ((8 * H, 18 * H),), (0.0, 0.0))
    job = DayJob(7, 0.0, 0.0, 2 * H, (23 * H, DAY + H))
    inputs = DayInputs("c", date(2030, 1, 7), 0, -H, (night, days), (job,))
    built = build(inputs, _straight)
    params = PlannerParams(solution_limit=50, branch_limit=2000)
    first = planner.plan(built.problem, params, seed=0)
    again = planner.plan(build(inputs, _straight).problem, params, seed=0)
    assert first.dropped == ()
    (route,) = [r for r in first.routes if r.stops]
    assert route.worker_id == "1"
    (stop,) = route.stops
    assert (stop.start_s, stop.departure_s) == (23 * H, DAY + H)  # 23:00 to 01:00 next day
    assert first.routes == again.routes
    assert first.objective == again.objective


def test_the_next_days_first_stop_bounds_the_overnight_work() -> None:
    """A worker the next day's plan has at a stop at 00:30 is offered no overnight job that keeps them past it, and is free after the previous day's job ends."""
    windows = overnight([(22 * H, DAY)], [(0, 4 * H)], DAY, DAY + 3 * H)
    bound = WorkerDay(1, frozenset(), windows, (0.0, 0.0), next_stop=(DAY + 1800, (0.1, 0.1)))
    job = DayJob(0, 0.0, 0.0, 2 * H, (23 * H, DAY + H))
    early = DayJob(0, 0.0, 0.0, H, (22 * H, 22 * H + 1800))
    inputs = DayInputs("c", date(2030, 1, 7), 0, -H, (bound,), ())
    for extra, fits in ((job, False), (early, True)):
        built = build(inputs, _straight, extra=extra)
        assert built.new_job is not None
        found = planner.insertions(built.problem, current_plan(built, {}), built.new_job)
        assert bool(found) is fits
    (worker,) = build(inputs, _straight).problem.workers
    assert worker.end_node is not None
    assert worker.shift == (22 * H, DAY + 1800)
    after = WorkerDay(1, frozenset(), ((0, 4 * H),), (0.0, 0.0), free_from_s=H)
    (worker,) = build(
        DayInputs("c", date(2030, 1, 8), 0, -H, (after,), ()), _straight
    ).problem.workers
    assert worker.shift == (H, 4 * H)


# ---- over HTTP, on PostgreSQL and Redis -----------------------------------------------------


@pytest.fixture
def plans(live_app: tuple[str, Any]) -> SettledPlans:
    """The app's day-plans runtime, awaited after its events."""
    return SettledPlans(live_app[1])


async def _night_worker(
    stores: Stores, client: httpx.AsyncClient, city: EngineCity, where: tuple[float, float]
) -> Account:
    """A worker on nights every day: 22:00–24:00 and 00:00–04:00."""
    worker = await planned_worker(stores, client, city.id, where)
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn,
            worker.id,
            tuple(Window(d, a, b) for d in range(7) for a, b in ((0, 240), (1320, 1440))),
        )
    return worker


async def _plan(client: httpx.AsyncClient, who: Account, city: str, day: date) -> Any:
    r = await client.get(f"/v1/cities/{city}/plans?date={day.isoformat()}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def _stop(plan: Any, order_id: int) -> dict[str, Any]:
    return next(s for r in plan["routes"] for s in r["stops"] if s["order_id"] == order_id)


async def test_an_overnight_booking_is_planned_on_the_night_shift_and_released_after_midnight(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A 23:00–01:00 booking of a two-hour service is accepted, planned in its start day's plan on the worker whose night shift covers it, keeps that worker busy into the next day's plan, and is released to them after midnight."""
    day = day_after_tomorrow()
    service = await make_service(client, admin, duration_min=120)
    here = engine_city.here
    night = await _night_worker(stores, client, engine_city, here)
    await planned_worker(stores, client, engine_city.id, here, hours=(8 * 60, 18 * 60))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await book_window(client, customer, service, here, day, "23:00", "01:00")
    assert r.status_code == 201, r.text  # today's code: 409 slot_unavailable (not_working_then)
    order = r.json()
    await plans.idle()
    plan = await _plan(client, dispatcher, engine_city.id, day)
    assert stops_of(plan)[night.id] == [order["id"]]
    stop = _stop(plan, order["id"])
    assert datetime.fromisoformat(stop["start_at"]) == at(day, "23:00")
    assert datetime.fromisoformat(stop["departure_at"]) == at(day + timedelta(days=1), "01:00")
    assert order["id"] not in stops_of(
        await _plan(client, dispatcher, engine_city.id, day + timedelta(days=1))
    ).get(night.id, [])

    # The next day's plan keeps the worker's overnight job: not at 00:10, from 01:00 on.
    nxt = day + timedelta(days=1)
    r = await book_window(client, customer, service, here, nxt, "00:10", "00:50")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "slot_unavailable"
    r = await book_window(client, customer, service, here, nxt, "01:30", "02:00")
    assert r.status_code == 201, r.text
    later = r.json()
    await plans.idle()
    next_plan = await _plan(client, dispatcher, engine_city.id, nxt)
    assert stops_of(next_plan)[night.id] == [later["id"]]
    assert datetime.fromisoformat(_stop(next_plan, later["id"])["arrival_at"]) >= at(nxt, "01:00")

    # After midnight the previous day's overnight job is the worker's next one.
    ws = await online(live_app[0], night, here)
    runtime = plans.runtime
    kept = runtime.params
    runtime.params = dataclasses.replace(kept, live_max_age_s=7 * 86400)  # "now" is ahead
    try:
        released = await runtime.release_due(engine_city.id, at(nxt, "00:05"))
    finally:
        runtime.params = kept
    assert released == 1
    job = await next_of(ws, "job")
    assert (job["order_id"], job["status"]) == (order["id"], "assigned")
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=customer.auth)).json()
    assert events[-1]["reason"].startswith(f"day plan {day.isoformat()}")
    await plans.idle()
    await ws.close()


async def test_an_overnight_booking_cannot_take_a_worker_the_next_day_already_has(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """With the night worker planned at 00:30 the next day, a 23:00 two-hour job is refused as fully booked, and one that ends in time is planned before it."""
    day = day_after_tomorrow()
    nxt = day + timedelta(days=1)
    service = await make_service(client, admin, duration_min=120)
    here = engine_city.here
    night = await _night_worker(stores, client, engine_city, here)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await book_window(client, customer, service, here, nxt, "00:30", "01:00")
    assert r.status_code == 201, r.text
    first = r.json()
    await plans.idle()
    r = await book_window(client, customer, service, here, day, "23:00", "23:30")
    assert r.status_code == 409, r.text
    assert "fully_booked" in r.json()["error"]["message"]
    r = await book_window(client, customer, service, here, day, "22:00", "22:30")
    assert r.status_code == 201, r.text  # 22:00–24:00 leaves time to reach the 00:30 stop
    early = r.json()
    await plans.idle()
    assert stops_of(await _plan(client, dispatcher, engine_city.id, day))[night.id] == [early["id"]]
    assert stops_of(await _plan(client, dispatcher, engine_city.id, nxt))[night.id] == [first["id"]]
    r = await client.post(
        f"/v1/cities/{engine_city.id}/plans/replan",
        headers=dispatcher.auth,
        json={"date": day.isoformat(), "reason": "overnight check"},
    )
    assert r.status_code == 200, r.text
    assert stops_of(r.json())[night.id] == [early["id"]]


# ---- after midnight: yesterday's plan, and the next day's -------------------------------------


async def test_the_engines_check_after_midnight_plans_an_open_overnight_order_of_yesterday(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """After midnight, an open 23:00–01:00 order missing from the previous evening's plan is re-planned by ensure_planned while its window is open, not once it has closed."""
    day = day_after_tomorrow()
    nxt = day + timedelta(days=1)
    service = await make_service(client, admin, duration_min=120)
    night = await _night_worker(stores, client, engine_city, engine_city.here)
    customer = await make_user("customer")
    # Paused: the app's own engine loop leaves this city alone, so only ours checks it.
    await stores.pool.execute(
        "UPDATE cities SET dispatch_paused = true WHERE id = $1", engine_city.id
    )
    order, _ = await dispatch_service.book(  # no reserve step: in no plan, as if plans were off
        stores,
        live_app[1].state.tracking,
        customer_id=customer.id,
        service_code=service,
        address_id=None,
        lat=engine_city.here[0],
        lng=engine_city.here[1],
        crs="wgs84",
        detail="",
        contact_phone="",
        window_start=at(day, "23:00"),
        window_end=at(nxt, "01:00"),
        notes="",
        idempotency_key=None,
        now=datetime.now(UTC),
        params=BookingParams(),
    )
    closed = DayPlans(stores, live_app[1].state.tracking)
    assert await closed.ensure_planned(engine_city.id, at(nxt, "01:30")) == 0  # window closed
    fresh = DayPlans(
        stores,
        live_app[1].state.tracking,
        planner_params=PlannerParams(solution_limit=50, branch_limit=2000),
    )
    try:
        assert await fresh.ensure_planned(engine_city.id, at(nxt, "00:05")) == 1
        await fresh.idle()
        plan = await plan_store.latest(stores.pool, engine_city.id, day)
        assert plan is not None
        assert plan.worker_of(order.id) == night.id
    finally:
        await fresh.stop()
        await closed.stop()


async def test_a_replan_of_yesterday_after_midnight_keeps_the_overnight_job_in_service(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
    live_app: tuple[str, Any],
) -> None:
    """Re-planning the evening at 00:30, an overnight job in service since 23:05 stays first on its worker's route and keeps that start (ends 01:05), rather than being re-timed from 00:30."""
    day = day_after_tomorrow()
    nxt = day + timedelta(days=1)
    service = await make_service(client, admin, duration_min=120)
    here = engine_city.here
    night = await _night_worker(stores, client, engine_city, here)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await book_window(client, customer, service, here, day, "23:00", "01:00")
    assert r.status_code == 201, r.text
    order = r.json()
    await plans.idle()
    tracking = live_app[1].state.tracking
    await dispatch_service.act(
        stores, tracking, order["id"], "assign", Caller("dispatcher", dispatcher.id),
        worker_id=night.id,
    )  # fmt: skip
    worker = Caller("worker", night.id)
    await dispatch_service.act(stores, tracking, order["id"], "depart", worker, at=at(day, "22:40"))
    await dispatch_service.act(stores, tracking, order["id"], "arrive", worker, at=at(day, "22:58"))
    held = await dispatch_store.get(stores.pool, order["id"])
    assert held is not None
    await dispatch_service.act(
        stores, tracking, order["id"], "start", worker, start_code=held.start_code,
        at=at(day, "23:05"),
    )  # fmt: skip
    await plans.idle()
    stored = await plans.runtime.replan(
        engine_city.id, day, reason="after midnight", now=at(nxt, "00:30")
    )
    route = stored.route_of(night.id)
    assert route is not None
    assert [s.order_id for s in route.stops] == [order["id"]]
    (stop,) = route.stops
    assert stop.start_at == at(day, "23:05")  # before the fix: 00:30, re-timed from now
    assert stop.departure_at == at(nxt, "01:05")
    await plans.idle()


async def test_an_evening_replan_that_moves_an_overnight_job_replans_the_next_day(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """When the evening's re-plan moves the 23:00–01:00 job to another night worker, the next day's plan (built around the first worker being busy until 01:00) is re-planned with the new promise."""
    day = day_after_tomorrow()
    nxt = day + timedelta(days=1)
    service = await make_service(client, admin, duration_min=120)
    here = engine_city.here
    first = await _night_worker(stores, client, engine_city, here)
    other = await _night_worker(stores, client, engine_city, (here[0] + 0.03, here[1]))
    customer = await make_user("customer")
    r = await book_window(client, customer, service, here, day, "23:00", "01:00")
    assert r.status_code == 201, r.text
    job = r.json()
    await plans.idle()
    r = await book_window(client, customer, service, here, nxt, "01:30", "03:00")
    assert r.status_code == 201, r.text
    later = r.json()
    await plans.idle()
    evening = await plan_store.latest(stores.pool, engine_city.id, day)
    morning = await plan_store.latest(stores.pool, engine_city.id, nxt)
    assert evening is not None
    assert morning is not None
    assert evening.worker_of(job["id"]) == first.id  # the nearer one
    assert morning.worker_of(later["id"]) == first.id  # free at its door from 01:00

    # The first worker takes the evening off: the evening's re-plan moves the job.
    await workforce_store.put_exception(
        stores.pool, first.id, DayException(day, False, None, None, "家里有事")
    )
    moved = await plans.runtime.replan(engine_city.id, day, reason="day off")
    assert moved.worker_of(job["id"]) == other.id
    await plans.idle()
    again = await plan_store.latest(stores.pool, engine_city.id, nxt)
    assert again is not None
    assert again.version > morning.version  # before the fix: left as it was
    assert again.reason == f"overnight work of the {day} plan changed"
    mover = moved.route_of(other.id)
    assert mover is not None
    (departs,) = [s.departure_at for s in mover.stops if s.order_id == job["id"]]
    busy = again.route_of(other.id)  # busy with the moved job until it ends
    assert all(s.arrival_at >= departs for s in (busy.stops if busy else []))

"""Day plans: planning a city's day, re-planning, pushing to workers, releasing jobs, access."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from dispatch.dayplan import (
    DayInputs,
    DayJob,
    WorkerDay,
    build,
    current_plan,
    refusal,
    time_route,
)
from dispatch.engine import Engine
from dispatch.plans import DayPlans
from doorstep.stores import Stores
from matching.planner import PlanJob
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, SettledPlans, next_of, online, open_worker
from tests.planning import (
    ZONE,
    at,
    book_window,
    day_after_tomorrow,
    make_service,
    planned_worker,
    soon_today,
    stops_of,
)

H = 3600


def _straight(points: Any) -> tuple[np.ndarray, np.ndarray]:
    """100 s between any two different points (pure tests)."""
    n = len(points)
    secs = np.full((n, n), 100, dtype=np.int64)
    np.fill_diagonal(secs, 0)
    return secs, secs * 5


# ---- pure: a day becomes a problem ------------------------------------------------------


def _inputs(workers: list[WorkerDay], jobs: list[DayJob], now_s: int = -H) -> DayInputs:
    return DayInputs("c", date(2030, 1, 7), 0, now_s, tuple(workers), tuple(jobs))


def test_gaps_between_availability_windows_become_breaks() -> None:
    """Two windows in a day are one shift with a fixed break between them; the past is cut off today."""
    day = WorkerDay(1, frozenset(), ((8 * H, 12 * H), (13 * H, 17 * H)), (0.0, 0.0))
    built = build(_inputs([day], []), _straight)
    (worker,) = built.problem.workers
    assert worker.shift == (8 * H, 17 * H)
    assert [(b.earliest_s, b.latest_s, b.duration_s) for b in worker.breaks] == [
        (12 * H, 12 * H, H)
    ]
    later = build(_inputs([day], [], now_s=14 * H), _straight)
    assert later.problem.workers[0].shift == (14 * H, 17 * H)
    assert later.problem.workers[0].breaks == ()
    gone = build(_inputs([day], [], now_s=18 * H), _straight)
    assert gone.problem.workers == ()


def test_exclusions_and_certificates_become_skills() -> None:
    """An excluded worker lacks the order's token; a service's certificate is a cert: skill."""
    a = WorkerDay(1, frozenset({"cert:nurse"}), ((0, 24 * H),), (0.0, 0.0))
    b = WorkerDay(2, frozenset(), ((0, 24 * H),), (0.0, 0.0))
    job = DayJob(
        7, 0.0, 0.0, H, (9 * H, 10 * H), frozenset({"cert:nurse"}), excluded=frozenset({1})
    )
    built = build(_inputs([a, b], [job]), _straight)
    (pj,) = built.problem.jobs
    wa, wb = built.problem.workers
    assert "order:7" in pj.skills
    assert not pj.skills <= wa.skills  # excluded
    assert not pj.skills <= wb.skills  # no certificate
    why = refusal(_inputs([a, b], []), job)
    assert why.code == "excluded"


def test_time_route_waits_for_windows_and_takes_the_break() -> None:
    """A fixed sequence is timed as the planner does: leave just in time, wait, take the lunch break before a job that would run into it."""
    day = WorkerDay(1, frozenset(), ((8 * H, 12 * H), (13 * H, 17 * H)), (0.0, 0.0))
    jobs = [
        DayJob(1, 0.0, 0.0, H, (9 * H, 10 * H)),
        DayJob(2, 0.0, 0.0, H, (11 * H + 1800, 14 * H)),
    ]
    built = build(_inputs([day], jobs), _straight)
    w = built.problem.workers[0]
    route = time_route(built.problem, w, list(built.problem.jobs))
    assert route is not None
    first, second = route.stops
    assert (first.arrival_s, first.start_s, first.departure_s) == (9 * H, 9 * H, 10 * H)
    # 11:30 + 1 h would run into the 12:00 break: the break comes first, then the job
    assert route.breaks == ((12 * H, H),)
    assert (second.arrival_s, second.start_s) == (13 * H, 13 * H)  # travelled while idle
    assert first.slack_s > 0
    late = PlanJob("9", built.problem.jobs[0].node, H, (8 * H, 8 * H + 50))
    assert time_route(built.problem, w, [late]) is None  # cannot arrive by 08:00:50


def test_the_stored_plan_is_retimed_without_gone_orders_and_the_held_job_first() -> None:
    """Re-timing a stored route leaves out orders no longer open and puts the job under way first."""
    day = WorkerDay(1, frozenset(), ((8 * H, 18 * H),), (0.0, 0.0))
    jobs = [
        DayJob(5, 0.0, 0.0, H, (9 * H, 12 * H)),
        DayJob(7, 0.0, 0.0, H, (8 * H, 8 * H), worker_id=1, started=True),
    ]
    inputs = DayInputs("c", date(2030, 1, 7), 0, 8 * H, (day,), tuple(jobs), {1: (5, 6, 7)}, 3)
    built = build(inputs, _straight)
    (route,) = current_plan(built, inputs.routes).routes
    assert [s.job_id for s in route.stops] == ["7", "5"]  # 6 is gone; 7 is under way
    assert route.stops[1].start_s >= route.stops[0].departure_s


def test_refusals_name_the_rule() -> None:
    """Why nobody can come: nobody skilled, nobody working long enough then, or everyone full."""
    worker = WorkerDay(1, frozenset({"care"}), ((9 * H, 11 * H),), (0.0, 0.0))
    inputs = _inputs([worker], [])
    plain = DayJob(0, 0.0, 0.0, H, (9 * H, 10 * H))
    assert refusal(inputs, DayJob(0, 0.0, 0.0, H, (9 * H, 10 * H), frozenset({"x"}))).code == (
        "no_skilled_worker"
    )
    late = refusal(inputs, DayJob(0, 0.0, 0.0, H, (10 * H + 1800, 12 * H)))
    assert late.code == "not_working_then"
    assert "2030-01-07 10:30–12:00" in late.message
    assert refusal(inputs, plain).code == "fully_booked"
    assert refusal(inputs, plain, worker_id=1).message.startswith("worker 1 is fully booked")


# ---- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def plans(live_app: tuple[str, Any]) -> SettledPlans:
    """The app's day-plans runtime, awaited after its events."""
    return SettledPlans(live_app[1])


async def _city_plan(client: httpx.AsyncClient, who: Account, city: str, day: date) -> Any:
    r = await client.get(f"/v1/cities/{city}/plans?date={day.isoformat()}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_day_is_planned_with_arrival_times_and_workers_see_their_stops(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """Re-planning stores a new version holding every job in its window; each worker reads their stops in order, the area only."""
    day = day_after_tomorrow()
    service = await make_service(client, admin, duration_min=60)
    here = engine_city.here
    east = (here[0], here[1] + 0.004)
    a = await planned_worker(stores, client, engine_city.id, here, hours=(8 * 60, 18 * 60))
    b = await planned_worker(stores, client, engine_city.id, east, hours=(8 * 60, 18 * 60))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    booked = []
    for where, start, end in (
        (here, "09:00", "10:00"),
        (east, "09:00", "10:00"),
        (here, "13:00", "15:00"),
    ):
        r = await book_window(client, customer, service, where, day, start, end)
        assert r.status_code == 201, r.text
        booked.append(r.json())
    await plans.idle()
    before = await _city_plan(client, dispatcher, engine_city.id, day)
    r = await client.post(
        f"/v1/cities/{engine_city.id}/plans/replan",
        headers=dispatcher.auth,
        json={"date": day.isoformat(), "reason": "morning check"},
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["version"] == before["version"] + 1
    assert (plan["kind"], plan["reason"]) == ("solve", "morning check")
    assert plan["dropped"] == []
    routes = stops_of(plan)
    assert sorted(o for ids in routes.values() for o in ids) == sorted(o["id"] for o in booked)
    for route in plan["routes"]:
        for s in route["stops"]:
            begins = datetime.fromisoformat(s["start_at"])
            assert datetime.fromisoformat(s["window_start"]) <= begins
            assert begins <= datetime.fromisoformat(s["window_end"])
            assert datetime.fromisoformat(s["arrival_at"]) <= begins
    mine = (await client.get(f"/v1/me/plan?date={day.isoformat()}", headers=a.auth)).json()
    assert mine["version"] == plan["version"]
    assert [s["order_id"] for s in mine["stops"]] == routes.get(a.id, [])
    theirs = (await client.get(f"/v1/workers/{b.id}/plan?date={day}", headers=b.auth)).json()
    assert [s["order_id"] for s in theirs["stops"]] == routes.get(b.id, [])
    for s in mine["stops"] + theirs["stops"]:
        assert s["address_detail"] == ""  # not held yet: the area, not the door
        assert s["lat"] == round(s["lat"], 3)
    starts = [datetime.fromisoformat(s["start_at"]) for s in mine["stops"]]
    assert starts == sorted(starts)


async def test_replanning_keeps_a_started_job_with_its_worker(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A job under way stays first on its worker's route through a re-plan, though another worker sits at the door."""
    service = await make_service(client, admin, duration_min=60)
    here = engine_city.here
    start = soon_today(45, 60)
    day = start.astimezone(ZONE).date()
    at_door = await planned_worker(stores, client, engine_city.id, here)
    away = await planned_worker(stores, client, engine_city.id, (here[0] + 0.004, here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": service,
            "lat": here[0],
            "lng": here[1],
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    held = r.json()
    r = await client.post(
        f"/v1/orders/{held['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": away.id, "reason": "regular of this family", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{held['id']}/depart", headers=away.auth, json={})
    assert r.status_code == 200, r.text
    await plans.idle()
    r = await client.post(
        f"/v1/cities/{engine_city.id}/plans/replan",
        headers=dispatcher.auth,
        json={"date": day.isoformat(), "reason": "after the reassignment"},
    )
    assert r.status_code == 200, r.text
    routes = stops_of(r.json())
    assert routes[away.id][0] == held["id"]
    assert held["id"] not in routes.get(at_door.id, [])


async def test_a_cancel_triggers_a_replan_without_the_job(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """Cancelling a planned order re-plans its day in the background: a new solved version without it."""
    day = day_after_tomorrow()
    service = await make_service(client, admin)
    await planned_worker(stores, client, engine_city.id, engine_city.here)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    ids = []
    for start, end in (("09:00", "10:00"), ("11:00", "12:00")):
        r = await book_window(client, customer, service, engine_city.here, day, start, end)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    await plans.idle()
    before = await _city_plan(client, dispatcher, engine_city.id, day)
    assert sorted(o for v in stops_of(before).values() for o in v) == sorted(ids)
    solves = plans.solves
    r = await client.post(
        f"/v1/orders/{ids[0]}/cancel", headers=customer.auth, json={"reason": "away"}
    )
    assert r.status_code == 200, r.text
    await plans.idle()
    after = await _city_plan(client, dispatcher, engine_city.id, day)
    assert plans.solves > solves
    assert after["version"] > before["version"]
    assert after["kind"] == "solve"
    assert after["reason"] == f"order {ids[0]}: cancel"
    assert [o for v in stops_of(after).values() for o in v] == [ids[1]]


async def test_a_worker_hears_their_new_plan_on_the_socket(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A booking fitted into a worker's day pushes a `plan` message with the stop and its times."""
    day = day_after_tomorrow()
    service = await make_service(client, admin)
    worker = await planned_worker(stores, client, engine_city.id, engine_city.here)
    ws, _ = await open_worker(live_app[0], worker)
    customer = await make_user("customer")
    r = await book_window(client, customer, service, engine_city.here, day, "10:00", "11:00")
    assert r.status_code == 201, r.text
    message = await next_of(ws, "plan")
    assert (message["worker_id"], message["date"]) == (worker.id, day.isoformat())
    assert [s["order_id"] for s in message["stops"]] == [r.json()["id"]]
    stop = message["stops"][0]
    assert at(day, "10:00") <= datetime.fromisoformat(stop["start_at"]) <= at(day, "11:00")
    assert stop["address_detail"] == ""
    await plans.idle()
    await ws.close()


async def _book_in_40_min(
    client: httpx.AsyncClient, customer: Account, service: str, here: tuple[float, float]
) -> Any:
    """A scheduled booking whose one-hour window opens 40 minutes from now."""
    start = soon_today(40, 60)
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": service,
            "lat": here[0],
            "lng": here[1],
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_the_engine_leaves_scheduled_orders_to_the_plan_which_releases_them(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A scheduled order is never offered by the engine; when its planned arrival is near, the plan assigns it to its worker through the lifecycle."""
    service = await make_service(client, admin, instant=True)
    worker = await planned_worker(stores, client, engine_city.id, engine_city.here)
    ws = await online(live_app[0], worker, engine_city.here)
    customer = await make_user("customer")
    order = await _book_in_40_min(client, customer, service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 0  # instant dispatch does not touch it
    job = await next_of(ws, "job")  # this tick released it
    assert (job["order_id"], job["status"]) == (order["id"], "assigned")
    events = (await client.get(f"/v1/orders/{order['id']}/events", headers=customer.auth)).json()
    assert [e["action"] for e in events] == ["book", "confirm", "assign"]
    assert (events[-1]["actor"], events[-1]["reason"].startswith("day plan")) == ("system", True)
    offers = await stores.pool.fetchval(
        "SELECT count(*) FROM offers WHERE order_id = $1", order["id"]
    )
    assert offers == 0
    await plans.idle()
    await ws.close()


async def test_a_scheduled_order_whose_planned_worker_never_comes_online_is_offered_to_another(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """Unreleased within [engine] unreleased_fallback_s of its window, a planned order goes to an online worker by offer."""
    service = await make_service(client, admin, instant=True)
    absent = await planned_worker(stores, client, engine_city.id, engine_city.here)
    customer = await make_user("customer")
    order = await _book_in_40_min(client, customer, service, engine_city.here)
    await plans.idle()
    planned = await stores.pool.fetchval(
        "SELECT s.worker_id FROM day_plan_stops s JOIN day_plans p ON p.id = s.plan_id "
        "WHERE s.order_id = $1 ORDER BY p.version DESC LIMIT 1",
        order["id"],
    )
    assert planned == absent.id  # the plan counts on a worker who is not online
    engine: Engine = live_app[1].state.engine
    here = await planned_worker(stores, client, engine_city.id, engine_city.here)
    ws = await online(live_app[0], here, engine_city.here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 0, "40 minutes ahead the plan still has time to release it"
    kept = engine.params
    engine.params = dataclasses.replace(kept, unreleased_fallback_s=3600)
    try:
        report = await engine.tick(engine_city.id, datetime.now(UTC))
    finally:
        engine.params = kept
    assert report.offered == 1
    offer = await next_of(ws, "offer")
    assert offer["order_id"] == order["id"]
    status = await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"])
    assert status == "offered"
    await plans.idle()
    await ws.close()


async def test_plans_are_read_only_by_staff_and_the_worker(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """A customer may not read a worker's plan (403), another worker gets 404, the worker and a dispatcher get it."""
    me = await planned_worker(stores, client, engine_city.id, engine_city.here)
    other = await planned_worker(stores, client, engine_city.id, engine_city.here)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    merchant = await make_user("merchant")
    path = f"/v1/workers/{me.id}/plan"
    assert (await client.get(path, headers=customer.auth)).status_code == 403
    assert (await client.get(path, headers=other.auth)).status_code == 404
    assert (await client.get(path, headers=merchant.auth)).status_code == 404  # not their team
    assert (await client.get(path, headers=me.auth)).status_code == 200
    r = await client.get(path, headers=dispatcher.auth)
    assert r.status_code == 200
    assert (r.json()["worker_id"], r.json()["version"]) == (me.id, None)  # no plan yet
    assert (await client.get("/v1/me/plan", headers=customer.auth)).status_code == 403
    city_path = f"/v1/cities/{engine_city.id}/plans"
    assert (await client.get(city_path, headers=me.auth)).status_code == 403
    r = await client.get(f"{path}?date=tomorrow", headers=me.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "date")
    r = await client.get("/v1/cities/nowhere/plans", headers=dispatcher.auth)
    assert r.status_code == 404


def test_plan_message_is_plain_json() -> None:
    """The `plan` socket message encodes dates and times as ISO strings (what the app parses)."""
    from dispatch.plan_views import WorkerPlan

    view = WorkerPlan(1, "c", date(2030, 1, 7), 3, datetime(2030, 1, 6, tzinfo=UTC), [], [], 0, 0)
    out = {"type": "plan", **view.to_json()}
    assert orjson.loads(orjson.dumps(out))["date"] == "2030-01-07"
    assert out["planned_at"].startswith("2030-01-06T00:00:00")


async def test_an_order_missing_from_its_plan_gets_planned(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """An open scheduled order booked without the plan (day plans were off) is planned by the engine's periodic check, once a minute."""
    from dispatch import plan_store
    from dispatch import service as dispatch_service
    from dispatch.booking import BookingParams
    from dispatch.dayplan import DayPlanParams
    from matching.planner import PlannerParams

    service = await make_service(client, admin)
    await planned_worker(stores, client, engine_city.id, engine_city.here)
    customer = await make_user("customer")
    tomorrow = datetime.now(ZONE).date() + timedelta(days=1)
    # Paused: the app's own engine loop leaves this city alone, so only `fresh` checks it.
    await stores.pool.execute(
        "UPDATE cities SET dispatch_paused = true WHERE id = $1", engine_city.id
    )
    order, _ = await dispatch_service.book(
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
        window_start=at(tomorrow, "10:00"),
        window_end=at(tomorrow, "11:00"),
        notes="",
        idempotency_key=None,
        now=datetime.now(UTC),
        params=BookingParams(),
    )
    fresh = DayPlans(
        stores,
        live_app[1].state.tracking,
        params=DayPlanParams(),
        planner_params=PlannerParams(time_limit_s=0.2),
    )
    try:
        now = datetime.now(UTC)
        assert await fresh.ensure_planned(engine_city.id, now) == 1
        await fresh.idle()
        plan = await plan_store.latest(stores.pool, engine_city.id, tomorrow)
        assert plan is not None
        assert plan.worker_of(order.id) is not None
        assert await fresh.ensure_planned(engine_city.id, now) == 0  # checked a moment ago
        later = now + timedelta(minutes=2)
        assert await fresh.ensure_planned(engine_city.id, later) == 0  # nothing missing now
    finally:
        await fresh.stop()

"""Crews at booking (issue 20 §3-§4): an instant crew booking is refused, with the reason,
when fewer than ``crew_size`` qualified workers are on shift; a scheduled one when fewer
than ``crew_size`` workers can fit it into their day plans."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from dispatch import service
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, instant_refusal
from dispatch.service import Caller
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, SettledPlans, make_worker
from tests.planning import ZONE, book_window, day_after_tomorrow, make_service, planned_worker
from workforce import store as workforce_store
from workforce.models import Window

H = 3600


async def crew_service(
    client: httpx.AsyncClient,
    admin: Account,
    size: int,
    *,
    duration_min: int = 120,
    instant: bool = True,
) -> str:
    """A service done by a crew of ``size`` (no skill needed), bookable ahead too."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"cb_{tag}", "name_zh": "开荒保洁", "name_en": "Move-in cleaning"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"cb_{tag}",
            "category": f"cb_{tag}",
            "name_zh": "开荒保洁",
            "name_en": "Move-in cleaning",
            "price_minor": 60000,
            "duration_min": duration_min,
            "instant": instant,
            "scheduled": True,
            "crew_size": size,
        },
    )
    assert r.status_code == 201, r.text
    return f"cb_{tag}"


# ---- instant: enough qualified workers on shift ---------------------------------------------


def test_instant_refusal_counts_a_crew() -> None:
    """A crew of 3 with 2 skilled workers: no_skilled_worker; 3 skilled, 2 on shift: not_working_now; 3 on shift: None."""
    now = 10 * H
    job = DayJob(0, 0.0, 0.0, 2 * H, (now, now + H), frozenset({"deep"}))
    on = [WorkerDay(i, frozenset({"deep"}), ((0, 24 * H),), (0.0, 0.0)) for i in (1, 2)]
    off = WorkerDay(3, frozenset({"deep"}), ((14 * H, 18 * H),), (0.0, 0.0))
    plain = WorkerDay(4, frozenset(), ((0, 24 * H),), (0.0, 0.0))

    def inputs(*workers: WorkerDay) -> DayInputs:
        return DayInputs("c", date(2030, 1, 7), 0, now, workers, ())

    why = instant_refusal(inputs(*on, plain), job, crew_size=3)
    assert why is not None
    assert why.code == "no_skilled_worker"
    assert "only 2 worker(s)" in why.message
    assert "crew of 3" in why.message
    why = instant_refusal(inputs(*on, off, plain), job, crew_size=3)
    assert why is not None
    assert why.code == "not_working_now"
    assert "only 2 of the 3 qualified workers" in why.message
    assert "crew of 3" in why.message
    assert instant_refusal(inputs(*on, off), job, crew_size=2) is None
    assert (
        instant_refusal(inputs(*on, replace(off, windows=((0, 24 * H),))), job, crew_size=3) is None
    )
    assert instant_refusal(inputs(*on, off), job) is None  # one worker is enough for one


async def test_an_instant_crew_booking_needs_the_whole_crew_on_shift(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
) -> None:
    """A crew of 3 with 2 workers in the city: 409 no_skilled_worker; a third working only tomorrow: 409 not_working_now; on shift today: booked."""
    service = await crew_service(client, admin, 3)
    for _ in range(2):
        await make_worker(stores, client, engine_city.id)
    customer = await make_user("customer")
    body = {"service_code": service, "lat": engine_city.here[0], "lng": engine_city.here[1]}
    r = await client.post("/v1/orders", headers=customer.auth, json=body)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("nobody_can_serve", "service_code")
    assert error["details"]["rule"] == "no_skilled_worker"
    assert error["details"]["crew_size"] == 3
    assert "crew of 3" in error["message"]
    third = await make_worker(stores, client, engine_city.id)
    tomorrow = (datetime.now(UTC) + timedelta(hours=8) + timedelta(days=1)).date()  # Shanghai
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, third.id, (Window(tomorrow.weekday(), 9 * 60, 17 * 60),)
        )
    r = await client.post("/v1/orders", headers=customer.auth, json=body)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["details"]["rule"] == "not_working_now"
    assert "only 2 of the 3 qualified workers" in error["message"]
    count = await stores.pool.fetchval(
        "SELECT count(*) FROM orders WHERE customer_id = $1", customer.id
    )
    assert count == 0
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, third.id, tuple(Window(d, 0, 1440) for d in range(7))
        )
    r = await client.post("/v1/orders", headers=customer.auth, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["crew_size"] == 3


# ---- scheduled: room for the whole crew in the day plans ------------------------------------


@pytest.fixture
def plans(live_app: tuple[str, Any]) -> SettledPlans:
    """The app's day-plans runtime, awaited after its events."""
    return SettledPlans(live_app[1])


async def _plan(client: httpx.AsyncClient, who: Account, city: str, day: date) -> Any:
    r = await client.get(f"/v1/cities/{city}/plans?date={day.isoformat()}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def _starts(plan: Any, order_id: int) -> dict[int, str]:
    """worker id → the planned start of their stop at ``order_id``."""
    return {
        r["worker_id"]: s["start_at"]
        for r in plan["routes"]
        for s in r["stops"]
        if s["order_id"] == order_id
    }


async def test_a_scheduled_crew_booking_reserves_every_members_time(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A crew of 2 booked ahead takes a stop at one common start on both members' plans, kept by a re-plan; a second crew booking in the same window is 409 slot_unavailable naming the crew; the slots skip it."""
    day = day_after_tomorrow()
    service = await crew_service(client, admin, 2, duration_min=180, instant=False)
    here = engine_city.here
    a = await planned_worker(stores, client, engine_city.id, here, hours=(8 * 60, 18 * 60))
    b = await planned_worker(
        stores, client, engine_city.id, (here[0] + 0.004, here[1]), hours=(8 * 60, 18 * 60)
    )
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await book_window(client, customer, service, here, day, "10:00", "12:00")
    assert r.status_code == 201, r.text
    first = r.json()
    await plans.idle()
    starts = _starts(await _plan(client, dispatcher, engine_city.id, day), first["id"])
    assert set(starts) == {a.id, b.id}
    assert len(set(starts.values())) == 1  # they start together
    r = await client.post(
        f"/v1/cities/{engine_city.id}/plans/replan",
        headers=dispatcher.auth,
        json={"date": day.isoformat(), "reason": "check"},
    )
    assert r.status_code == 200, r.text
    assert _starts(r.json(), first["id"]) == starts  # a full solve keeps the crew's time
    assert r.json()["dropped"] == []
    # A third worker: one free, not two.
    await planned_worker(stores, client, engine_city.id, here, hours=(8 * 60, 18 * 60))
    r = await book_window(client, customer, service, here, day, "10:00", "12:00")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("slot_unavailable", "window_start")
    assert "crew of 2" in error["message"]
    r = await client.get(
        "/v1/slots",
        headers=customer.auth,
        params={
            "service_code": service,
            "date": day.isoformat(),
            "lat": here[0],
            "lng": here[1],
        },
    )
    assert r.status_code == 200, r.text
    opens = {
        datetime.fromisoformat(s["window_start"]).astimezone(ZONE).hour for s in r.json()["slots"]
    }
    assert not opens & {10, 11, 12}  # a and b are at the first crew job then
    assert 14 in opens  # after it, the crew is free again
    r = await book_window(client, customer, service, here, day, "14:00", "15:00")
    assert r.status_code == 201, r.text


async def test_an_assigned_crew_job_takes_each_members_time_in_later_plans(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A crew order held by a and c (not the b its booking reserved): a re-plan blocks a's and c's time, frees b's, and a one-worker booking then can go to b only."""
    day = day_after_tomorrow()
    crew_svc = await crew_service(client, admin, 2, duration_min=180, instant=False)
    single = await make_service(client, admin, duration_min=60)
    here = engine_city.here
    hours = (8 * 60, 18 * 60)
    a = await planned_worker(stores, client, engine_city.id, here, hours=hours)
    b = await planned_worker(stores, client, engine_city.id, here, hours=hours)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    r = await book_window(client, customer, crew_svc, here, day, "10:00", "11:00")
    assert r.status_code == 201, r.text
    order = r.json()
    await plans.idle()
    assert set(_starts(await _plan(client, dispatcher, engine_city.id, day), order["id"])) == {
        a.id,
        b.id,
    }
    c = await planned_worker(stores, client, engine_city.id, here, hours=hours)
    held = await service.act(
        stores,
        plans.runtime.tracking,
        order["id"],
        "assign",
        Caller("system", None),
        worker_id=a.id,
        crew=[a.id, c.id],
        reason="the crew accepted",
    )
    assert held.crew == (a.id, c.id)
    await plans.idle()
    r = await client.post(
        f"/v1/cities/{engine_city.id}/plans/replan",
        headers=dispatcher.auth,
        json={"date": day.isoformat(), "reason": "after the crew took it"},
    )
    assert r.status_code == 200, r.text
    assert set(_starts(r.json(), order["id"])) == {a.id, c.id}
    r = await book_window(client, customer, single, here, day, "10:30", "11:00")
    assert r.status_code == 201, r.text
    plan = await _plan(client, dispatcher, engine_city.id, day)
    assert set(_starts(plan, r.json()["id"])) == {b.id}
    r = await book_window(client, customer, single, here, day, "10:30", "11:00")
    assert r.status_code == 409, r.text  # a and c are at the crew job, b at the first one

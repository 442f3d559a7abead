"""Crews at booking (issue 20 §3-§4): an instant crew booking is refused, with the reason,
when fewer than ``crew_size`` qualified workers are on shift; a scheduled one when fewer
than ``crew_size`` workers can fit it into their day plans."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import httpx

from dispatch.dayplan import DayInputs, DayJob, WorkerDay, instant_refusal
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, make_worker
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

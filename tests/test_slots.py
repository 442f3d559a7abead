"""Bookable slots and the day-plan check on scheduled bookings, over HTTP against real stores."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx

from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity
from tests.planning import (
    ZONE,
    at,
    book_window,
    day_after_tomorrow,
    make_service,
    planned_worker,
)


def _starts(body: dict[str, Any]) -> list[str]:
    """The local start times (HH:MM) of the offered slots."""
    return [
        datetime.fromisoformat(s["window_start"]).astimezone(ZONE).strftime("%H:%M")
        for s in body["slots"]
    ]


async def _slots(
    client: httpx.AsyncClient, who: Account, service: str, where: tuple[float, float], day: Any
) -> dict[str, Any]:
    r = await client.get(
        "/v1/slots",
        headers=who.auth,
        params={"service_code": service, "date": day.isoformat(), "lat": where[0], "lng": where[1]},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_slots_follow_availability_and_a_full_plan_offers_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """Slots cover the worker's hours (the job must end inside them); once their plan is full none is offered and a booking is 409 naming the rule."""
    day = day_after_tomorrow()
    service = await make_service(client, admin, duration_min=60)
    await planned_worker(stores, client, engine_city.id, engine_city.here, hours=(9 * 60, 12 * 60))
    customer = await make_user("customer")
    body = await _slots(client, customer, service, engine_city.here, day)
    assert _starts(body) == ["09:00", "10:00", "11:00"]  # 11:00–12:00 is the last that ends by 12
    assert body["slots"][0]["workers"] == 1
    assert body["slots"][0]["options"] is None  # customers do not see who
    for start, end in (("09:00", "09:30"), ("10:00", "10:30"), ("11:00", "11:30")):
        r = await book_window(client, customer, service, engine_city.here, day, start, end)
        assert r.status_code == 201, r.text
    assert _starts(await _slots(client, customer, service, engine_city.here, day)) == []
    r = await book_window(client, customer, service, engine_city.here, day, "10:00", "11:00")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("slot_unavailable", "window_start")
    assert "fully_booked" in error["message"]
    assert f"{day.isoformat()} 10:00–11:00" in error["message"]


async def test_skills_are_respected(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """A worker without the service's skill is never offered; a skilled one opens the slots."""
    day = day_after_tomorrow()
    skill = f"nanny_{secrets.token_hex(3)}"
    service = await make_service(client, admin, duration_min=60, skill=skill)
    await planned_worker(stores, client, engine_city.id, engine_city.here, hours=(8 * 60, 10 * 60))
    customer = await make_user("customer")
    assert _starts(await _slots(client, customer, service, engine_city.here, day)) == []
    r = await book_window(client, customer, service, engine_city.here, day, "08:00", "09:00")
    assert r.status_code == 409
    assert "no_skilled_worker" in r.json()["error"]["message"]
    assert skill in r.json()["error"]["message"]
    skilled = await planned_worker(
        stores, client, engine_city.id, engine_city.here, skills=(skill,), hours=(14 * 60, 16 * 60)
    )
    assert _starts(await _slots(client, customer, service, engine_city.here, day)) == [
        "14:00",
        "15:00",
    ]
    r = await book_window(client, customer, service, engine_city.here, day, "14:00", "15:00")
    assert r.status_code == 201, r.text
    plan = (await client.get(f"/v1/me/plan?date={day.isoformat()}", headers=skilled.auth)).json()
    assert [s["order_id"] for s in plan["stops"]] == [r.json()["id"]]


async def test_staff_see_who_could_come_and_at_what_cost(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """A dispatcher's slots list every worker who could take it, with the added travel; the nearer one costs less."""
    day = day_after_tomorrow()
    service = await make_service(client, admin)
    here = engine_city.here
    near = await planned_worker(stores, client, engine_city.id, here, hours=(9 * 60, 10 * 60))
    far = await planned_worker(
        stores, client, engine_city.id, (here[0] + 0.004, here[1]), hours=(8 * 60, 10 * 60)
    )
    dispatcher = await make_user("dispatcher")
    body = await _slots(client, dispatcher, service, here, day)
    assert _starts(body) == ["08:00", "09:00"]  # 08:00–09:00: only the far one works then
    assert [o["worker_id"] for o in body["slots"][0]["options"]] == [far.id]
    options = {o["worker_id"]: o for o in body["slots"][1]["options"]}
    assert set(options) == {near.id, far.id}
    assert options[near.id]["added_travel_s"] < options[far.id]["added_travel_s"]
    assert datetime.fromisoformat(options[near.id]["start_at"]) >= at(day, "09:00")


async def test_bad_slot_queries_name_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, admin: Account, engine_city: EngineCity
) -> None:
    """A missing date, a date beyond the horizon, someone else's address, an unknown service: 4xx naming the field."""
    service = await make_service(client, admin)
    customer, other = await make_user("customer"), await make_user("customer")
    here = {"lat": engine_city.here[0], "lng": engine_city.here[1]}
    r = await client.get(
        "/v1/slots", headers=customer.auth, params={"service_code": service, **here}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "date")
    far = (datetime.now(ZONE) + timedelta(days=40)).date().isoformat()
    r = await client.get(
        "/v1/slots", headers=customer.auth, params={"service_code": service, "date": far, **here}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "date")
    r = await client.post(
        "/v1/me/addresses",
        headers=other.auth,
        json={"label": "家", "lat": here["lat"], "lng": here["lng"], "detail": "1栋"},
    )
    assert r.status_code == 201, r.text
    day = day_after_tomorrow().isoformat()
    r = await client.get(
        "/v1/slots",
        headers=customer.auth,
        params={"service_code": service, "date": day, "address_id": r.json()["id"]},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "address_id")
    r = await client.get(
        "/v1/slots", headers=customer.auth, params={"service_code": "no_such", "date": day, **here}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (404, "service_code")

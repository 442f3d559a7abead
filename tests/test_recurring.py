"""Recurring bookings: continuity of the worker, per-date conflicts, rules and access."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from dispatch.booking import BookingParams
from dispatch.errors import InvalidOrder
from dispatch.recurrence import check_series, occurrence_dates, pick_worker
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, SettledPlans
from tests.planning import ZONE, make_service, planned_worker, stops_of

# ---- pure -------------------------------------------------------------------------------


def test_occurrences_fall_on_the_weekdays_of_each_week() -> None:
    """Two weeks of Mondays and Thursdays from a Wednesday: the four dates, in order."""
    wednesday = date(2030, 1, 9)
    assert occurrence_dates(wednesday, [0, 3], 2) == [
        date(2030, 1, 10),
        date(2030, 1, 14),
        date(2030, 1, 17),
        date(2030, 1, 21),
    ]


def test_the_series_worker_is_who_can_come_most_often_then_cheapest() -> None:
    """Most occurrences first; among equals the least added travel; then the lowest id."""
    assert pick_worker([{1: 50, 2: 10}, {1: 50}, {2: 10}, {1: 50, 2: 900}]) == 1
    assert pick_worker([{1: 50, 2: 10}, {1: 50, 2: 10}]) == 2
    assert pick_worker([{3: 0}, {2: 0}]) == 2
    assert pick_worker([{}, {}]) is None


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"weekdays": []}, "weekdays", "at least one weekday"),
        ({"weekdays": [1, 1]}, "weekdays", "only once"),
        ({"weekdays": [7]}, "weekdays[0]", "0 (Monday) to 6"),
        ({"window_min": 10}, "window_min", "between 30 and 720"),
        ({"first_date": date(2030, 1, 6)}, "first_date", "in the past"),
        ({"weeks": 6}, "weeks", "beyond the booking horizon of 30 days; book at most 5 weeks"),
    ],
)
def test_series_rules_name_the_field(change: dict[str, Any], field: str, rule: str) -> None:
    """Each rule of a series is a 422 naming the field and the rule."""
    args: dict[str, Any] = {
        "weekdays": [0],
        "window_min": 60,
        "first_date": date(2030, 1, 7),
        "weeks": 2,
        "today": date(2030, 1, 7),
        "params": BookingParams(),
    }
    args.update(change)
    with pytest.raises(InvalidOrder) as info:
        check_series(**args)
    assert info.value.field == field
    assert rule in info.value.message


# ---- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def plans(live_app: tuple[str, Any]) -> SettledPlans:
    """The app's day-plans runtime, awaited after its events."""
    return SettledPlans(live_app[1])


def _next_weekday(weekday: int, after_days: int = 2) -> date:
    """The first date on ``weekday`` at least ``after_days`` from today (local)."""
    from datetime import datetime

    d = datetime.now(ZONE).date() + timedelta(days=after_days)
    while d.weekday() != weekday:
        d += timedelta(days=1)
    return d


async def _series(
    client: httpx.AsyncClient,
    customer: Account,
    service: str,
    where: tuple[float, float],
    first: date,
    *,
    weeks: int = 3,
) -> httpx.Response:
    return await client.post(
        "/v1/series",
        headers=customer.auth,
        json={
            "service_code": service,
            "lat": where[0],
            "lng": where[1],
            "weekdays": [first.weekday()],
            "start_min": 9 * 60,
            "window_min": 60,
            "first_date": first.isoformat(),
            "weeks": weeks,
        },
    )


async def test_a_series_keeps_its_worker_and_reports_each_date_it_cannot(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A series keeps its worker on every date but their day off, which goes to another worker and is reported with the date and why."""
    first = _next_weekday(2)
    off = first + timedelta(days=7)
    here = engine_city.here
    regular = await planned_worker(stores, client, engine_city.id, here, days_off=(off,))
    spare = await planned_worker(  # works only the week the regular is off
        stores,
        client,
        engine_city.id,
        (here[0] + 0.004, here[1]),
        days_off=(first, first + timedelta(days=14)),
    )
    customer = await make_user("customer")
    service = await make_service(client, admin, duration_min=120)
    r = await _series(client, customer, service, here, first)
    assert r.status_code == 201, r.text
    series = r.json()
    assert series["preferred_worker_id"] == regular.id
    by_date = {o["date"]: o for o in series["occurrences"]}
    assert list(by_date) == [(first + timedelta(days=7 * i)).isoformat() for i in range(3)]
    assert all(o["order_id"] for o in by_date.values())
    moved = by_date[off.isoformat()]
    assert (moved["conflict"], moved["planned_worker_id"]) == ("other_worker", spare.id)
    assert f"worker {regular.id} does not work" in moved["reason"]
    assert off.isoformat() in moved["reason"]
    kept = [o for d, o in by_date.items() if d != off.isoformat()]
    assert [(o["conflict"], o["planned_worker_id"]) for o in kept] == [(None, regular.id)] * 2
    await plans.idle()
    r = await client.get(f"/v1/series/{series['id']}", headers=customer.auth)
    assert r.json()["occurrences"] == series["occurrences"]  # re-plans kept it so


async def test_continuity_outweighs_a_shorter_trip_when_replanning(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
    plans: SettledPlans,
) -> None:
    """A worker who joins later at the door does not take the series from its worker: re-planning pays the continuity penalty instead of the short trip."""
    first = _next_weekday(4)
    here = engine_city.here
    regular = await planned_worker(stores, client, engine_city.id, (here[0] + 0.004, here[1]))
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    service = await make_service(client, admin)
    r = await _series(client, customer, service, here, first, weeks=1)
    assert r.status_code == 201, r.text
    (occurrence,) = r.json()["occurrences"]
    await planned_worker(stores, client, engine_city.id, here)  # closer, joins later
    await plans.idle()
    r = await client.post(
        f"/v1/cities/{engine_city.id}/plans/replan",
        headers=dispatcher.auth,
        json={"date": first.isoformat(), "reason": "new worker joined"},
    )
    assert r.status_code == 200, r.text
    assert stops_of(r.json()) == {regular.id: [occurrence["order_id"]]}


async def test_a_date_nobody_can_serve_is_not_booked_and_says_why(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """With the only worker off on one date, that date has no order and a not_working_then conflict; the others are booked."""
    first = _next_weekday(1)
    off = first + timedelta(days=7)
    await planned_worker(stores, client, engine_city.id, engine_city.here, days_off=(off,))
    customer = await make_user("customer")
    service = await make_service(client, admin)
    r = await _series(client, customer, service, engine_city.here, first)
    assert r.status_code == 201, r.text
    by_date = {o["date"]: o for o in r.json()["occurrences"]}
    missing = by_date[off.isoformat()]
    assert (missing["order_id"], missing["conflict"]) == (None, "not_working_then")
    assert f"{off.isoformat()} 09:00–10:00" in missing["reason"]
    assert sum(1 for o in by_date.values() if o["order_id"]) == 2
    orders = await stores.pool.fetch(
        "SELECT id, series_id FROM orders WHERE customer_id = $1", customer.id
    )
    assert {o["series_id"] for o in orders} == {r.json()["id"]}


async def test_only_the_customer_and_staff_see_a_series_and_cancelling_cancels_its_orders(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    engine_city: EngineCity,
) -> None:
    """Another customer gets 404, a worker 403; cancelling the series cancels every booked date."""
    first = _next_weekday(5)
    await planned_worker(stores, client, engine_city.id, engine_city.here)
    customer, other = await make_user("customer"), await make_user("customer")
    worker = await make_user("worker")
    service = await make_service(client, admin)
    r = await _series(client, customer, service, engine_city.here, first, weeks=2)
    assert r.status_code == 201, r.text
    path = f"/v1/series/{r.json()['id']}"
    assert (await client.get(path, headers=other.auth)).status_code == 404
    assert (await client.get(path, headers=worker.auth)).status_code == 403
    r = await client.post(f"{path}/cancel", headers=other.auth, json={})
    assert r.status_code == 404
    r = await client.post(f"{path}/cancel", headers=customer.auth, json={"reason": "moving"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert {o["status"] for o in r.json()["occurrences"]} == {"cancelled"}
    r = await _series(client, customer, service, engine_city.here, first, weeks=9)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "weeks")

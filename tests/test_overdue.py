"""Orders stuck on site (arrived or in service past their expected end plus a margin: the
worker's own estimate if given, else the service's duration) raise one overdue_on_site
alert for the dispatchers, resolved when the order ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from api.background import blueprints
from dispatch.overdue import MARGIN, flag_overdue, overdue_at
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import book
from workforce import store as workforce_store


def test_an_order_is_overdue_after_its_duration_and_the_margin() -> None:
    """A 120-minute service that arrived at 08:00 is overdue from 10:30 with the 30-minute margin."""
    arrived = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    assert timedelta(minutes=30) == MARGIN
    assert overdue_at(arrived, 120) == datetime(2026, 12, 6, 10, 30, tzinfo=UTC)


def test_the_workers_estimate_replaces_the_duration_either_way() -> None:
    """With the worker's expected end, overdue counts from it: sooner or later than the duration."""
    arrived = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    short = datetime(2026, 12, 6, 8, 40, tzinfo=UTC)
    long = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    assert overdue_at(arrived, 120, MARGIN, short) == datetime(2026, 12, 6, 9, 10, tzinfo=UTC)
    assert overdue_at(arrived, 120, MARGIN, long) == datetime(2026, 12, 6, 11, 30, tzinfo=UTC)
    assert overdue_at(arrived, 120, MARGIN, None) == overdue_at(arrived, 120)


def test_the_check_runs_every_minute_as_a_periodic_job() -> None:
    """dispatch's blueprint is registered with the job runner and its task is periodic."""
    bp = blueprints()["dispatch"]
    # An app built from the blueprint prefixes the names with the namespace.
    assert [n for n in bp.tasks if n.endswith("flag_overdue")]
    periodic = bp.periodic_registry.periodic_tasks.values()
    assert [p for p in periodic if p.task.name.endswith("flag_overdue")]


async def _on_site(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, city: str, service: str
) -> tuple[dict[str, Any], Account, Account]:
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await make_user("worker")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker.id,
        city_id=city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    order = await book(client, customer, service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order['id']}/arrive", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    return order, worker, dispatcher


async def _open(stores: Stores, order_id: int) -> list[str]:
    rows = await stores.pool.fetch(
        "SELECT kind FROM dispatch_alerts WHERE order_id = $1 AND resolved_at IS NULL", order_id
    )
    return [r["kind"] for r in rows]


async def test_a_stuck_order_alerts_once_and_the_alert_ends_with_the_order(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """Within its time an order on site raises nothing; past it one alert (listed), however often the check runs; completing resolves it."""
    order, worker, dispatcher = await _on_site(
        client, make_user, stores, live_city, instant_service
    )
    fresh, _, _ = await _on_site(client, make_user, stores, live_city, instant_service)
    arrived = await stores.pool.fetchval("SELECT arrived_at FROM orders WHERE id = $1", order["id"])
    # The second order arrived ten minutes after the first (set, not raced: on a fast
    # machine both arrive within the same second).
    await stores.pool.execute(
        "UPDATE orders SET arrived_at = $2 WHERE id = $1",
        fresh["id"],
        arrived + timedelta(minutes=10),
    )
    now = arrived + timedelta(minutes=120) + MARGIN + timedelta(seconds=1)
    early = await flag_overdue(stores, arrived + timedelta(minutes=60))
    assert order["id"] not in early
    assert await _open(stores, order["id"]) == []
    first = await flag_overdue(stores, now)
    assert order["id"] in first
    assert fresh["id"] not in first  # it arrived later: not yet past its time
    again = await flag_overdue(stores, now + timedelta(minutes=5))
    assert order["id"] not in again
    assert await _open(stores, order["id"]) == ["overdue_on_site"]
    listed = await client.get("/v1/alerts", headers=dispatcher.auth, params={"city_id": live_city})
    assert "overdue_on_site" in [a["kind"] for a in listed.json() if a["order_id"] == order["id"]]
    r = await client.post(
        f"/v1/orders/{order['id']}/start",
        headers=worker.auth,
        json={"start_code": order["start_code"]},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order['id']}/complete", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    assert await _open(stores, order["id"]) == []


async def _time_left(
    client: httpx.AsyncClient, stores: Stores, order_id: int, worker: Account, minutes: int
) -> datetime:
    r = await client.post(
        f"/v1/orders/{order_id}/time-left", headers=worker.auth, json={"minutes_left": minutes}
    )
    assert r.status_code == 200, r.text
    end = await stores.pool.fetchval("SELECT expected_end_at FROM orders WHERE id = $1", order_id)
    assert isinstance(end, datetime)
    return end


async def test_the_alert_counts_from_the_workers_estimate_when_given(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """An order whose worker said 10 min left alerts 30 min after that, long before its duration; one said to need 200 min does not alert at duration + margin, only past its estimate."""
    short, short_worker, _ = await _on_site(client, make_user, stores, live_city, instant_service)
    long, long_worker, _ = await _on_site(client, make_user, stores, live_city, instant_service)
    short_end = await _time_left(client, stores, short["id"], short_worker, 10)
    long_end = await _time_left(client, stores, long["id"], long_worker, 200)
    arrived = await stores.pool.fetchval("SELECT arrived_at FROM orders WHERE id = $1", long["id"])
    duration = await stores.pool.fetchval(
        "SELECT duration_min FROM orders WHERE id = $1", long["id"]
    )
    assert long_end > arrived + timedelta(minutes=duration)  # the estimate runs past the duration
    assert await flag_overdue(stores, short_end + MARGIN - timedelta(seconds=1)) == []
    due = await flag_overdue(stores, short_end + MARGIN + timedelta(seconds=1))
    assert short["id"] in due
    assert long["id"] not in due
    message = await stores.pool.fetchval(
        "SELECT message FROM dispatch_alerts WHERE order_id = $1", short["id"]
    )
    assert "the worker's own estimate" in message
    by_duration = arrived + timedelta(minutes=duration) + MARGIN + timedelta(seconds=1)
    assert long["id"] not in await flag_overdue(stores, by_duration)
    assert await _open(stores, long["id"]) == []
    assert long["id"] in await flag_overdue(stores, long_end + MARGIN + timedelta(seconds=1))
    assert await _open(stores, long["id"]) == ["overdue_on_site"]

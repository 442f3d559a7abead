"""Far dates: every date or time a client sends is checked against a sane range (422), never a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from doorstep import dates
from doorstep.errors import InvalidInput
from tests.helpers import Account, MakeUser
from tests.live import DEST


def _error(r: httpx.Response) -> tuple[int, str, str | None]:
    error: dict[str, Any] = r.json()["error"]
    return r.status_code, error["code"], error["field"]


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+08:00",
        "9999-12-30T00:00:00-10:00",
        "9999-12-31T23:59:59+00:00",
        "1999-12-31T23:59:59+00:00",
        "2100-01-01T00:00:00+00:00",
    ],
)
def test_instants_outside_the_range_are_refused(raw: str) -> None:
    """Times near either end of the calendar, or just outside 2000–2099, are date_out_of_range naming the field."""
    with pytest.raises(dates.DateOutOfRange) as e:
        dates.parse_instant(raw, "from")
    assert e.value.field == "from"
    assert "2000-01-01" in e.value.message
    assert "2099-12-31" in e.value.message


def test_instants_inside_the_range_pass_and_keep_their_offset() -> None:
    """A time in range comes back as given; one without an offset or unparsable is invalid_field."""
    value = dates.parse_instant("2026-11-22T08:00:00+08:00", "from")
    assert value == datetime(2026, 11, 22, 0, tzinfo=UTC)
    assert value.utcoffset() == timedelta(hours=8)
    for raw in ("2026-11-22T08:00:00", "yesterday"):
        with pytest.raises(InvalidInput) as e:
            dates.parse_instant(raw, "to")
        assert (e.value.code, e.value.field) == ("invalid_field", "to")


def test_dates_and_days_ahead() -> None:
    """Dates outside 2000–2099 are refused; days-ahead admits today up to the horizon only."""
    assert dates.parse_date("2026-12-06", "date") == date(2026, 12, 6)
    for raw in ("0001-01-01", "9999-12-31"):
        with pytest.raises(dates.DateOutOfRange):
            dates.parse_date(raw, "date")
    with pytest.raises(InvalidInput):
        dates.parse_date("2026-1-6", "date")
    today = date(2026, 12, 6)
    assert dates.check_days_ahead(today, "d", today=today, ahead_days=30) == today
    assert dates.check_days_ahead(date(2027, 1, 5), "d", today=today, ahead_days=30)
    for bad in (date(2026, 12, 5), date(2027, 1, 6), date(1, 1, 1), date(9999, 12, 31)):
        with pytest.raises(dates.DateOutOfRange) as e:
            dates.check_days_ahead(bad, "d", today=today, ahead_days=30)
        assert "2026-12-06" in e.value.message
        assert "2027-01-05" in e.value.message


@pytest.mark.parametrize(("first_date", "weeks"), [("9999-12-20", 52), ("9999-12-31", 1)])
async def test_a_series_far_ahead_is_422(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
    first_date: str,
    weeks: int,
) -> None:
    """POST /v1/series with first_date at the calendar's end is 422 date_out_of_range at first_date, not a 500."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/series",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": DEST[0],
            "lng": DEST[1],
            "weekdays": [0, 3],
            "start_min": 540,
            "window_min": 60,
            "first_date": first_date,
            "weeks": weeks,
        },
    )
    assert _error(r) == (422, "date_out_of_range", "first_date")


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "2020-01-01", "past", "beyond"])
async def test_a_replan_of_a_far_or_past_day_is_422(
    client: httpx.AsyncClient, make_user: MakeUser, live_city: str, day: str
) -> None:
    """A replan of a day before today or beyond the booking horizon is 422 date_out_of_range at date."""
    dispatcher = await make_user("dispatcher")
    today = datetime.now(timezone(timedelta(hours=8))).date()
    day = {
        "past": (today - timedelta(days=2)).isoformat(),
        "beyond": (today + timedelta(days=40)).isoformat(),
    }.get(day, day)
    r = await client.post(
        f"/v1/cities/{live_city}/plans/replan",
        headers=dispatcher.auth,
        json={"date": day, "reason": "far"},
    )
    assert _error(r) == (422, "date_out_of_range", "date")


@pytest.mark.parametrize(
    "query",
    [
        {"from": "0001-01-01T00:00:00+08:00", "to": "0001-01-02T00:00:00+08:00"},
        {"from": "9999-12-30T00:00:00-10:00"},
        {"from": "2026-12-01T00:00:00+08:00", "to": "9999-12-31T23:59:59-10:00"},
    ],
)
async def test_a_trail_over_far_times_is_422(
    client: httpx.AsyncClient, admin: Account, worker_account: Account, query: dict[str, str]
) -> None:
    """GET /v1/workers/{id}/trail with from or to at the calendar's ends is 422 date_out_of_range naming it."""
    r = await client.get(f"/v1/workers/{worker_account.id}/trail", headers=admin.auth, params=query)
    field = "to" if query["from"].startswith("2026") else "from"
    assert _error(r) == (422, "date_out_of_range", field)


async def test_plan_and_slot_dates_far_away_are_422(
    client: httpx.AsyncClient, admin: Account, live_city: str, instant_service: str
) -> None:
    """The date query of plans and slots outside the range is 422 date_out_of_range at date."""
    cases: list[tuple[str, dict[str, str | float]]] = [
        (f"/v1/cities/{live_city}/plans", {"date": "9999-12-31"}),
        (f"/v1/cities/{live_city}/plans", {"date": "0001-01-01"}),
        (
            "/v1/slots",
            {"service_code": instant_service, "date": "9999-12-31", "lat": DEST[0], "lng": DEST[1]},
        ),
    ]
    for path, params in cases:
        r = await client.get(path, headers=admin.auth, params=params)
        assert _error(r) == (422, "date_out_of_range", "date"), (path, r.text)


@pytest.mark.parametrize(
    ("start", "field"),
    [("9999-12-31T20:00:00-10:00", "window_start"), ("0001-01-01T00:00:00+08:00", "window_start")],
)
async def test_a_booking_window_at_the_calendars_end_is_422(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
    start: str,
    field: str,
) -> None:
    """A booking whose window lies at the calendar's ends is 422 date_out_of_range, not a 500."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": DEST[0],
            "lng": DEST[1],
            "window_start": start,
            "window_end": "9999-12-31T23:00:00-10:00",
        },
    )
    assert _error(r) == (422, "date_out_of_range", field)


async def test_availability_exceptions_and_certificates_far_away_are_422(
    client: httpx.AsyncClient, admin: Account, worker_account: Account
) -> None:
    """An availability exception on 9999-12-31 and a certificate expiring then are 422 date_out_of_range."""
    r = await client.put(
        f"/v1/workers/{worker_account.id}/availability/exceptions/9999-12-31",
        headers=admin.auth,
        json={"available": False},
    )
    assert _error(r) == (422, "date_out_of_range", "on_date")
    r = await client.delete(
        f"/v1/workers/{worker_account.id}/availability/exceptions/0001-01-01", headers=admin.auth
    )
    assert _error(r) == (422, "date_out_of_range", "on_date")
    r = await client.post(
        f"/v1/workers/{worker_account.id}/certificates",
        headers=admin.auth,
        json={
            "kind": "anything",
            "number": "ABC-123",
            "issued_on": "2020-01-01",
            "expires_on": "9999-12-31",
        },
    )
    assert _error(r) == (422, "date_out_of_range", "expires_on")

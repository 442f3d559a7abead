"""Helpers for the day-plan, slot and recurring-booking tests."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from accounts import service as accounts
from doorstep.stores import Stores
from tests.helpers import PASSWORD, Account, new_phone
from workforce import store as workforce_store
from workforce.models import DayException, Window

ZONE = ZoneInfo("Asia/Shanghai")  # the test cities' time zone


def day_after_tomorrow() -> date:
    """A local date far enough ahead that nothing is released or too soon to book."""
    return datetime.now(ZONE).date() + timedelta(days=2)


def soon_today(minutes_ahead: int, job_min: int) -> datetime:
    """``now + minutes_ahead`` (UTC, whole seconds) for a test that needs a job starting
    soon, today, and ending today: late in the evening (local) such a test is skipped,
    saying why, rather than depend on what the next date holds (a job across midnight is
    tests/test_plans_midnight.py's subject)."""
    import pytest

    start = datetime.now(ZONE).replace(microsecond=0) + timedelta(minutes=minutes_ahead)
    if (start + timedelta(minutes=job_min)).date() != start.date():
        pytest.skip(f"needs a job today that ends before local midnight; it is {start:%H:%M} there")
    return start.astimezone(UTC)


def tomorrow_at(hhmm: str) -> datetime:
    """Tomorrow (local) at ``hhmm``: a window ahead that never runs into midnight."""
    return at(datetime.now(ZONE).date() + timedelta(days=1), hhmm)


def at(day: date, hhmm: str) -> datetime:
    """Local time on ``day``."""
    h, m = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(h), int(m), tzinfo=ZONE)


def window(day: date, start: str, end: str) -> dict[str, str]:
    """A booking window in local time, opening on ``day``; an ``end`` before ``start`` is
    the next day's (23:00–01:00 crosses midnight)."""
    opens = at(day, start)
    closes = at(day, end)
    if closes <= opens:
        closes = at(day + timedelta(days=1), end)
    return {"window_start": opens.isoformat(), "window_end": closes.isoformat()}


async def make_service(
    client: httpx.AsyncClient,
    admin: Account,
    *,
    duration_min: int = 60,
    skill: str | None = None,
    instant: bool = False,
) -> str:
    """A service booked ahead, needing ``skill`` (created) if given."""
    tag = secrets.token_hex(3)
    if skill is not None:
        r = await client.post(
            "/v1/skills",
            headers=admin.auth,
            json={"code": skill, "name_zh": "育婴", "name_en": "Childcare"},
        )
        assert r.status_code in (201, 409), r.text
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"pl_{tag}", "name_zh": "家政", "name_en": "Home care"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"pl_{tag}",
            "category": f"pl_{tag}",
            "name_zh": "育儿嫂",
            "name_en": "Nanny visit",
            "price_minor": 10000,
            "duration_min": duration_min,
            "instant": instant,
            "scheduled": True,
            "required_skills": [skill] if skill else [],
        },
    )
    assert r.status_code == 201, r.text
    return f"pl_{tag}"


async def planned_worker(
    stores: Stores,
    client: httpx.AsyncClient,
    city: str,
    home: tuple[float, float],
    *,
    skills: tuple[str, ...] = (),
    hours: tuple[int, int] = (0, 1440),
    days_off: tuple[date, ...] = (),
) -> Account:
    """A logged-in worker of ``city`` at ``home``, available every day between ``hours``
    (minutes from midnight), except ``days_off``."""
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="王阿姨", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=skills,
        home_lat=home[0],
        home_lng=home[1],
        team_id=None,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, user.id, tuple(Window(d, hours[0], hours[1]) for d in range(7))
        )
    for day in days_off:
        await workforce_store.put_exception(
            stores.pool, user.id, DayException(day, False, None, None, "探亲")
        )
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    body = r.json()
    return Account(user.id, phone, user.roles, body["access_token"], body["refresh_token"])


async def book_window(
    client: httpx.AsyncClient,
    customer: Account,
    service: str,
    where: tuple[float, float],
    day: date,
    start: str,
    end: str,
) -> httpx.Response:
    """Book a scheduled order; the raw response."""
    return await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": service, "lat": where[0], "lng": where[1], **window(day, start, end)},
    )


def stops_of(plan: dict[str, Any]) -> dict[int, list[int]]:
    """worker id → the order ids of their route, in order (from a city plan)."""
    return {r["worker_id"]: [s["order_id"] for s in r["stops"]] for r in plan["routes"]}

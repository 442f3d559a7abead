"""Skill-aware retrieval in the engine (dispatch.worker_skills, docs/matching-index.md#skills):
each order's candidates are its nearest free workers holding its skills, read from the
workers' profiles and kept current as they change; real Redis and PostgreSQL."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from accounts import service as accounts
from dispatch.engine import Engine
from doorstep.stores import Stores
from tests.helpers import PASSWORD, Account, MakeUser, new_phone
from tests.live import EngineCity, book_here
from tracking.ingest import IngestParams, IngestWriter
from tracking.redis_pipe import RedisPipe
from workforce import store as workforce_store
from workforce.models import Window

METRES_PER_DEGREE_LAT = 111_195.0


@pytest.fixture
def engine(live_app: tuple[str, Any]) -> Engine:
    """The app's engine (its loop is off in tests: we tick by hand)."""
    engine: Engine = live_app[1].state.engine
    return engine


@pytest.fixture
async def writer(stores: Stores) -> AsyncIterator[IngestWriter]:
    """Fixes written through the real ingest script (geo sets, presence, change log)."""
    w = IngestWriter(RedisPipe(stores.redis_url), stores.keys, IngestParams(flush_interval_ms=0))
    yield w
    await w.drain()
    await w.close()


async def hire(stores: Stores, city: str, skills: tuple[str, ...]) -> int:
    """A worker of ``city`` with these skills, available around the clock (no login)."""
    user = await accounts.create_user(
        stores, phone=new_phone(), name="李师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=skills,
        home_lat=22.5,
        home_lng=114.0,
        team_id=None,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, user.id, tuple(Window(d, 0, 1440) for d in range(7))
        )
    return user.id


async def place(writer: IngestWriter, city: str, worker: int, at: tuple[float, float]) -> None:
    """A fresh fix from the worker at ``at``: available there."""
    now_ms = int(time.time() * 1000)
    await writer.submit(
        city, worker, seq=now_ms, state="available", last=(*at, now_ms, 5.0, 0.0, ""), trail=[]
    )


async def skilled_service(client: httpx.AsyncClient, admin: Account) -> tuple[str, str]:
    """A new skill and an instant service needing it: (skill, service)."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/skills",
        headers=admin.auth,
        json={"code": f"sk_{tag}", "name_zh": "管道", "name_en": "Pipes"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"c_{tag}", "name_zh": "维修", "name_en": "Repair"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"s_{tag}",
            "category": f"c_{tag}",
            "name_zh": "管道疏通",
            "name_en": "Drain",
            "price_minor": 9000,
            "duration_min": 60,
            "instant": True,
            "scheduled": True,
            "required_skills": [f"sk_{tag}"],
        },
    )
    assert r.status_code == 201, r.text
    return f"sk_{tag}", f"s_{tag}"


def north(here: tuple[float, float], metres: float) -> tuple[float, float]:
    """The point ``metres`` north of ``here``."""
    return here[0] + metres / METRES_PER_DEGREE_LAT, here[1]


async def test_the_30th_nearest_worker_with_the_skill_is_offered_the_order(
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    writer: IngestWriter,
) -> None:
    """29 nearer workers lack the order's skill; the 30th, 1.5 km away, has it: they are the candidate and get the offer."""
    skill, service = await skilled_service(client, admin)
    unskilled = [await hire(stores, engine_city.id, ("cleaning",)) for _ in range(29)]
    skilled = await hire(stores, engine_city.id, (skill, "cleaning"))
    for i, w in enumerate([*unskilled, skilled]):
        await place(writer, engine_city.id, w, north(engine_city.here, 50.0 * (i + 1)))
    await writer.drain()
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    (decision,) = [d for d in report.decisions if d.order_id == order["id"]]
    assert [c.worker_id for c in decision.candidates] == [skilled]
    assert decision.worker_id == skilled
    assert report.offered == 1


async def test_a_worker_whose_skills_changed_is_retrieved_by_the_new_skills(
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    writer: IngestWriter,
) -> None:
    """Without the skill a nearby worker is not a candidate; once an admin adds it to their profile, the next tick (reading only changed profiles) offers them the order."""
    skill, service = await skilled_service(client, admin)
    worker = await hire(stores, engine_city.id, ("cleaning",))
    await hire(stores, engine_city.id, (skill,))  # offline: the booking needs someone able
    await place(writer, engine_city.id, worker, north(engine_city.here, 200.0))
    await writer.drain()
    order = await book_here(client, await make_user("customer"), service, engine_city.here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    (decision,) = [d for d in report.decisions if d.order_id == order["id"]]
    assert decision.candidates == ()
    assert report.offered == 0
    reads = engine.skills.reads
    r = await client.patch(f"/v1/workers/{worker}", headers=admin.auth, json={"skills": [skill]})
    assert r.status_code == 200, r.text
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    (decision,) = [d for d in report.decisions if d.order_id == order["id"]]
    assert [c.worker_id for c in decision.candidates] == [worker]
    assert decision.worker_id == worker
    assert report.offered == 1
    assert engine.skills.reads == reads  # the change came from the incremental read

"""``dispatch.worker_rows.WorkerRows``: the engine's copy of its candidates' profiles
between ticks, kept current from ``worker_changes`` (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import msgspec

from accounts import service as accounts
from dispatch import engine as _engine  # noqa: F401  (dispatch's import order)
from dispatch.candidates import load_candidates
from dispatch.worker_rows import WorkerRows
from doorstep.stores import Stores
from matching.model import Candidate
from tests.helpers import PASSWORD, new_phone
from workforce import store as workforce_store
from workforce.models import DayException, Window

NOW = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
TODAY = date(2030, 1, 7)
SHIFT = tuple(Window(d, 8 * 60, 20 * 60) for d in range(7))
LATE = tuple(Window(d, 14 * 60, 23 * 60) for d in range(7))


async def _worker(stores: Stores, city: str) -> int:
    user = await accounts.create_user(
        stores, phone=new_phone(), name="缓存师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=("cleaning",),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
        rating_sum=9,
        rating_count=2,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(conn, user.id, SHIFT)
    return user.id


def _json(cands: dict[int, Candidate]) -> bytes:
    return msgspec.json.encode([cands[w] for w in sorted(cands)], order="deterministic")


async def _both(
    stores: Stores, city: str, ids: list[int], rows: WorkerRows, now: datetime = NOW
) -> dict[int, Candidate]:
    """The candidates through the copy, checked equal to those read afresh."""
    where = {w: (22.53, 114.01) for w in ids}
    kept = await load_candidates(stores, city, where, now=now, rows=rows)
    fresh = await load_candidates(stores, city, where, now=now)
    assert _json(kept) == _json(fresh)
    return kept


async def test_every_kind_of_change_is_seen_by_the_next_call_and_only_it_is_read(
    stores: Stores, live_city: str
) -> None:
    """A shift, a skill, an exam, a certificate, a day off, a suspension and a priority
    reward written between two calls are each in the next call's candidate (equal to a
    fresh read), and only the changed worker's profile is read again."""
    ids = [await _worker(stores, live_city) for _ in range(3)]
    rows = WorkerRows()
    first = await _both(stores, live_city, ids, rows)
    assert rows.read == 3
    assert first[ids[0]].skills == {"cleaning"}
    again = await _both(stores, live_city, ids, rows)
    assert rows.read == 0
    assert rows.forgotten == 0
    assert again[ids[0]].available is first[ids[0]].available  # kept, not rebuilt
    w = ids[1]
    pool = stores.pool
    await pool.execute(
        "INSERT INTO certificate_kinds (code, name_zh, name_en, validity_years) "
        "VALUES ('electrician', '电工证', 'Electrician', 3) ON CONFLICT (code) DO NOTHING"
    )
    await pool.execute(
        "INSERT INTO skills (code, name_zh, name_en) VALUES ('repair', '维修', 'Repair') ON CONFLICT (code) DO NOTHING"
    )

    async def shift() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await workforce_store.replace_availability(conn, w, LATE)

    async def skill() -> None:
        await workforce_store.upsert_worker(
            pool,
            user_id=w,
            city_id=live_city,
            skills=("cleaning", "repair"),
            home_lat=22.53,
            home_lng=114.01,
            team_id=None,
        )

    async def exams() -> None:
        await pool.execute("UPDATE workers SET exams_required = true WHERE user_id = $1", w)

    async def exam_passed() -> None:
        await pool.execute(
            "INSERT INTO skill_qualifications (user_id, skill, qualified_at) "
            "VALUES ($1, 'repair', now())",
            w,
        )

    async def certificate() -> None:
        await workforce_store.upsert_certificate(
            pool,
            worker_id=w,
            kind="electrician",
            number=f"E-{w}",
            issued_on=date(2029, 1, 1),
            expires_on=date(2032, 1, 1),
            status="verified",
        )

    async def day_off() -> None:
        await workforce_store.put_exception(pool, w, DayException(TODAY, False, None, None, "病假"))

    async def discipline(kind: str, ends: datetime | None) -> None:
        await pool.execute(
            "INSERT INTO discipline_actions (worker_id, kind, starts_at, ends_at, reason, "
            "created_at) VALUES ($1, $2, $3, $4, 'test', now())",
            w,
            kind,
            NOW - timedelta(hours=1),
            ends,
        )

    async def suspend() -> None:
        await discipline("suspension", NOW + timedelta(days=1))

    async def reward() -> None:
        await discipline("priority", NOW + timedelta(days=1))

    async def overturn() -> None:
        await pool.execute(
            "UPDATE discipline_actions SET status = 'overturned' WHERE worker_id = $1 "
            "AND kind = 'suspension'",
            w,
        )

    checks: list[tuple[Callable[[], Awaitable[None]], Callable[[Candidate], bool]]] = [
        (shift, lambda c: c.available != first[w].available),
        (skill, lambda c: c.skills == {"cleaning", "repair"}),
        (exams, lambda c: c.untrained == {"cleaning", "repair"}),
        (exam_passed, lambda c: c.untrained == {"cleaning"}),
        (certificate, lambda c: c.certificates == {"electrician": date(2032, 1, 1)}),
        (day_off, lambda c: c.available[0][0] >= int(NOW.timestamp()) + 12 * 3600),
        (suspend, lambda c: c.state == "unavailable"),
        (reward, lambda c: c.priority and c.state == "unavailable"),
        (overturn, lambda c: c.state == "available" and c.priority),
    ]
    for change, seen in checks:
        await change()
        got = await _both(stores, live_city, ids, rows)
        assert seen(got[w]), change.__name__
        assert (rows.read, rows.forgotten) == (1, 1), change.__name__
        assert got[ids[0]] == first[ids[0]]


async def test_a_write_committed_after_a_read_began_is_seen_by_the_next_one(
    stores: Stores, live_city: str
) -> None:
    """A transaction open while a call reads (its write invisible to that call) and
    committed after it is seen by the next call, however its commit is ordered."""
    w = await _worker(stores, live_city)
    rows = WorkerRows()
    await _both(stores, live_city, [w], rows)
    async with stores.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("UPDATE workers SET skills = '{childcare}' WHERE user_id = $1", w)
        during = await _both(stores, live_city, [w], rows)
        assert during[w].skills == {"cleaning"}
        await tx.commit()
    after = await _both(stores, live_city, [w], rows)
    assert after[w].skills == {"childcare"}


async def test_time_decides_a_kept_suspension_and_a_new_profile_is_read(
    stores: Stores, live_city: str
) -> None:
    """A suspension kept in the copy ends when its time is up, with nothing written; a
    worker asked about before they had a profile is read once they have one; a
    TRUNCATE-style start over and another day's call read everything again."""
    w = await _worker(stores, live_city)
    await stores.pool.execute(
        "INSERT INTO discipline_actions (worker_id, kind, starts_at, ends_at, reason, "
        "created_at) VALUES ($1, 'suspension', $2, $3, 'test', now())",
        w,
        NOW - timedelta(hours=1),
        NOW + timedelta(minutes=30),
    )
    rows = WorkerRows()
    assert (await _both(stores, live_city, [w], rows))[w].state == "unavailable"
    later = NOW + timedelta(minutes=31)
    assert (await _both(stores, live_city, [w], rows, later))[w].state == "available"
    assert rows.read == 0
    user = await accounts.create_user(
        stores, phone=new_phone(), name="新师傅", password=PASSWORD, roles=["worker"]
    )
    assert user.id not in await _both(stores, live_city, [w, user.id], rows, later)
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=live_city,
        skills=("cleaning",),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    assert user.id in await _both(stores, live_city, [w, user.id], rows, later)
    tomorrow = NOW + timedelta(days=1)
    await _both(stores, live_city, [w, user.id], rows, tomorrow)
    assert rows.read == 2
    assert rows.starts == 2


async def test_old_log_entries_are_deleted_and_an_idle_copy_starts_over(
    stores: Stores, live_city: str
) -> None:
    """Entries of transactions finished before a snapshot ``retention_s`` old are
    deleted, and a copy not read for ``retention_s / 2`` reads everything again (so it
    never needs a deleted entry) and still sees a write made meanwhile."""
    w = await _worker(stores, live_city)
    rows = WorkerRows(retention_s=3.0)
    await _both(stores, live_city, [w], rows)
    await stores.pool.execute("UPDATE workers SET rating_count = 3 WHERE user_id = $1", w)
    logged = "SELECT count(*) FROM worker_changes WHERE worker_id = $1"
    assert await stores.pool.fetchval(logged, w) > 0
    for _ in range(9):  # a read every 0.5 s: the copy is kept, the first two marks age out
        await asyncio.sleep(0.5)
        await _both(stores, live_city, [w], rows)
    assert rows.starts == 1
    assert await stores.pool.fetchval(logged, w) == 0
    await asyncio.sleep(1.6)
    await stores.pool.execute("UPDATE workers SET rating_count = 4 WHERE user_id = $1", w)
    got = await _both(stores, live_city, [w], rows)
    assert rows.starts == 2
    assert got[w].rating_count == 4

"""``dispatch.candidates.load_candidates``' free intervals: each weekly pattern's computed
once per call and shared by the workers on it, equal to the intervals computed from each
worker's own rows (real PostgreSQL and Redis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from accounts import service as accounts
from dispatch import engine as _engine  # noqa: F401  (dispatch's import order)
from dispatch.candidates import load_candidates
from dispatch.worker_rows import _intervals
from doorstep.stores import Stores
from tests.helpers import PASSWORD, new_phone
from workforce import store as workforce_store
from workforce.models import DayException, Window

NOW = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
TODAY = date(2030, 1, 7)
SHIFT = tuple(Window(d, 8 * 60, 20 * 60) for d in range(7))
SPLIT = (*(Window(d, 7 * 60, 12 * 60) for d in range(5)), Window(0, 13 * 60, 1440))
NIGHT = (Window(0, 22 * 60, 1440), Window(1, 0, 6 * 60))  # Monday night into Tuesday


async def _worker(
    stores: Stores, city: str, windows: tuple[Window, ...], exceptions: tuple[DayException, ...]
) -> int:
    user = await accounts.create_user(
        stores, phone=new_phone(), name="排班师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=("cleaning",),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(conn, user.id, windows)
        for exc in exceptions:
            await workforce_store.put_exception(conn, user.id, exc)
    return user.id


async def test_free_intervals_equal_each_workers_own_and_are_shared_by_pattern(
    stores: Stores, live_city: str
) -> None:
    """Workers on the same weekly pattern without exceptions share one intervals tuple;
    a day off, other hours, an overnight shift, a split shift and no availability at all
    each give what ``_intervals`` gives from that worker's own windows and exceptions."""
    off = DayException(TODAY, False, None, None, "病假")
    hours = DayException(TODAY + timedelta(days=1), True, 600, 960, "")
    plans: list[tuple[tuple[Window, ...], tuple[DayException, ...]]] = [
        (SHIFT, ()),
        (SHIFT, ()),
        (SHIFT, (off,)),
        (SHIFT, (hours,)),
        (SHIFT, (off, hours)),
        (SPLIT, ()),
        (NIGHT, ()),
        ((), ()),
        ((), (hours,)),
    ]
    ids = [await _worker(stores, live_city, w, e) for w, e in plans]
    got = await load_candidates(
        stores, live_city, {w: (22.53, 114.01) for w in ids}, now=NOW, customer_ids=[]
    )
    zone = ZoneInfo("Asia/Shanghai")
    days = [TODAY, TODAY + timedelta(days=1)]
    for w, (windows, exceptions) in zip(ids, plans, strict=True):
        assert got[w].available == _intervals(days, list(windows), list(exceptions), zone), w
    assert got[ids[0]].available is got[ids[1]].available
    assert got[ids[0]].available != got[ids[2]].available
    assert got[ids[7]].available == ()

"""Write a generated history (``seeding.history``) into PostgreSQL with COPY.

Customers and workers of the history are new accounts (nobody can log in as them: their
password is random and thrown away); orders, their ``assigned`` and final events,
ratings and the orders' places go in with ``COPY``, in booking order, with ids reserved
from the orders' sequence. Then the city's rollup days are rebuilt. A second run with
the same city and seed is refused (its accounts exist already).

About 1 million orders a minute on a 2-core machine (docs/analytics.md has the figure).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from accounts.passwords import hash_password
from analytics import service as analytics
from analytics import store as analytics_store
from analytics.store import LONG_S
from catalog import store as catalog_store
from doorstep.stores import Stores
from privacy import crypto
from seeding.history import CANCELLED, COMPLETED, FAILED, History, ServiceOption, generate
from seeding.load import road_nodes_inside
from seeding.load import seed as seed_city
from simulations.demand import lade_curve

log = logging.getLogger("doorstep.seed")
CHUNK = 100_000
STATUS = {COMPLETED: "completed", CANCELLED: "cancelled", FAILED: "failed"}


class HistoryExists(Exception):
    """This city and seed have a history already."""


@dataclass(frozen=True, slots=True)
class HistoryReport:
    """What a history run wrote, and how long it took."""

    city: str
    orders: int
    customers: int
    workers: int
    first_day: date
    last_day: date
    generate_s: float
    copy_s: float
    rollup_s: float


def _times(a: npt.NDArray[np.float64]) -> list[datetime | None]:
    """Epoch seconds to aware UTC datetimes (NaN to None)."""
    stamps = (a * 1e6).astype("datetime64[us]") if a.size else np.array([], "datetime64[us]")
    stamps = np.where(np.isnan(a), np.datetime64("NaT"), stamps)
    return [None if x is None else x.replace(tzinfo=UTC) for x in stamps.tolist()]


def _chunks(n: int) -> Iterator[slice]:
    for i in range(0, n, CHUNK):
        yield slice(i, min(n, i + CHUNK))


def _phone(kind: str, seed: int, city_id: str, i: int) -> str:
    return f"h-{city_id}-{seed}-{kind}{i}"


async def _accounts(
    conn: Any,
    kind: str,
    role: str,
    seed: int,
    city_id: str,
    created: Sequence[datetime | None],
    pw: str,
) -> list[int]:
    names = {"c": "历史客户", "w": "历史师傅"}
    start = await _reserve(conn, "users_id_seq", len(created))
    ids = list(range(start, start + len(created)))
    await conn.copy_records_to_table(
        "users",
        records=[
            (
                uid,
                crypto.seal("users.phone", _phone(kind, seed, city_id, i)),
                crypto.blind("phone", _phone(kind, seed, city_id, i)),
                f"{names[kind]} {i + 1}",
                pw,
                [role],
                at,
                at,
            )
            for i, (uid, at) in enumerate(zip(ids, created, strict=True))
        ],
        columns=[
            "id",
            "phone",
            "phone_bidx",
            "name",
            "password_hash",
            "roles",
            "created_at",
            "updated_at",
        ],
        timeout=LONG_S,
    )
    return ids


async def _reserve(conn: Any, sequence: str, n: int) -> int:
    """The first of ``n`` consecutive ids taken from ``sequence``."""
    first = int(await conn.fetchval("SELECT nextval($1::regclass)", sequence))
    await conn.execute("SELECT setval($1::regclass, $2)", sequence, first + n - 1)
    return first


async def _skip_foreign_key_checks(conn: Any) -> None:
    """The generated rows are consistent by construction: a superuser (a development or
    benchmark database) skips the per-row foreign-key triggers, which take most of the
    time of the COPY; anyone else pays them."""
    if await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        await conn.execute("SET LOCAL session_replication_role = replica")


async def load_history(
    stores: Stores,
    *,
    city_id: str,
    orders: int,
    days: int,
    seed: int,
    end_day: date,
) -> HistoryReport:
    """Generate ``orders`` over the ``days`` before ``end_day`` (exclusive) and write them."""
    pool = stores.pool
    city = await catalog_store.city(pool, city_id)
    if city is None and city_id == "shenzhen":
        await seed_city(stores, city_id=city_id, today=end_day)
        city = await catalog_store.city(pool, city_id)
    if city is None:
        raise ValueError(f"no city {city_id!r}: create or seed it first")
    first = crypto.blind("phone", _phone("c", seed, city_id, 0))
    if await pool.fetchval("SELECT 1 FROM users WHERE phone_bidx = $1", first):
        raise HistoryExists(f"{city_id} has a history with seed {seed} already")
    services = [
        ServiceOption(s.code, s.price_minor, s.duration_min, s.instant, s.scheduled)
        for s in await catalog_store.services(pool, category=None, include_inactive=False)
    ]
    nodes = road_nodes_inside(city)
    first_day = end_day - timedelta(days=days)
    t0 = time.perf_counter()
    h = generate(
        orders=orders,
        first_day=first_day,
        days=days,
        timezone=city.timezone,
        sites_lat=np.array([a for a, _ in nodes]),
        sites_lng=np.array([b for _, b in nodes]),
        services=services,
        curve=lade_curve(),
        seed=seed,
    )
    district, cells = analytics.locate(h.lat.tolist(), h.lng.tolist())
    pw = await hash_password(secrets.token_urlsafe(24))
    t1 = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await _skip_foreign_key_checks(conn)
        await _write(
            conn, h, city_id, city.currency, seed, first_day, services, pw, district, cells
        )
    t2 = time.perf_counter()
    all_days = [first_day + timedelta(days=i) for i in range(days)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", analytics_store.LOCK)
        await analytics_store.rebuild_days(conn, city_id, city.timezone, all_days, analytics.locate)
    t3 = time.perf_counter()
    report = HistoryReport(
        city=city_id,
        orders=orders,
        customers=h.customers,
        workers=h.workers,
        first_day=first_day,
        last_day=end_day - timedelta(days=1),
        generate_s=round(t1 - t0, 2),
        copy_s=round(t2 - t1, 2),
        rollup_s=round(t3 - t2, 2),
    )
    log.info("history %s", report)
    return report


async def _write(
    conn: Any,
    h: History,
    city_id: str,
    currency: str,
    seed: int,
    first_day: date,
    services: Sequence[ServiceOption],
    pw: str,
    district: list[str],
    cells: list[int],
) -> None:
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    first = h.first_order_s()
    joined = np.where(
        np.isnan(first),
        start.timestamp(),
        first - 3 * 86400 * np.random.default_rng(seed).random(h.customers),
    )
    customer_ids = await _accounts(conn, "c", "customer", seed, city_id, _times(joined), pw)
    worker_ids = await _accounts(
        conn, "w", "worker", seed, city_id, [start - timedelta(days=30)] * h.workers, pw
    )
    rng = np.random.default_rng(seed + 1)
    homes = rng.integers(len(h.lat), size=h.workers)
    await conn.copy_records_to_table(
        "workers",
        records=[
            (wid, city_id, float(h.lat[k]), float(h.lng[k]))
            for wid, k in zip(worker_ids, homes.tolist(), strict=True)
        ],
        columns=["user_id", "city_id", "home_lat", "home_lng"],
        timeout=LONG_S,
    )
    # 08:00–19:00 every day but one (a different day off per worker).
    await conn.copy_records_to_table(
        "worker_availability",
        records=[
            (wid, wd, 8 * 60, 19 * 60)
            for i, wid in enumerate(worker_ids)
            for wd in range(7)
            if wd != i % 7
        ],
        columns=["worker_id", "weekday", "start_min", "end_min"],
        timeout=LONG_S,
    )
    first_id = await _reserve(conn, "orders_id_seq", h.n)
    ids = np.arange(first_id, first_id + h.n, dtype=np.int64)
    codes = [s.code for s in services]
    prices = np.array([s.price_minor for s in services], dtype=np.int64)[h.service]
    minutes = np.array([s.duration_min for s in services], dtype=np.int64)[h.service]
    cust = np.array(customer_ids, dtype=np.int64)[h.customer]
    wk = np.where(h.worker >= 0, np.array(worker_ids, dtype=np.int64)[np.maximum(h.worker, 0)], -1)
    for part in _chunks(h.n):
        created = _times(h.created_s[part])
        ended = _times(h.ended_s[part])
        records = zip(
            ids[part].tolist(),
            cust[part].tolist(),
            [codes[i] for i in h.service[part].tolist()],
            ["scheduled" if s else "instant" for s in h.scheduled[part].tolist()],
            [STATUS[s] for s in h.status[part].tolist()],
            h.lat[part].tolist(),
            h.lng[part].tolist(),
            _times(h.window_start_s[part]),
            _times(h.window_end_s[part]),
            minutes[part].tolist(),
            prices[part].tolist(),
            [None if w < 0 else w for w in wk[part].tolist()],
            [f"{c:06d}" for c in h.start_code[part].tolist()],
            _times(h.en_route_s[part]),
            _times(h.arrived_s[part]),
            _times(h.completed_s[part]),
            created,
            ended,
            strict=True,
        )
        await conn.copy_records_to_table(
            "orders",
            records=[(r[0], city_id, *r[1:11], currency, *r[11:]) for r in records],
            columns=[
                "id", "city_id", "customer_id", "service_code", "kind", "status", "lat", "lng",
                "window_start", "window_end", "duration_min", "price_minor", "currency",
                "worker_id", "start_code", "en_route_at", "arrived_at", "completed_at",
                "created_at", "updated_at",
            ],
            timeout=LONG_S,
        )  # fmt: skip
        assigned = _times(h.assigned_s[part])
        events: list[tuple[Any, ...]] = []
        for oid, at, wid, end_at, status in zip(
            ids[part].tolist(), assigned, wk[part].tolist(), ended, h.status[part].tolist(),
            strict=True,
        ):  # fmt: skip
            if at is not None:
                events.append((oid, at, "assign", "dispatching", "assigned", "system", None))
            if status == COMPLETED:
                events.append((oid, end_at, "complete", "in_service", "completed", "worker", wid))
            elif status == CANCELLED:
                frm = "dispatching" if at is None else "assigned"
                events.append((oid, end_at, "cancel", frm, "cancelled", "customer", None))
            else:
                events.append((oid, end_at, "fail", "dispatching", "failed", "system", None))
        await conn.copy_records_to_table(
            "order_events",
            records=events,
            columns=["order_id", "at", "action", "from_status", "to_status", "actor", "actor_id"],
            timeout=LONG_S,
        )
        rated = h.stars[part] > 0
        await conn.copy_records_to_table(
            "ratings",
            records=list(
                zip(
                    ids[part][rated].tolist(),
                    wk[part][rated].tolist(),
                    cust[part][rated].tolist(),
                    h.stars[part][rated].tolist(),
                    _times(h.rated_s[part][rated]),
                    strict=True,
                )
            ),
            columns=["order_id", "worker_id", "customer_id", "stars", "created_at"],
            timeout=LONG_S,
        )
        await conn.copy_records_to_table(
            "analytics_order_places",
            records=list(zip(ids[part].tolist(), district[part], cells[part], strict=True)),
            columns=["order_id", "district", "h3_r8"],
            timeout=LONG_S,
        )
    # The workers' rating sums, as the ratings of the live app keep them.
    await conn.execute(
        "UPDATE workers w SET rating_sum = r.s, rating_count = r.n FROM "
        "(SELECT worker_id, sum(stars) AS s, count(*) AS n FROM ratings "
        "WHERE worker_id = ANY($1::bigint[]) GROUP BY 1) r WHERE r.worker_id = w.user_id",
        worker_ids,
        timeout=LONG_S,
    )

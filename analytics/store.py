"""The rollups in PostgreSQL: refreshed for the days touched, read by the dashboards.

A refresh finds the (city, local day) pairs whose orders changed (``orders.updated_at``),
got a rating (``ratings.created_at``) or had money move (a ledger entry naming the order,
``ledger_entries.posted_at``: a refund, the coupon subsidy it gives back — figures read
from the ledger that never touch the order's row) since the last refresh's start, minus
:data:`OVERLAP` (a transaction that began before the last refresh but committed after
it is still seen), places the new orders (district, H3 cell), then deletes and rebuilds
those days' rows of the three rollups in one transaction. The coarser rollups
(``analytics_daily`` without the hour, ``analytics_worker_totals`` per city and day,
``analytics_worker_months``) are rebuilt from the finer ones for the same days (months). Rebuilding a day is
idempotent, so seeing a day twice costs time, never correctness.

A day is the city's local date of the booking; every figure of an order (its outcome,
rating, the worker's time) is counted on the day it was booked.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any, Final

from analytics.rules import SUM_FIELDS, Query, Sums, WorkerSums, full_months
from doorstep.db import Conn, Tx

OVERLAP: Final = timedelta(minutes=5)
LONG_S: Final = 3600.0  # rebuilding a year of a big city takes minutes, not the pool's 30 s
LOCK: Final = "doorstep-analytics-refresh"

Locate = Callable[[list[float], list[float]], tuple[list[str], list[int]]]


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh did."""

    days: int  # (city, day) pairs rebuilt
    placed: int  # orders given a district and cell
    took_ms: int
    full: bool


_DAY_FILTER = (
    "o.city_id = $1 AND o.created_at >= $4 AND o.created_at < $5 "
    "AND (o.created_at AT TIME ZONE $2)::date = ANY($3::date[])"
)

_HOURLY = f"""
INSERT INTO analytics_hourly
SELECT $1, o.day, o.hour, o.district, o.category,
       count(*),
       count(*) FILTER (WHERE o.status = 'completed'),
       count(*) FILTER (WHERE o.status = 'cancelled'),
       count(*) FILTER (WHERE o.status = 'failed'),
       coalesce(sum(o.price_minor) FILTER (WHERE o.status = 'completed'), 0),
       count(o.assigned_at),
       coalesce(sum(extract(epoch FROM o.assigned_at - o.created_at)), 0),
       count(o.wait_s),
       coalesce(sum(o.wait_s), 0),
       count(o.stars),
       coalesce(sum(o.stars), 0),
       count(*) FILTER (WHERE o.prior = 0),
       count(*) FILTER (WHERE o.prior >= 1),
       count(*) FILTER (WHERE o.prior = 1),
       count(*) FILTER (WHERE o.coupon),
       coalesce(sum(o.price_minor) FILTER (WHERE o.coupon AND o.status = 'completed'), 0),
       coalesce(sum(o.subsidy_fen), 0),
       coalesce(sum(o.points_fen), 0)
FROM (
    SELECT o.status, o.price_minor, o.created_at,
           (o.created_at AT TIME ZONE $2)::date AS day,
           extract(hour FROM o.created_at AT TIME ZONE $2)::smallint AS hour,
           coalesce(p.district, '') AS district,
           s.category,
           (SELECT min(e.at) FROM order_events e
             WHERE e.order_id = o.id AND e.to_status = 'assigned') AS assigned_at,
           CASE WHEN o.arrived_at IS NULL THEN NULL
                WHEN o.kind = 'instant' THEN extract(epoch FROM o.arrived_at - o.created_at)
                ELSE greatest(0, extract(epoch FROM o.arrived_at - o.window_start)) END AS wait_s,
           r.stars,
           (SELECT count(*) FROM (SELECT 1 FROM orders q
             WHERE q.customer_id = o.customer_id AND q.id < o.id LIMIT 2) z) AS prior,
           EXISTS (SELECT 1 FROM order_discounts d JOIN coupons c ON c.id = d.coupon_id
                    WHERE d.order_id = o.id AND d.status = 'captured'
                      AND c.order_id = o.id AND c.status = 'used') AS coupon,
           (SELECT sum(l.debit_fen - l.credit_fen) FROM ledger_entries e
              JOIN ledger_lines l ON l.entry_id = e.id
             WHERE e.order_id = o.id AND l.account = 'subsidy_expense') AS subsidy_fen,
           (SELECT sum(l.debit_fen - l.credit_fen) FROM ledger_entries e
              JOIN ledger_lines l ON l.entry_id = e.id
             WHERE e.order_id = o.id AND e.kind LIKE 'growth.discount%'
               AND l.account LIKE 'points_liability:%') AS points_fen
    FROM orders o
    JOIN services s ON s.code = o.service_code
    LEFT JOIN analytics_order_places p ON p.order_id = o.id
    LEFT JOIN ratings r ON r.order_id = o.id
    WHERE {_DAY_FILTER}
) o
GROUP BY 1, 2, 3, 4, 5
"""

_HEAT = f"""
INSERT INTO analytics_heat
SELECT $1, (o.created_at AT TIME ZONE $2)::date, p.h3_r8, p.district, count(*)
FROM orders o JOIN analytics_order_places p ON p.order_id = o.id
WHERE {_DAY_FILTER}
GROUP BY 1, 2, 3, 4
"""

_WORKER_DAYS = f"""
INSERT INTO analytics_worker_days
WITH jobs AS (
    SELECT o.worker_id, (o.created_at AT TIME ZONE $2)::date AS day, count(*) AS jobs,
           coalesce(sum(extract(epoch FROM o.completed_at
                    - coalesce(o.en_route_at, o.arrived_at, o.completed_at))), 0)::bigint AS busy_s,
           sum(o.price_minor) AS income_fen
    FROM orders o
    WHERE {_DAY_FILTER} AND o.status = 'completed' AND o.worker_id IS NOT NULL
    GROUP BY 1, 2
), avail AS (
    SELECT w.user_id AS worker_id, d.day,
           coalesce(
             (SELECT CASE WHEN x.available THEN (x.end_min - x.start_min) * 60 ELSE 0 END
                FROM worker_availability_exceptions x
               WHERE x.worker_id = w.user_id AND x.on_date = d.day),
             (SELECT sum(a.end_min - a.start_min) * 60 FROM worker_availability a
               WHERE a.worker_id = w.user_id AND a.weekday = extract(isodow FROM d.day) - 1),
             0) AS available_s
    FROM workers w CROSS JOIN unnest($3::date[]) AS d(day)
    WHERE w.city_id = $1
)
SELECT $1, coalesce(a.day, j.day), coalesce(a.worker_id, j.worker_id),
       coalesce(j.jobs, 0), coalesce(j.busy_s, 0), coalesce(j.income_fen, 0),
       coalesce(a.available_s, 0)
FROM avail a FULL JOIN jobs j ON j.worker_id = a.worker_id AND j.day = a.day
WHERE coalesce(j.jobs, 0) > 0 OR coalesce(a.available_s, 0) > 0
"""

_DAILY = f"""
INSERT INTO analytics_daily
SELECT city_id, day, district, category, {", ".join(f"sum({f})" for f in SUM_FIELDS)}
FROM analytics_hourly WHERE city_id = $1 AND day = ANY($2::date[])
GROUP BY 1, 2, 3, 4
"""

_WORKER_TOTALS = """
INSERT INTO analytics_worker_totals
SELECT city_id, day, count(*), sum(jobs), sum(busy_s), sum(income_fen), sum(available_s)
FROM analytics_worker_days WHERE city_id = $1 AND day = ANY($2::date[])
GROUP BY 1, 2
"""

_WORKER_MONTHS = """
INSERT INTO analytics_worker_months
SELECT $1, date_trunc('month', day)::date, worker_id,
       sum(jobs), sum(busy_s), sum(income_fen), sum(available_s)
FROM analytics_worker_days
WHERE city_id = $1 AND date_trunc('month', day)::date = ANY($2::date[])
GROUP BY 2, 3
"""

_TOUCHED_ALL = """
SELECT DISTINCT o.city_id, (o.created_at AT TIME ZONE c.timezone)::date AS day
FROM orders o JOIN cities c ON c.id = o.city_id
"""

_TOUCHED_SINCE = """
SELECT DISTINCT o.city_id, (o.created_at AT TIME ZONE c.timezone)::date AS day
FROM orders o JOIN cities c ON c.id = o.city_id WHERE o.updated_at > $1
UNION
SELECT o.city_id, (o.created_at AT TIME ZONE c.timezone)::date
FROM ratings r JOIN orders o ON o.id = r.order_id JOIN cities c ON c.id = o.city_id
WHERE r.created_at > $1
UNION
SELECT o.city_id, (o.created_at AT TIME ZONE c.timezone)::date
FROM ledger_entries e JOIN orders o ON o.id = e.order_id JOIN cities c ON c.id = o.city_id
WHERE e.posted_at > $1 AND e.order_id IS NOT NULL
"""


def _span(days: Sequence[date]) -> tuple[datetime, datetime]:
    """A UTC range surely holding every local day of ``days`` (any time zone)."""
    lo = datetime.combine(min(days) - timedelta(days=1), clock_time(), UTC)
    hi = datetime.combine(max(days) + timedelta(days=2), clock_time(), UTC)
    return lo, hi


async def touched_days(tx: Tx, *, full: bool) -> tuple[dict[str, list[date]], datetime]:
    """The days to rebuild per city, and the new watermark (this transaction's start)."""
    started: datetime = await tx.fetchval("SELECT now()")
    watermark = await tx.fetchval("SELECT watermark FROM analytics_refresh WHERE id = 1")
    if full or watermark is None:
        rows = await tx.fetch(_TOUCHED_ALL, timeout=LONG_S)
    else:
        rows = await tx.fetch(_TOUCHED_SINCE, watermark - OVERLAP, timeout=LONG_S)
    out: dict[str, list[date]] = defaultdict(list)
    for r in rows:
        out[r["city_id"]].append(r["day"])
    return {c: sorted(set(d)) for c, d in out.items()}, started


async def _place(tx: Tx, city_id: str, tz: str, days: list[date], locate: Locate) -> int:
    lo, hi = _span(days)
    rows = await tx.fetch(
        f"SELECT o.id, o.lat, o.lng FROM orders o WHERE {_DAY_FILTER} "
        "AND NOT EXISTS (SELECT 1 FROM analytics_order_places p WHERE p.order_id = o.id)",
        city_id,
        tz,
        days,
        lo,
        hi,
        timeout=LONG_S,
    )
    if not rows:
        return 0
    district, cells = locate([r["lat"] for r in rows], [r["lng"] for r in rows])
    await tx.copy_records_to_table(
        "analytics_order_places",
        records=[(r["id"], d, c) for r, d, c in zip(rows, district, cells, strict=True)],
        columns=["order_id", "district", "h3_r8"],
        timeout=LONG_S,
    )
    return len(rows)


async def rebuild_days(tx: Tx, city_id: str, tz: str, days: list[date], locate: Locate) -> int:
    """Place the days' new orders and rebuild their rollup rows; orders placed."""
    placed = await _place(tx, city_id, tz, days, locate)
    lo, hi = _span(days)
    for table in ("analytics_hourly", "analytics_heat", "analytics_worker_days"):
        await tx.execute(
            f"DELETE FROM {table} WHERE city_id = $1 AND day = ANY($2::date[])",
            city_id,
            days,
            timeout=LONG_S,
        )
    for sql in (_HOURLY, _HEAT, _WORKER_DAYS):
        await tx.execute(sql, city_id, tz, days, lo, hi, timeout=LONG_S)
    for table in ("analytics_daily", "analytics_worker_totals"):
        await tx.execute(
            f"DELETE FROM {table} WHERE city_id = $1 AND day = ANY($2::date[])",
            city_id,
            days,
            timeout=LONG_S,
        )
    await tx.execute(_DAILY, city_id, days, timeout=LONG_S)
    await tx.execute(_WORKER_TOTALS, city_id, days, timeout=LONG_S)
    months = sorted({d.replace(day=1) for d in days})
    await tx.execute(
        "DELETE FROM analytics_worker_months WHERE city_id = $1 AND month = ANY($2::date[])",
        city_id,
        months,
        timeout=LONG_S,
    )
    await tx.execute(_WORKER_MONTHS, city_id, months, timeout=LONG_S)
    return placed


async def refresh(tx: Tx, locate: Locate, *, full: bool = False) -> RefreshReport:
    """Rebuild the days touched since the last refresh (every day if ``full``), in the
    caller's transaction; concurrent refreshes wait for each other."""
    started_s = time.perf_counter()
    await tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", LOCK)
    by_city, watermark = await touched_days(tx, full=full)
    zones = {r["id"]: r["timezone"] for r in await tx.fetch("SELECT id, timezone FROM cities")}
    placed = 0
    for city_id, days in by_city.items():
        placed += await rebuild_days(tx, city_id, zones[city_id], days, locate)
    n_days = sum(len(d) for d in by_city.values())
    took_ms = round((time.perf_counter() - started_s) * 1000)
    await tx.execute(
        "INSERT INTO analytics_refresh (id, watermark, refreshed_at, days, took_ms) "
        "VALUES (1, $1, now(), $2, $3) ON CONFLICT (id) DO UPDATE SET "
        "watermark = EXCLUDED.watermark, refreshed_at = EXCLUDED.refreshed_at, "
        "days = EXCLUDED.days, took_ms = EXCLUDED.took_ms",
        watermark,
        n_days,
        took_ms,
    )
    return RefreshReport(days=n_days, placed=placed, took_ms=took_ms, full=full)


async def last_refresh(db: Conn) -> dict[str, Any] | None:
    """The last refresh: when, how many days, how long."""
    row = await db.fetchrow(
        "SELECT refreshed_at, days, took_ms FROM analytics_refresh WHERE id = 1"
    )
    return None if row is None else dict(row)


# ---- reading ----------------------------------------------------------------------------

_KEYS: Final = {
    "day": "day",
    "hour": "hour",
    "district": "district",
    "category": "category",
    "city": "city_id",
}
_SUMS = ", ".join(f"sum({f})" for f in SUM_FIELDS)
_WHERE = (
    "day BETWEEN $1 AND $2 AND ($3::text IS NULL OR city_id = $3) "
    "AND ($4::text IS NULL OR district = $4) AND ($5::text IS NULL OR category = $5)"
)


def _sums(row: Any, offset: int) -> Sums:
    values = [row[offset + i] for i in range(len(SUM_FIELDS))]
    if values[0] is None:
        return Sums()
    kw: dict[str, Any] = {
        f: float(v) if "_s_" in f else int(v) for f, v in zip(SUM_FIELDS, values, strict=True)
    }
    return Sums(**kw)


async def totals(db: Conn, q: Query) -> Sums:
    """The sums over the query's days, city and filters."""
    row = await db.fetchrow(
        f"SELECT {_SUMS} FROM analytics_daily WHERE {_WHERE}",
        q.start,
        q.end,
        q.city_id,
        q.district,
        q.category,
    )
    return _sums(row, 0)


async def breakdown(db: Conn, q: Query) -> list[tuple[Any, Sums]]:
    """The sums per value of ``q.by``, in its order."""
    key = _KEYS[q.by]
    table = "analytics_hourly" if q.by == "hour" else "analytics_daily"
    rows = await db.fetch(
        f"SELECT {key}, {_SUMS} FROM {table} WHERE {_WHERE} GROUP BY 1 ORDER BY 1",
        q.start,
        q.end,
        q.city_id,
        q.district,
        q.category,
    )
    return [(r[0], _sums(r, 1)) for r in rows]


# A worker's rows over [$1, $2]: whole months [$3, $4) from the monthly rollup, the days
# before and after them from the daily one ($3 = $4 = $1 when there is no whole month).
# Two plain day ranges (not "BETWEEN … AND NOT …") and the city test written only when
# there is one: the statement's generic plan then still takes the primary-key ranges
# (measured: a year's table 330 ms → see docs/analytics.md, under load).
_WORKER_PARTS = """
SELECT worker_id, jobs, busy_s, income_fen, available_s FROM analytics_worker_months
 WHERE month >= $3 AND month < $4 {city}
UNION ALL
SELECT worker_id, jobs, busy_s, income_fen, available_s FROM analytics_worker_days
 WHERE ((day >= $1 AND day < $3) OR (day >= $4 AND day <= $2)) {city}
"""


def _worker_parts(q: Query) -> tuple[str, tuple[Any, ...]]:
    first, after = full_months(q.start, q.end) or (q.start, q.start)
    if q.city_id is None:
        return _WORKER_PARTS.format(city=""), (q.start, q.end, first, after)
    return _WORKER_PARTS.format(city="AND city_id = $5"), (q.start, q.end, first, after, q.city_id)


async def worker_totals(db: Conn, q: Query) -> WorkerSums:
    """All workers' sums over the days."""
    r = await db.fetchrow(
        "SELECT coalesce(sum(jobs), 0), coalesce(sum(busy_s), 0), coalesce(sum(income_fen), 0), "
        "coalesce(sum(available_s), 0) FROM analytics_worker_totals "
        "WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR city_id = $3)",
        q.start,
        q.end,
        q.city_id,
    )
    assert r is not None
    return WorkerSums(int(r[0]), int(r[1]), int(r[2]), int(r[3]))


async def workers(db: Conn, q: Query) -> list[tuple[int, str, WorkerSums]]:
    """Each worker's sums over the days, most income first."""
    parts, args = _worker_parts(q)
    rows = await db.fetch(
        "SELECT w.worker_id, coalesce(u.name, '') AS name, w.jobs, w.busy_s, w.income_fen, "
        "w.available_s FROM (SELECT worker_id, sum(jobs) AS jobs, sum(busy_s) AS busy_s, "
        "sum(income_fen) AS income_fen, sum(available_s) AS available_s "
        f"FROM ({parts}) p GROUP BY 1) w LEFT JOIN users u ON u.id = w.worker_id "
        "ORDER BY w.income_fen DESC, 1",
        *args,
    )
    return [
        (
            r["worker_id"],
            r["name"],
            WorkerSums(
                int(r["jobs"]), int(r["busy_s"]), int(r["income_fen"]), int(r["available_s"])
            ),
        )
        for r in rows
    ]


async def heat(db: Conn, q: Query, *, level: str) -> list[tuple[Any, int]]:
    """Orders per H3 cell (resolution 8) or per district over the days."""
    key = "h3_r8" if level == "hex" else "district"
    rows = await db.fetch(
        f"SELECT {key}, sum(orders) FROM analytics_heat "
        "WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR city_id = $3) "
        "AND ($4::text IS NULL OR district = $4) GROUP BY 1 ORDER BY 2 DESC",
        q.start,
        q.end,
        q.city_id,
        q.district,
    )
    return [(r[0], int(r[1])) for r in rows]

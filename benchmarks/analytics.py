"""Analytics dashboards over a seeded year: latency from the rollups vs the raw tables,
and what a refresh costs.

A fresh database gets a year of history from the simulator's demand model
(``doorstep seed-history``'s code: ``--orders``, 1,000,000 by default, 200,000 with
``--quick``), with ``COPY``. Then, for each dashboard call (the service functions the API
calls, JSON encoding included), ``--samples`` runs in turn with the others (so noise
hits all alike), over the last 30 days and over the whole year. The *baseline* is the
year's summary computed from the raw tables (orders, events, ratings) with the same
definitions: what a dashboard would cost without rollups. Refresh: one full rebuild of
every day, and an incremental one after 50 orders of one day changed.

Reported (JSON on stdout, progress on stderr): p50/p99/mean ms per call, the baseline's,
the seeding times, the refresh times, and the machine.

Usage::

    python -m benchmarks.analytics --quick   # 200k orders, 20 samples per call
    python -m benchmarks.analytics           # 1M orders, 50 samples per call
    python -m benchmarks.analytics --database-url postgresql://…/doorstep_x  # reuse one
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics import service
from analytics.rules import Query
from api.routing import encode
from benchmarks import _harness as h
from doorstep.db import create_pool
from doorstep.embedded import env_or_embedded_urls
from doorstep.settings import from_env
from doorstep.stores import Stores

CITY = "shenzhen"
RAW_SUMMARY = """
SELECT count(*), count(*) FILTER (WHERE o.status = 'completed'),
       count(*) FILTER (WHERE o.status = 'cancelled'),
       coalesce(sum(o.price_minor) FILTER (WHERE o.status = 'completed'), 0),
       avg(extract(epoch FROM (SELECT min(e.at) FROM order_events e
            WHERE e.order_id = o.id AND e.to_status = 'assigned') - o.created_at)),
       avg(r.stars)
FROM orders o LEFT JOIN ratings r ON r.order_id = o.id
WHERE o.city_id = $1 AND (o.created_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN $2 AND $3
"""


def _q(start: date, end: date, by: str = "day") -> Query:
    return Query(CITY, start, end, None, None, by, "json", "zh")  # type: ignore[arg-type]


async def _time(call: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    result = await call()
    encode(result if not hasattr(result, "as_json") else result.as_json())
    return (time.perf_counter() - t) * 1000


def _stats(ms: list[float]) -> dict[str, float]:
    p = h.percentiles(ms, (50, 99))
    return {**{k: round(v, 1) for k, v in p.items()}, "mean": round(statistics.fmean(ms), 1)}


async def run(args: argparse.Namespace, redis_url: str, server_url: str) -> dict[str, Any]:
    bench: h.BenchDatabase | None = None
    url = args.database_url
    seeding: dict[str, Any] = {}
    if url is None:
        bench = h.BenchDatabase(server_url, redis_url)
        await bench.create()
        url = bench.url
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        end_day = date.today()
        if not await pool.fetchval("SELECT 1 FROM orders WHERE city_id = $1 LIMIT 1", CITY):
            from seeding.history_load import load_history

            h.progress(f"seeding {args.orders} orders over 365 days")
            settings = from_env().with_stores(redis_url=redis_url, database_url=url)
            stores = await Stores.open(settings)
            try:
                r = await load_history(
                    stores, city_id=CITY, orders=args.orders, days=365, seed=1, end_day=end_day
                )
            finally:
                await stores.close()
            seeding = {
                "generate_s": r.generate_s,
                "copy_s": r.copy_s,
                "rollup_build_s": r.rollup_s,
            }
        orders = int(await pool.fetchval("SELECT count(*) FROM orders WHERE city_id = $1", CITY))
        if not await pool.fetchval("SELECT 1 FROM analytics_hourly WHERE city_id = $1", CITY):
            h.progress("no rollups yet: building them")
            await service.refresh(pool, full=True)
        await pool.execute("VACUUM ANALYZE")
        last = end_day - timedelta(days=1)
        month, year = last - timedelta(days=29), last - timedelta(days=364)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "summary_30d": lambda: service.summary(pool, _q(month, last)),
            "summary_365d": lambda: service.summary(pool, _q(year, last)),
            "trend_by_day_365d": lambda: service.breakdown(pool, _q(year, last, "day")),
            "by_hour_365d": lambda: service.breakdown(pool, _q(year, last, "hour")),
            "by_district_365d": lambda: service.breakdown(pool, _q(year, last, "district")),
            "by_category_365d": lambda: service.breakdown(pool, _q(year, last, "category")),
            "workers_30d": lambda: service.workers(pool, _q(month, last)),
            "workers_365d": lambda: service.workers(pool, _q(year, last)),
            "heatmap_hex_365d": lambda: service.heatmap(pool, _q(year, last), level="hex", res=8),
            "heatmap_district_365d": lambda: service.heatmap(
                pool, _q(year, last), level="district", res=8
            ),
        }
        samples: dict[str, list[float]] = {k: [] for k in calls}
        for call in calls.values():  # warm-up: caches, plans, district outlines
            await _time(call)
        h.progress(f"timing {len(calls)} calls × {args.samples}")
        for _ in range(args.samples):
            for name, call in calls.items():
                samples[name].append(await _time(call))
        raw: list[float] = []
        for _ in range(args.baseline_samples):
            t = time.perf_counter()
            await pool.fetchrow(RAW_SUMMARY, CITY, year, last)
            raw.append((time.perf_counter() - t) * 1000)
        h.progress("refresh: incremental (one day touched), then full")
        day = last - timedelta(days=10)
        await pool.execute(
            "UPDATE orders SET updated_at = now() WHERE id IN (SELECT id FROM orders "
            "WHERE city_id = $1 AND created_at >= $2::date + interval '2 hours' "
            "ORDER BY created_at LIMIT 50)",
            CITY,
            day,
        )
        await service.refresh(pool)  # first run: no watermark yet, so every day
        await pool.execute(
            "UPDATE orders SET updated_at = now() WHERE id IN (SELECT id FROM orders "
            "WHERE city_id = $1 AND created_at >= $2::date + interval '2 hours' "
            "ORDER BY created_at LIMIT 50)",
            CITY,
            day,
        )
        t = time.perf_counter()
        incremental = await service.refresh(pool)
        incremental_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        full = await service.refresh(pool, full=True)
        full_ms = (time.perf_counter() - t) * 1000
        rollup_rows = {
            table: int(await pool.fetchval(f"SELECT count(*) FROM {table}"))
            for table in ("analytics_hourly", "analytics_heat", "analytics_worker_days")
        }
    finally:
        await pool.close()
        if bench is not None and not args.keep:
            await bench.drop()
    dashboards = {k: _stats(v) for k, v in samples.items()}
    worst_p99 = max(d["p99"] for d in dashboards.values())
    return {
        "benchmark": "analytics",
        "quick": args.quick,
        "orders": orders,
        "days": 365,
        "seeding": seeding,
        "rollup_rows": rollup_rows,
        "dashboards_ms": dashboards,
        "baseline_raw_summary_365d_ms": _stats(raw),
        "speedup_summary_365d_p50": round(
            _stats(raw)["p50"] / dashboards["summary_365d"]["p50"], 1
        ),
        "worst_dashboard_p99_ms": worst_p99,
        "meets_300ms": worst_p99 <= 300,
        "refresh": {
            "incremental_ms": round(incremental_ms),
            "incremental_days": incremental.days,
            "full_ms": round(full_ms),
            "full_days": full.days,
        },
        "machine": h.machine(("asyncpg", "h3", "openpyxl")),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="200k orders, 20 samples per call")
    p.add_argument("--orders", type=int, default=None, help="orders to seed (default 1M)")
    p.add_argument("--samples", type=int, default=None, help="runs per call (default 50)")
    p.add_argument("--baseline-samples", type=int, default=5, help="raw-table runs (default 5)")
    p.add_argument(
        "--database-url", default=None, help="use this database (seeded if it has no orders)"
    )
    p.add_argument("--keep", action="store_true", help="keep the fresh database")
    args = p.parse_args()
    args.orders = args.orders or (200_000 if args.quick else 1_000_000)
    args.samples = args.samples or (20 if args.quick else 50)
    with env_or_embedded_urls("doorstep-bench-") as (redis_url, server_url):
        result = asyncio.run(run(args, redis_url, server_url))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()

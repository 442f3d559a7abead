"""Settlement under load: how fast due orders settle, and what the per-wallet lock costs
withdrawals, with the invariants checked.

A fresh database gets a city, a service, ``--workers`` workers and ``--orders`` completed
orders, each paid (a ``payment.captured`` entry, as payments posts it) with a pending
settlement (``Settlement.open_settlement``, as the ``order.completed`` consumer does).

* ``settle``: ``Settlement.settle_due(now + N days)`` settles them all (one ledger entry
  and a locked row each, 100 per transaction); orders per second.
* ``withdrawals``: ``--requests`` withdrawal requests at once, 16 connections. The
  *baseline* spreads them over as many wallets (no two share the wallet lock); the
  *contended* run sends them all to one wallet funded for only a third of them, so the
  lock serialises them and most must be refused. Reported: requests/s, p50/p99 ms, the
  ratio contended/baseline, and ``overdrawn_wallets`` and ``ledger_violations`` (both
  must be 0) and whether exactly the affordable number succeeded.

Usage::

    python -m benchmarks.settlement --quick   # 2,000 orders, 200 requests
    python -m benchmarks.settlement           # 10,000 orders, 1,000 requests
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from doorstep.embedded import env_or_embedded_urls
from doorstep.settings import from_env
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from privacy import crypto
from settlement.errors import SettlementError
from settlement.models import Payee
from settlement.rules import SettlementParams
from settlement.service import Settlement

CITY = "bench-settle"
PRICE = 12500  # 20 % commission: 100.00 net per order
AMOUNT = 1000  # each withdrawal: 10.00


async def _setup(
    stores: Stores, workers: int, orders: int, svc: Settlement, now: datetime
) -> list[int]:
    pool = stores.pool
    from catalog import service as catalog_service
    from catalog import store as catalog_store

    city = catalog_service.build_city(
        id=CITY,
        name_zh="结算城",
        name_en="Settle city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area={
            "type": "Polygon",
            "coordinates": [
                [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6], [114.0, 22.6], [114.0, 22.5]]
            ],
        },
        crs="wgs84",
    )
    await catalog_store.write_city(pool, city, upsert=True)
    await pool.execute(
        "INSERT INTO categories (code, name_zh, name_en) VALUES ('bench_cat', '保洁', 'Cleaning')"
    )
    await pool.execute(
        "INSERT INTO services (code, category, name_zh, name_en, price_minor, duration_min, "
        "instant, scheduled) VALUES ('bench_svc', 'bench_cat', '保洁', 'Cleaning', $1, 60, true, true)",
        PRICE,
    )
    phones = [f"146{g:08d}" for g in range(1, workers + 1)]  # sealed (docs/privacy.md)
    ids = [
        r["id"]
        for r in await pool.fetch(
            "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
            "SELECT p, b, '师傅' || g, 'x', ARRAY['worker', 'customer'] "
            "FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS t (p, b, g) RETURNING id",
            [crypto.seal("users.phone", p) for p in phones],
            [crypto.blind("phone", p) for p in phones],
        )
    ]
    await pool.execute(
        "INSERT INTO workers (user_id, city_id, home_lat, home_lng) "
        "SELECT unnest($1::bigint[]), $2, 22.55, 114.05",
        ids,
        CITY,
    )
    order_ids = [
        r["id"]
        for r in await pool.fetch(
            "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
            "duration_min, price_minor, currency, worker_id, start_code, completed_at) "
            "SELECT $1, w, 'bench_svc', 'instant', 'completed', 22.55, 114.05, 60, $2, 'CNY', w, "
            "'123456', $3 FROM unnest($4::bigint[]) AS w, generate_series(1, $5) "
            "RETURNING id",
            CITY,
            PRICE,
            now,
            ids,
            max(1, orders // workers),
        )
    ]
    for start in range(0, len(order_ids), 500):
        async with pool.acquire() as conn, conn.transaction():
            for order_id in order_ids[start : start + 500]:
                await ledger.post(
                    conn,
                    Entry(
                        key=f"wechat:pay:BENCH{order_id}",
                        kind="payment.captured",
                        order_id=order_id,
                        lines=(
                            debit(lr.gateway("wechat"), PRICE),
                            credit(lr.order_funds(order_id), PRICE),
                        ),
                    ),
                )
                await svc.open_settlement(conn, order_id, completed_at=now)
    return ids


async def _storm(svc: Settlement, payees: list[Payee], now: datetime, conns: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(conns)
    lat: list[float] = []
    ok = refused = 0

    async def one(p: Payee) -> None:
        nonlocal ok, refused
        async with gate:
            t = time.perf_counter()
            try:
                await svc.request_withdrawal(p, AMOUNT, now)
                ok += 1
            except SettlementError:
                refused += 1
            lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in payees))
    took = time.perf_counter() - t0
    p = h.percentiles(lat, (50, 99))
    return {
        "requests": len(payees),
        "succeeded": ok,
        "refused": refused,
        "requests_per_s": round(len(payees) / took, 1),
        "p50_ms": round(p["p50"], 1),
        "p99_ms": round(p["p99"], 1),
    }


async def run(args: argparse.Namespace, redis_url: str, server_url: str) -> dict[str, Any]:
    bench = h.BenchDatabase(server_url, redis_url)
    await bench.create()
    settings = from_env().with_stores(redis_url=redis_url, database_url=bench.url)
    settings = replace(settings, db_pool_max=20)
    stores = await Stores.open(settings)
    try:
        now = datetime.now(UTC)
        params = SettlementParams(
            withdrawal_min_fen=AMOUNT,
            withdrawal_daily_limit_fen=10**9,
            withdrawal_daily_count=100,
        )
        svc = Settlement(stores, params, None)
        workers = args.requests + 21  # the baseline's wallets, 20 to warm up, the hot one
        h.progress(f"seeding {args.orders} paid, completed orders for {workers} workers")
        ids = await _setup(stores, workers, args.orders, svc, now)
        settled_orders = int(await stores.pool.fetchval("SELECT count(*) FROM settlements"))
        h.progress(f"settling {settled_orders} orders")
        t = time.perf_counter()
        n = await svc.settle_due(now + timedelta(days=params.after_sales_days))
        settle_s = time.perf_counter() - t
        per_worker = PRICE * 8 // 10 * max(1, args.orders // workers)
        await _storm(
            svc, [Payee("worker", i) for i in ids[args.requests : args.requests + 20]], now, 16
        )
        h.progress("withdrawals: spread over wallets (baseline)")
        baseline = await _storm(svc, [Payee("worker", i) for i in ids[: args.requests]], now, 16)
        # One wallet able to pay a third of the requests: drain it to that first.
        hot = Payee("worker", ids[-1])
        affordable = args.requests // 3
        extra = per_worker - affordable * AMOUNT
        if extra > 0:
            await svc.request_withdrawal(hot, extra, now)
        h.progress("withdrawals: all on one wallet (contended)")
        contended = await _storm(svc, [hot] * args.requests, now, 16)
        balances = await ledger.balances_like(stores.pool, "worker_payable")
        overdrawn = sum(1 for a, b in balances.items() if lr.normal_balance(a, b) < 0)
        violations = await ledger.check(stores.pool)
        return {
            "benchmark": "settlement",
            "orders": n,
            "settle_orders_per_s": round(n / settle_s, 1),
            "settle_s": round(settle_s, 2),
            "withdrawals_baseline_spread": baseline,
            "withdrawals_contended_one_wallet": contended,
            "contended_vs_baseline_rps_ratio": round(
                contended["requests_per_s"] / baseline["requests_per_s"], 2
            ),
            "contended_succeeded_exactly_affordable": contended["succeeded"] == affordable,
            "overdrawn_wallets": overdrawn,
            "ledger_violations": len(violations),
            "machine": h.machine(("asyncpg",)),
        }
    finally:
        await stores.close()
        if not args.keep:
            await bench.drop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="2,000 orders, 200 requests")
    p.add_argument("--orders", type=int, default=None)
    p.add_argument("--requests", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the fresh database")
    args = p.parse_args()
    args.orders = args.orders or (2_000 if args.quick else 10_000)
    args.requests = args.requests or (200 if args.quick else 1_000)
    with env_or_embedded_urls("doorstep-bench-") as (redis_url, server_url):
        result = asyncio.run(run(args, redis_url, server_url))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()

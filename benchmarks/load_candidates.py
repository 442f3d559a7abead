"""The engine's ``load_candidates`` at the 500 orders × 100k workers tick, against a real
PostgreSQL and Redis (issue 20 §6).

``benchmarks/matching.py --live-tick-only`` builds each tick's ~11k candidates from
profiles kept in memory (its ``candidates`` step); the engine builds them every tick
with ``dispatch.candidates.load_candidates``: 11 queries for the tick's workers, then a
:class:`~matching.model.Candidate` per worker from the rows (every container fresh:
skills, certificates, free intervals from the weekly availability, customers served).
This measures that call, wall and this thread's CPU (the client's side: the queries'
decoding and the building, not PostgreSQL's own work), on a fresh migrated database.

The workers are the live tick's (``matching.make_city``: the same skills, certificates
and ratings, the valid certificates as verified rows), each with a weekly availability
drawn from a few shift patterns (``SHIFTS``), a day off or (1 %) other hours on one of
the two days for 3 %,
and a fix in the presence set. No orders: the queries for today's jobs, customers served,
discipline, rewards and day plans run and find nothing.

``--kept``: the engine's way since the profiles are kept between ticks
(``dispatch.worker_rows.WorkerRows``, fed by the ``worker_changes`` log). The copy is
filled once with every worker (timed: what a start over costs), then each tick, untimed,
``--changed`` workers are written (a rating for all of them, a new weekly pattern for half,
a suspension for a tenth: each goes through the log) and ``load_candidates`` runs for a
fresh draw of workers twice, reading every profile (as before) and through the copy, in
turns old-first and new-first; the two calls' candidates must hash the same.

Usage::

    python benchmarks/load_candidates.py [--workers 100000] [--candidates 11000] [--repeats 7]
    python benchmarks/load_candidates.py --kept [--changed 200] [--repeats 10]

PostgreSQL and Redis: ``DATABASE_URL`` / ``REDIS_URL`` (else embedded servers). The
database is dropped and the keys deleted at the end. JSON on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from redis.asyncio import Redis

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks.matching import make_city
from catalog import service as catalog_service
from catalog import store as catalog_store
from dispatch import engine as _engine  # noqa: F401  (dispatch's import order)
from dispatch.candidates import load_candidates
from dispatch.worker_rows import WorkerRows
from doorstep.db import create_pool
from doorstep.keys import Keys
from doorstep.stores import Stores

CITY_ID = "bench-candidates"
_RING = [[113.995, 22.515], [114.075, 22.515], [114.075, 22.585], [113.995, 22.585]]
AREA = {"type": "Polygon", "coordinates": [[*_RING, _RING[0]]]}  # Futian, the live tick's box
# Weekly availability patterns: (weekdays, start_min, end_min) windows.
SHIFTS: tuple[tuple[tuple[tuple[int, ...], int, int], ...], ...] = (
    ((tuple(range(7)), 8 * 60, 20 * 60),),
    ((tuple(range(6)), 9 * 60, 18 * 60),),
    ((tuple(range(7)), 0, 1440),),
    ((tuple(range(5)), 7 * 60, 12 * 60), (tuple(range(5)), 13 * 60, 19 * 60)),
    ((tuple(range(7)), 14 * 60, 23 * 60),),
    ((tuple(range(7)), 10 * 60, 22 * 60),),
)
KINDS = ("housekeeping", "electrician", "childcare")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


async def populate(conn: Any, n: int, seed: int) -> list[int]:
    """``n`` worker accounts with profiles, certificates and availability; their ids."""
    city = make_city(n, seed=n)
    await conn.executemany(
        "INSERT INTO certificate_kinds (code, name_zh, name_en, validity_years) "
        "VALUES ($1, $1, $1, 3) ON CONFLICT (code) DO NOTHING",
        [(k,) for k in KINDS],
    )
    await catalog_store.write_city(
        conn,
        catalog_service.build_city(
            id=CITY_ID,
            name_zh="压测城",
            name_en="Bench city",
            timezone="Asia/Shanghai",
            currency="CNY",
            service_area=AREA,
            crs="wgs84",
        ),
        upsert=True,
    )
    rows = [(*h.sealed_phone(f"197{i:08d}"), f"压测师傅{i}", "x", ["worker"]) for i in range(n)]
    await conn.copy_records_to_table(
        "users", records=rows, columns=("phone", "phone_bidx", "name", "password_hash", "roles")
    )
    ids = await h.ids_of(conn, [r[1] for r in rows])
    rng = random.Random(seed)
    workers: list[tuple[Any, ...]] = []
    certs: list[tuple[Any, ...]] = []
    weekly: list[tuple[int, int, int, int]] = []
    days_off: list[tuple[Any, ...]] = []
    today = NOW.date()
    for w, p in zip(ids, city.profiles, strict=True):
        skills, certificates, rating_sum, count = p[1], p[2], p[3], p[4]
        workers.append((w, CITY_ID, sorted(skills), 22.55, 114.03, int(rating_sum), count))
        for kind, expires in certificates.items():
            if expires >= today:
                certs.append((w, kind, f"{kind}-{w}", date(2024, 1, 1), expires, "verified"))
        for days, start, end in rng.choice(SHIFTS):
            weekly.extend((w, d, start, end) for d in days)
        other = rng.random()
        if other < 0.03:  # a day off, or (1 %) other hours that day
            on = today + timedelta(days=rng.randint(0, 1))
            days_off.append((w, on, True, 600, 960) if other < 0.01 else (w, on, False, None, None))
    await conn.copy_records_to_table(
        "workers",
        records=workers,
        columns=(
            "user_id",
            "city_id",
            "skills",
            "home_lat",
            "home_lng",
            "rating_sum",
            "rating_count",
        ),
    )
    await conn.copy_records_to_table(
        "worker_certificates",
        records=certs,
        columns=("worker_id", "kind", "number", "issued_on", "expires_on", "status"),
    )
    await conn.copy_records_to_table(
        "worker_availability",
        records=weekly,
        columns=("worker_id", "weekday", "start_min", "end_min"),
    )
    await conn.copy_records_to_table(
        "worker_availability_exceptions",
        records=days_off,
        columns=("worker_id", "on_date", "available", "start_min", "end_min"),
    )
    await conn.execute("ANALYZE")
    return ids


async def measure(n: int, n_candidates: int, repeats: int) -> dict[str, Any]:
    """Populate, then ``repeats`` calls of ``load_candidates`` for ``n_candidates``
    workers drawn afresh each time (a tick's union); wall and CPU ms per call."""
    with h.store_urls() as (redis_url, database_url):
        db = h.BenchDatabase(database_url, redis_url)
        await db.create()
        try:
            pool = await create_pool(db.url, min_size=1, max_size=2)
            redis = Redis.from_url(redis_url)
            stores = Stores(pool, redis, Keys(prefix=db.prefix), redis_url)
            t0 = time.perf_counter()
            async with pool.acquire() as conn:
                ids = await populate(conn, n, seed=1)
            h.progress(f"{n} workers written in {time.perf_counter() - t0:.1f} s")
            seen_ms = NOW.timestamp() * 1000 - 5000
            for start in range(0, n, 10_000):
                await redis.zadd(
                    stores.keys.presence(CITY_ID),
                    {str(w): seen_ms for w in ids[start : start + 10_000]},
                )
            rng = np.random.default_rng(7)
            walls, cpus, counts, digests = [], [], [], []
            gc.collect()
            gc.freeze()
            for _ in range(repeats + 1):  # the first call warms the pool's statements
                chosen = rng.choice(np.array(ids), n_candidates, replace=False).tolist()
                positions = {w: (22.55, 114.03) for w in chosen}
                customers = rng.integers(1, 20_000, 500).tolist()
                t0, c0 = time.perf_counter(), time.thread_time()
                got = await load_candidates(
                    stores, CITY_ID, positions, now=NOW, customer_ids=customers
                )
                cpus.append((time.thread_time() - c0) * 1e3)
                walls.append((time.perf_counter() - t0) * 1e3)
                counts.append(len(got))
                digests.append(
                    hashlib.sha256(
                        msgspec.json.encode([got[w] for w in sorted(got)], order="deterministic")
                    ).hexdigest()
                )
            gc.unfreeze()
            await redis.aclose()
            await pool.close()
        finally:
            await db.drop()
    return {
        "workers": n,
        "candidates": n_candidates,
        "repeats": repeats,
        "candidates_built": counts[1:],
        # sha256 of each call's candidates (by worker id, msgspec JSON): equal across code
        # versions when they build the same candidates
        "candidates_sha256": digests[1:],
        "load_candidates_ms": {
            "wall": round(statistics.median(walls[1:]), 1),
            "cpu": round(statistics.median(cpus[1:]), 1),
            "wall_each": [round(x, 1) for x in walls[1:]],
            "cpu_each": [round(x, 1) for x in cpus[1:]],
        },
    }


def _digest(got: dict[int, Any]) -> str:
    return hashlib.sha256(
        msgspec.json.encode([got[w] for w in sorted(got)], order="deterministic")
    ).hexdigest()


async def _write_changes(conn: Any, chosen: list[int], rng: random.Random) -> None:
    """What a tick's worth of profile writes looks like: a rating for each of ``chosen``,
    a new weekly pattern for half of them, a suspension starting now for a tenth."""
    await conn.execute(
        "UPDATE workers SET rating_sum = rating_sum + 5, rating_count = rating_count + 1 "
        "WHERE user_id = ANY($1)",
        chosen,
    )
    half = chosen[: len(chosen) // 2]
    await conn.execute("DELETE FROM worker_availability WHERE worker_id = ANY($1)", half)
    weekly: list[tuple[int, int, int, int]] = []
    for w in half:
        for days, start, end in rng.choice(SHIFTS):
            weekly.extend((w, d, start, end) for d in days)
    await conn.copy_records_to_table(
        "worker_availability",
        records=weekly,
        columns=("worker_id", "weekday", "start_min", "end_min"),
    )
    await conn.executemany(
        "INSERT INTO discipline_actions (worker_id, kind, starts_at, ends_at, reason, created_at) "
        "VALUES ($1, 'suspension', $2, $3, 'bench', $2)",
        [(w, NOW - timedelta(minutes=5), NOW + timedelta(days=1)) for w in chosen[::10]],
    )


async def measure_kept(n: int, n_candidates: int, repeats: int, n_changed: int) -> dict[str, Any]:
    """``load_candidates`` reading every profile against through a kept copy, alternated."""
    with h.store_urls() as (redis_url, database_url):
        db = h.BenchDatabase(database_url, redis_url)
        await db.create()
        try:
            pool = await create_pool(db.url, min_size=1, max_size=2)
            redis = Redis.from_url(redis_url)
            stores = Stores(pool, redis, Keys(prefix=db.prefix), redis_url)
            async with pool.acquire() as conn:
                ids = await populate(conn, n, seed=1)
            seen_ms = NOW.timestamp() * 1000 - 5000
            for start in range(0, n, 10_000):
                await redis.zadd(
                    stores.keys.presence(CITY_ID),
                    {str(w): seen_ms for w in ids[start : start + 10_000]},
                )
            rows = WorkerRows()
            everyone = {w: (22.55, 114.03) for w in ids}
            gc.collect()
            t0, c0 = time.perf_counter(), time.thread_time()
            await load_candidates(stores, CITY_ID, everyone, now=NOW, rows=rows)
            fill = ((time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3)
            h.progress(f"copy filled with {n} profiles: {fill[0]:.0f} ms wall")
            del everyone
            gc.collect()
            gc.freeze()
            rng = np.random.default_rng(7)
            wrng = random.Random(11)
            timings: dict[str, dict[str, list[float]]] = {
                "read_every_profile": {"wall": [], "cpu": []},
                "kept": {"wall": [], "cpu": []},
            }
            same, read, forgotten = [], [], []
            for tick in range(repeats + 1):  # the first tick warms the pool's statements
                async with pool.acquire() as conn:
                    await _write_changes(conn, wrng.sample(ids, n_changed), wrng)
                chosen = rng.choice(np.array(ids), n_candidates, replace=False).tolist()
                positions = {w: (22.55, 114.03) for w in chosen}
                customers = rng.integers(1, 20_000, 500).tolist()
                digests = {}
                order = (
                    ["read_every_profile", "kept"] if tick % 2 else ["kept", "read_every_profile"]
                )
                for way in order:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    got = await load_candidates(
                        stores,
                        CITY_ID,
                        positions,
                        now=NOW,
                        customer_ids=customers,
                        rows=rows if way == "kept" else None,
                    )
                    cpu = (time.thread_time() - c0) * 1e3
                    wall = (time.perf_counter() - t0) * 1e3
                    if tick:
                        timings[way]["cpu"].append(cpu)
                        timings[way]["wall"].append(wall)
                    digests[way] = _digest(got)
                same.append(digests["kept"] == digests["read_every_profile"])
                read.append(rows.read)
                forgotten.append(rows.forgotten)
            gc.unfreeze()
            await redis.aclose()
            await pool.close()
        finally:
            await db.drop()
    if not all(same):
        raise SystemExit("the kept copy built other candidates than a fresh read")
    med = {
        way: {k: round(statistics.median(v), 1) for k, v in t.items()} for way, t in timings.items()
    }
    return {
        "workers": n,
        "candidates": n_candidates,
        "repeats": repeats,
        "changed_per_tick": n_changed,
        "same_candidates_every_tick": all(same),
        "profiles_read_per_tick": read[1:],
        "profiles_forgotten_per_tick": forgotten[1:],
        "fill_copy_ms": {"wall": round(fill[0], 1), "cpu": round(fill[1], 1)},
        "load_candidates_ms": med,
        "load_candidates_ms_each": {
            way: {k: [round(x, 1) for x in v] for k, v in t.items()} for way, t in timings.items()
        },
        "kept_over_read_cpu_per_tick": [
            round(a / b, 3)
            for a, b in zip(
                timings["kept"]["cpu"], timings["read_every_profile"]["cpu"], strict=True
            )
        ],
    }


def main() -> None:
    """Run and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=11_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--kept", action="store_true", help="the kept copy against reading all")
    parser.add_argument("--changed", type=int, default=200, help="--kept: workers written a tick")
    args = parser.parse_args()
    h.bench_secret()
    if args.kept:
        result = asyncio.run(
            measure_kept(args.workers, args.candidates, args.repeats, args.changed)
        )
    else:
        result = asyncio.run(measure(args.workers, args.candidates, args.repeats))
    with open("/proc/loadavg") as f:
        result["load_average"] = f.read().split()[:3]
    result["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Analytics against real PostgreSQL: rollups equal the raw tables, refreshes are
incremental, and the API checks roles, names bad parameters and exports what it shows."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from analytics import rules
from analytics import service as analytics
from analytics.rules import Query
from doorstep.stores import Stores
from tests.analytics_seed import SeededCity, seed_city
from tests.helpers import Account, MakeUser

RAW_BY_DAY = """
WITH o AS (
    SELECT o.*, (o.created_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
           (SELECT min(e.at) FROM order_events e
             WHERE e.order_id = o.id AND e.to_status = 'assigned') AS assigned_at,
           r.stars,
           o.id = (SELECT min(f.id) FROM orders f WHERE f.customer_id = o.customer_id) AS first,
           o.id = (SELECT f.id FROM orders f WHERE f.customer_id = o.customer_id
                    ORDER BY f.id OFFSET 1 LIMIT 1) AS second
    FROM orders o LEFT JOIN ratings r ON r.order_id = o.id
    WHERE o.city_id = $1
)
SELECT day, count(*) AS orders,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       coalesce(sum(price_minor) FILTER (WHERE status = 'completed'), 0) AS gmv_fen,
       avg(extract(epoch FROM assigned_at - created_at)) AS avg_assign_s,
       avg(CASE WHEN arrived_at IS NULL THEN NULL WHEN kind = 'instant' THEN extract(epoch FROM arrived_at - created_at)
                ELSE greatest(0, extract(epoch FROM arrived_at - window_start)) END) AS avg_wait_s,
       count(stars) AS ratings, avg(stars) AS avg_stars,
       count(*) FILTER (WHERE first) AS new_customers,
       count(*) FILTER (WHERE NOT first) AS repeat_orders,
       count(*) FILTER (WHERE second) AS new_repeat_customers
FROM o GROUP BY day ORDER BY day
"""


@pytest.fixture(scope="module")
async def seeded(stores: Stores) -> SeededCity:
    """A city with 2,000 orders over the 40 days up to the day before yesterday (so the
    range holds one whole calendar month: read from the monthly worker rollup)."""
    from tests.conftest import RUN_ID

    return await seed_city(stores, f"stats-{RUN_ID}", orders=2000, days=40)


@pytest.fixture(scope="module")
async def operators(make_user: MakeUser) -> dict[str, Account]:
    """An admin, a dispatcher, and a customer and worker who may not see the figures."""
    return {r: await make_user(r) for r in ("admin", "dispatcher", "customer", "worker")}


def _q(s: SeededCity, by: str = "day") -> Query:
    return Query(s.city_id, s.first_day, s.last_day, None, None, by, "json", "zh")  # type: ignore[arg-type]


def _column(table: rules.Table, name: str) -> list[Any]:
    i = table.columns.index(name)
    return [r[i] for r in table.rows]


async def test_rollups_equal_the_raw_tables(stores: Stores, seeded: SeededCity) -> None:
    """Every day's figures from the rollups equal the same definitions computed over the
    raw orders, events and ratings."""
    raw = await stores.pool.fetch(RAW_BY_DAY, seeded.city_id)
    assert sum(r["orders"] for r in raw) == 2000
    table = await analytics.breakdown(stores.pool, _q(seeded))
    by_day = {r[0]: dict(zip(table.columns, r, strict=True)) for r in table.rows}
    assert len(by_day) == 40
    for r in raw:
        got = by_day[r["day"].isoformat()]
        for name in ("orders", "completed", "cancelled", "failed", "gmv_fen", "ratings"):
            assert got[name] == r[name], (r["day"], name)
        for name in ("new_customers", "repeat_orders", "new_repeat_customers"):
            assert got[name] == r[name], (r["day"], name)
        assert got["avg_assign_s"] == pytest.approx(float(r["avg_assign_s"]))
        assert got["avg_wait_s"] == pytest.approx(float(r["avg_wait_s"]))
        assert got["avg_stars"] == pytest.approx(float(r["avg_stars"]))
    # The other breakdowns add up to the same totals.
    total = await analytics.summary(stores.pool, _q(seeded))
    assert total.metrics.orders == 2000
    assert total.metrics.gmv_fen == sum(r["gmv_fen"] for r in raw)
    for by in ("hour", "category", "district"):
        t = await analytics.breakdown(stores.pool, _q(seeded, by))
        assert sum(_column(t, "orders")) == 2000, by
        assert sum(_column(t, "gmv_fen")) == total.metrics.gmv_fen, by
    districts = await analytics.breakdown(stores.pool, _q(seeded, "district"))
    assert _column(districts, "district") == ["福田区"]
    raw_cat = await stores.pool.fetch(
        "SELECT s.category, count(*) AS n FROM orders o JOIN services s ON s.code = o.service_code "
        "WHERE o.city_id = $1 GROUP BY 1 ORDER BY 1",
        seeded.city_id,
    )
    cats = await analytics.breakdown(stores.pool, _q(seeded, "category"))
    assert [(r[0], r[1]) for r in cats.rows] == [(r["category"], r["n"]) for r in raw_cat]


async def test_worker_rollup_equals_the_raw_tables(stores: Stores, seeded: SeededCity) -> None:
    """Each worker's jobs, income and busy time equal their completed orders, and the
    available time equals their weekly windows over the range's days."""
    raw = await stores.pool.fetch(
        "SELECT worker_id, count(*) AS jobs, sum(price_minor) AS income, "
        "sum(extract(epoch FROM completed_at - en_route_at))::bigint AS busy "
        "FROM orders WHERE city_id = $1 AND status = 'completed' GROUP BY 1",
        seeded.city_id,
    )
    table = await analytics.workers(stores.pool, _q(seeded))
    rows = {r[0]: dict(zip(table.columns, r, strict=True)) for r in table.rows}
    assert len(rows) == seeded.report.workers
    for r in raw:
        got = rows[r["worker_id"]]
        assert (got["jobs"], got["income_fen"]) == (r["jobs"], r["income"])
        assert abs(got["busy_s"] - r["busy"]) <= got["jobs"]  # rounding per day
    windows = await stores.pool.fetch(
        "SELECT a.worker_id, a.weekday, a.start_min, a.end_min FROM worker_availability a "
        "JOIN workers w ON w.user_id = a.worker_id WHERE w.city_id = $1",
        seeded.city_id,
    )
    weekly: dict[int, list[tuple[int, int, int]]] = {}
    for w in windows:
        weekly.setdefault(w["worker_id"], []).append((w["weekday"], w["start_min"], w["end_min"]))
    days = [seeded.first_day + timedelta(days=i) for i in range(40)]
    for wid, win in weekly.items():
        expected = sum(rules.available_s(win, None, d) for d in days)
        assert rows[wid]["available_s"] == expected
    assert rows[next(iter(weekly))]["utilization"] is not None


async def test_a_refresh_rebuilds_only_the_days_touched(stores: Stores, seeded: SeededCity) -> None:
    """After an order of one day is cancelled and another rated, a refresh rebuilds those
    days (they match the raw tables again) and leaves an untouched day's rows alone."""
    pool = stores.pool
    await analytics.refresh(pool)  # from here on, only changes after this one count
    touched, rated_day, untouched = (
        seeded.first_day + timedelta(days=3),
        seeded.first_day + timedelta(days=5),
        seeded.first_day + timedelta(days=7),
    )
    # A marker no rebuild would keep: if the untouched day is rebuilt, it goes.
    await pool.execute(
        "UPDATE analytics_daily SET orders = orders + 1000 WHERE ctid = (SELECT ctid FROM "
        "analytics_daily WHERE city_id = $1 AND day = $2 LIMIT 1)",
        seeded.city_id,
        untouched,
    )
    order_id = await pool.fetchval(
        "SELECT id FROM orders WHERE city_id = $1 AND status = 'completed' "
        "AND (created_at AT TIME ZONE 'Asia/Shanghai')::date = $2 "
        "AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.order_id = orders.id) LIMIT 1",
        seeded.city_id,
        touched,
    )
    await pool.execute(
        "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = $1", order_id
    )
    unrated = await pool.fetchrow(
        "SELECT id, worker_id, customer_id FROM orders o WHERE city_id = $1 "
        "AND status = 'completed' AND (created_at AT TIME ZONE 'Asia/Shanghai')::date = $2 "
        "AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.order_id = o.id) LIMIT 1",
        seeded.city_id,
        rated_day,
    )
    assert unrated is not None
    await pool.execute(
        "INSERT INTO ratings (order_id, worker_id, customer_id, stars) VALUES ($1, $2, $3, 1)",
        unrated["id"],
        unrated["worker_id"],
        unrated["customer_id"],
    )
    report = await analytics.refresh(pool)
    assert report.days >= 2
    raw = {r["day"]: r for r in await pool.fetch(RAW_BY_DAY, seeded.city_id)}
    table = await analytics.breakdown(pool, _q(seeded))
    got = {r[0]: dict(zip(table.columns, r, strict=True)) for r in table.rows}
    for day in (touched, rated_day):
        for name in ("orders", "completed", "cancelled", "gmv_fen", "ratings"):
            assert got[day.isoformat()][name] == raw[day][name], (day, name)
    assert got[untouched.isoformat()]["orders"] == raw[untouched]["orders"] + 1000
    full = await analytics.refresh(pool, full=True)
    assert full.full
    table = await analytics.breakdown(pool, _q(seeded))
    got = {r[0]: dict(zip(table.columns, r, strict=True)) for r in table.rows}
    assert got[untouched.isoformat()]["orders"] == raw[untouched]["orders"]


async def test_heatmap_hexagons_hold_every_order(stores: Stores, seeded: SeededCity) -> None:
    """The hexagons' counts add up to the orders at both resolutions, and the district
    layer is 福田区 with all of them."""
    q = _q(seeded)
    for res in (7, 8):
        fc = await analytics.heatmap(stores.pool, q, level="hex", res=res)
        assert sum(f["properties"]["orders"] for f in fc["features"]) == 2000
        assert fc["max"] == fc["features"][0]["properties"]["orders"]
    coarse = await analytics.heatmap(stores.pool, q, level="hex", res=7)
    fine = await analytics.heatmap(stores.pool, q, level="hex", res=8)
    assert len(coarse["features"]) < len(fine["features"])
    districts = await analytics.heatmap(stores.pool, q, level="district", res=8)
    assert [
        (f["properties"]["district"], f["properties"]["orders"]) for f in districts["features"]
    ] == [("福田区", 2000)]


# ---- the API ----------------------------------------------------------------------------

PATHS = (
    "/v1/analytics/summary",
    "/v1/analytics/breakdown",
    "/v1/analytics/workers",
    "/v1/analytics/heatmap",
)


async def test_only_operators_see_the_figures(
    client: httpx.AsyncClient, operators: dict[str, Account], seeded: SeededCity
) -> None:
    """Without a token 401; a customer or worker 403; an admin or dispatcher 200; only an
    admin may force a refresh."""
    params = {"city": seeded.city_id, "from": seeded.first_day.isoformat()}
    for path in PATHS:
        assert (await client.get(path, params=params)).status_code == 401
        for role in ("customer", "worker"):
            r = await client.get(path, params=params, headers=operators[role].auth)
            assert r.status_code == 403, (path, role)
        for role in ("admin", "dispatcher"):
            r = await client.get(path, params=params, headers=operators[role].auth)
            assert r.status_code == 200, (path, role, r.text)
    assert (
        await client.post("/v1/analytics/refresh", headers=operators["dispatcher"].auth)
    ).status_code == 403
    r = await client.post("/v1/analytics/refresh", headers=operators["admin"].auth)
    assert r.status_code == 200
    assert set(r.json()) == {"days", "placed", "took_ms", "full"}


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/v1/analytics/summary", {"from": "2026-02-30"}, 422, "from"),
        ("/v1/analytics/summary", {"city": "atlantis"}, 404, "city"),
        ("/v1/analytics/breakdown", {"by": "week"}, 422, "by"),
        ("/v1/analytics/breakdown", {"format": "pdf"}, 422, "format"),
        ("/v1/analytics/breakdown", {"from": "2020-01-01", "to": "2026-01-01"}, 422, "from"),
        ("/v1/analytics/workers", {"limit": "5"}, 422, "limit"),
        ("/v1/analytics/workers", {"category": "cleaning"}, 422, "category"),
        ("/v1/analytics/heatmap", {"category": "cleaning"}, 422, "category"),
        ("/v1/analytics/summary", {"format": "csv"}, 422, "format"),
        ("/v1/analytics/heatmap", {"level": "street"}, 422, "level"),
        ("/v1/analytics/heatmap", {"res": "12"}, 422, "res"),
    ],
)
async def test_a_bad_parameter_is_named(
    client: httpx.AsyncClient,
    operators: dict[str, Account],
    path: str,
    params: dict[str, str],
    status: int,
    field: str,
) -> None:
    """A wrong parameter is a 4xx whose error names it."""
    r = await client.get(path, params=params, headers=operators["admin"].auth)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field


async def test_csv_and_excel_exports_hold_the_table(
    client: httpx.AsyncClient, operators: dict[str, Account], seeded: SeededCity
) -> None:
    """The CSV and Excel exports of a breakdown hold the JSON table's rows, with titles in
    the asked language and a file name for the download."""
    base = {
        "city": seeded.city_id,
        "from": seeded.first_day.isoformat(),
        "to": seeded.last_day.isoformat(),
        "by": "category",
    }
    auth = operators["dispatcher"].auth
    without_by = {k: v for k, v in base.items() if k != "by"}
    shown = (await client.get("/v1/analytics/breakdown", params=base, headers=auth)).json()
    r = await client.get("/v1/analytics/breakdown", params={**base, "format": "csv"}, headers=auth)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="by-category-{seeded.city_id}-' in r.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert lines[0][:2] == ["品类", "订单数"]
    assert [(x[0], int(x[1])) for x in lines[1:]] == [(row[0], row[1]) for row in shown["rows"]]
    r = await client.get(
        "/v1/analytics/workers",
        params={**without_by, "format": "xlsx", "lang": "en"},
        headers=auth,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    values = list(ws.iter_rows(values_only=True))
    assert values[0][:3] == ("Worker id", "Name", "Jobs")
    workers = (await client.get("/v1/analytics/workers", params=without_by, headers=auth)).json()
    assert [v[0] for v in values[1:]] == [row[0] for row in workers["rows"]]
    assert sum(int(str(v[2])) for v in values[1:]) == sum(row[2] for row in workers["rows"]) > 0

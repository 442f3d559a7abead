"""The dashboards: a validated query in, tables and map layers out; and the refresh.

Reads only the rollups (``analytics.store``), so a dashboard costs a few index range
scans over at most tens of thousands of rows whatever the size of ``orders``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from analytics import places, rules
from analytics import store as analytics_store
from analytics.errors import UnknownCity
from analytics.rules import Metrics, Query, Sums, Table
from analytics.store import RefreshReport
from doorstep.db import Conn


def locate(lat: list[float], lng: list[float]) -> tuple[list[str], list[int]]:
    """District and H3 cell of each point (what the refresh stores for new orders)."""
    return places.district_of(lat, lng), places.cell_of(lat, lng)


async def refresh(db: Any, *, full: bool = False) -> RefreshReport:
    """Rebuild the rollups of the days touched since the last refresh (all if ``full``)."""
    async with db.acquire() as conn, conn.transaction():
        report: RefreshReport = await analytics_store.refresh(conn, locate, full=full)
        return report


async def today_of(db: Conn, city_id: str | None, now: float) -> date:
    """Today in the city's time zone (Asia/Shanghai when no city is given)."""
    tz = "Asia/Shanghai"
    if city_id is not None:
        found = await db.fetchval("SELECT timezone FROM cities WHERE id = $1", city_id)
        if found is None:
            raise UnknownCity(f"no city {city_id!r}", field="city")
        tz = found
    return datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz)).date()


async def read_query(
    db: Conn, params: Mapping[str, str], *, now: float, allowed: frozenset[str]
) -> Query:
    """The request's query (only the ``allowed`` parameters), its city checked and its
    default dates in the city's zone."""
    city = params.get("city") or None
    return rules.parse_query(params, today=await today_of(db, city, now), allowed=allowed)


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline figures of a range."""

    city_id: str | None
    start: date
    end: date
    metrics: Metrics
    workers: dict[str, int | float | None]
    refreshed: dict[str, Any] | None


async def summary(db: Conn, q: Query) -> Summary:
    """Totals over the range, and the workers' totals."""
    sums = await analytics_store.totals(db, q)
    ws = await analytics_store.worker_totals(db, q)
    return Summary(
        city_id=q.city_id,
        start=q.start,
        end=q.end,
        metrics=rules.derive(sums),
        workers={
            "jobs": ws.jobs,
            "busy_s": ws.busy_s,
            "available_s": ws.available_s,
            "income_fen": ws.income_fen,
            "utilization": rules.utilization(ws),
        },
        refreshed=await analytics_store.last_refresh(db),
    )


async def breakdown(db: Conn, q: Query) -> Table:
    """The metrics per day (every day of the range), hour (all 24), district, category
    or city."""
    rows = await analytics_store.breakdown(db, q)
    keyed: list[tuple[Any, Sums]]
    if q.by == "day":
        keyed = [(d.isoformat(), s) for d, s in rules.fill_days(q.start, q.end, dict(rows))]
    elif q.by == "hour":
        keyed = [(h, s) for h, s in rules.fill_hours({int(k): s for k, s in rows})]
    else:
        keyed = [(k, s) for k, s in rows]
    return rules.breakdown_table(q.by, keyed)


async def workers(db: Conn, q: Query) -> Table:
    """Every worker's jobs, time and income over the range."""
    return rules.worker_table(await analytics_store.workers(db, q))


async def heatmap(db: Conn, q: Query, *, level: str, res: int) -> dict[str, Any]:
    """Orders as a GeoJSON FeatureCollection of H3 hexagons (resolution ``res``) or of
    districts, each with its ``orders``; ``max`` for the colour scale."""
    counts = await analytics_store.heat(db, q, level=level)
    features: list[dict[str, Any]]
    if level == "district":
        features = places.district_features([(str(k), n) for k, n in counts if k])
    else:
        merged: dict[int, int] = defaultdict(int)
        for cell, n in counts:
            merged[places.to_res(int(cell), res)] += n
        features = [places.hex_feature(c, {"orders": n}) for c, n in merged.items()]
    features.sort(key=lambda f: -int(f["properties"]["orders"]))
    top = max((int(f["properties"]["orders"]) for f in features), default=0)
    return {"type": "FeatureCollection", "features": features, "max": top, "level": level}

"""Operators' dashboards (``/v1/analytics/...``) and their page (``/admin/analytics``).

Every table answers as JSON, CSV or Excel (``format=``). The figures come from the
rollups (docs/analytics.md); ``POST /v1/analytics/refresh`` rebuilds the touched days now
instead of at the next periodic run.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
from starlette.responses import Response

from analytics import export, rules
from analytics import service as analytics
from analytics.rules import Metrics, Query, Table, parse_heat
from api.routes.pages import _page
from api.routing import PUBLIC, Ctx, QueryParam, Router, encode
from doorstep.errors import InvalidInput

router = Router("analytics")
OPERATORS = frozenset({"admin", "dispatcher"})
ADMIN = frozenset({"admin"})

RANGE = (
    QueryParam("city", str, "a city id (default: every city)"),
    QueryParam("from", str, "first local day, YYYY-MM-DD (default: 29 days before 'to')"),
    QueryParam("to", str, "last local day, YYYY-MM-DD, inclusive (default: today)"),
    QueryParam("district", str, "only this district (e.g. 福田区)"),
    QueryParam("category", str, "only this category code"),
)
EXPORT = (
    QueryParam("format", str, "json (default), csv or xlsx"),
    QueryParam("lang", str, "column titles of csv/xlsx: zh (default) or en"),
)


class SummaryOut(msgspec.Struct):
    """The headline figures of a range."""

    city_id: str | None
    start: date
    end: date
    metrics: Metrics
    workers: dict[str, int | float | None]
    refreshed: dict[str, Any] | None


class TableOut(msgspec.Struct):
    """A table: column keys and rows (csv/xlsx: the same as a file)."""

    columns: list[str]
    rows: list[list[Any]]


class RefreshOut(msgspec.Struct):
    """What a refresh rebuilt."""

    days: int
    placed: int
    took_ms: int
    full: bool


async def _query(ctx: Ctx, allowed: frozenset[str]) -> Query:
    params = dict(ctx.request.query_params)
    scope = ctx.scope
    if scope is not None and not scope.platform:  # a city operator: their cities only
        city = params.get("city")
        if city is None:
            if len(scope.cities) != 1:
                raise InvalidInput(
                    "your scope covers several cities (or none): give one of them",
                    field="city",
                )
            params["city"] = next(iter(scope.cities))
        else:
            ctx.in_city(city, "city")
    return await analytics.read_query(ctx.stores.pool, params, now=ctx.now, allowed=allowed)


def _table(q: Query, table: Table, name: str) -> Any:
    if q.format == "json":
        return table.as_json()
    scope = q.city_id or "all"
    filename = f"{name}-{scope}-{q.start.isoformat()}-{q.end.isoformat()}"
    if q.format == "csv":
        body, media, ext = export.to_csv(table, q.lang), export.CSV_TYPE, "csv"
    else:
        body, media, ext = export.to_xlsx(table, q.lang, name), export.XLSX_TYPE, "xlsx"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}.{ext}"'},
    )


@router.get(
    "/v1/analytics/summary",
    errors={404: "no such city"},
    perm="analytics.read",
    roles=OPERATORS,
    returns=SummaryOut,
    query=RANGE,
    summary="Headline figures of a range: orders, GMV, fulfilment, waits, ratings, workers",
)
async def summary(ctx: Ctx) -> SummaryOut:
    s = await analytics.summary(ctx.stores.pool, await _query(ctx, rules.SUMMARY_PARAMS))
    return SummaryOut(s.city_id, s.start, s.end, s.metrics, s.workers, s.refreshed)


@router.get(
    "/v1/analytics/breakdown",
    errors={404: "no such city"},
    perm="analytics.read",
    roles=OPERATORS,
    returns=TableOut,
    query=(
        *RANGE,
        QueryParam("by", str, "day (the trend; default), hour, district, category or city"),
        *EXPORT,
    ),
    summary="Every metric per day, hour, district, category or city (JSON, CSV or Excel)",
)
async def breakdown(ctx: Ctx) -> Any:
    q = await _query(ctx, rules.BREAKDOWN_PARAMS)
    return _table(q, await analytics.breakdown(ctx.stores.pool, q), f"by-{q.by}")


@router.get(
    "/v1/analytics/workers",
    errors={404: "no such city"},
    perm="analytics.read",
    roles=OPERATORS,
    returns=TableOut,
    query=(*RANGE[:3], *EXPORT),
    summary="Each worker's jobs, busy and available time, utilization and income",
)
async def workers(ctx: Ctx) -> Any:
    q = await _query(ctx, rules.WORKER_PARAMS)
    return _table(q, await analytics.workers(ctx.stores.pool, q), "workers")


@router.get(
    "/v1/analytics/heatmap",
    errors={404: "no such city"},
    perm="analytics.read",
    roles=OPERATORS,
    returns=dict,
    query=(
        *RANGE[:4],
        QueryParam("level", str, "hex (H3 hexagons; default) or district"),
        QueryParam("res", int, "H3 resolution of the hexagons: 7 or 8 (default)"),
    ),
    media_type="application/geo+json",
    summary="Demand on the map: orders per H3 hexagon or per district, as GeoJSON",
)
async def heatmap(ctx: Ctx) -> Response:
    q = await _query(ctx, rules.HEAT_PARAMS)
    level, res = parse_heat(dict(ctx.request.query_params))
    body = await analytics.heatmap(ctx.stores.pool, q, level=level, res=res)
    return Response(encode(body), media_type="application/geo+json")


@router.post(
    "/v1/analytics/refresh",
    perm="analytics.refresh",
    roles=ADMIN,
    returns=RefreshOut,
    summary="Rebuild the rollups of the days touched since the last refresh, now",
)
async def refresh(ctx: Ctx) -> RefreshOut:
    r = await analytics.refresh(ctx.stores.pool)
    return RefreshOut(r.days, r.placed, r.took_ms, r.full)


@router.get(
    "/admin/analytics",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=(
        QueryParam("city", str, "the city to show (else the first)", max_length=40),
        QueryParam("from", str, "the first day shown (YYYY-MM-DD)", fmt="date"),
        QueryParam("to", str, "the last day shown (YYYY-MM-DD)", fmt="date"),
        QueryParam("lang", str, "zh (default) or en", choices=("zh", "en")),
    ),
    summary="The operators' analytics page (an admin or dispatcher signs in on the page)",
)
async def analytics_page(ctx: Ctx) -> Response:
    return _page("analytics.html")

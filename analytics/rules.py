"""What the dashboards mean: the metrics, their definitions, and how a request is read.

Pure: no I/O, no clock (``today`` is an argument). The rollup tables (migration 0019)
hold *sums*; every metric shown is a sum or a ratio of two sums, computed here, so a
range of days or a breakdown adds rows and divides once (an average of averages never
appears).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Final, Literal

from analytics.errors import BadQuery

MAX_SPAN_DAYS: Final = 366
DEFAULT_SPAN_DAYS: Final = 30
Dimension = Literal["day", "hour", "district", "category", "city"]
DIMENSIONS: Final[frozenset[str]] = frozenset({"day", "hour", "district", "category", "city"})
FORMATS: Final[frozenset[str]] = frozenset({"json", "csv", "xlsx"})
LEVELS: Final[frozenset[str]] = frozenset({"district", "hex"})
HEX_RESOLUTIONS: Final[tuple[int, ...]] = (7, 8)
LANGS: Final[frozenset[str]] = frozenset({"zh", "en"})


@dataclass(frozen=True, slots=True)
class Sums:
    """The additive counts of the hourly rollup (one row, or many added up)."""

    orders: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    gmv_fen: int = 0
    assigned: int = 0
    assign_s_sum: float = 0.0
    waited: int = 0
    wait_s_sum: float = 0.0
    ratings: int = 0
    stars_sum: int = 0
    new_customers: int = 0
    repeat_orders: int = 0
    new_repeat_customers: int = 0
    coupon_orders: int = 0  # orders paid with a coupon
    coupon_gmv_fen: int = 0  # price of those completed
    subsidy_fen: int = 0  # the platform's subsidy of their coupons, net of refunds
    points_redeemed_fen: int = 0  # value of points spent on orders, net of refunds

    def __add__(self, other: Sums) -> Sums:
        return Sums(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Sums)))


SUM_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(Sums))


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


@dataclass(frozen=True, slots=True)
class Metrics:
    """What an operator reads: the sums and the ratios derived from them.

    - ``fulfilment_rate``: completed / (completed + cancelled + failed): of the orders
      that have ended, the share served. Open orders are in neither part.
    - ``cancel_rate``: cancelled / orders.
    - ``avg_assign_s``: booking to the first assignment, over the orders assigned.
    - ``avg_wait_s``: the customer's wait for the worker at the door: booking to arrival
      for an instant order, window start to arrival (0 if early) for a scheduled one.
    - ``avg_stars``: mean rating (1–5) over the rated orders.
    - ``repeat_rate``: share of orders placed by customers who had ordered before.
    - ``avg_order_fen``: GMV / completed orders. Money is integer fen throughout.
    - ``coupon_orders``, ``coupon_gmv_fen``, ``subsidy_fen``, ``points_redeemed_fen``: the
      orders paid with a coupon, the price of those completed, the coupon subsidy the
      platform paid (ledger ``subsidy_expense``, net of refunds) and the points spent.
    - ``coupon_return``: coupon GMV / subsidy — yuan of completed business per yuan of
      coupon subsidy (None without subsidy).
    """

    orders: int
    completed: int
    cancelled: int
    failed: int
    gmv_fen: int
    fulfilment_rate: float | None
    cancel_rate: float | None
    avg_assign_s: float | None
    avg_wait_s: float | None
    ratings: int
    avg_stars: float | None
    new_customers: int
    repeat_orders: int
    repeat_rate: float | None
    new_repeat_customers: int
    avg_order_fen: int | None
    coupon_orders: int
    coupon_gmv_fen: int
    subsidy_fen: int
    points_redeemed_fen: int
    coupon_return: float | None


def derive(s: Sums) -> Metrics:
    """The metrics of a sum of rollup rows."""
    ended = s.completed + s.cancelled + s.failed
    aov = _ratio(s.gmv_fen, s.completed)
    return Metrics(
        orders=s.orders,
        completed=s.completed,
        cancelled=s.cancelled,
        failed=s.failed,
        gmv_fen=s.gmv_fen,
        fulfilment_rate=_ratio(s.completed, ended),
        cancel_rate=_ratio(s.cancelled, s.orders),
        avg_assign_s=_ratio(s.assign_s_sum, s.assigned),
        avg_wait_s=_ratio(s.wait_s_sum, s.waited),
        ratings=s.ratings,
        avg_stars=_ratio(s.stars_sum, s.ratings),
        new_customers=s.new_customers,
        repeat_orders=s.repeat_orders,
        repeat_rate=_ratio(s.repeat_orders, s.orders),
        new_repeat_customers=s.new_repeat_customers,
        avg_order_fen=None if aov is None else round(aov),
        coupon_orders=s.coupon_orders,
        coupon_gmv_fen=s.coupon_gmv_fen,
        subsidy_fen=s.subsidy_fen,
        points_redeemed_fen=s.points_redeemed_fen,
        coupon_return=_ratio(s.coupon_gmv_fen, s.subsidy_fen),
    )


METRIC_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(Metrics))


@dataclass(frozen=True, slots=True)
class WorkerSums:
    """A worker's (or all workers') additive figures over some days."""

    jobs: int = 0
    busy_s: int = 0
    income_fen: int = 0
    available_s: int = 0

    def __add__(self, other: WorkerSums) -> WorkerSums:
        return WorkerSums(
            self.jobs + other.jobs,
            self.busy_s + other.busy_s,
            self.income_fen + other.income_fen,
            self.available_s + other.available_s,
        )


def utilization(w: WorkerSums) -> float | None:
    """Busy time over available time (may pass 1 when a worker works past their hours)."""
    return _ratio(w.busy_s, w.available_s)


def available_s(
    weekly: Iterable[tuple[int, int, int]],
    exception: tuple[bool, int | None, int | None] | None,
    day: date,
) -> int:
    """Seconds a worker is available on ``day``: the day's exception if there is one
    (``(available, start_min, end_min)``), else the weekly windows of that weekday
    (``(weekday 0=Mon, start_min, end_min)``). The refresh computes the same in SQL."""
    if exception is not None:
        ok, start, end = exception
        return (end - start) * 60 if ok and start is not None and end is not None else 0
    return sum((b - a) * 60 for wd, a, b in weekly if wd == day.weekday())


def full_months(start: date, end: date) -> tuple[date, date] | None:
    """The whole calendar months inside ``[start, end]`` as ``[first, after)`` (first days
    of months), or None if there is none: those come from the monthly rollup, the days
    outside them from the daily one."""
    first = start if start.day == 1 else _next_month(start)
    after = _next_month(end) if _next_month(end) - timedelta(days=1) == end else end.replace(day=1)
    return (first, after) if first < after else None


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def fill_days(start: date, end: date, rows: Mapping[date, Sums]) -> list[tuple[date, Sums]]:
    """One entry per day from ``start`` to ``end`` inclusive, zero where nothing happened
    (a trend line must not skip quiet days)."""
    out = []
    d = start
    while d <= end:
        out.append((d, rows.get(d, Sums())))
        d += timedelta(days=1)
    return out


def fill_hours(rows: Mapping[int, Sums]) -> list[tuple[int, Sums]]:
    """The 24 hours of the day, zero where nothing happened."""
    return [(h, rows.get(h, Sums())) for h in range(24)]


# ---- reading a request ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """A dashboard request, validated."""

    city_id: str | None
    start: date
    end: date  # inclusive
    district: str | None
    category: str | None
    by: Dimension
    format: Literal["json", "csv", "xlsx"]
    lang: Literal["zh", "en"]


def _date(raw: str, field: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadQuery("must be a date as YYYY-MM-DD", field=field) from None


def _short(raw: str | None, field: str) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > 64:
        raise BadQuery("must be at most 64 characters", field=field)
    return raw


ALLOWED_PARAMS: Final = frozenset(
    {"city", "from", "to", "district", "category", "by", "format", "lang", "level", "res"}
)


RANGE_PARAMS: Final = frozenset({"city", "from", "to"})
SUMMARY_PARAMS: Final = RANGE_PARAMS | {"district", "category"}
BREAKDOWN_PARAMS: Final = SUMMARY_PARAMS | {"by", "format", "lang"}
WORKER_PARAMS: Final = RANGE_PARAMS | {"format", "lang"}  # no district or category rollup
HEAT_PARAMS: Final = RANGE_PARAMS | {"district", "level", "res"}  # no category rollup


def parse_query(
    params: Mapping[str, str],
    *,
    today: date,
    default_by: str = "day",
    allowed: frozenset[str] = ALLOWED_PARAMS,
) -> Query:
    """A :class:`Query` from URL parameters, or :class:`BadQuery` naming the field.

    ``from``/``to`` are local dates, inclusive; by default the 30 days up to ``today``.
    A parameter outside ``allowed`` (the endpoint's) is refused, not ignored.
    """
    for name in params:
        if name not in allowed:
            raise BadQuery(f"unknown parameter; known: {', '.join(sorted(allowed))}", field=name)
    end = _date(params["to"], "to") if params.get("to") else today
    start = (
        _date(params["from"], "from")
        if params.get("from")
        else end - timedelta(days=DEFAULT_SPAN_DAYS - 1)
    )
    if start > end:
        raise BadQuery("must not be after 'to'", field="from")
    if (end - start).days + 1 > MAX_SPAN_DAYS:
        raise BadQuery(f"the range may span at most {MAX_SPAN_DAYS} days", field="from")
    by = params.get("by", default_by)
    if by not in DIMENSIONS:
        raise BadQuery(f"must be one of {', '.join(sorted(DIMENSIONS))}", field="by")
    fmt = params.get("format", "json")
    if fmt not in FORMATS:
        raise BadQuery(f"must be one of {', '.join(sorted(FORMATS))}", field="format")
    lang = params.get("lang", "zh")
    if lang not in LANGS:
        raise BadQuery("must be zh or en", field="lang")
    city = _short(params.get("city"), "city")
    if by == "city" and city is not None:
        raise BadQuery("by=city compares cities: leave 'city' out", field="by")
    return Query(
        city_id=city,
        start=start,
        end=end,
        district=_short(params.get("district"), "district"),
        category=_short(params.get("category"), "category"),
        by=by,  # type: ignore[arg-type]
        format=fmt,  # type: ignore[arg-type]
        lang=lang,  # type: ignore[arg-type]
    )


def parse_heat(params: Mapping[str, str]) -> tuple[Literal["district", "hex"], int]:
    """The heatmap's ``level`` (district or hex, default hex) and H3 ``res`` (7 or 8)."""
    level = params.get("level", "hex")
    if level not in LEVELS:
        raise BadQuery("must be district or hex", field="level")
    raw = params.get("res", "8")
    if not raw.isdigit() or int(raw) not in HEX_RESOLUTIONS:
        raise BadQuery(
            f"must be one of {', '.join(map(str, HEX_RESOLUTIONS))} (H3 resolution)",
            field="res",
        )
    return level, int(raw)  # type: ignore[return-value]


# ---- tables (what the page shows and the exports contain) -----------------------------

LABELS: Final[dict[str, tuple[str, str]]] = {
    "day": ("日期", "Day"),
    "hour": ("小时", "Hour"),
    "district": ("区", "District"),
    "category": ("品类", "Category"),
    "city": ("城市", "City"),
    "orders": ("订单数", "Orders"),
    "completed": ("完成", "Completed"),
    "cancelled": ("取消", "Cancelled"),
    "failed": ("失败", "Failed"),
    "gmv_fen": ("GMV（分）", "GMV (fen)"),
    "fulfilment_rate": ("履约率", "Fulfilment rate"),
    "cancel_rate": ("取消率", "Cancel rate"),
    "avg_assign_s": ("平均派单时长（秒）", "Avg time to assign (s)"),
    "avg_wait_s": ("平均等待（秒）", "Avg customer wait (s)"),
    "ratings": ("评价数", "Ratings"),
    "avg_stars": ("平均评分", "Avg stars"),
    "new_customers": ("新客", "New customers"),
    "repeat_orders": ("复购订单", "Repeat orders"),
    "repeat_rate": ("复购率", "Repeat rate"),
    "new_repeat_customers": ("新增复购客户", "New repeat customers"),
    "avg_order_fen": ("客单价（分）", "Avg order (fen)"),
    "coupon_orders": ("用券订单", "Orders with a coupon"),
    "coupon_gmv_fen": ("用券GMV（分）", "Coupon GMV (fen)"),
    "subsidy_fen": ("券补贴（分）", "Coupon subsidy (fen)"),
    "points_redeemed_fen": ("积分抵扣（分）", "Points spent (fen)"),
    "coupon_return": ("券投入产出比", "Coupon return"),
    "worker_id": ("师傅 ID", "Worker id"),
    "name": ("姓名", "Name"),
    "jobs": ("完成单数", "Jobs"),
    "busy_s": ("忙碌（秒）", "Busy (s)"),
    "available_s": ("可接单（秒）", "Available (s)"),
    "utilization": ("利用率", "Utilization"),
    "income_fen": ("收入（分）", "Income (fen)"),
}

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Table:
    """A table as shown and exported: column keys, and rows of plain values."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def headers(self, lang: str) -> list[str]:
        """Column titles in ``lang`` (zh or en)."""
        i = 0 if lang == "zh" else 1
        return [LABELS[c][i] if c in LABELS else c for c in self.columns]

    def as_json(self) -> dict[str, object]:
        """``{"columns": [...], "rows": [[...], ...]}``."""
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows]}


def breakdown_table(by: str, rows: Sequence[tuple[Cell, Sums]]) -> Table:
    """A breakdown as a table: the key column, then every metric."""
    out = []
    for key, sums in rows:
        m = derive(sums)
        out.append((key, *(getattr(m, f) for f in METRIC_FIELDS)))
    return Table((by, *METRIC_FIELDS), tuple(out))


WORKER_COLUMNS: Final = (
    "worker_id",
    "name",
    "jobs",
    "busy_s",
    "available_s",
    "utilization",
    "income_fen",
)


def worker_table(rows: Sequence[tuple[int, str, WorkerSums]]) -> Table:
    """Workers, busiest income first as given, with their utilization."""
    return Table(
        WORKER_COLUMNS,
        tuple(
            (wid, name, w.jobs, w.busy_s, w.available_s, utilization(w), w.income_fen)
            for wid, name, w in rows
        ),
    )

"""A worker's archived trail and live position."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from api.routing import Ctx, QueryParam, Router
from doorstep import dates
from doorstep.errors import InvalidInput
from tracking import archive, positions
from workforce import service as workforce

router = Router("tracking")
SEES_WORKER = frozenset({"admin", "dispatcher", "merchant", "worker"})


@dataclass(frozen=True, slots=True)
class TrailPoint:
    """One archived fix (``clamped``: stationary jitter collapsed onto the previous point)."""

    ts: datetime
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float | None
    heading_deg: float | None
    seq: int
    clamped: bool


@dataclass(frozen=True, slots=True)
class LivePosition:
    """The worker's last fix in the live index; ``state`` stale/offline when not fresh."""

    worker_id: int
    city_id: str
    state: str
    lat: float | None
    lng: float | None
    ts_ms: int | None
    accuracy_m: float | None
    age_s: float | None
    seq: int


def _time(ctx: Ctx, name: str, default: datetime) -> datetime:
    raw = ctx.request.query_params.get(name)
    if raw is None:
        return default
    return dates.parse_instant(raw, name)


@router.get(
    "/v1/workers/{worker_id}/trail",
    perm="workers.track",
    roles=SEES_WORKER,
    returns=list[TrailPoint],
    query=(
        QueryParam("from", str, "start, ISO 8601 with offset (default: 1 h ago)", fmt="date-time"),
        QueryParam("to", str, "end, exclusive (default: now)", fmt="date-time"),
        QueryParam(
            "limit", int, "at most this many points, 1–20000 (default 5000)", ge=1, le=20_000
        ),
    ),
    summary="A worker's archived fixes in a time range (replay, safety audit)",
)
async def worker_trail(ctx: Ctx) -> list[TrailPoint]:
    worker = await workforce.visible_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    now = datetime.fromtimestamp(ctx.now, UTC)
    start = _time(ctx, "from", now - timedelta(hours=1))
    end = _time(ctx, "to", now + timedelta(seconds=1))
    if end <= start:
        raise InvalidInput("must be after 'from'", field="to")
    if end - start > timedelta(days=7):
        raise InvalidInput("a range may span at most 7 days", field="to")
    limit = ctx.query_int("limit", 5000, ge=1, le=20_000)
    rows = await archive.trail(ctx.stores.pool, worker.user_id, start, end, limit)
    return [TrailPoint(**dict(r)) for r in rows]


@router.get(
    "/v1/workers/{worker_id}/position",
    perm="workers.track",
    roles=SEES_WORKER,
    returns=LivePosition,
    summary="A worker's last fix and state from the live index",
)
async def worker_position(ctx: Ctx) -> LivePosition:
    worker = await workforce.visible_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    live = await positions.read_one(
        ctx.stores.redis, ctx.stores.keys, worker.city_id, worker.user_id
    )
    at = live.position if live is not None else None
    return LivePosition(
        worker_id=worker.user_id,
        city_id=worker.city_id,
        state=live.shown_state if live is not None else "offline",
        lat=at.lat if at is not None else None,
        lng=at.lng if at is not None else None,
        ts_ms=at.ts_ms if at is not None else None,
        accuracy_m=at.accuracy_m if at is not None else None,
        age_s=round(ctx.now - at.ts_ms / 1000, 1) if at is not None else None,
        seq=(live.seq or 0) if live is not None else 0,
    )

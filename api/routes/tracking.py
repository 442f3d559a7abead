"""A worker's archived trail and live position."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from api.routing import Ctx, QueryParam, Router
from doorstep.errors import InvalidInput
from tracking import archive
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
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            "must be an ISO 8601 time, e.g. 2026-11-22T08:00:00+08:00", field=name
        ) from None
    if value.tzinfo is None:
        raise InvalidInput("must include a UTC offset", field=name)
    return value


@router.get(
    "/v1/workers/{worker_id}/trail",
    roles=SEES_WORKER,
    returns=list[TrailPoint],
    query=(
        QueryParam("from", str, "start, ISO 8601 with offset (default: 1 h ago)"),
        QueryParam("to", str, "end, exclusive (default: now)"),
        QueryParam("limit", int, "at most this many points, 1–20000 (default 5000)"),
    ),
    summary="A worker's archived fixes in a time range (replay, safety audit)",
)
async def worker_trail(ctx: Ctx) -> list[TrailPoint]:
    worker = await workforce.visible_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))
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
    roles=SEES_WORKER,
    returns=LivePosition,
    summary="A worker's last fix and state from the live index",
)
async def worker_position(ctx: Ctx) -> LivePosition:
    worker = await workforce.visible_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))
    keys = ctx.stores.keys
    fields = await ctx.stores.redis.hmget(
        keys.worker_state(worker.city_id, worker.user_id),
        ["lat", "lng", "ts", "acc", "state", "stale", "seq"],
    )
    lat, lng, ts, acc, state, stale, seq = (
        f.decode() if isinstance(f, bytes) else f for f in fields
    )
    shown = "stale" if stale == "1" and state != "offline" else (state or "offline")
    ts_ms = int(ts) if ts else None
    return LivePosition(
        worker_id=worker.user_id,
        city_id=worker.city_id,
        state=shown,
        lat=float(lat) if lat else None,
        lng=float(lng) if lng else None,
        ts_ms=ts_ms,
        accuracy_m=float(acc) if acc else None,
        age_s=round(ctx.now - ts_ms / 1000, 1) if ts_ms else None,
        seq=int(seq or 0),
    )

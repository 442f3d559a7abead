"""The dispatcher's board of a city: every worker, the orders in play, the open offers.

Read once when a dispatcher's city feed connects (the feed's ``snapshot``); the feed's
messages keep it current from then on (``positions``, ``worker_state``, ``stale``,
``order``, ``offers``, ``override``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from doorstep.stores import Stores
from tracking import positions

IN_PLAY = ("confirmed", "dispatching", "offered", "assigned", "en_route", "arrived", "in_service")
MAX_WORKERS = 20_000
MAX_ORDERS = 5_000


async def board(
    stores: Stores, city_id: str, *, now: datetime, instant_sla_s: int
) -> dict[str, Any]:
    """``roster`` (every worker with a profile in the city, with their last position and
    state), ``orders`` (every order in play, oldest first, with its ``deadline``: the end
    of the booked window, or the instant SLA after booking) and ``offers`` (pending)."""
    pool, redis, keys = stores.pool, stores.redis, stores.keys
    workers = await pool.fetch(
        "SELECT w.user_id, u.name, w.rating_sum, w.rating_count, w.team_id FROM workers w "
        "JOIN users u ON u.id = w.user_id WHERE w.city_id = $1 ORDER BY w.user_id LIMIT $2",
        city_id,
        MAX_WORKERS,
    )
    live = await positions.read_many(redis, keys, city_id, [w["user_id"] for w in workers])
    roster = []
    for w in workers:
        count = w["rating_count"]
        state = live.get(w["user_id"])
        at = state.position if state is not None else None
        roster.append(
            {
                "id": w["user_id"],
                "name": w["name"],
                "rating": round(w["rating_sum"] / count, 2) if count else None,
                "rating_count": count,
                "team_id": w["team_id"],
                "state": state.shown_state if state is not None else "offline",
                "lat": at.lat if at is not None else None,
                "lng": at.lng if at is not None else None,
                "ts_ms": at.ts_ms if at is not None else None,
                "accuracy_m": at.accuracy_m if at is not None else None,
            }
        )
    rows = await pool.fetch(
        "SELECT o.id, o.status, o.kind, o.service_code, s.name_zh, s.name_en, o.created_at, "
        "o.updated_at, o.window_start, o.window_end, o.worker_id, o.pinned, o.dispatch_attempts, "
        "o.lat, o.lng, o.version, o.crew_size, coalesce((SELECT array_agg(c.worker_id "
        "ORDER BY c.seat) FROM order_crew c WHERE c.order_id = o.id AND c.released_at IS NULL), "
        "'{}') AS crew FROM orders o LEFT JOIN services s ON s.code = o.service_code "
        "WHERE o.city_id = $1 AND o.status = ANY($2) ORDER BY o.created_at, o.id LIMIT $3",
        city_id,
        list(IN_PLAY),
        MAX_ORDERS,
    )
    orders = []
    for r in rows:
        deadline = r["window_end"] or r["created_at"] + timedelta(seconds=instant_sla_s)
        orders.append(
            {
                "id": r["id"],
                "status": r["status"],
                "kind": r["kind"],
                "service_code": r["service_code"],
                "service_name": {"zh": r["name_zh"], "en": r["name_en"]},
                "created_at": r["created_at"].isoformat(),
                "updated_at": r["updated_at"].isoformat(),
                "window_start": r["window_start"].isoformat() if r["window_start"] else None,
                "window_end": r["window_end"].isoformat() if r["window_end"] else None,
                "deadline": deadline.isoformat(),
                "worker_id": r["worker_id"],
                "pinned": r["pinned"],
                "dispatch_attempts": r["dispatch_attempts"],
                "lat": r["lat"],
                "lng": r["lng"],
                "version": r["version"],
                "crew_size": r["crew_size"],
                "crew": list(r["crew"]),
            }
        )
    offers = await pool.fetch(
        "SELECT f.id, f.order_id, f.worker_id, f.expires_at FROM offers f JOIN orders o "
        "ON o.id = f.order_id WHERE o.city_id = $1 AND f.status = 'pending' ORDER BY f.id",
        city_id,
    )
    return {
        "now_ms": int(now.timestamp() * 1000),
        "instant_sla_s": instant_sla_s,
        "roster": roster,
        "orders": orders,
        "offers": [
            {
                "id": f["id"],
                "order_id": f["order_id"],
                "worker_id": f["worker_id"],
                "expires_at_ms": int(f["expires_at"].timestamp() * 1000),
            }
            for f in offers
        ],
    }

"""What a watcher of an order or of a city sees on connect: the snapshots the order
socket and the dispatcher's city feed send first (docs/protocol.md), assembled from the
order, its worker, their live position in Redis, the road ETA and, for a chained order,
the job before (``next_eta``). The sockets (``api/routes/sockets.py``) only carry them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from dispatch import crews, next_eta
from dispatch import store as dispatch_store
from dispatch.board import board
from dispatch.models import Order
from dispatch.publisher import Etas
from dispatch.share import NEAR_HOME_M, coarse
from doorstep.stores import Stores
from geo.coords import haversine_m
from tracking import positions
from tracking.eta import EtaParams, route_line
from tracking.jobs import SHARED_STATUSES, JobInfo, estimate, not_before_window, start_job
from workforce import store as workforce_store


class Watched(Protocol):
    """What a snapshot reads: the stores, the ETA inputs, when a position goes stale
    (``tracking.service.Tracking``, which dispatch does not import)."""

    @property
    def stores(self) -> Stores: ...

    @property
    def eta(self) -> Etas: ...

    @property
    def eta_params(self) -> EtaParams: ...

    @property
    def stale_after_s(self) -> float: ...


async def feed_snapshot(tracking: Watched, city_id: str, sla_s: int) -> dict[str, Any]:
    """What the dispatcher's city feed sends on connect and on resync: every worker's last
    position and state, and the city's board (open orders, alerts, the SLA's clock)."""
    redis, keys = tracking.stores.redis, tracking.stores.keys
    members = cast(list[bytes], await redis.zrange(keys.presence(city_id), 0, -1))
    ids = [int(w) for w in members]
    workers = [
        {
            "id": w,
            "lat": live.position.lat,
            "lng": live.position.lng,
            "ts_ms": live.position.ts_ms,
            "accuracy_m": live.position.accuracy_m,
            "state": live.state or "",
        }
        for w, live in (await positions.read_many(redis, keys, city_id, ids)).items()
        if live.position is not None
    ]
    return {
        "type": "snapshot",
        "city_id": city_id,
        "workers": workers,
        "stale_after_s": tracking.stale_after_s,
        **await board(tracking.stores, city_id, now=datetime.now(UTC), instant_sla_s=sla_s),
    }


async def order_snapshot(
    tracking: Watched, order: Order, *, show_code: bool, exact_home: bool = True
) -> dict[str, Any]:
    """What a watcher sees on connect: status, worker, position and its age, ETA, route.

    Without ``exact_home`` (a share link's holder) the home is rounded to ~100 m and the
    route stops short of it."""
    now_ms = int(time.time() * 1000)
    home = (order.lat, order.lng) if exact_home else coarse(order.lat, order.lng)
    snap: dict[str, Any] = {
        "type": "snapshot",
        "now_ms": now_ms,
        "order": {
            "id": order.id,
            "city_id": order.city_id,
            "status": order.status,
            "version": order.version,
            "service_code": order.service_code,
            "kind": order.kind,
            "window_start": order.window_start.isoformat() if order.window_start else None,
            "window_end": order.window_end.isoformat() if order.window_end else None,
            "lat": home[0],
            "lng": home[1],
            "start_code": order.start_code if show_code else None,
            "created_at": order.created_at.isoformat(),
            "service_name": None,
        },
        "timeline": [],
        "worker": None,
        "position": None,
        "eta": None,
        "route": None,
        "chained": None,
        "stale_after_s": tracking.stale_after_s,
    }
    pool, redis, keys = tracking.stores.pool, tracking.stores.redis, tracking.stores.keys
    names = await pool.fetchrow(
        "SELECT name_zh, name_en FROM services WHERE code = $1", order.service_code
    )
    if names is not None:
        snap["order"]["service_name"] = {"zh": names["name_zh"], "en": names["name_en"]}
    # Status changes only: who acted and why stay with the parties' REST history.
    snap["timeline"] = [
        {"status": e.to_status, "action": e.action, "at": e.at.isoformat()}
        for e in await dispatch_store.events(pool, order.id)
    ]
    if order.worker_id is None or order.status not in SHARED_STATUSES:
        return snap
    worker = await workforce_store.worker(pool, order.worker_id, detail=False)
    if worker is not None:
        snap["worker"] = {
            "id": worker.user_id,
            "name": worker.name[:1] + "师傅",
            "rating": worker.rating,
            "rating_count": worker.rating_count,
        }
    if order.crew:  # a crew: every member, the lead (whose position is shown) first
        snap["crew"] = [
            {
                "id": m.worker_id,
                "name": m.name,
                "lead": m.seat == 0,
                "arrived": m.arrived_at is not None,
            }
            for m in await crews.members(pool, order.id)
        ]
    chained = await next_eta.for_order(
        pool, tracking.eta, tracking.eta_params, order, datetime.fromtimestamp(now_ms / 1000, UTC)
    )
    if chained is not None:  # on the job before: its end and the drive, not the position
        snap["chained"], snap["eta"] = next_eta.encode(chained[0]), next_eta.encode(chained[1])
        return snap
    live = await positions.read_one(redis, keys, order.city_id, order.worker_id)
    if live is None or live.position is None:
        return snap
    wlat, wlng, wts = live.position.lat, live.position.lng, live.position.ts_ms
    snap["position"] = {
        "lat": wlat,
        "lng": wlng,
        "ts_ms": wts,
        "accuracy_m": live.position.accuracy_m,
        "age_s": round((now_ms - wts) / 1000, 1),
        "stale": live.stale,
    }
    if order.status in ("assigned", "en_route"):
        job = start_job(
            JobInfo(
                order.id, order.city_id, order.lat, order.lng, order.status, order.window_start_ms
            ),
            await tracking.eta.graph_for(order.city_id),
        )
        snap["eta"] = not_before_window(
            estimate(
                job, wlat, wlng, tracking.eta.stats_for(order.city_id, now_ms), tracking.eta_params
            ),
            job.info,
            now_ms,
        )
        if job.times is not None and job.graph is not None:
            line = route_line(job.times, job.graph, wlat, wlng, tracking.eta_params)
        else:
            line = [(wlat, wlng), (order.lat, order.lng)]
        if not exact_home:
            line = [p for p in line if haversine_m(p[0], p[1], order.lat, order.lng) > NEAR_HOME_M]
        snap["route"] = [[round(a, 6), round(b, 6)] for a, b in line]
    return snap

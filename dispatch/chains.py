"""Chained orders (接力单, docs/dispatch.md#chained-orders): the busy workers who may be
offered their next job before their current one ends.

With ``[matching] chain_s`` > 0 the engine reads, each tick, the one-worker jobs on site
(``arrived`` or ``in_service``) expected to end (the worker's own estimate, "about N
minutes left" (``dispatch/time_left.py``), else ``arrived_at`` + the service's duration)
within ``chain_s`` of now — or to have ended less than ``chain_s`` ago — whose
worker holds no other job (so never a second chained job). Each is a candidate at the
job's address with its end (``matching.model.Chain``); the matcher adds the time left to
the road ETA (``matching.feasibility.chained_eta_s``). An offer to them names the job
(``offers.after_order_id``); accepting it assigns the order as their next job
(``dispatch.service`` lets that one job stand), which tracking takes up when the current
one completes (``dispatch.store.active_for_worker``: the job furthest along is current).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatch.time_left import ENDS_AT
from doorstep.db import Conn
from matching.model import Chain


@dataclass(frozen=True, slots=True)
class OnSite:
    """A worker on a job that ends soon: where (the job's address) and when."""

    worker_id: int
    lat: float
    lng: float
    chain: Chain


async def ending_soon(
    db: Conn, city_id: str, now: datetime, chain_s: float, *, exclude: Collection[int] = ()
) -> dict[int, OnSite]:
    """The city's workers on a one-worker job ending (by their estimate, else by the
    service's duration) within ``chain_s`` of ``now`` (either side) and holding nothing else, except ``exclude`` (e.g. those holding an offer)."""
    if chain_s <= 0:
        return {}
    window = timedelta(seconds=chain_s)
    rows = await db.fetch(
        f"SELECT o.id, o.worker_id, o.lat, o.lng, {ENDS_AT} AS ends_at FROM orders o "
        "WHERE o.city_id = $1 AND o.status IN ('arrived', 'in_service') AND o.crew_size = 1 "
        "AND o.worker_id IS NOT NULL AND o.arrived_at IS NOT NULL "
        f"AND {ENDS_AT} BETWEEN $2 AND $3 "
        "AND NOT (o.worker_id = ANY($4::bigint[])) "
        "AND NOT EXISTS (SELECT 1 FROM orders n WHERE n.worker_id = o.worker_id "
        "AND n.id <> o.id AND n.status IN ('assigned', 'en_route', 'arrived', 'in_service')) "
        "AND NOT EXISTS (SELECT 1 FROM order_crew c JOIN orders n ON n.id = c.order_id "
        "WHERE c.worker_id = o.worker_id AND c.released_at IS NULL AND n.id <> o.id "
        "AND n.status IN ('assigned', 'en_route', 'arrived', 'in_service')) ORDER BY o.id",
        city_id,
        now - window,
        now + window,
        list(exclude),
    )
    return {
        int(r["worker_id"]): OnSite(
            int(r["worker_id"]),
            float(r["lat"]),
            float(r["lng"]),
            Chain(int(r["id"]), int(r["ends_at"].timestamp())),
        )
        for r in rows
    }

"""A crew named by hand, held to the engine's crew window (docs/dispatch.md#crews).

The engine offers a crew only if its members arrive within ``[matching] crew_window_s`` of
each other, judged on their road ETAs (``matching.crew.arrive_together``). A dispatcher's
crew (``dispatch.overrides.assign_crew``), or a crew with a newcomer in one member's seat
(``replace_member``), is judged by that same rule on each member's ETA now: from their
last known position, by road on the city's graph or else by the straight-line fallback (as
the engine and the risk checks estimate it); a member already on site counts as there now
(0 s); a member with no known position is left out (the override's own checks already
warn that they are offline). Like the matcher's other objections, a broken window is a
warning that the dispatcher may override with ``force``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dispatch.models import Order
from dispatch.publisher import Publisher
from doorstep.stores import Stores
from geo.coords import haversine_m
from matching.crew import apart
from tracking import positions
from tracking.eta import destination_times, eta_s, straight_eta_s


async def etas_now(
    stores: Stores,
    tracking: Publisher,
    order: Order,
    worker_ids: Sequence[int],
    *,
    on_site: Collection[int] = (),
) -> dict[int, float]:
    """Each worker's ETA to the order now, in seconds (0 for those ``on_site``); workers
    with no known position are left out."""
    away = [w for w in worker_ids if w not in on_site]
    live = await positions.read_many(stores.redis, stores.keys, order.city_id, away)
    at = {w: s.position for w, s in live.items() if s.position is not None}
    out = {w: 0.0 for w in worker_ids if w in on_site}
    if not at:
        return out
    params = tracking.eta_params
    graph = await tracking.eta.graph_for(order.city_id)
    times = destination_times(graph, order.lat, order.lng) if graph is not None else None
    for w, p in at.items():
        if graph is not None and times is not None:
            out[w], _ = eta_s(times, graph, p.lat, p.lng, params)
        else:
            out[w] = straight_eta_s(haversine_m(p.lat, p.lng, order.lat, order.lng), params)
    return out


async def window_warning(
    stores: Stores,
    tracking: Publisher,
    order: Order,
    crew: Sequence[int],
    window_s: float,
    *,
    on_site: Collection[int] = (),
) -> str | None:
    """Why ``crew`` would not arrive within ``window_s`` of each other now
    (``matching.crew.apart``), or None if it would (or too few positions are known)."""
    return apart(await etas_now(stores, tracking, order, crew, on_site=on_site), window_s)

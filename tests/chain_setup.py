"""Shared set-up of the chained-order tests (接力单, docs/dispatch.md#chained-orders): an
engine with chaining on, a worker on site whose job ends when wanted, an order assigned by
hand, and a chained offer made and accepted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from dispatch import offers, store
from dispatch.engine import Engine
from dispatch.models import Offer
from doorstep.stores import Stores
from tests.helpers import Account


def chaining(engine: Engine, live_app: tuple[str, Any], chain_s: float) -> Engine:
    """An engine like the app's, with ``[matching] chain_s`` set."""
    return Engine(
        engine.stores,
        live_app[1].state.tracking,
        match=replace(engine.match, chain_s=chain_s),
        offer=engine.offer,
        engine=engine.params,
    )


async def assign_by_hand(
    client: httpx.AsyncClient, dispatcher: Account, worker: Account, order: dict[str, Any]
) -> None:
    """``worker`` holds ``order`` (a dispatcher's forced assignment)."""
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text


async def on_site(
    client: httpx.AsyncClient,
    stores: Stores,
    dispatcher: Account,
    worker: Account,
    order: dict[str, Any],
    ends_in_s: int,
) -> None:
    """``worker`` holds ``order``, in service, expected to end in ``ends_in_s`` seconds."""
    await assign_by_hand(client, dispatcher, worker, order)
    for action, body in (("arrive", {}), ("start", {"start_code": order["start_code"]})):
        r = await client.post(f"/v1/orders/{order['id']}/{action}", headers=worker.auth, json=body)
        assert r.status_code == 200, r.text
    await stores.pool.execute(
        "UPDATE orders SET arrived_at = now() - make_interval(mins => duration_min) "
        "+ make_interval(secs => $2) WHERE id = $1",
        order["id"],
        ends_in_s,
    )


async def chained_offer(
    stores: Stores,
    engine: Engine,
    order_id: int,
    worker: Account,
    after_order_id: int,
    client: httpx.AsyncClient,
) -> httpx.Response:
    """A direct offer of ``order_id`` to ``worker`` as their next job after
    ``after_order_id``, made as the engine makes it, then accepted: the accept's answer."""
    order = await store.get(stores.pool, order_id)
    assert order is not None
    made: list[Offer] = await offers.make_offers(
        stores,
        engine.tracking,
        order,
        [(worker.id, 60.0, None)],
        mode="direct",
        params=engine.offer,
        now=datetime.now(UTC),
        after={worker.id: after_order_id},
    )
    (offer,) = made
    return await client.post(f"/v1/offers/{offer.id}/accept", headers=worker.auth)

"""The "dispatch priority" reward of the quality rules is scored by the engine: all else
equal, the prioritised worker is offered the order (issue 18 §4)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from dispatch.engine import Engine
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online


async def test_the_engine_offers_the_order_to_the_prioritised_worker(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
) -> None:
    """Two workers at the same spot: the later one (who loses a tie) holds a priority reward and gets the offer, its priority term -1 in the stored decision; the other's overturned reward counts for nothing."""
    engine: Engine = live_app[1].state.engine
    here = engine_city.here
    first = await make_worker(stores, client, engine_city.id)
    second = await make_worker(stores, client, engine_city.id)
    assert first.id < second.id
    for who in (first, second):
        r = await client.post(
            "/v1/discipline/actions",
            headers=admin.auth,
            json={"worker_id": who.id, "kind": "priority", "reason": "好评多", "days": 30},
        )
        assert r.status_code == 201, r.text
        if who is first:  # overturned: no longer in force
            await stores.pool.execute(
                "UPDATE discipline_actions SET status = 'overturned' WHERE id = $1",
                r.json()["id"],
            )
    spot = (here[0] + 0.001, here[1])
    ws_first = await online(live_app[0], first, spot)
    ws_second = await online(live_app[0], second, spot)
    order = await book_here(client, await make_user("customer"), instant_service, here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    (decision,) = report.decisions
    assert decision.worker_id == second.id
    terms = {c.worker_id: c.breakdown.as_dict() for c in decision.candidates if c.breakdown}
    assert terms[second.id]["priority"] == (-1.0, -engine.match.weight_priority)
    assert terms[first.id]["priority"] == (0.0, 0.0)
    offer = await next_of(ws_second, "offer")
    assert offer["order_id"] == order["id"]
    for ws in (ws_first, ws_second):
        await ws.close()

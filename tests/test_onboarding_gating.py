"""A skill is dispatchable only with its exam passed and its certificate verified and
unexpired: the engine never picks, the grab pool never offers to, and an accept is
refused from, a worker who lacks it. Workers an admin created keep taking orders."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from dispatch import offers
from dispatch import store as dispatch_store
from dispatch.engine import Engine
from dispatch.offers import OfferParams
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, no_frame_of, online, status_of
from tests.onboarding_setup import Trade, make_trade


@pytest.fixture
async def trade(client: httpx.AsyncClient, admin: Account, stores: Stores) -> Trade:
    """A skill needing a certificate, and a service needing the skill."""
    return await make_trade(client, admin, stores)


@pytest.fixture
def engine(live_app: tuple[str, Any]) -> Engine:
    """The app's engine (ticked by hand)."""
    engine: Engine = live_app[1].state.engine
    return engine


async def _worker(
    stores: Stores,
    client: httpx.AsyncClient,
    city: str,
    trade: Trade,
    *,
    onboarded: bool = True,
    exam: bool = True,
    cert: str | None = "verified",
    expires: date | None = None,
) -> Account:
    """A worker with the trade's skill; ``onboarded`` ones need the exam."""
    w = await make_worker(stores, client, city, skills=(trade.skill,))
    await stores.pool.execute(
        "UPDATE workers SET exams_required = $2 WHERE user_id = $1", w.id, onboarded
    )
    if exam:
        await stores.pool.execute(
            "INSERT INTO skill_qualifications (user_id, skill, qualified_at) VALUES ($1, $2, now())",
            w.id,
            trade.skill,
        )
    if cert is not None:
        until = expires or date.today() + timedelta(days=365)
        await stores.pool.execute(
            "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on, status) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            w.id,
            trade.certificate,
            f"N{secrets.token_hex(5)}",
            until - timedelta(days=2000),
            until,
            cert,
        )
    return w


async def _lineup(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    city: EngineCity,
    trade: Trade,
) -> tuple[dict[str, Account], dict[str, Any]]:
    """Four unqualified workers near the order, the qualified ones farther, all online."""
    yesterday = date.today() - timedelta(days=1)
    workers = {
        "untrained": await _worker(stores, client, city.id, trade, exam=False),
        "unverified": await _worker(stores, client, city.id, trade, cert="pending"),
        "expired": await _worker(stores, client, city.id, trade, expires=yesterday),
        "no_certificate": await _worker(stores, client, city.id, trade, cert=None),
        "qualified": await _worker(stores, client, city.id, trade),
        "admin_created": await _worker(stores, client, city.id, trade, onboarded=False, exam=False),
    }
    sockets = {}
    for i, (name, w) in enumerate(workers.items()):
        sockets[name] = await online(
            live_app[0], w, (city.here[0] + 0.0005 * (i + 1), city.here[1])
        )
    return workers, sockets


async def test_the_engine_never_offers_to_a_worker_without_exam_or_valid_certificate(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    trade: Trade,
) -> None:
    """Direct mode: the nearer unqualified workers are infeasible with the reason stored; the qualified one gets the offer."""
    workers, sockets = await _lineup(stores, client, live_app, engine_city, trade)
    order = await book_here(client, await make_user("customer"), trade.service, engine_city.here)
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    row = await stores.pool.fetchrow(
        "SELECT worker_id, decision FROM dispatch_decisions WHERE order_id = $1", order["id"]
    )
    assert row is not None
    assert row["worker_id"] in (workers["qualified"].id, workers["admin_created"].id)
    reasons = {
        c["candidate"]["worker_id"]: c.get("why_not") for c in _json(row["decision"])["candidates"]
    }
    assert reasons[workers["untrained"].id] == f"exam not passed: {trade.skill!r}"
    assert reasons[workers["unverified"].id] == f"no verified certificate: {trade.certificate!r}"
    assert (
        reasons[workers["no_certificate"].id] == f"no verified certificate: {trade.certificate!r}"
    )
    assert reasons[workers["expired"].id].startswith(f"certificate expired: {trade.certificate!r}")
    for name in ("untrained", "unverified", "expired", "no_certificate"):
        await no_frame_of(sockets[name], "offer", 0.3)
    for ws in sockets.values():
        await ws.close()


async def test_the_grab_pool_offers_only_to_qualified_workers(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    trade: Trade,
) -> None:
    """Grab mode with room for six: only the qualified and the admin-created worker get the order, in the engine and when picks are forced."""
    workers, sockets = await _lineup(stores, client, live_app, engine_city, trade)
    order = await book_here(client, await make_user("customer"), trade.service, engine_city.here)
    grab = Engine(
        stores,
        live_app[1].state.tracking,
        match=engine.match,
        offer=OfferParams(mode="grab", grab_candidates=6),
        engine=engine.params,
    )
    await grab.tick(engine_city.id, datetime.now(UTC))
    offered = {
        r["worker_id"]
        for r in await stores.pool.fetch(
            "SELECT worker_id FROM offers WHERE order_id = $1", order["id"]
        )
    }
    assert offered == {workers["qualified"].id, workers["admin_created"].id}
    for name in ("qualified", "admin_created"):
        assert (await next_of(sockets[name], "offer"))["order_id"] == order["id"]
    for name in ("untrained", "unverified", "expired", "no_certificate"):
        await no_frame_of(sockets[name], "offer", 0.3)
    # The last gate: picks forced past the matcher still reach no unqualified worker.
    await offers.withdraw(stores, live_app[1].state.tracking, order["id"], reason="test")
    await stores.pool.execute("UPDATE orders SET status = 'dispatching' WHERE id = $1", order["id"])
    current = await dispatch_store.get(stores.pool, order["id"])
    assert current is not None
    made = await offers.make_offers(
        stores,
        live_app[1].state.tracking,
        current,
        [(w.id, 60.0, 100.0) for w in workers.values()],
        mode="grab",
        params=OfferParams(mode="grab", grab_candidates=6),
        now=datetime.now(UTC),
    )
    assert {o.worker_id for o in made} == {workers["qualified"].id, workers["admin_created"].id}
    for ws in sockets.values():
        await ws.close()


async def test_an_accept_after_the_certificate_expired_is_refused(
    live_app: tuple[str, Any],
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    trade: Trade,
) -> None:
    """A certificate that expires (or is set back to re-verification) between offer and accept: 409 not_qualified, the order goes back to dispatching without them."""
    w = await _worker(stores, client, engine_city.id, trade)
    ws = await online(live_app[0], w, (engine_city.here[0] + 0.001, engine_city.here[1]))
    order = await book_here(client, await make_user("customer"), trade.service, engine_city.here)
    await engine.tick(engine_city.id, datetime.now(UTC))
    offer = await next_of(ws, "offer")
    await stores.pool.execute(
        "UPDATE worker_certificates SET status = 'reverify', reason = 'scan unreadable' "
        "WHERE worker_id = $1",
        w.id,
    )
    r = await client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=w.auth)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "not_qualified"
    assert "no verified certificate" in r.json()["error"]["message"]
    assert await status_of(stores, order["id"]) == "dispatching"
    excluded = await stores.pool.fetchval(
        "SELECT reason FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        order["id"],
        w.id,
    )
    assert excluded.startswith("not qualified")
    await ws.close()


def _json(value: Any) -> Any:
    """A jsonb value as the pool hands it out (text or decoded)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def test_day_plans_give_only_dispatchable_skills(
    engine_city: EngineCity, client: httpx.AsyncClient, stores: Stores, trade: Trade, admin: Account
) -> None:
    """The planner's workers carry a skill only with its exam passed and its certificate valid that day, and none while suspended."""
    from zoneinfo import ZoneInfo

    from dispatch import plan_inputs

    yesterday = date.today() - timedelta(days=1)
    ws = {
        "untrained": await _worker(stores, client, engine_city.id, trade, exam=False),
        "expired": await _worker(stores, client, engine_city.id, trade, expires=yesterday),
        "qualified": await _worker(stores, client, engine_city.id, trade),
        "admin_created": await _worker(
            stores, client, engine_city.id, trade, onboarded=False, exam=False
        ),
        "suspended": await _worker(stores, client, engine_city.id, trade),
    }
    r = await client.post(
        "/v1/discipline/actions",
        headers=admin.auth,
        json={"worker_id": ws["suspended"].id, "kind": "suspension", "reason": "停单", "days": 3},
    )
    assert r.status_code == 201, r.text
    zone = ZoneInfo("Asia/Shanghai")
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn:
        inputs, _ = await plan_inputs.load(
            stores,
            conn,
            engine_city.id,
            now.astimezone(zone).date(),
            now=now,
            zone=zone,
            live_max_age_s=60,
        )
    skills = {d.worker_id: d.skills for d in inputs.workers}
    has = {name: trade.skill in skills[w.id] for name, w in ws.items()}
    assert has == {
        "untrained": False,
        "expired": False,
        "qualified": True,
        "admin_created": True,
        "suspended": False,
    }

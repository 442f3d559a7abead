"""Membership on the real stack (PostgreSQL, Redis, the app): points over the window lift a
customer's level (an event, an inbox notification, the month's coupon pack issued once),
the level's multiplier applies to the next completed order, the daily job brings the
level down when points age out of the window; the ledger's invariants hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger_store
from payments.wechat_sandbox import WeChatSandbox
from tests.helpers import Account, MakeUser
from tests.live import book
from tests.test_growth import _confirmed, _give_points
from tests.test_payments import (  # noqa: F401 - fixtures
    _order,
    _pay,
    prepaid_service,
    sandbox,
    until,
)
from workforce import store as workforce_store


async def _inbox_kinds(client: httpx.AsyncClient, who: Account) -> list[tuple[str, str]]:
    r = await client.get("/v1/me/inbox", headers=who.auth)
    assert r.status_code == 200, r.text
    return [(i["kind"], i["body"]) for i in r.json()["items"]]


async def _complete(
    client: httpx.AsyncClient,
    stores: Stores,
    sandbox: WeChatSandbox,  # noqa: F811
    customer: Account,
    service: str,
    city: str,
    make_user: MakeUser,
) -> int:
    dispatcher, worker = await make_user("dispatcher"), await make_user("worker")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker.id,
        city_id=city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    order = await book(client, customer, service)
    trade = await _pay(client, customer, order["id"])
    await sandbox.complete_payment(trade["out_trade_no"], "success")
    await _confirmed(client, customer, order["id"])
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    code = (await _order(client, customer, order["id"]))["start_code"]
    for action, body in (("arrive", {}), ("start", {"start_code": code}), ("complete", {})):
        r = await client.post(f"/v1/orders/{order['id']}/{action}", headers=worker.auth, json=body)
        assert r.status_code == 200, r.text
    return int(order["id"])


async def test_points_lift_the_level_its_pack_and_multiplier_and_age_out(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_app: tuple[str, Any],
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """1,000 points: silver (member.level_changed up, 会员升级 in the inbox, this month's
    pack of one ¥5 coupon issued once); a 150.00 order completed then earns 180 points
    (×1.2); points moved out of the 12 months: the daily job brings the level down to
    regular (member_down) and issues nothing twice."""
    growth = live_app[1].state.growth
    customer = await make_user("customer")
    await _give_points(stores, customer.id, 1000)
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        first = await growth.members.check(conn, customer.id, now)
    assert (first.level.code, first.change, first.issued) == ("silver", "up", 1)
    async with stores.pool.acquire() as conn, conn.transaction():
        again = await growth.members.check(conn, customer.id, now)
    assert (again.level.code, again.change, again.issued) == ("silver", None, 0)

    r = await client.get("/v1/me/membership", headers=customer.auth)
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["level"]["code"], m["points"], m["next_level"]["code"]) == ("silver", 1000, "gold")
    assert (m["points_to_next"], m["progress_bps"]) == (4000, 0)
    assert m["level"]["multiplier_bps"] == 12000
    assert [(c["amount_fen"], c["status"]) for c in m["pack_coupons"]] == [(500, "available")]
    mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
    assert [c["source"] for c in mine].count("member") == 1

    async def told(kind: str) -> bool:
        return any(k == kind for k, _ in await _inbox_kinds(client, customer))

    await until(lambda: told("member_up"))
    assert any("银卡会员" in body for k, body in await _inbox_kinds(client, customer))
    events = await stores.pool.fetch(
        "SELECT payload FROM events WHERE type = 'member.level_changed' AND aggregate = $1",
        f"member:{customer.id}",
    )
    assert len(events) == 1

    await _complete(client, stores, sandbox, customer, prepaid_service, live_city, make_user)

    async def earned() -> bool:
        points = (await client.get("/v1/me/points", headers=customer.auth)).json()
        return bool(points["balance"] == 1180)

    await until(earned)
    assert await ledger_store.balance(stores.pool, lr.points_liability(customer.id)) == -1180

    await stores.pool.execute(
        "UPDATE points_history SET at = at - interval '400 days' "
        "WHERE customer_id = $1 AND order_id IS NULL",
        customer.id,
    )
    await growth.members.run(datetime.now(UTC))
    r = await client.get("/v1/me/membership", headers=customer.auth)
    m = r.json()
    assert (m["level"]["code"], m["points"]) == ("regular", 180)
    row = await stores.pool.fetchrow(
        "SELECT level, points_12m FROM memberships WHERE customer_id = $1", customer.id
    )
    assert row is not None
    assert (row["level"], row["points_12m"]) == ("regular", 180)
    await until(lambda: told("member_down"))
    await growth.members.run(datetime.now(UTC))
    n = await stores.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'member.level_changed' AND aggregate = $1",
        f"member:{customer.id}",
    )
    assert n == 2
    mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
    assert [c["source"] for c in mine].count("member") == 1
    assert await ledger_store.check(stores.pool) == []

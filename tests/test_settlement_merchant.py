"""Commission for merchant orders: the snapshot taken at payment (before the order has a
merchant) is taken again for the merchant once the order is assigned to that merchant's
staff — with the rules as they stood at payment — and never after money was settled
from it. Real PostgreSQL and Redis, the live server, its relay and the WeChat sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from accounts import service as accounts
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from payments.wechat_sandbox import WeChatSandbox
from settlement import store
from settlement.models import Payee
from settlement.service import commission_for, snapshot_commission
from tests.helpers import PASSWORD, Account, MakeUser, new_phone
from tests.test_payments import (  # noqa: F401 - fixtures
    _order,
    _paid_order,
    prepaid_service,
    sandbox,
    until,
)
from tests.test_settlement import _paid_order as _booked_paid_order
from tests.test_settlement import _svc, _worker
from tests.test_settlement_flow import _login
from workforce import store as workforce_store


async def _merchant_with_worker(
    client: httpx.AsyncClient, stores: Stores, city: str
) -> tuple[int, Account]:
    """A merchant (its owner's account) with a team, and a worker on that team."""
    owner = await accounts.create_user(
        stores, phone=new_phone(), name="好帮手家政", password=PASSWORD, roles=["merchant"]
    )
    team_id = await stores.pool.fetchval(
        "INSERT INTO teams (name, city_id, merchant_id) VALUES ($1, $2, $3) RETURNING id",
        f"team-{owner.id}",
        city,
        owner.id,
    )
    user = await accounts.create_user(
        stores, phone=new_phone(), name="孙师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=team_id,
    )
    return owner.id, await _login(client, user.phone, user.id, ("worker",))


async def _rule(client: httpx.AsyncClient, admin: Account, **body: Any) -> int:
    r = await client.post("/v1/admin/commission-rules", headers=admin.auth, json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_the_merchants_rule_applies_once_its_staff_is_assigned(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
    admin: Account,
) -> None:
    """Paid with no merchant known (the snapshot takes a non-merchant rule); assigned to a merchant's worker, the order.assigned consumer takes it again with the merchant's 5 % (a merchant rule made after payment does not count); completed and settled at T+N, the merchant gets 142.50 of 150.00, once, and the ledger balances."""
    svc = _svc(live_app)
    merchant, worker = await _merchant_with_worker(client, stores, live_city)
    own_rule = await _rule(client, admin, merchant_id=merchant, rate_bps=500, note="签约商家 5%")
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order_id, _ = await _paid_order(client, customer, prepaid_service, sandbox)

    async def snapshotted() -> bool:
        return await store.snapshot_of(stores.pool, order_id) is not None

    await until(snapshotted)
    first = await store.snapshot_of(stores.pool, order_id)
    assert first is not None
    assert (first.merchant_id, first.resnapshot_at) == (None, None)
    assert first.rule_id != own_rule  # no merchant yet: the merchant's rule cannot apply
    late_rule = await _rule(  # more specific, but made after payment: it must not apply
        client, admin, merchant_id=merchant, service_code=prepaid_service, rate_bps=100
    )
    r = await client.post(
        f"/v1/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "商家派单", "force": True},
    )
    assert r.status_code == 200, r.text

    async def taken_again() -> bool:
        snap = await store.snapshot_of(stores.pool, order_id)
        return snap is not None and snap.merchant_id == merchant

    await until(taken_again)
    snap = await store.snapshot_of(stores.pool, order_id)
    assert snap is not None
    assert (snap.rule_id, snap.rate_bps, snap.commission_fen) == (own_rule, 500, 750)
    assert (snap.snapshot_at, snap.rules_at, snap.base_fen) == (
        first.snapshot_at,
        first.rules_at,
        15000,
    )
    assert snap.resnapshot_at is not None
    assert snap.rule_id != late_rule

    start_code = (await _order(client, customer, order_id))["start_code"]
    for action, body in (("arrive", {}), ("start", {"start_code": start_code}), ("complete", {})):
        r = await client.post(f"/v1/orders/{order_id}/{action}", headers=worker.auth, json=body)
        assert r.status_code == 200, r.text

    async def opened() -> bool:
        found = await stores.pool.fetchrow(
            "SELECT payee_kind, payee_id, commission_fen FROM settlements WHERE order_id = $1",
            order_id,
        )
        return found is not None and tuple(found) == ("merchant", merchant, 750)

    await until(opened)
    later = datetime.now(UTC) + timedelta(days=svc.params.after_sales_days, minutes=1)
    await svc.settle_due(later)
    await svc.settle_due(later)  # again: settled once
    account = lr.merchant_payable(merchant)
    assert lr.normal_balance(account, await ledger.balance(stores.pool, account)) == 14250
    settled = await stores.pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE key = $1", f"settle:order:{order_id}"
    )
    assert settled == 1
    # Money was settled from the snapshot: another merchant (or none) changes nothing now.
    async with stores.pool.acquire() as conn, conn.transaction():
        after = await commission_for(
            conn,
            order_id,
            merchant_id=None,
            base_fen=0,
            params=svc.params,
            now=datetime.now(UTC),
        )
    assert (after.rule_id, after.merchant_id, after.commission_fen) == (own_rule, merchant, 750)
    assert await ledger.check(stores.pool) == []


async def test_taken_again_with_the_rules_of_payment_idempotently_until_settled(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
    admin: Account,
) -> None:
    """A snapshot taken for no merchant is taken again for the merchant with the rules in force when it was first taken (a rule switched off since still counts, one made since does not), the same call twice changes nothing, a return to a platform worker restores the first terms; completion by the merchant's worker takes it for the merchant even if the assignment was never heard; once settled it stays."""
    svc = _svc(live_app)
    merchant, staff = await _merchant_with_worker(client, stores, live_city)
    platform = await _worker(stores, client, live_city)
    customer = await make_user("customer")
    old_rule = await _rule(client, admin, merchant_id=merchant, rate_bps=800, note="8%")
    order = await _booked_paid_order(
        stores, live_city, instant_service, customer.id, platform.id, 10000
    )
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        first = await snapshot_commission(conn, order, base_fen=10000, params=svc.params, now=now)
    assert first.merchant_id is None
    new_rule = await _rule(
        client, admin, merchant_id=merchant, service_code=instant_service, rate_bps=300
    )
    r = await client.post(f"/v1/admin/commission-rules/{old_rule}/deactivate", headers=admin.auth)
    assert r.status_code == 200, r.text

    async def take(merchant_id: int | None) -> Any:
        return await take_for(stores, svc, order, merchant_id)

    mine = await take(merchant)
    assert (mine.rule_id, mine.commission_fen, mine.merchant_id) == (old_rule, 800, merchant)
    assert mine.rules_at == first.rules_at
    assert await take(merchant) == mine  # idempotent: nothing changes, not even its time
    back = await take(None)  # reassigned to a platform worker before completion
    assert (back.rule_id, back.commission_fen, back.merchant_id) == (
        first.rule_id,
        first.commission_fen,
        None,
    )

    # The merchant's worker completes; the assignment's event never reached settlement.
    await stores.pool.execute(
        "UPDATE orders SET worker_id = $2, status = 'completed', completed_at = $3 WHERE id = $1",
        order,
        staff.id,
        now,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=now)
    await svc.settle_due(now + timedelta(days=svc.params.after_sales_days))
    (s,) = [
        x
        for x in await store.settlements_of(
            stores.pool, Payee("merchant", merchant), status="settled", limit=20
        )
        if x.order_id == order
    ]
    assert (s.gross_fen, s.commission_fen, s.net_fen) == (10000, 800, 9200)
    assert (await take(None)).rule_id == old_rule  # settled: it stays

    # An order paid after the new rule was made gets it.
    second = await _booked_paid_order(
        stores, live_city, instant_service, customer.id, platform.id, 10000
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await snapshot_commission(conn, second, base_fen=10000, params=svc.params, now=now)
    assert (await take_for(stores, svc, second, merchant)).rule_id == new_rule
    assert await ledger.check(stores.pool) == []


async def take_for(stores: Stores, svc: Any, order: int, merchant: int | None) -> Any:
    """The order's snapshot, taken for ``merchant``."""
    async with stores.pool.acquire() as conn, conn.transaction():
        return await commission_for(
            conn, order, merchant_id=merchant, base_fen=0, params=svc.params, now=datetime.now(UTC)
        )

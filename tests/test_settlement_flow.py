"""The whole money path on the real stack: a customer pays through the WeChat Pay sandbox,
the order's commission is snapshotted from order.paid, a worker of a merchant's team
completes it, the settlement opens from order.completed and settles at T+N into the
merchant's wallet, the merchant withdraws, finance approves, the payout sandbox pays, and
the next day's trade bill from the sandbox reconciles with the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from accounts import service as accounts
from doorstep.stores import Stores
from ledger import store as ledger
from payments.wechat_sandbox import WeChatSandbox
from settlement import store
from settlement.models import Payee
from settlement.service import funds_of
from settlement.wechat_bills import CHINA
from tests.helpers import PASSWORD, Account, MakeUser, new_phone
from tests.test_payments import (  # noqa: F401 - fixtures
    _order,
    _paid_order,
    prepaid_service,
    sandbox,
    until,
)
from tests.test_settlement import _svc, _wait_final
from workforce import store as workforce_store


async def _login(
    client: httpx.AsyncClient, phone: str, user_id: int, roles: tuple[str, ...]
) -> Account:
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    body = r.json()
    return Account(user_id, phone, roles, body["access_token"], body["refresh_token"])


async def test_paid_completed_settled_withdrawn_and_reconciled(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
    admin: Account,
) -> None:
    """150.00 paid at 15 % (a service rule snapshotted at payment): 127.50 reaches the merchant's wallet at T+N, 100.00 is paid out, the bill agrees with the ledger, and the ledger's invariants hold."""
    svc = _svc(live_app)
    r = await client.post(
        "/v1/admin/commission-rules",
        headers=admin.auth,
        json={"service_code": prepaid_service, "rate_bps": 1500, "note": "flow test"},
    )
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    customer = await make_user("customer")
    dispatcher = await make_user("dispatcher")
    finance = await make_user("finance")
    merchant_user = await accounts.create_user(
        stores, phone=new_phone(), name="好家政公司", password=PASSWORD, roles=["merchant"]
    )
    merchant = await _login(client, merchant_user.phone, merchant_user.id, ("merchant",))
    team_id = await stores.pool.fetchval(
        "INSERT INTO teams (name, city_id, merchant_id) VALUES ($1, $2, $3) RETURNING id",
        f"team-{merchant_user.id}",
        live_city,
        merchant_user.id,
    )
    worker_user = await accounts.create_user(
        stores, phone=new_phone(), name="赵师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker_user.id,
        city_id=live_city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=team_id,
    )
    worker = await _login(client, worker_user.phone, worker_user.id, ("worker",))

    order_id, trade = await _paid_order(client, customer, prepaid_service, sandbox)

    async def snapshotted() -> bool:
        found = await stores.pool.fetchval(
            "SELECT rule_id FROM order_commissions WHERE order_id = $1", order_id
        )
        return bool(found == rule_id)

    await until(snapshotted)
    # A rule added after payment does not change this order's commission.
    await client.post(
        "/v1/admin/commission-rules",
        headers=admin.auth,
        json={"service_code": prepaid_service, "rate_bps": 5000, "note": "too late"},
    )
    r = await client.post(
        f"/v1/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    start_code = (await _order(client, customer, order_id))["start_code"]
    for action, body in (("arrive", {}), ("start", {"start_code": start_code}), ("complete", {})):
        r = await client.post(f"/v1/orders/{order_id}/{action}", headers=worker.auth, json=body)
        assert r.status_code == 200, r.text

    async def opened() -> bool:
        found = await stores.pool.fetchval(
            "SELECT payee_kind FROM settlements WHERE order_id = $1", order_id
        )
        return bool(found == "merchant")

    await until(opened)
    wallet = (await client.get("/v1/me/wallet", headers=merchant.auth)).json()
    assert (wallet["available_fen"], wallet["frozen_fen"]) == (0, 12750)
    assert (await client.get("/v1/me/wallet", headers=worker.auth)).json()["frozen_fen"] == 0
    await svc.settle_due(datetime.now(UTC) + timedelta(days=svc.params.after_sales_days, minutes=1))
    wallet = (await client.get("/v1/me/wallet", headers=merchant.auth)).json()
    assert (wallet["available_fen"], wallet["frozen_fen"]) == (12750, 0)

    r = await client.post("/v1/me/withdrawals", headers=merchant.auth, json={"amount_fen": 10000})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    r = await client.post(f"/v1/finance/withdrawals/{wid}/approve", headers=finance.auth, json={})
    assert r.status_code == 200, r.text
    done = await _wait_final(client, merchant, wid)
    assert done["status"] == "paid"
    wallet = (await client.get("/v1/me/wallet", headers=merchant.auth)).json()
    assert (wallet["available_fen"], wallet["withdrawn_fen"]) == (2750, 10000)

    # The next day: the sandbox's bill of the day of payment (its clock and ours moved back a
    # day, as bills exist only for days that are over).
    no = trade["out_trade_no"]
    paid = sandbox.trades[no]
    assert paid.success_time is not None
    paid.success_time -= timedelta(days=1)
    await stores.pool.execute(
        "UPDATE payments SET paid_at = paid_at - interval '1 day' WHERE out_trade_no = $1", no
    )
    day = paid.success_time.astimezone(CHINA).date()
    r = await client.post(
        "/v1/finance/reconciliations",
        headers=finance.auth,
        json={"provider": "wechat", "bill_date": str(day)},
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["bill_rows"] >= 1
    assert [d for d in run["items"] if d["ref"] == no] == []
    assert await ledger.check(stores.pool) == []


async def test_a_cancellation_fee_kept_for_the_assigned_worker_is_settled_to_them(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """Cancelled after assignment: payments keeps the fee in the order's funds and refunds the rest; order.cancelled opens a settlement for the worker, who gets the fee less the commission at T+N."""
    svc = _svc(live_app)
    customer = await make_user("customer")
    dispatcher = await make_user("dispatcher")
    worker_user = await accounts.create_user(
        stores, phone=new_phone(), name="钱师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker_user.id,
        city_id=live_city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    worker = await _login(client, worker_user.phone, worker_user.id, ("worker",))
    order_id, _ = await _paid_order(client, customer, prepaid_service, sandbox)

    async def confirmed() -> bool:
        return bool((await _order(client, customer, order_id))["status"] == "confirmed")

    await until(confirmed)
    r = await client.post(
        f"/v1/orders/{order_id}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{order_id}/cancel", headers=customer.auth, json={})
    assert r.status_code == 200, r.text
    fee = r.json()["cancel_fee_minor"]
    assert fee > 0

    async def opened() -> bool:
        found = await stores.pool.fetchval(
            "SELECT payee_id FROM settlements WHERE order_id = $1", order_id
        )
        return bool(found == worker.id)

    await until(opened)

    async def refunded() -> bool:  # the rest was refunded: the order's funds hold the fee
        return bool(await funds_of(stores.pool, order_id) == fee)

    await until(refunded)
    await svc.settle_due(datetime.now(UTC) + timedelta(days=svc.params.after_sales_days, minutes=1))
    (s,) = await store.settlements_of(stores.pool, Payee("worker", worker.id), status=None, limit=5)
    assert s.order_id == order_id
    assert s.status == "settled"
    assert s.gross_fen == fee
    assert s.net_fen == fee - s.commission_fen
    wallet = (await client.get("/v1/me/wallet", headers=worker.auth)).json()
    assert wallet["available_fen"] == s.net_fen
    assert await ledger.check(stores.pool) == []

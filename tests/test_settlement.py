"""Settlement on real stores: T+N settlement into wallets, withdrawals under concurrency and
limits, review, payouts through the sandbox (success, failure, timeout), reconciliation,
and the routes' roles and bad input."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from accounts import service as accounts
from doorstep.stores import Stores
from events import store as events_store
from events.types import OrderChanged
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from settlement import store, tradebill
from settlement.errors import BelowMinimum, DailyLimit, InsufficientBalance, WrongState
from settlement.models import Payee
from settlement.rules import SettlementParams
from settlement.service import Settlement
from tests.helpers import PASSWORD, Account, MakeUser, new_phone
from workforce import store as workforce_store

NOW = datetime.now(UTC)


async def _worker(stores: Stores, client: httpx.AsyncClient, city: str) -> Account:
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="王师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    body = r.json()
    return Account(user.id, phone, user.roles, body["access_token"], body["refresh_token"])


async def _paid_order(
    stores: Stores,
    city: str,
    service: str,
    customer: int,
    worker: int,
    price: int,
    *,
    completed_at: datetime | None = None,
    paid_at: datetime | None = None,
) -> int:
    """An order paid ``price`` (a real ledger entry, as payments posts it), completed if asked."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order_id = await conn.fetchval(
            "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
            "duration_min, price_minor, currency, worker_id, start_code, completed_at) VALUES "
            "($1, $2, $3, 'instant', $4, 22.53, 114.01, 120, $5, 'CNY', $6, '123456', $7) RETURNING id",
            city,
            customer,
            service,
            "completed" if completed_at else "assigned",
            price,
            worker,
            completed_at,
        )
        data: dict[str, Any] = {"out_trade_no": f"P{order_id}"}
        if paid_at is not None:
            data["provider_at"] = paid_at.isoformat()
        await ledger.post(
            conn,
            Entry(
                key=f"wechat:pay:T{order_id}-{secrets.token_hex(3)}",
                kind="payment.captured",
                order_id=order_id,
                lines=(debit(lr.gateway("wechat"), price), credit(lr.order_funds(order_id), price)),
                data=data,
            ),
        )
    return int(order_id)


def _svc(live_app: tuple[str, Any]) -> Settlement:
    svc: Settlement = live_app[1].state.settlement
    return svc


async def _fund(
    svc: Settlement, stores: Stores, city: str, service: str, customer: int, worker: int, net: int
) -> None:
    """Put ``net`` fen in a worker's available balance: a paid order, completed, settled at T+N."""
    price = net * 10000 // (10000 - svc.params.default_rate_bps)
    order = await _paid_order(stores, city, service, customer, worker, price, completed_at=NOW)
    async with stores.pool.acquire() as conn, conn.transaction():
        await svc.open_settlement(conn, order, completed_at=NOW)
    await svc.settle_due(NOW + timedelta(days=svc.params.after_sales_days))
    got = await store.settlements_of(
        stores.pool, Payee("worker", worker), status="settled", limit=200
    )
    assert any(s.order_id == order and s.net_fen == net for s in got)


async def _available(stores: Stores, worker: int) -> int:
    account = lr.worker_payable(worker)
    return lr.normal_balance(account, await ledger.balance(stores.pool, account))


@pytest.fixture
async def customer(make_user: MakeUser) -> Account:
    """A customer."""
    return await make_user("customer")


@pytest.fixture(scope="module")
async def finance(make_user: MakeUser) -> Account:
    """A finance reviewer."""
    return await make_user("finance", name="财务")


async def test_an_order_is_settled_only_after_its_after_sales_window(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """Completed at t: frozen until t+N (settle_due with now = t+N−1 s does nothing), then settled: order funds → wallet + commission."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    order = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 15000, completed_at=NOW
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=NOW)
        assert not await svc.open_settlement(conn, order, completed_at=NOW)  # once
    payee = Payee("worker", worker.id)
    wallet = await svc.wallet(payee, NOW)
    assert (wallet.available_fen, wallet.frozen_fen) == (0, 12000)
    window = timedelta(days=svc.params.after_sales_days)
    await svc.settle_due(NOW + window - timedelta(seconds=1))
    (s,) = await store.settlements_of(stores.pool, payee, status=None, limit=5)
    assert s.status == "pending"
    assert s.due_at == NOW + window
    await svc.settle_due(NOW + window)
    (s,) = await store.settlements_of(stores.pool, payee, status=None, limit=5)
    assert (s.status, s.gross_fen, s.commission_fen, s.net_fen) == ("settled", 15000, 3000, 12000)
    wallet = await svc.wallet(payee, NOW)
    assert (wallet.available_fen, wallet.frozen_fen) == (12000, 0)
    entry = await ledger.get(stores.pool, f"settle:order:{order}")
    assert entry is not None
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in entry.lines) == sorted(
        [
            (lr.order_funds(order), 15000, 0),
            (lr.worker_payable(worker.id), 0, 12000),
            (lr.COMMISSION_REVENUE, 0, 3000),
        ]
    )
    assert await ledger.balance(stores.pool, lr.order_funds(order)) == 0
    await svc.settle_due(NOW + 2 * window)  # again: nothing moves twice
    assert await _available(stores, worker.id) == 12000


async def test_a_partial_refund_in_the_window_is_not_paid_to_the_worker(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """A refund during the after-sales window leaves less in the order's funds: the settlement splits what remains."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    order = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 15000, completed_at=NOW
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await svc.open_settlement(conn, order, completed_at=NOW)
        await ledger.post(
            conn,
            Entry(
                key=f"refund:T{order}:requested",
                kind="refund.requested",
                order_id=order,
                lines=(
                    debit(lr.order_funds(order), 5000),
                    credit(lr.refunds_pending("wechat"), 5000),
                ),
            ),
        )
    await svc.settle_due(NOW + timedelta(days=svc.params.after_sales_days))
    (s,) = await store.settlements_of(stores.pool, Payee("worker", worker.id), status=None, limit=5)
    assert (s.gross_fen, s.commission_fen, s.net_fen) == (10000, 2000, 8000)
    assert await _available(stores, worker.id) == 8000


async def test_the_commission_snapshot_at_payment_outlives_a_new_rule(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
    admin: Account,
) -> None:
    """A rule added after payment does not change the paid order's commission; it applies to the next order."""
    from settlement.service import snapshot_commission

    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    first = await _paid_order(stores, live_city, instant_service, customer.id, worker.id, 10000)
    async with stores.pool.acquire() as conn, conn.transaction():
        snap = await snapshot_commission(conn, first, base_fen=10000, params=svc.params, now=NOW)
    assert snap.commission_fen == 2000
    r = await client.post(
        "/v1/admin/commission-rules",
        headers=admin.auth,
        json={"service_code": instant_service, "rate_bps": 1000, "fixed_fen": 100, "note": "test"},
    )
    assert r.status_code == 201, r.text
    rule = r.json()
    assert rule["specificity"] == 4
    second = await _paid_order(stores, live_city, instant_service, customer.id, worker.id, 10000)
    for order in (first, second):
        await stores.pool.execute(
            "UPDATE orders SET status = 'completed', completed_at = $2 WHERE id = $1", order, NOW
        )
        async with stores.pool.acquire() as conn, conn.transaction():
            await svc.open_settlement(conn, order, completed_at=NOW)
    await svc.settle_due(NOW + timedelta(days=svc.params.after_sales_days))
    got = {
        s.order_id: s.commission_fen
        for s in await store.settlements_of(
            stores.pool, Payee("worker", worker.id), status="settled", limit=5
        )
    }
    assert got == {first: 2000, second: 1100}
    r = await client.post(f"/v1/admin/commission-rules/{rule['id']}/deactivate", headers=admin.auth)
    assert r.status_code == 200
    assert r.json()["active"] is False


async def test_the_order_completed_event_opens_the_settlement(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """The settlement consumer hears order.completed (through the real relay) and opens a pending settlement due at T+N."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    order = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 9000, completed_at=NOW
    )
    payload = OrderChanged(
        order_id=order,
        city_id=live_city,
        customer_id=customer.id,
        kind="instant",
        service_code=instant_service,
        status="completed",
        previous="in_service",
        action="complete",
        actor="worker",
        actor_id=worker.id,
        version=5,
        worker_id=worker.id,
        previous_worker_id=worker.id,
        window_start=None,
        window_end=None,
        previous_window_start=None,
        at=NOW,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await events_store.append(
            conn, "order.completed", f"order:{order}", payload, version=5, at=NOW
        )
    for _ in range(300):
        row = await stores.pool.fetchrow(
            "SELECT status, due_at FROM settlements WHERE order_id = $1", order
        )
        if row is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None
    assert row["status"] == "pending"
    assert row["due_at"] == NOW + timedelta(days=svc.params.after_sales_days)


async def test_two_withdrawals_at_once_cannot_overdraw(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """Ten requests of 30.00 at once against 100.00 available: exactly three succeed, the rest are 409, the wallet ends at 10.00."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, worker.id, 10000)
    many = Settlement(stores, SettlementParams(withdrawal_daily_count=20), None)
    results = await asyncio.gather(
        *(many.request_withdrawal(Payee("worker", worker.id), 3000, NOW) for _ in range(10)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 3
    assert all(isinstance(r, InsufficientBalance) for r in refused), refused
    assert await _available(stores, worker.id) == 1000
    assert not [v for v in await ledger.check(stores.pool) if "worker_payable" in v.detail]


async def test_two_withdrawals_over_http_at_once(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """Two POST /v1/me/withdrawals of 60.00 against 100.00 at once: one 201, one 409 insufficient_balance."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, worker.id, 10000)
    rs = await asyncio.gather(
        *(
            client.post("/v1/me/withdrawals", headers=worker.auth, json={"amount_fen": 6000})
            for _ in range(2)
        )
    )
    assert sorted(r.status_code for r in rs) == [201, 409]
    bad = next(r for r in rs if r.status_code == 409).json()["error"]
    assert bad["code"] == "insufficient_balance"
    assert bad["field"] == "amount_fen"
    r = await client.get("/v1/me/wallet", headers=worker.auth)
    assert r.json()["available_fen"] == 4000
    assert r.json()["withdrawing_fen"] == 6000


async def test_the_daily_limit_and_minimum(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """Below the minimum is refused; the local day's total may not pass the limit; the next local day it may; a rejected one does not count."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, worker.id, 20000)
    limited = Settlement(
        stores,
        SettlementParams(
            withdrawal_min_fen=1000, withdrawal_daily_limit_fen=5000, withdrawal_daily_count=5
        ),
        None,
    )
    payee = Payee("worker", worker.id)
    day = datetime(2031, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
    with pytest.raises(BelowMinimum):
        await limited.request_withdrawal(payee, 999, day)
    first = await limited.request_withdrawal(payee, 3000, day)
    with pytest.raises(DailyLimit) as e:
        await limited.request_withdrawal(payee, 2001, day + timedelta(hours=13))  # 23:00 local
    assert "2000 fen of it is left" in str(e.value)
    await limited.request_withdrawal(payee, 2000, day + timedelta(hours=13))
    await limited.request_withdrawal(payee, 2001, day + timedelta(hours=14))  # 00:00 next local day
    await limited.review(first.id, reviewer=worker.id, approve=False, reason="测试", now=day)
    await limited.request_withdrawal(
        payee, 3000, day + timedelta(hours=1)
    )  # the rejected 3000 is back
    assert await _available(stores, worker.id) == 20000 - 2000 - 2001 - 3000


async def test_bad_withdrawal_input_gets_a_clear_4xx(
    stores: Stores,
    client: httpx.AsyncClient,
    live_city: str,
    customer: Account,
) -> None:
    """A float, a negative, a string or an unknown field is 422 naming the field; a customer is 403; below the minimum is 422."""
    worker = await _worker(stores, client, live_city)
    for body, field in (
        ({"amount_fen": 12.5}, "amount_fen"),
        ({"amount_fen": -100}, "amount_fen"),
        ({"amount_fen": "100"}, "amount_fen"),
        ({"amount_fen": 1000, "currency": "USD"}, "currency"),
        ({"amount_fen": 1}, "amount_fen"),
    ):
        r = await client.post("/v1/me/withdrawals", headers=worker.auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, r.text
    r = await client.post("/v1/me/withdrawals", headers=customer.auth, json={"amount_fen": 1000})
    assert r.status_code == 403
    r = await client.get("/v1/me/wallet?as=merchant", headers=worker.auth)
    assert r.status_code == 403
    assert r.json()["error"]["field"] == "as"
    r = await client.get("/v1/me/wallet?as=boss", headers=worker.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "as"


async def _wait_final(client: httpx.AsyncClient, worker: Account, wid: int) -> dict[str, Any]:
    for _ in range(600):
        r = await client.get(f"/v1/me/withdrawals/{wid}", headers=worker.auth)
        body: dict[str, Any] = r.json()
        if body["status"] in ("paid", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"withdrawal {wid} still {body['status']}")


async def _fault(live_app: tuple[str, Any], mode: str) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(
            live_app[1].state.payout_sandbox.url + "/sandbox/faults",
            json={"mode": mode, "count": 1},
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("fault", [None, "timeout"])
async def test_an_approved_withdrawal_is_paid_out(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
    finance: Account,
    fault: str | None,
) -> None:
    """Approved by finance, the payout job transfers through the sandbox (also when the first answer times out) and the money leaves once: clearing → bank."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, worker.id, 10000)
    r = await client.post("/v1/me/withdrawals", headers=worker.auth, json={"amount_fen": 8000})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    r = await client.get("/v1/finance/withdrawals?status=requested&limit=200", headers=finance.auth)
    assert wid in [w["id"] for w in r.json()["items"]]
    if fault:
        await _fault(live_app, fault)
    r = await client.post(f"/v1/finance/withdrawals/{wid}/approve", headers=finance.auth, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paying"
    done = await _wait_final(client, worker, wid)
    assert done["status"] == "paid"
    assert done["provider_state"] == "SUCCESS"
    assert await ledger.get(stores.pool, f"withdrawal:{wid}:paid") is not None
    assert await ledger.get(stores.pool, f"withdrawal:{wid}:returned") is None
    n = await stores.pool.fetchval(
        "SELECT count(*) FROM payout_sandbox_details WHERE out_detail_no = $1", f"WDD{wid:016d}"
    )
    assert n == 1  # one transfer, however many times it was handed over
    r = await client.post(f"/v1/finance/withdrawals/{wid}/approve", headers=finance.auth, json={})
    assert r.status_code == 409
    wallet = (await client.get("/v1/me/wallet", headers=worker.auth)).json()
    assert (wallet["available_fen"], wallet["withdrawing_fen"], wallet["withdrawn_fen"]) == (
        2000,
        0,
        8000,
    )


async def test_a_failed_payout_returns_the_money(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
    finance: Account,
) -> None:
    """The sandbox fails the transfer (ACCOUNT_FROZEN): the withdrawal is failed with the reason and the amount is back in the wallet."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, worker.id, 10000)
    r = await client.post("/v1/me/withdrawals", headers=worker.auth, json={"amount_fen": 5000})
    wid = r.json()["id"]
    assert await _available(stores, worker.id) == 5000
    await _fault(live_app, "fail")
    r = await client.post(
        f"/v1/finance/withdrawals/{wid}/approve", headers=finance.auth, json={"reason": "ok"}
    )
    assert r.status_code == 200
    done = await _wait_final(client, worker, wid)
    assert (done["status"], done["fail_reason"]) == ("failed", "ACCOUNT_FROZEN")
    assert await _available(stores, worker.id) == 10000
    assert await ledger.get(stores.pool, f"withdrawal:{wid}:returned") is not None
    assert await ledger.get(stores.pool, f"withdrawal:{wid}:paid") is None


async def test_finance_rejects_with_a_reason(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
    finance: Account,
    admin: Account,
) -> None:
    """A rejection needs a reason (422 without), returns the money, and only finance reviews (an admin is 403, the worker too)."""
    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, worker.id, 10000)
    wid = (
        await client.post("/v1/me/withdrawals", headers=worker.auth, json={"amount_fen": 4000})
    ).json()["id"]
    for who in (admin, worker):
        r = await client.post(
            f"/v1/finance/withdrawals/{wid}/reject", headers=who.auth, json={"reason": "x"}
        )
        assert r.status_code == 403
    r = await client.post(
        f"/v1/finance/withdrawals/{wid}/reject", headers=finance.auth, json={"reason": " "}
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "reason"
    r = await client.post(
        f"/v1/finance/withdrawals/{wid}/reject",
        headers=finance.auth,
        json={"reason": "账户信息不符"},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"
    assert r.json()["reason"] == "账户信息不符"
    assert await _available(stores, worker.id) == 10000
    with pytest.raises(WrongState):
        await svc.review(wid, reviewer=finance.id, approve=True, reason="", now=NOW)
    r = await client.post(
        "/v1/finance/withdrawals/999999999/approve", headers=finance.auth, json={}
    )
    assert r.status_code == 404


async def test_a_worker_sees_only_their_own_money(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
    finance: Account,
) -> None:
    """Another worker's withdrawal is 404; earnings by order, day, week and month are the caller's; finance sees any wallet."""
    svc = _svc(live_app)
    a = await _worker(stores, client, live_city)
    b = await _worker(stores, client, live_city)
    await _fund(svc, stores, live_city, instant_service, customer.id, a.id, 8000)
    wid = (
        await client.post("/v1/me/withdrawals", headers=a.auth, json={"amount_fen": 2000})
    ).json()["id"]
    assert (await client.get(f"/v1/me/withdrawals/{wid}", headers=b.auth)).status_code == 404
    assert (await client.get(f"/v1/me/withdrawals/{wid}", headers=a.auth)).status_code == 200
    assert (await client.get("/v1/me/withdrawals", headers=b.auth)).json()["items"] == []
    orders = (await client.get("/v1/me/earnings/orders", headers=a.auth)).json()["items"]
    assert [o["net_fen"] for o in orders] == [8000]
    assert (await client.get("/v1/me/earnings/orders", headers=b.auth)).json()["items"] == []
    for period in ("day", "week", "month"):
        r = await client.get(f"/v1/me/earnings?period={period}", headers=a.auth)
        assert r.status_code == 200, r.text
        (bucket,) = r.json()["buckets"]
        assert (bucket["orders"], bucket["net_fen"], bucket["settled_fen"]) == (1, 8000, 8000)
    r = await client.get("/v1/me/earnings?period=year", headers=a.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "period"
    r = await client.get(f"/v1/finance/wallets/worker/{a.id}", headers=finance.auth)
    assert r.json()["available_fen"] == 6000
    assert (
        await client.get(f"/v1/finance/wallets/worker/{a.id}", headers=a.auth)
    ).status_code == 403


async def test_reconciliation_lists_every_difference(
    stores: Stores,
    client: httpx.AsyncClient,
    live_city: str,
    instant_service: str,
    customer: Account,
    finance: Account,
) -> None:
    """The sandbox-format bill against the ledger: a payment missing in the ledger, one missing in the bill, an amount mismatch, and a refund that agrees."""
    worker = await _worker(stores, client, live_city)
    day = date(2020, 1, 1)
    at = datetime(2020, 1, 1, 10, 0, tzinfo=UTC)
    agree = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 15000, paid_at=at
    )
    only_ours = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 8000, paid_at=at
    )
    differs = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 9900, paid_at=at
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        for key, kind, lines in (
            (
                f"refund:R{agree}:requested",
                "refund.requested",
                (debit(lr.order_funds(agree), 5000), credit(lr.refunds_pending("wechat"), 5000)),
            ),
            (
                f"refund:R{agree}:succeeded",
                "refund.succeeded",
                (debit(lr.refunds_pending("wechat"), 5000), credit(lr.gateway("wechat"), 5000)),
            ),
        ):
            await ledger.post(
                conn,
                Entry(
                    key=key,
                    kind=kind,
                    order_id=agree,
                    lines=lines,
                    data={"out_refund_no": f"R{agree}", "provider_at": at.isoformat()},
                ),
            )

    def row(no: str, fen: int, refund: str = "", refund_fen: int = 0) -> tradebill.BillRow:
        return tradebill.BillRow(
            trade_time=datetime(2020, 1, 1, 18, 0),
            appid="wxd678efh567hg6787",
            mchid="1900000109",
            transaction_id="42000" + no,
            out_trade_no=no,
            openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            trade_type="JSAPI",
            trade_state="REFUND" if refund else "SUCCESS",
            bank_type="OTHERS",
            currency="CNY",
            settlement_fen=0 if refund else fen,
            coupon_fen=0,
            refund_id="503" + refund if refund else "",
            out_refund_no=refund,
            refund_fen=refund_fen,
            refund_status="SUCCESS" if refund else "",
            description="保洁",
            attach="",
            fee_mfen=fen * 6,
            rate="0.60%",
            total_fen=fen,
            requested_refund_fen=refund_fen,
        )

    bill = tradebill.write(
        [
            row(f"P{agree}", 15000),
            row(f"P{agree}", 15000, refund=f"R{agree}", refund_fen=5000),
            row(f"P{differs}", 9990),
            row("P-not-ours-1", 2500),
        ]
    ).decode()
    r = await client.post(
        "/v1/finance/reconciliations",
        headers=finance.auth,
        json={"provider": "wechat", "bill_date": str(day), "bill": bill},
    )
    assert r.status_code == 201, r.text
    run = r.json()
    got = {
        (d["kind"], d["ref"], d["problem"], d["bill_fen"], d["ledger_fen"]) for d in run["items"]
    }
    assert got == {
        ("payment", "P-not-ours-1", "missing_in_ledger", 2500, None),
        ("payment", f"P{only_ours}", "missing_in_bill", None, 8000),
        ("payment", f"P{differs}", "amount_mismatch", 9990, 9900),
    }
    assert (run["bill_rows"], run["ledger_items"], run["differences"]) == (4, 4, 3)
    listed = (await client.get("/v1/finance/reconciliations", headers=finance.auth)).json()["items"]
    assert run["id"] in [x["id"] for x in listed]
    again = (
        await client.get(f"/v1/finance/reconciliations/{run['id']}", headers=finance.auth)
    ).json()
    assert len(again["items"]) == 3
    r = await client.post(
        "/v1/finance/reconciliations",
        headers=finance.auth,
        json={"provider": "wechat", "bill_date": str(day), "bill": bill.replace("`", "")},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "bad_trade_bill"
    r = await client.post(
        "/v1/finance/reconciliations",
        headers=finance.auth,
        json={"provider": "paypal", "bill_date": str(day), "bill": bill},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "provider"
    assert (await client.get("/v1/finance/reconciliations", headers=worker.auth)).status_code == 403


async def test_commission_rules_refuse_bad_input(
    client: httpx.AsyncClient, admin: Account, live_city: str
) -> None:
    """Unknown city or merchant, a rate over 100 %, a float, max below min: 422 naming the field; a worker is 403."""
    for body, field in (
        ({"rate_bps": 1000, "city_id": "atlantis"}, "city_id"),
        ({"rate_bps": 1000, "merchant_id": 999999999}, "merchant_id"),
        ({"rate_bps": 10001}, "rate_bps"),
        ({"rate_bps": 15.5}, "rate_bps"),
        ({"rate_bps": 100, "min_fen": 500, "max_fen": 100}, "max_fen"),
        ({"rate_bps": 100, "percent": 3}, "percent"),
    ):
        r = await client.post("/v1/admin/commission-rules", headers=admin.auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field
    r = await client.post(
        "/v1/admin/commission-rules",
        headers=admin.auth,
        json={"rate_bps": 1200, "city_id": live_city},
    )
    assert r.status_code == 201
    assert r.json()["specificity"] == 1
    await client.post(f"/v1/admin/commission-rules/{r.json()['id']}/deactivate", headers=admin.auth)
    r = await client.post("/v1/admin/commission-rules/999999999/deactivate", headers=admin.auth)
    assert r.status_code == 404


async def test_the_payout_sandbox_checks_the_v3_signature(live_app: tuple[str, Any]) -> None:
    """An unsigned or wrongly signed transfer is 401 SIGN_ERROR (signed by the platform); a bad batch is 400 PARAM_ERROR."""
    from payments import wechat_wire as wire
    from settlement.payouts import (
        PayoutRefused,
        PayoutRequest,
        WeChatTransferConfig,
        WeChatTransfers,
    )

    url = live_app[1].state.payout_sandbox.url
    async with httpx.AsyncClient() as c:
        r = await c.post(url + "/v3/transfer/batches", content=b"{}")
    assert r.status_code == 401
    assert r.json()["code"] == "SIGN_ERROR"
    assert r.headers["wechatpay-signature"]
    good: WeChatTransferConfig = live_app[1].state.payouts.config
    forged = WeChatTransfers(
        WeChatTransferConfig(
            good.base_url,
            good.mchid,
            good.appid,
            good.serial_no,
            wire.new_key_pair(),
            good.platform_public,
            good.platform_serial,
        )
    )
    request = PayoutRequest(
        f"FORGED{secrets.token_hex(4)}", f"FD{secrets.token_hex(4)}", 1000, "oX", "test"
    )
    with pytest.raises(PayoutRefused) as e:
        await forged.transfer(request)
    assert e.value.code == "SIGN_ERROR"
    await forged.close()
    with pytest.raises(PayoutRefused) as e:
        await live_app[1].state.payouts.transfer(PayoutRequest("bad!", "FD12345", 10, "oX", "test"))
    assert e.value.code == "PARAM_ERROR"
    body = orjson.dumps({"mode": "explode"})
    async with httpx.AsyncClient() as c:
        r = await c.post(url + "/sandbox/faults", content=body)
    assert r.status_code == 400


async def test_order_paid_snapshots_taken_a_batch_at_once_match_one_by_one(
    stores: Stores,
    client: httpx.AsyncClient,
    live_app: tuple[str, Any],
    live_city: str,
    instant_service: str,
    customer: Account,
) -> None:
    """The consumer's batch of order.paid snapshots each order as the one-by-one path
    does (its funds, its rule), and keeps a snapshot taken before."""
    from settlement.service import snapshot_commission, snapshot_paid

    svc = _svc(live_app)
    worker = await _worker(stores, client, live_city)
    prices = (10000, 25000, 777)
    one = [
        await _paid_order(stores, live_city, instant_service, customer.id, worker.id, p)
        for p in prices
    ]
    many = [
        await _paid_order(stores, live_city, instant_service, customer.id, worker.id, p)
        for p in prices
    ]
    kept = await _paid_order(stores, live_city, instant_service, customer.id, worker.id, 5000)
    async with stores.pool.acquire() as conn, conn.transaction():
        for order in one:
            await snapshot_commission(
                conn, order, base_fen=prices[one.index(order)], params=svc.params, now=NOW
            )
        before = await snapshot_commission(conn, kept, base_fen=1, params=svc.params, now=NOW)
    async with stores.pool.acquire() as conn, conn.transaction():
        await snapshot_paid(conn, [(o, NOW) for o in [*many, kept]], params=svc.params)

    def terms(snap: Any) -> tuple[Any, ...]:
        return (snap.rule_id, snap.rate_bps, snap.base_fen, snap.commission_fen, snap.merchant_id)

    for a, b in zip(one, many, strict=True):
        sa, sb = await store.snapshot_of(stores.pool, a), await store.snapshot_of(stores.pool, b)
        assert sa is not None
        assert sb is not None
        assert terms(sa) == terms(sb)
    after = await store.snapshot_of(stores.pool, kept)
    assert after is not None
    assert terms(after) == terms(before)
    assert after.base_fen == 1

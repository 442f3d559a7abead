"""Coupons and points on the real stack (PostgreSQL, Redis, the WeChat Pay sandbox): claims
never over-issue under concurrency, a coupon's discount is paid by the platform in the
capture's transaction (commission on the full price), a cancellation gives the coupon back
and reverses the subsidy and points in proportion, points are earned on completion and
taken back on a refund, an event issues the welcome coupon, bad input names the field;
a refund the provider closes undoes the discount given back (subsidy, points, coupon); a
service paid afterwards earns points when it is paid; the coupon cost reaches the
analytics rollups; the ledger's invariants hold throughout."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from analytics import service as analytics
from analytics.rules import Query
from dispatch import service as dispatch_service
from dispatch.service import Caller
from doorstep.stores import Stores
from growth import store as growth_store
from ledger import rules as lr
from ledger import store as ledger_store
from payments.service import Payments
from payments.wechat_sandbox import WeChatSandbox
from tests.helpers import Account, MakeUser
from tests.live import book
from tests.test_payments import (  # noqa: F401 - fixtures
    _fault,
    _money,
    _on_site,
    _order,
    _pay,
    _pay_due,
    _service,
    payments,
    prepaid_service,
    sandbox,
    until,
)
from workforce import store as workforce_store


async def _template(client: httpx.AsyncClient, admin: Account, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name_zh": f"券{secrets.token_hex(2)}",
        "name_en": "Test coupon",
        "kind": "amount",
        "amount_fen": 2000,
        "min_spend_fen": 10000,
        "valid_days": 7,
        "total_stock": 100,
    }
    body.update(kw)
    r = await client.post("/v1/admin/coupon-templates", headers=admin.auth, json=body)
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def _claim(client: httpx.AsyncClient, who: Account, template_id: int) -> dict[str, Any]:
    r = await client.post("/v1/coupons/claim", headers=who.auth, json={"template_id": template_id})
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def _funds(stores: Stores, order_id: int) -> int:
    account = lr.order_funds(order_id)
    return lr.normal_balance(account, await ledger_store.balance(stores.pool, account))


async def _give_points(stores: Stores, customer_id: int, points: int) -> None:
    """Points to spend, with their ledger entry (as if earned)."""
    async with stores.pool.acquire() as conn, conn.transaction():
        await growth_store.move_points(
            conn, customer_id, points, kind="earn", key=f"test:{customer_id}", order_id=None
        )
        await ledger_store.post(
            conn,
            lr.Entry(
                key=f"test:points:{customer_id}",
                kind="growth.points_earned",
                lines=(
                    lr.debit(lr.POINTS_EXPENSE, points),
                    lr.credit(lr.points_liability(customer_id), points),
                ),
            ),
        )


async def _confirmed(client: httpx.AsyncClient, customer: Account, order_id: int) -> None:
    async def paid() -> bool:
        status = (await _order(client, customer, order_id))["status"]
        return status not in ("awaiting_payment",)

    await until(paid)


async def test_concurrent_claims_never_exceed_the_stock_nor_the_per_customer_limit(
    client: httpx.AsyncClient, make_user: MakeUser, admin: Account, stores: Stores
) -> None:
    """16 claims at once by 8 customers (2 each) for a stock of 5, limit 2: exactly 5 issued,
    nobody above 2; 6 claims at once by one customer on a large stock: exactly 2."""
    t = await _template(client, admin, total_stock=5, per_user_limit=2)
    people = [await make_user("customer") for _ in range(8)]

    async def claim(who: Account) -> int:
        r = await client.post("/v1/coupons/claim", headers=who.auth, json={"template_id": t["id"]})
        assert r.status_code in (201, 409), r.text
        return r.status_code

    codes = await asyncio.gather(*(claim(p) for p in people for _ in range(2)))
    assert codes.count(201) == 5
    rows = await stores.pool.fetch(
        "SELECT customer_id, count(*) AS n FROM coupons WHERE template_id = $1 GROUP BY 1",
        t["id"],
    )
    assert sum(r["n"] for r in rows) == 5
    assert max(r["n"] for r in rows) <= 2
    issued = await stores.pool.fetchval(
        "SELECT issued FROM coupon_templates WHERE id = $1", t["id"]
    )
    assert issued == 5
    r = await client.post(
        "/v1/coupons/claim", headers=people[0].auth, json={"template_id": t["id"]}
    )
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "template_id"

    big = await _template(client, admin, total_stock=1000, per_user_limit=2)
    one = await make_user("customer")
    answers = await asyncio.gather(
        *(
            client.post("/v1/coupons/claim", headers=one.auth, json={"template_id": big["id"]})
            for _ in range(6)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409, 409]
    mine = (await client.get("/v1/me/coupons", headers=one.auth)).json()
    assert [c["template_id"] for c in mine].count(big["id"]) == 2


async def test_a_coupon_paid_by_the_platform_in_the_capture_and_commission_on_the_full_price(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """A 150.00 order with a 40.00 coupon: checkout suggests it, the customer pays 110.00,
    the capture's transaction posts Dr subsidy_expense 40.00 / Cr order_funds, the order
    holds 150.00, the commission is snapshotted on 150.00, the coupon is used."""
    t = await _template(client, admin, amount_fen=4000, min_spend_fen=10000)
    customer = await make_user("customer")
    coupon = await _claim(client, customer, t["id"])
    order = await book(client, customer, prepaid_service)
    r = await client.get(f"/v1/orders/{order['id']}/checkout", headers=customer.auth)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["price_fen"] == 15000
    assert preview["suggested_coupon_id"] == coupon["id"]
    assert preview["coupons"][0]["discount_fen"] == 4000
    r = await client.put(
        f"/v1/orders/{order['id']}/checkout",
        headers=customer.auth,
        json={"coupon_id": coupon["id"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["payable_fen"] == 11000
    money = await _money(client, customer, order["id"])
    assert money["due_fen"] == 11000
    assert money["breakdown"]["lines"][-1] == {
        "code": "discount:coupon",
        "label": "优惠券 coupon",
        "amount_fen": -4000,
    }
    trade = await _pay(client, customer, order["id"])
    assert trade["amount_fen"] == 11000
    await sandbox.complete_payment(trade["out_trade_no"], "success")
    await _confirmed(client, customer, order["id"])
    entry = await ledger_store.get(stores.pool, f"growth:discount:{order['id']}")
    assert entry is not None
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in entry.lines) == [
        (lr.order_funds(order["id"]), 0, 4000),
        (lr.SUBSIDY_EXPENSE, 4000, 0),
    ]
    captured = await ledger_store.get(stores.pool, f"wechat:pay:{trade['provider_trade_no']}")
    if captured is None:  # the provider's number arrives with the notification
        entries = await ledger_store.for_order(stores.pool, order["id"])
        captured = next(e for e in entries if e.kind == "payment.captured")
    assert captured.id < entry.id  # the same transaction, right after the capture
    assert await _funds(stores, order["id"]) == 15000

    async def snapshotted() -> bool:
        base = await stores.pool.fetchval(
            "SELECT base_fen FROM order_commissions WHERE order_id = $1", order["id"]
        )
        return bool(base == 15000)

    await until(snapshotted)
    mine = {c["id"]: c for c in (await client.get("/v1/me/coupons", headers=customer.auth)).json()}
    assert mine[coupon["id"]]["status"] == "used"
    assert mine[coupon["id"]]["order_id"] == order["id"]
    stats = (await client.get("/v1/admin/growth/stats", headers=admin.auth)).json()
    row = next(s for s in stats if s["template_id"] == t["id"])
    assert (row["issued"], row["used"], row["cost_fen"]) == (1, 1, 4000)
    assert await ledger_store.check(stores.pool) == []


async def test_a_cancellation_returns_the_coupon_and_reverses_the_subsidy_and_points(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """Paid with a 30.00 coupon and 1,000 points (10.00): cancelled before dispatch, the
    110.00 cash is refunded, the subsidy reversed and the points returned in the refund's
    transaction, the order's funds end at 0, the coupon is available again."""
    t = await _template(client, admin, amount_fen=3000, min_spend_fen=10000)
    customer = await make_user("customer")
    async with stores.pool.acquire() as conn, conn.transaction():  # points to spend
        await growth_store.move_points(
            conn, customer.id, 5000, kind="earn", key=f"test:{customer.id}", order_id=None
        )
        await ledger_store.post(
            conn,
            lr.Entry(
                key=f"test:points:{customer.id}",
                kind="growth.points_earned",
                lines=(
                    lr.debit(lr.POINTS_EXPENSE, 5000),
                    lr.credit(lr.points_liability(customer.id), 5000),
                ),
            ),
        )
    coupon = await _claim(client, customer, t["id"])
    order = await book(client, customer, prepaid_service)
    r = await client.put(
        f"/v1/orders/{order['id']}/checkout",
        headers=customer.auth,
        json={"coupon_id": coupon["id"], "points": 1000},
    )
    assert r.status_code == 200, r.text
    assert r.json()["payable_fen"] == 11000
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert (points["balance"], points["held"]) == (5000, 1000)
    trade = await _pay(client, customer, order["id"])
    await sandbox.complete_payment(trade["out_trade_no"], "success")
    await _confirmed(client, customer, order["id"])
    assert await _funds(stores, order["id"]) == 15000
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert (points["balance"], points["held"]) == (4000, 0)
    assert points["history"][0]["kind"] == "redeem"
    assert await ledger_store.balance(stores.pool, lr.points_liability(customer.id)) == -4000

    r = await client.post(
        f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={"reason": "plans changed"}
    )
    assert r.status_code == 200, r.text

    async def refunded() -> bool:
        row = await stores.pool.fetchrow(
            "SELECT out_refund_no, amount_fen FROM refunds WHERE order_id = $1",
            order["id"],
        )
        return row is not None

    await until(refunded)
    no = await stores.pool.fetchval(
        "SELECT out_refund_no FROM refunds WHERE order_id = $1", order["id"]
    )
    back = await ledger_store.get(stores.pool, f"growth:refund:{no}")
    assert back is not None
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in back.lines) == sorted(
        [
            (lr.order_funds(order["id"]), 4000, 0),
            (lr.SUBSIDY_EXPENSE, 0, 3000),
            (lr.points_liability(customer.id), 0, 1000),
        ]
    )
    assert await _funds(stores, order["id"]) == 0

    async def returned() -> bool:
        mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
        return any(c["id"] == coupon["id"] and c["status"] == "available" for c in mine)

    await until(returned)
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["balance"] == 5000
    assert await ledger_store.balance(stores.pool, lr.points_liability(customer.id)) == -5000
    assert await ledger_store.check(stores.pool) == []


async def test_a_refund_closed_by_the_provider_undoes_the_discount_given_back(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """Paid 110.00 with a 30.00 coupon and 1,000 points, cancelled; WeChat closes the
    refund: the subsidy and points given back are reversed with it (funds 150.00 again,
    points 4,000, coupon used again); refunded again successfully, all come back once."""
    t = await _template(client, admin, amount_fen=3000, min_spend_fen=10000)
    customer = await make_user("customer")
    finance = await make_user("finance")
    await _give_points(stores, customer.id, 5000)
    coupon = await _claim(client, customer, t["id"])
    order = await book(client, customer, prepaid_service)
    r = await client.put(
        f"/v1/orders/{order['id']}/checkout",
        headers=customer.auth,
        json={"coupon_id": coupon["id"], "points": 1000},
    )
    assert r.status_code == 200, r.text
    trade = await _pay(client, customer, order["id"])
    await _fault(sandbox, trade["out_trade_no"], refund="closed")
    await sandbox.complete_payment(trade["out_trade_no"], "success")
    await _confirmed(client, customer, order["id"])
    liability = lr.points_liability(customer.id)
    r = await client.post(
        f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={"reason": "plans changed"}
    )
    assert r.status_code == 200, r.text

    async def closed() -> bool:
        status = await stores.pool.fetchval(
            "SELECT status FROM refunds WHERE order_id = $1", order["id"]
        )
        return bool(status == "closed")

    await until(closed)
    no = await stores.pool.fetchval(
        "SELECT out_refund_no FROM refunds WHERE order_id = $1", order["id"]
    )
    kinds = [e.kind for e in await ledger_store.for_order(stores.pool, order["id"])]
    assert kinds == [
        "payment.captured",
        "growth.discount",
        "refund.requested",
        "growth.discount_back",
        "refund.failed",
        "growth.discount_back.reversal",
    ]
    assert await ledger_store.get(stores.pool, f"growth:refund:{no}:failed") is not None
    assert await _funds(stores, order["id"]) == 15000

    async def coupon_is(status: str) -> bool:
        mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
        return any(c["id"] == coupon["id"] and c["status"] == status for c in mine)

    await until(lambda: coupon_is("used"))
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["balance"] == 4000
    assert [h["kind"] for h in points["history"][:3]] == ["restore", "return", "redeem"]
    assert await ledger_store.balance(stores.pool, liability) == -4000
    # the subsidy of this order is spent again (other tests move subsidy_expense too)
    spent = await stores.pool.fetchval(
        "SELECT coalesce(sum(debit_fen - credit_fen), 0) FROM ledger_lines l "
        "JOIN ledger_entries e ON e.id = l.entry_id WHERE e.order_id = $1 AND l.account = $2",
        order["id"],
        lr.SUBSIDY_EXPENSE,
    )
    assert spent == 3000
    assert await ledger_store.check(stores.pool) == []

    await _fault(sandbox, trade["out_trade_no"], refund="success")
    r = await client.post(
        f"/v1/orders/{order['id']}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"GRF{order['id']}r2", "amount_fen": 11000},
    )
    assert r.status_code == 201, r.text
    assert await _funds(stores, order["id"]) == 0
    await until(lambda: coupon_is("available"))
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["balance"] == 5000
    assert await ledger_store.balance(stores.pool, liability) == -5000
    assert await ledger_store.check(stores.pool) == []


async def _coupon_figures(stores: Stores, city: str) -> tuple[int, int, int, int]:
    """Refresh the rollups; today's (coupon_orders, coupon_gmv, subsidy, points) in the city."""
    await analytics.refresh(stores.pool)
    day = await stores.pool.fetchval(
        "SELECT (now() AT TIME ZONE timezone)::date FROM cities WHERE id = $1", city
    )
    m = (
        await analytics.summary(
            stores.pool, Query(city, day, day, None, None, "city", "json", "zh")
        )
    ).metrics
    return m.coupon_orders, m.coupon_gmv_fen, m.subsidy_fen, m.points_redeemed_fen


async def test_coupon_cost_reaches_the_analytics_rollups(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """Today in the city, after a refresh: an order paid with a 40.00 coupon and 500 points
    adds one coupon order, 40.00 subsidy and 5.00 of points; one paid with a 30.00 coupon
    then cancelled (refunded, coupon given back) adds nothing; the ledger agrees."""
    t = await _template(client, admin, amount_fen=4000, min_spend_fen=10000)
    customer = await make_user("customer")
    await _give_points(stores, customer.id, 2000)
    before = await _coupon_figures(stores, live_city)
    kept = await _claim(client, customer, t["id"])
    other = await _template(client, admin, amount_fen=3000, min_spend_fen=10000)
    back = await _claim(client, customer, other["id"])
    ids = []
    for coupon, points in ((kept, 500), (back, 0)):
        order = await book(client, customer, prepaid_service)
        r = await client.put(
            f"/v1/orders/{order['id']}/checkout",
            headers=customer.auth,
            json={"coupon_id": coupon["id"], "points": points},
        )
        assert r.status_code == 200, r.text
        trade = await _pay(client, customer, order["id"])
        await sandbox.complete_payment(trade["out_trade_no"], "success")
        await _confirmed(client, customer, order["id"])
        ids.append(order["id"])
    r = await client.post(
        f"/v1/orders/{ids[1]}/cancel", headers=customer.auth, json={"reason": "plans changed"}
    )
    assert r.status_code == 200, r.text

    async def settled() -> bool:
        mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
        given_back = any(c["id"] == back["id"] and c["status"] == "available" for c in mine)
        return given_back and await _funds(stores, ids[1]) == 0

    await until(settled)
    after = await _coupon_figures(stores, live_city)
    assert after[0] - before[0] == 1
    assert after[1] - before[1] == 0  # not completed yet: no coupon GMV
    assert after[2] - before[2] == 4000
    assert after[3] - before[3] == 500
    subsidy = await stores.pool.fetchval(
        "SELECT sum(l.debit_fen - l.credit_fen) FROM ledger_lines l JOIN ledger_entries e "
        "ON e.id = l.entry_id WHERE e.order_id = ANY($1) AND l.account = $2",
        ids,
        lr.SUBSIDY_EXPENSE,
    )
    assert subsidy == 4000


async def test_points_earned_on_completion_and_taken_back_in_proportion_to_a_refund(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
) -> None:
    """150.00 paid and completed: 150 points with their ledger entry; finance refunds 50.00:
    50 points taken back (Dr points_liability / Cr points_expense); the history shows both."""
    customer = await make_user("customer")
    dispatcher = await make_user("dispatcher")
    finance = await make_user("finance")
    worker = await make_user("worker")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker.id,
        city_id=live_city,
        skills=(),
        home_lat=22.53,
        home_lng=114.01,
        team_id=None,
    )
    order = await book(client, customer, prepaid_service)
    trade = await _pay(client, customer, order["id"])
    await sandbox.complete_payment(trade["out_trade_no"], "success")
    await _confirmed(client, customer, order["id"])
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    start_code = (await _order(client, customer, order["id"]))["start_code"]
    for action, body in (("arrive", {}), ("start", {"start_code": start_code}), ("complete", {})):
        r = await client.post(f"/v1/orders/{order['id']}/{action}", headers=worker.auth, json=body)
        assert r.status_code == 200, r.text

    async def earned() -> bool:
        points = (await client.get("/v1/me/points", headers=customer.auth)).json()
        return bool(points["balance"] == 150)

    await until(earned)
    assert await ledger_store.balance(stores.pool, lr.points_liability(customer.id)) == -150
    r = await client.post(
        f"/v1/orders/{order['id']}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"GR{secrets.token_hex(5)}", "amount_fen": 5000},
    )
    assert r.status_code == 201, r.text
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["balance"] == 100
    assert [(h["kind"], h["points"]) for h in points["history"][:2]] == [
        ("reverse", -50),
        ("earn", 150),
    ]
    assert await ledger_store.balance(stores.pool, lr.points_liability(customer.id)) == -100
    assert await ledger_store.check(stores.pool) == []


async def test_a_service_paid_afterwards_earns_points_on_what_is_paid_when_it_is_paid(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """Pay-after-service 99.00 with a 60.00 add-on paid during the service: completion
    earns 60 points (all that is paid), the final 99.00 captured later earns 99 more in its
    own transaction; a 50.00 refund then takes 50 back; the ledger mirrors each."""
    service = await _service(client, admin, 9900, None)
    customer = await make_user("customer")
    finance = await make_user("finance")
    order = await book(client, customer, service)
    oid = order["id"]
    await _on_site(live_app, stores, oid, worker_account)
    tracking = live_app[1].state.tracking
    code = (await _order(client, customer, oid))["start_code"]
    await dispatch_service.act(
        stores, tracking, oid, "start", Caller("worker", worker_account.id), start_code=code
    )
    r = await client.post(
        f"/v1/orders/{oid}/extras",
        headers=worker_account.auth,
        json={"kind": "addon", "items": [{"name": "加氟", "amount_fen": 6000}]},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/orders/{oid}/extras/{r.json()['id']}/approve", headers=customer.auth
    )
    assert r.status_code == 200, r.text
    await _pay_due(client, customer, sandbox, oid, "addon", 6000)
    await dispatch_service.act(
        stores, tracking, oid, "complete", Caller("worker", worker_account.id)
    )

    async def balance_is(n: int) -> bool:
        points = (await client.get("/v1/me/points", headers=customer.auth)).json()
        return bool(points["balance"] == n)

    await until(lambda: balance_is(60))
    await _pay_due(client, customer, sandbox, oid, "final", 9900)
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["balance"] == 159
    assert [(h["kind"], h["points"]) for h in points["history"][:2]] == [
        ("earn", 99),
        ("earn", 60),
    ]
    liability = lr.points_liability(customer.id)
    assert await ledger_store.balance(stores.pool, liability) == -159
    r = await client.post(
        f"/v1/orders/{oid}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"GA{secrets.token_hex(5)}", "amount_fen": 5000},
    )
    assert r.status_code == 201, r.text
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["balance"] == 109
    assert points["history"][0]["kind"] == "reverse"
    assert await ledger_store.balance(stores.pool, liability) == -109
    assert await ledger_store.check(stores.pool) == []


async def test_a_coupon_on_a_service_paid_afterwards_is_paid_in_with_the_final_payment(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """Pay-after-service 99.00, completed: checkout opens and suggests a 20.00 coupon, the
    final payment asks 79.00; its capture's transaction posts the 20.00 subsidy (funds
    99.00), the coupon is used, 79 points are earned on the cash; then checkout is 409."""
    service = await _service(client, admin, 9900, None)
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000)
    customer = await make_user("customer")
    coupon = await _claim(client, customer, t["id"])
    order = await book(client, customer, service)
    oid = order["id"]
    url = f"/v1/orders/{oid}/checkout"
    r = await client.put(url, headers=customer.auth, json={"coupon_id": coupon["id"]})
    assert (r.status_code, r.json()["error"]["field"]) == (409, "order_id")  # not done yet
    await _on_site(live_app, stores, oid, worker_account)
    tracking = live_app[1].state.tracking
    code = (await _order(client, customer, oid))["start_code"]
    await dispatch_service.act(
        stores, tracking, oid, "start", Caller("worker", worker_account.id), start_code=code
    )
    await dispatch_service.act(
        stores, tracking, oid, "complete", Caller("worker", worker_account.id)
    )
    preview = (await client.get(url, headers=customer.auth)).json()
    assert preview["open"] is True
    assert preview["suggested_coupon_id"] == coupon["id"]
    r = await client.put(url, headers=customer.auth, json={"coupon_id": coupon["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["payable_fen"] == 7900
    await _pay_due(client, customer, sandbox, oid, "final", 7900)
    assert await _funds(stores, oid) == 9900
    entry = await ledger_store.get(stores.pool, f"growth:discount:{oid}")
    assert entry is not None
    assert (lr.SUBSIDY_EXPENSE, 2000, 0) in [
        (x.account, x.debit_fen, x.credit_fen) for x in entry.lines
    ]
    mine = {c["id"]: c for c in (await client.get("/v1/me/coupons", headers=customer.auth)).json()}
    assert (mine[coupon["id"]]["status"], mine[coupon["id"]]["order_id"]) == ("used", oid)

    async def earned() -> bool:
        points = (await client.get("/v1/me/points", headers=customer.auth)).json()
        return bool(points["balance"] == 79)

    await until(earned)
    r = await client.put(url, headers=customer.auth, json={})
    assert r.status_code == 409
    assert await ledger_store.check(stores.pool) == []


async def test_the_welcome_coupon_is_issued_on_account_created(
    client: httpx.AsyncClient, make_user: MakeUser, admin: Account
) -> None:
    """A template issued on account.created gives each new customer one coupon, once."""
    t = await _template(
        client,
        admin,
        claimable=False,
        auto_event="account.created",
        amount_fen=1000,
        min_spend_fen=0,
        cities=["nowhere"],
    )
    try:
        customer = await make_user("customer")

        async def issued() -> bool:
            mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
            return any(c["template_id"] == t["id"] and c["source"] == "event" for c in mine)

        await until(issued)
        r = await client.post(
            "/v1/coupons/claim", headers=customer.auth, json={"template_id": t["id"]}
        )
        assert r.status_code == 404  # not claimable in the app
    finally:
        r = await client.delete(f"/v1/admin/coupon-templates/{t['id']}", headers=admin.auth)
        assert r.status_code == 204


async def test_bad_input_is_refused_naming_the_field(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    prepaid_service: str,  # noqa: F811
) -> None:
    """Templates, claims and checkout refuse bad input with a 4xx naming the field."""
    customer = await make_user("customer")
    other = await make_user("customer")
    bad_templates: list[tuple[dict[str, Any], str]] = [
        ({"kind": "percent", "amount_fen": 0, "percent_off": 0}, "percent_off"),
        ({"valid_until": "2031-01-01T00:00:00+08:00"}, "valid_until"),
        ({"amount_fen": 12.5}, "amount_fen"),
        ({"min_spend_fen": 100}, "min_spend_fen"),
        ({"total_stock": -5}, "total_stock"),
        ({"auto_event": "order.paid"}, "auto_event"),
    ]
    base: dict[str, Any] = {
        "name_zh": "券",
        "name_en": "C",
        "kind": "amount",
        "amount_fen": 500,
        "valid_days": 3,
        "total_stock": 9,
    }
    for change, field in bad_templates:
        r = await client.post(
            "/v1/admin/coupon-templates", headers=admin.auth, json={**base, **change}
        )
        assert r.status_code == 422, (change, r.text)
        assert r.json()["error"]["field"] == field, (change, r.text)
    r = await client.post("/v1/coupons/claim", headers=customer.auth, json={"template_id": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "template_id"
    r = await client.post("/v1/coupons/claim", headers=customer.auth, json={"template_id": 2**40})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "template_id")

    t = await _template(client, admin, amount_fen=1000, min_spend_fen=50000)
    coupon = await _claim(client, customer, t["id"])
    theirs = await _claim(client, other, t["id"])
    order = await book(client, customer, prepaid_service)
    url = f"/v1/orders/{order['id']}/checkout"
    for body, status, field in (
        ({"coupon_id": coupon["id"]}, 422, "coupon_id"),  # below the minimum spend
        ({"coupon_id": theirs["id"]}, 404, "coupon_id"),
        ({"points": -1}, 422, "points"),
        ({"points": 10}, 422, "points"),  # has none
        ({"coupon_id": 1.5}, 422, "coupon_id"),
    ):
        r = await client.put(url, headers=customer.auth, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    r = await client.put(url, headers=other.auth, json={})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "order_id")
    r = await client.patch(
        f"/v1/admin/coupon-templates/{t['id']}", headers=admin.auth, json={"total_stock": 0}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "total_stock")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await client.patch(
        f"/v1/admin/coupon-templates/{t['id']}", headers=admin.auth, json={"valid_until": future}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "valid_until")


async def _completed_after_service(
    client: httpx.AsyncClient,
    admin: Account,
    customer: Account,
    worker: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> int:
    """A pay-after-service order of 99.00, done: its final payment is due."""
    service = await _service(client, admin, 9900, None)
    oid = int((await book(client, customer, service))["id"])
    await _on_site(live_app, stores, oid, worker)
    tracking = live_app[1].state.tracking
    code = (await _order(client, customer, oid))["start_code"]
    await dispatch_service.act(
        stores, tracking, oid, "start", Caller("worker", worker.id), start_code=code
    )
    await dispatch_service.act(stores, tracking, oid, "complete", Caller("worker", worker.id))
    return oid


async def _held(
    client: httpx.AsyncClient, customer: Account, coupon_id: int, order_id: int, stores: Stores
) -> tuple[str, int, int, str | None]:
    """(the coupon's state, points balance, points held, the discount's status)."""
    mine = {c["id"]: c for c in (await client.get("/v1/me/coupons", headers=customer.auth)).json()}
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    status = await stores.pool.fetchval(
        "SELECT status FROM order_discounts WHERE order_id = $1", order_id
    )
    return mine[coupon_id]["status"], points["balance"], points["held"], status


async def test_a_final_payment_closed_unpaid_releases_its_coupon_and_points_once(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    payments: Payments,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """Pay-after-service 99.00 with a 20.00 coupon and 500 points on its final payment
    (74.00, a trade valid 15 min): WeChat closes the trade unpaid and our query hears it —
    in that transaction the coupon is available, the points no longer held, the discount
    void and 99.00 due again; a second report changes nothing; applied again and paid, the
    coupon is used and the subsidy posted."""
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000)
    customer = await make_user("customer")
    await _give_points(stores, customer.id, 1000)
    coupon = await _claim(client, customer, t["id"])
    oid = await _completed_after_service(client, admin, customer, worker_account, live_app, stores)
    url = f"/v1/orders/{oid}/checkout"
    r = await client.put(
        url, headers=customer.auth, json={"coupon_id": coupon["id"], "points": 500}
    )
    assert r.status_code == 200, r.text
    assert r.json()["payable_fen"] == 7400
    trade = await _pay(client, customer, oid)
    assert trade["amount_fen"] == 7400
    expires = datetime.fromisoformat(trade["expires_at"])
    assert timedelta(minutes=14) < expires - datetime.fromisoformat(trade["created_at"])
    assert await _held(client, customer, coupon["id"], oid, stores) == (
        "locked",
        1000,
        500,
        "applied",
    )
    await payments.provider("wechat").close(trade["out_trade_no"])  # the provider closes it
    await payments.sync(trade["out_trade_no"])
    assert await _held(client, customer, coupon["id"], oid, stores) == (
        "available",
        1000,
        0,
        "void",
    )
    money = await _money(client, customer, oid)
    assert (money["due_purpose"], money["due_fen"]) == ("final", 9900)
    assert not [x for x in money["breakdown"]["lines"] if x["code"].startswith("discount:")]
    await payments.sync(trade["out_trade_no"])  # reported again: nothing twice
    assert await _held(client, customer, coupon["id"], oid, stores) == (
        "available",
        1000,
        0,
        "void",
    )
    r = await client.put(
        url, headers=customer.auth, json={"coupon_id": coupon["id"], "points": 500}
    )
    assert r.status_code == 200, r.text
    await _pay_due(client, customer, sandbox, oid, "final", 7400)
    coupon_state, _, held, status = await _held(client, customer, coupon["id"], oid, stores)
    assert (coupon_state, held, status) == ("used", 0, "captured")
    history = (await client.get("/v1/me/points", headers=customer.auth)).json()["history"]
    assert [h["points"] for h in history if h["kind"] == "redeem"] == [-500]
    assert await _funds(stores, oid) == 9900
    assert await ledger_store.check(stores.pool) == []


async def test_a_final_payment_replaced_by_another_channel_keeps_the_coupon_for_the_new_trade(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    payments: Payments,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """The customer switches the final payment from a QR code to JSAPI: the first trade is
    closed and the coupon stays locked for the new trade of the same 79.00; the provider's
    report of the closed trade changes nothing; the new trade's capture uses the coupon."""
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000)
    customer = await make_user("customer")
    coupon = await _claim(client, customer, t["id"])
    oid = await _completed_after_service(client, admin, customer, worker_account, live_app, stores)
    r = await client.put(
        f"/v1/orders/{oid}/checkout", headers=customer.auth, json={"coupon_id": coupon["id"]}
    )
    assert r.status_code == 200, r.text
    first = await _pay(client, customer, oid)
    second = await _pay(client, customer, oid, channel="jsapi")
    assert second["out_trade_no"] != first["out_trade_no"]
    assert second["amount_fen"] == 7900
    await payments.sync(first["out_trade_no"])
    assert await _held(client, customer, coupon["id"], oid, stores) == ("locked", 0, 0, "applied")
    statuses = {
        p["out_trade_no"]: p["status"] for p in (await _money(client, customer, oid))["payments"]
    }
    assert statuses == {first["out_trade_no"]: "closed", second["out_trade_no"]: "pending"}
    await sandbox.complete_payment(second["out_trade_no"], "success")

    async def used() -> bool:
        return (await _held(client, customer, coupon["id"], oid, stores))[0] == "used"

    await until(used)
    assert await _funds(stores, oid) == 9900
    assert await ledger_store.check(stores.pool) == []


async def test_an_unpaid_prepaid_order_closed_or_cancelled_releases_its_coupon_and_points_once(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
    payments: Payments,  # noqa: F811
) -> None:
    """A 150.00 prepaid order with a 30.00 coupon and 1,000 points, never paid: the close job
    releases them in its own transaction (the discount void as the order is cancelled);
    another, cancelled by the customer, releases them through the event and its trade's
    closing later releases nothing twice (points held back at 0, not below)."""
    t = await _template(client, admin, amount_fen=3000, min_spend_fen=10000, per_user_limit=2)
    customer = await make_user("customer")
    await _give_points(stores, customer.id, 5000)
    closed = await _claim(client, customer, t["id"])
    order = await book(client, customer, prepaid_service)
    r = await client.put(
        f"/v1/orders/{order['id']}/checkout",
        headers=customer.auth,
        json={"coupon_id": closed["id"], "points": 1000},
    )
    assert r.status_code == 200, r.text
    await _pay(client, customer, order["id"])
    assert await payments.close_unpaid(order["id"])
    assert await _held(client, customer, closed["id"], order["id"], stores) == (
        "available",
        5000,
        0,
        "void",
    )
    same_tx = await stores.pool.fetchval(
        "SELECT o.updated_at = d.updated_at FROM orders o JOIN order_discounts d "
        "ON d.order_id = o.id WHERE o.id = $1",
        order["id"],
    )
    assert same_tx  # released in the close job's transaction, not by an event after it

    cancelled = await _claim(client, customer, t["id"])
    order = await book(client, customer, prepaid_service)
    r = await client.put(
        f"/v1/orders/{order['id']}/checkout",
        headers=customer.auth,
        json={"coupon_id": cancelled["id"], "points": 1000},
    )
    assert r.status_code == 200, r.text
    trade = await _pay(client, customer, order["id"])
    r = await client.post(
        f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={"reason": "plans changed"}
    )
    assert r.status_code == 200, r.text

    async def trade_closed() -> bool:
        m = await _money(client, customer, order["id"])
        return any(
            p["out_trade_no"] == trade["out_trade_no"] and p["status"] == "closed"
            for p in m["payments"]
        )

    await until(trade_closed)

    async def released() -> bool:
        got = await _held(client, customer, cancelled["id"], order["id"], stores)
        return got[3] == "void"

    await until(released)
    assert await _held(client, customer, cancelled["id"], order["id"], stores) == (
        "available",
        5000,
        0,
        "void",
    )
    assert await ledger_store.check(stores.pool) == []


async def _day_metrics(stores: Stores, city: str, day: date) -> Any:
    """The rollups' figures of one booking day in the city (no refresh)."""
    q = Query(city, day, day, None, None, "city", "json", "zh")
    return (await analytics.summary(stores.pool, q)).metrics


async def test_an_after_sales_refund_reaches_the_incremental_rollup_as_a_rebuild_would(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    live_city: str,
    prepaid_service: str,  # noqa: F811
    sandbox: WeChatSandbox,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
) -> None:
    """An order booked three days ago, paid 110.00 with a 40.00 coupon and done, last
    changed an hour ago: after-sales refunds 50.00 (18.18 of the subsidy back, the order's
    row untouched); the next incremental refresh shows that day's subsidy down by 18.18,
    every figure equal to a full rebuild's."""
    t = await _template(client, admin, amount_fen=4000, min_spend_fen=10000)
    customer = await make_user("customer")
    dispatcher = await make_user("dispatcher")
    coupon = await _claim(client, customer, t["id"])
    oid = int((await book(client, customer, prepaid_service))["id"])
    r = await client.put(
        f"/v1/orders/{oid}/checkout", headers=customer.auth, json={"coupon_id": coupon["id"]}
    )
    assert r.status_code == 200, r.text
    trade = await _pay(client, customer, oid)
    await sandbox.complete_payment(trade["out_trade_no"], "success")
    await _confirmed(client, customer, oid)
    await _on_site(live_app, stores, oid, worker_account)
    tracking = live_app[1].state.tracking
    code = (await _order(client, customer, oid))["start_code"]
    worker = Caller("worker", worker_account.id)
    await dispatch_service.act(stores, tracking, oid, "start", worker, start_code=code)
    await dispatch_service.act(stores, tracking, oid, "complete", worker)
    day = await stores.pool.fetchval(
        "UPDATE orders SET created_at = created_at - interval '3 days', "
        "updated_at = now() - interval '1 hour' WHERE id = $1 "
        "RETURNING (created_at AT TIME ZONE 'Asia/Shanghai')::date",
        oid,
    )
    await analytics.refresh(stores.pool, full=True)
    before = await _day_metrics(stores, live_city, day)
    assert before.subsidy_fen >= 4000

    r = await client.post(
        f"/v1/orders/{oid}/aftersales",
        headers=customer.auth,
        json={"kind": "refund", "description": "柜子背面没有擦", "asked_fen": 5000},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/aftersales/tickets/{r.json()['ticket']['id']}/resolve",
        headers=dispatcher.auth,
        json={"refund_fen": 5000, "note": "部分退款"},
    )
    assert r.status_code == 200, r.text
    assert await _funds(stores, oid) == 15000 - 5000 - 1818
    report = await analytics.refresh(stores.pool)
    assert not report.full
    incremental = await _day_metrics(stores, live_city, day)
    assert before.subsidy_fen - incremental.subsidy_fen == 1818
    await analytics.refresh(stores.pool, full=True)
    assert incremental == await _day_metrics(stores, live_city, day)
    assert await ledger_store.check(stores.pool) == []


async def _close_then_pay(
    client: httpx.AsyncClient,
    customer: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    payments: Payments,  # noqa: F811
    oid: int,
    coupon_id: int,
    stores: Stores,
    between: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The final payment's trade is made and closed by the close job (its coupon and points
    released: checked); ``between`` runs; then the payer's payment, made as the trade was
    closed, lands (the sandbox pays the closed trade, as in its 'late' race) and is captured."""
    trade = await _pay(client, customer, oid)
    await payments.close_trade(trade["out_trade_no"])
    got = await _held(client, customer, coupon_id, oid, stores)
    assert (got[0], got[3]) == ("available", "void")  # released with the trade's closing
    if between is not None:
        await between()
    await sandbox.complete_payment(trade["out_trade_no"], "success", force=True)

    async def captured() -> bool:
        m = await _money(client, customer, oid)
        return any(
            p["out_trade_no"] == trade["out_trade_no"] and p["status"] == "paid"
            for p in m["payments"]
        )

    await until(captured)


async def test_a_final_payment_captured_after_its_trade_closed_takes_its_coupon_and_points_again(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    payments: Payments,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """Pay-after-service 99.00, a 20.00 coupon and 500 points (74.00 asked): the trade is
    closed (coupon and points released), then its payment lands: the capture takes the
    coupon and points again (still free) and posts their 25.00 beside the 74.00 — funds
    99.00, the price's total 74.00 with its discount lines, nothing due, the ledger sound."""
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000)
    customer = await make_user("customer")
    await _give_points(stores, customer.id, 1000)
    coupon = await _claim(client, customer, t["id"])
    oid = await _completed_after_service(client, admin, customer, worker_account, live_app, stores)
    r = await client.put(
        f"/v1/orders/{oid}/checkout",
        headers=customer.auth,
        json={"coupon_id": coupon["id"], "points": 500},
    )
    assert r.status_code == 200, r.text
    await _close_then_pay(client, customer, sandbox, payments, oid, coupon["id"], stores)
    coupon_state, _, held, status = await _held(client, customer, coupon["id"], oid, stores)
    assert (coupon_state, held, status) == ("used", 0, "captured")
    history = (await client.get("/v1/me/points", headers=customer.auth)).json()["history"]
    assert [h["points"] for h in history if h["kind"] == "redeem"] == [-500]
    assert await _funds(stores, oid) == 9900
    entry = await ledger_store.get(stores.pool, f"growth:discount:{oid}")
    assert entry is not None
    assert sorted((x.account, x.debit_fen) for x in entry.lines if x.debit_fen) == [
        (lr.points_liability(customer.id), 500),
        (lr.SUBSIDY_EXPENSE, 2000),
    ]
    money = await _money(client, customer, oid)
    assert (money["due_purpose"], money["due_fen"], money["paid_fen"]) == (None, 0, 7400)
    assert money["breakdown"]["total_fen"] == 7400
    assert {x["code"]: x["amount_fen"] for x in money["breakdown"]["lines"]} == {
        "base": 9900,
        "discount:coupon": -2000,
        "discount:points": -500,
    }
    honoured = await stores.pool.fetchval(
        "SELECT honoured FROM order_discounts WHERE order_id = $1", oid
    )
    assert honoured is None  # all taken from the customer again: nothing honoured
    assert await ledger_store.check(stores.pool) == []


async def test_a_late_capture_whose_coupon_and_points_were_used_since_is_honoured_by_the_platform(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    payments: Payments,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
    prepaid_service: str,  # noqa: F811
) -> None:
    """As above, but once the trade closed the customer put the coupon and 800 of their
    1,000 points on another order: the late 74.00 is kept (the service was done, the
    customer paid the price shown), the platform pays the whole 25.00 as subsidy (no points
    taken twice, the coupon stays with the other order), the reason is recorded, funds 99.00
    and a refund of half gives back 12.50 of subsidy and no points."""
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000)
    customer = await make_user("customer")
    finance = await make_user("finance")
    await _give_points(stores, customer.id, 1000)
    coupon = await _claim(client, customer, t["id"])
    oid = await _completed_after_service(client, admin, customer, worker_account, live_app, stores)
    r = await client.put(
        f"/v1/orders/{oid}/checkout",
        headers=customer.auth,
        json={"coupon_id": coupon["id"], "points": 500},
    )
    assert r.status_code == 200, r.text
    other: dict[str, Any] = {}

    async def use_them_elsewhere() -> None:
        other.update(await book(client, customer, prepaid_service))
        r = await client.put(
            f"/v1/orders/{other['id']}/checkout",
            headers=customer.auth,
            json={"coupon_id": coupon["id"], "points": 800},
        )
        assert r.status_code == 200, r.text

    await _close_then_pay(
        client, customer, sandbox, payments, oid, coupon["id"], stores, use_them_elsewhere
    )
    mine = {c["id"]: c for c in (await client.get("/v1/me/coupons", headers=customer.auth)).json()}
    assert (mine[coupon["id"]]["status"], mine[coupon["id"]]["order_id"]) == ("locked", other["id"])
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert points["held"] == 800  # still the other order's
    assert not [h for h in points["history"] if h["kind"] == "redeem"]  # none taken twice
    assert await _funds(stores, oid) == 9900
    entry = await ledger_store.get(stores.pool, f"growth:discount:{oid}")
    assert entry is not None
    assert [(x.account, x.debit_fen) for x in entry.lines if x.debit_fen] == [
        (lr.SUBSIDY_EXPENSE, 2500)
    ]
    row = await stores.pool.fetchrow(
        "SELECT status, coupon_fen, points, points_fen, payable_fen, honoured "
        "FROM order_discounts WHERE order_id = $1",
        oid,
    )
    assert row is not None
    assert (row["status"], row["coupon_fen"], row["points"], row["payable_fen"]) == (
        "captured",
        2500,
        0,
        7400,
    )
    assert "coupon" in row["honoured"]
    assert "points" in row["honoured"]
    money = await _money(client, customer, oid)
    assert (money["due_fen"], money["breakdown"]["total_fen"]) == (0, 7400)
    r = await client.post(
        f"/v1/orders/{oid}/refunds",
        headers=finance.auth,
        json={"out_refund_no": f"GH{secrets.token_hex(5)}", "amount_fen": 3700},
    )
    assert r.status_code == 201, r.text
    assert await _funds(stores, oid) == 9900 - 3700 - 1250
    points = (await client.get("/v1/me/points", headers=customer.auth)).json()
    assert not [h for h in points["history"] if h["kind"] == "return"]
    assert await ledger_store.check(stores.pool) == []


async def test_a_closed_notice_of_the_trade_a_channel_switch_replaced_keeps_the_coupon(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    sandbox: WeChatSandbox,  # noqa: F811
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """The final payment (79.00 with a 20.00 coupon) starts on an Alipay QR code; the
    customer switches to WeChat: Alipay's TRADE_CLOSED notice for the QR trade lands before
    the new trade is made (the sandbox's close_notice_first) and releases nothing, because
    that trade no longer holds the discount; the new trade asks 79.00 and its capture uses
    the coupon."""
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000)
    customer = await make_user("customer")
    coupon = await _claim(client, customer, t["id"])
    oid = await _completed_after_service(client, admin, customer, worker_account, live_app, stores)
    r = await client.put(
        f"/v1/orders/{oid}/checkout", headers=customer.auth, json={"coupon_id": coupon["id"]}
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/orders/{oid}/pay",
        headers=customer.auth,
        json={"provider": "alipay", "channel": "precreate"},
    )
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["amount_fen"] == 7900
    live_app[1].state.alipay_sandbox.sandbox.set_faults(
        first["out_trade_no"], {"close_notice_first"}
    )
    second = await _pay(client, customer, oid)  # WeChat: the Alipay trade is closed first
    outcomes = await stores.pool.fetch(
        "SELECT outcome FROM payment_notifications WHERE out_trade_no = $1", first["out_trade_no"]
    )
    assert [x["outcome"] for x in outcomes] == ["ignored"]  # its notice came in between
    assert second["amount_fen"] == 7900
    assert await _held(client, customer, coupon["id"], oid, stores) == ("locked", 0, 0, "applied")
    await sandbox.complete_payment(second["out_trade_no"], "success")

    async def used() -> bool:
        return (await _held(client, customer, coupon["id"], oid, stores))[0] == "used"

    await until(used)
    assert await _funds(stores, oid) == 9900
    assert await ledger_store.check(stores.pool) == []


async def test_a_coupon_applied_to_a_final_payment_never_started_is_released_once_at_its_hold_end(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    worker_account: Account,
    live_app: tuple[str, Any],
    stores: Stores,
) -> None:
    """A 20.00 coupon and 300 points applied to a final payment and no trade ever made: the
    checkout holds them 15 min; before then the sweep's release does nothing; after, it
    releases both in its own transaction (the price full again), once; a coupon held by a
    trade is left to that trade's closing."""
    growth = live_app[1].state.growth
    t = await _template(client, admin, amount_fen=2000, min_spend_fen=5000, per_user_limit=2)
    customer = await make_user("customer")
    await _give_points(stores, customer.id, 1000)
    coupon = await _claim(client, customer, t["id"])
    oid = await _completed_after_service(client, admin, customer, worker_account, live_app, stores)
    applied_at = datetime.now(UTC)
    r = await client.put(
        f"/v1/orders/{oid}/checkout",
        headers=customer.auth,
        json={"coupon_id": coupon["id"], "points": 300},
    )
    assert r.status_code == 200, r.text
    hold_until = await stores.pool.fetchval(
        "SELECT hold_until FROM order_discounts WHERE order_id = $1", oid
    )
    assert hold_until is not None
    assert abs((hold_until - applied_at).total_seconds() - 900) < 5
    assert not await growth.release_unheld(oid, datetime.now(UTC))  # not yet
    assert await _held(client, customer, coupon["id"], oid, stores) == (
        "locked",
        1000,
        300,
        "applied",
    )
    later = datetime.now(UTC) + timedelta(minutes=16)
    assert await growth.release_unheld(oid, later)
    assert await _held(client, customer, coupon["id"], oid, stores) == (
        "available",
        1000,
        0,
        "void",
    )
    assert not await growth.release_unheld(oid, later)  # once
    money = await _money(client, customer, oid)
    assert (money["due_purpose"], money["due_fen"]) == ("final", 9900)
    # Applied again and a trade made: the trade holds it; the hold's end leaves it alone.
    r = await client.put(
        f"/v1/orders/{oid}/checkout", headers=customer.auth, json={"coupon_id": coupon["id"]}
    )
    assert r.status_code == 200, r.text
    await _pay(client, customer, oid)
    assert not await growth.release_unheld(oid, later)
    assert (await _held(client, customer, coupon["id"], oid, stores))[3] == "applied"
    assert await ledger_store.check(stores.pool) == []

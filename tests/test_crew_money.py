"""Issues 17 and 20, a crew order's money when its crew changes: replacing the lead
(``orders.worker_id``) with a worker of another merchant — or of none — takes the
order's commission snapshot again for the new lead's merchant when the crew changes
(the ``order.crew_changed`` consumer), not only at completion; a late or redelivered
event leaves it as the order is; at T+N the crew that finished the job is paid, each
share to the member's merchant, and the member who left gets nothing. Real PostgreSQL
and Redis, the live server and its relay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from doorstep.stores import Stores
from events import store as events_store
from events.types import Event, OrderChanged, aggregate_key
from ledger import rules as lr
from ledger import store as ledger
from settlement import commission as cm
from settlement import store
from settlement.rules import crew_shares, split_fen
from settlement.service import default_rule, snapshot_commission
from tests.crew_orders import crew_order, merchant_staff
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, make_worker
from tests.test_crew_booking import crew_service
from tests.test_payments import until
from tests.test_settlement import _paid_order, _svc


async def _balance(stores: Stores, account: str) -> int:
    return lr.normal_balance(account, await ledger.balance(stores.pool, account))


@pytest.mark.parametrize("to", ["merchant", "platform"])
async def test_replacing_the_lead_takes_the_commission_for_the_new_leads_merchant(
    to: str,
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A paid crew order of 2 whose lead is replaced by a worker of another merchant (or a merchant's lead by a platform worker): the crew_changed consumer takes the snapshot again for the new lead's merchant (its 5 % rule, or the platform's 20 %), a redelivered crew change or a late assignment of the old lead changes nothing; the crew that finishes is paid at T+N (the merchant's share into its wallet), the replaced lead gets nothing, the ledger balances."""
    svc = _svc(live_app)
    service = await crew_service(client, admin, 2)
    merchant, staff = await merchant_staff(stores, client, engine_city.id)
    r = await client.post(
        "/v1/admin/commission-rules",
        headers=admin.auth,
        json={"merchant_id": merchant, "rate_bps": 500, "note": "签约商家 5%"},
    )
    assert r.status_code == 201, r.text
    own_rule = r.json()["id"]
    platform = [await make_worker(stores, client, engine_city.id) for _ in range(2)]
    mate = platform[1]
    old, new = (platform[0], staff) if to == "merchant" else (staff, platform[0])
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    order = await crew_order(
        stores,
        city=engine_city.id,
        service=service,
        customer=customer.id,
        crew=[old.id, mate.id],
        at=engine_city.here,
        paid=True,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        first = await snapshot_commission(
            conn, order, base_fen=60000, params=svc.params, now=datetime.now(UTC)
        )
    assert first.merchant_id == (None if to == "merchant" else merchant)
    assert first.rules_at is not None
    r = await client.post(
        f"/v1/orders/{order}/crew/replace",
        headers=dispatcher.auth,
        json={"out_worker_id": old.id, "in_worker_id": new.id, "reason": "师傅生病", "force": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["order"]["crew"] == [new.id, mate.id]
    want = merchant if to == "merchant" else None

    async def taken_again() -> bool:
        snap = await store.snapshot_of(stores.pool, order)
        return snap is not None and snap.merchant_id == want and snap.resnapshot_at is not None

    await until(taken_again, timeout_s=10)
    snap = await store.snapshot_of(stores.pool, order)
    assert snap is not None
    rules = [store.as_rule(x) for x in await store.rules_at(stores.pool, first.rules_at)]
    category = await stores.pool.fetchval("SELECT category FROM services WHERE code = $1", service)
    plain = cm.commission(  # what the platform's rules take with no merchant
        rules,
        cm.OrderTerms(engine_city.id, category, service, None, 60000),
        default_rule(svc.params),
    )
    fee = 3000 if to == "merchant" else plain.commission_fen
    assert plain.commission_fen != 3000
    assert (snap.rule_id == own_rule, snap.commission_fen) == (to == "merchant", fee)
    assert (snap.snapshot_at, snap.rules_at) == (first.snapshot_at, first.rules_at)

    # Redelivered: the crew change again, and a late assignment naming the replaced lead.
    (change,) = [
        e
        for e in await events_store.of_aggregate(stores.pool, aggregate_key("order", order))
        if e.type == "order.crew_changed"
    ]
    assert isinstance(change.payload, OrderChanged)
    late = Event(
        id=change.id,
        seq=change.seq,
        type="order.assigned",
        aggregate=change.aggregate,
        version=change.version,
        payload=msgspec.structs.replace(
            change.payload, action="assign", worker_id=old.id, crew=[old.id, mate.id]
        ),
        occurred_at=change.occurred_at,
    )
    for event in (change, late):
        async with stores.pool.acquire() as conn, conn.transaction():
            await svc.handle(conn, event)
    assert await store.snapshot_of(stores.pool, order) == snap

    url = f"/v1/orders/{order}"
    for w in (new, mate):
        r = await client.post(f"{url}/arrive", headers=w.auth, json={})
        assert r.status_code == 200, r.text
    code = (await client.get(url, headers=customer.auth)).json()["start_code"]
    r = await client.post(f"{url}/start", headers=new.auth, json={"start_code": code})
    assert r.status_code == 200, r.text
    r = await client.post(f"{url}/complete", headers=mate.auth, json={})
    assert r.status_code == 200, r.text
    payee = ("merchant", merchant) if to == "merchant" else ("worker", new.id)

    async def opened() -> bool:
        found = await stores.pool.fetchrow(
            "SELECT payee_kind, payee_id, commission_fen FROM settlements WHERE order_id = $1",
            order,
        )
        return found is not None and tuple(found) == (*payee, fee)

    await until(opened, timeout_s=10)
    later = datetime.now(UTC) + timedelta(days=svc.params.after_sales_days, minutes=1)
    await svc.settle_due(later)
    await svc.settle_due(later)  # again: settled once
    lead_share, share = split_fen(60000 - fee, 2)
    new_account = lr.merchant_payable(merchant) if to == "merchant" else lr.worker_payable(new.id)
    old_account = lr.worker_payable(old.id) if to == "merchant" else lr.merchant_payable(merchant)
    assert await _balance(stores, new_account) == lead_share
    assert await _balance(stores, lr.worker_payable(mate.id)) == share
    assert await _balance(stores, old_account) == 0  # the one who left gets nothing
    entry = await ledger.get(stores.pool, f"settle:order:{order}")
    assert entry is not None
    assert entry.data["fee_fen"] == fee
    assert sorted(
        (s["payee_kind"], s["payee_id"], s["fen"]) for s in entry.data["crew_shares"]
    ) == (sorted([(*payee, lead_share), ("worker", mate.id, share)]))
    assert await ledger.check(stores.pool) == []


async def _views(client: httpx.AsyncClient, who: Account, kind: str) -> tuple[Any, Any, Any]:
    """What the wallet's holder sees through the worker app's routes: the wallet, the
    earnings by day and the earnings by order."""
    got = []
    queries: tuple[tuple[str, dict[str, str | int]], ...] = (
        ("/v1/me/wallet", {"as": kind}),
        ("/v1/me/earnings", {"as": kind, "period": "day", "buckets": 7}),
        ("/v1/me/earnings/orders", {"as": kind, "limit": 10}),
    )
    for path, params in queries:
        r = await client.get(path, headers=who.auth, params=params)
        assert r.status_code == 200, r.text
        got.append(r.json())
    return got[0], got[1], got[2]


async def test_each_member_of_a_crew_sees_their_own_share_frozen_then_settled(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A paid crew order of 3 (a platform lead, a merchant's staff, a platform worker) completed through the routes: each member's wallet, earnings by day and by order (the staff's: their merchant's) show only their own share, frozen — the odd fen to the first seats — and the lead's not the whole order; after the T+N job the same shares are settled and available, they add up with the one commission to the order's funds, and the ledger balances."""
    svc = _svc(live_app)
    service = await crew_service(client, admin, 3)
    r = await client.post(  # the service's own rule: the commission is known, 20 %
        "/v1/admin/commission-rules",
        headers=admin.auth,
        json={"service_code": service, "rate_bps": 2000, "note": "开荒保洁 20%"},
    )
    assert r.status_code == 201, r.text
    boss = await make_user("merchant", name="好帮手家政")
    merchant, staff = await merchant_staff(stores, client, engine_city.id, merchant=boss.id)
    lead, third = [await make_worker(stores, client, engine_city.id) for _ in range(2)]
    customer = await make_user("customer")
    price = 60010
    order = await crew_order(
        stores,
        city=engine_city.id,
        service=service,
        customer=customer.id,
        crew=[lead.id, staff.id, third.id],
        at=engine_city.here,
        price_fen=price,
        paid=True,
    )
    url = f"/v1/orders/{order}"
    for w in (lead, staff, third):
        r = await client.post(f"{url}/arrive", headers=w.auth, json={})
        assert r.status_code == 200, r.text
    code = (await client.get(url, headers=customer.auth)).json()["start_code"]
    r = await client.post(f"{url}/start", headers=lead.auth, json={"start_code": code})
    assert r.status_code == 200, r.text
    r = await client.post(f"{url}/complete", headers=third.auth, json={})
    assert r.status_code == 200, r.text

    async def opened() -> bool:
        found = await stores.pool.fetchval("SELECT 1 FROM settlements WHERE order_id = $1", order)
        return found is not None

    await until(opened, timeout_s=10)
    fee = 12002  # 20 % of 60010
    shares = split_fen(price - fee, 3)
    cuts = split_fen(fee, 3)
    assert shares == [16003, 16003, 16002]  # the odd fen to the lead and the second seat
    wallets = [(lead, "worker"), (boss, "merchant"), (third, "worker")]

    for (who, kind), share, cut in zip(wallets, shares, cuts, strict=True):
        wallet, days, orders = await _views(client, who, kind)
        assert (wallet["frozen_fen"], wallet["available_fen"]) == (share, 0), (kind, wallet)
        (day,) = days["buckets"]
        assert (day["orders"], day["net_fen"], day["frozen_fen"], day["settled_fen"]) == (
            1,
            share,
            share,
            0,
        )
        assert (day["gross_fen"], day["commission_fen"]) == (share + cut, cut)
        (item,) = orders["items"]
        assert (item["order_id"], item["status"], item["net_fen"], item["crew_size"]) == (
            order,
            "pending",
            share,
            3,
        )
        assert (item["gross_fen"], item["commission_fen"]) == (share + cut, cut)
    wallet, days, orders = await _views(client, staff, "worker")  # paid to their merchant
    assert (wallet["frozen_fen"], days["buckets"], orders["items"]) == (0, [], [])

    later = datetime.now(UTC) + timedelta(days=svc.params.after_sales_days, minutes=1)
    assert await svc.settle_due(later) >= 1
    for (who, kind), share, cut in zip(wallets, shares, cuts, strict=True):
        wallet, days, orders = await _views(client, who, kind)
        assert (wallet["frozen_fen"], wallet["available_fen"]) == (0, share), (kind, wallet)
        (day,) = days["buckets"]
        assert (day["orders"], day["net_fen"], day["frozen_fen"], day["settled_fen"]) == (
            1,
            share,
            0,
            share,
        )
        (item,) = orders["items"]
        assert (item["status"], item["gross_fen"], item["commission_fen"], item["net_fen"]) == (
            "settled",
            share + cut,
            cut,
            share,
        )
    assert await _balance(stores, lr.merchant_payable(merchant)) == shares[1]
    assert sum(shares) + fee == price
    assert await _balance(stores, lr.COMMISSION_REVENUE) >= fee
    assert await _balance(stores, lr.order_funds(order)) == 0
    entry = await ledger.get(stores.pool, f"settle:order:{order}")
    assert entry is not None
    assert entry.data["fee_fen"] == fee
    assert await ledger.check(stores.pool) == []


async def _crew_of_a_merchants_two(
    stores: Stores, client: httpx.AsyncClient, make_user: MakeUser, city: EngineCity, service: str
) -> tuple[int, Account, list[Account], Account, int]:
    """A paid crew order of 3 completed now, not settled yet: a platform lead and two staff
    of one merchant (李师傅 and 孙师傅); its commission snapshot taken as at payment. The
    order, the merchant's account, [lead, staff, staff], the customer, the price."""
    boss = await make_user("merchant", name="好帮手家政")
    staff = []
    for name in ("李师傅", "孙师傅"):
        _, who = await merchant_staff(stores, client, city.id, merchant=boss.id)
        await stores.pool.execute("UPDATE users SET name = $2 WHERE id = $1", who.id, name)
        staff.append(who)
    lead = await make_worker(stores, client, city.id)
    customer = await make_user("customer")
    price = 60010
    order = await crew_order(
        stores,
        city=city.id,
        service=service,
        customer=customer.id,
        crew=[lead.id, *(s.id for s in staff)],
        at=city.here,
        price_fen=price,
        completed=True,
        paid=True,
    )
    return order, boss, [lead, *staff], customer, price


async def test_the_jobs_card_counts_each_members_share_of_a_crew_job(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """GET /v1/me/earnings/jobs (the worker app's today/total card) counts a crew job of 3 at each member's share as settlement splits it (crew_shares of the price and the snapshot's commission: the gross of the member's earnings row), before the settlement opens and after, a one-worker job at its price, a job of two days ago in the total only; a merchant's staff member's jobs count the same and name the merchant paid."""
    svc = _svc(live_app)
    service = await crew_service(client, admin, 3)
    order, boss, crew, customer, price = await _crew_of_a_merchants_two(
        stores, client, make_user, engine_city, service
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        snap = await snapshot_commission(
            conn, order, base_fen=price, params=svc.params, now=datetime.now(UTC)
        )
    fee = cm.amount(
        cm.CommissionRule(
            id=snap.rule_id,
            rate_bps=snap.rate_bps,
            fixed_fen=snap.fixed_fen,
            min_fen=snap.min_fen,
            max_fen=snap.max_fen,
        ),
        price,
    )
    gross = [s.gross_fen for s in crew_shares(price, fee, 3)]
    assert sum(gross) == price
    lead = crew[0]
    now = datetime.now(UTC)
    solo = await _paid_order(
        stores, engine_city.id, service, customer.id, lead.id, 12500, completed_at=now
    )
    await _paid_order(
        stores,
        engine_city.id,
        service,
        customer.id,
        lead.id,
        8000,
        completed_at=now - timedelta(days=2),
    )
    assert solo

    async def card(who: Account) -> dict[str, Any]:
        r = await client.get("/v1/me/earnings/jobs", headers=who.auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def check() -> None:
        got = await card(lead)
        assert (got["today_jobs"], got["today_fen"]) == (2, 12500 + gross[0]), got
        assert (got["total_jobs"], got["total_fen"]) == (3, 12500 + 8000 + gross[0]), got
        assert got["merchant_id"] is None
        for who, share in zip(crew[1:], gross[1:], strict=True):
            got = await card(who)
            assert (got["today_jobs"], got["today_fen"], got["total_fen"]) == (1, share, share)
            assert (got["merchant_id"], got["merchant_name"]) == (boss.id, "好帮手家政")

    await check()  # from the orders: no settlement, no shares yet
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=now)
    await check()  # the same once the shares are kept
    r = await client.get("/v1/me/earnings/orders", headers=lead.auth, params={"limit": 10})
    (row,) = [s for s in r.json()["items"] if s["order_id"] == order]
    assert row["gross_fen"] == gross[0]


async def test_a_merchants_wallet_lists_its_members_on_a_crew_order(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
) -> None:
    """A crew order of 3 with two of one merchant's staff on it: the merchant's earnings by order (GET /v1/me/earnings/orders) carry crew_size 3 and both members, named, with their shares' nets (adding up to the row's net); the platform lead's row lists the lead alone; a one-worker order lists nobody."""
    svc = _svc(live_app)
    service = await crew_service(client, admin, 3)
    order, boss, crew, customer, _price = await _crew_of_a_merchants_two(
        stores, client, make_user, engine_city, service
    )
    now = datetime.now(UTC)
    solo = await _paid_order(
        stores, engine_city.id, service, customer.id, crew[1].id, 9900, completed_at=now
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        assert await svc.open_settlement(conn, order, completed_at=now)
        assert await svc.open_settlement(conn, solo, completed_at=now)
    r = await client.get(
        "/v1/me/earnings/orders", headers=boss.auth, params={"as": "merchant", "limit": 10}
    )
    assert r.status_code == 200, r.text
    rows = {s["order_id"]: s for s in r.json()["items"]}
    got = rows[order]
    assert got["crew_size"] == 3
    assert [(m["worker_id"], m["name"]) for m in got["members"]] == [
        (crew[1].id, "李师傅"),
        (crew[2].id, "孙师傅"),
    ]
    assert sum(m["net_fen"] for m in got["members"]) == got["net_fen"]
    assert rows[solo]["members"] == []
    r = await client.get("/v1/me/earnings/orders", headers=crew[0].auth, params={"limit": 10})
    (mine,) = [s for s in r.json()["items"] if s["order_id"] == order]
    assert [m["worker_id"] for m in mine["members"]] == [crew[0].id]

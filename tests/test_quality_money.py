"""Fines and bonuses through the ledger (issue 18 §4): booked in the wallet with the action,
a fine beyond the balance owed and recovered from the next money in, an overturned fine
reversed and what was recovered paid back, a merchant's staff charged to the merchant's
wallet, rows from before the ledger booked once by the job; the ledger stays clean."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from audit import store as audit_store
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from quality import service as quality
from quality import store as quality_store
from settlement.models import Payee
from settlement.service import Settlement
from tests.access import licence
from tests.helpers import Account, MakeUser
from tests.live import make_worker
from workforce import store as workforce_store

NOW = datetime.now(UTC)


async def _earn(
    svc: Settlement, stores: Any, city: str, service: str, customer: int, worker: int, price: int
) -> int:
    """A paid, completed order settled at T+N (the real settlement path); its net."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await conn.fetchval(
            "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
            "duration_min, price_minor, currency, worker_id, start_code, completed_at) VALUES "
            "($1, $2, $3, 'instant', 'completed', 22.53, 114.01, 60, $4, 'CNY', $5, '123456', $6) "
            "RETURNING id",
            city,
            customer,
            service,
            price,
            worker,
            NOW,
        )
        await ledger.post(
            conn,
            Entry(
                key=f"wechat:pay:Q{order}-{secrets.token_hex(3)}",
                kind="payment.captured",
                order_id=order,
                lines=(debit(lr.gateway("wechat"), price), credit(lr.order_funds(order), price)),
            ),
        )
        await svc.open_settlement(conn, order, completed_at=NOW)
    await svc.settle_due(NOW + timedelta(days=svc.params.after_sales_days))
    return int(order)


async def _give(
    client: httpx.AsyncClient, admin: Account, worker: int, kind: str, fen: int
) -> dict[str, Any]:
    r = await client.post(
        "/v1/discipline/actions",
        headers=admin.auth,
        json={"worker_id": worker, "kind": kind, "reason": f"{kind} 测试", "amount_fen": fen},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _wallet(client: httpx.AsyncClient, who: Account) -> dict[str, int]:
    r = await client.get("/v1/me/wallet", headers=who.auth)
    assert r.status_code == 200, r.text
    w = r.json()
    return {k: w[k] for k in ("available_fen", "owed_fen", "fines_fen", "bonuses_fen")}


async def _clean(stores: Any) -> None:
    assert await ledger.check(stores.pool) == []


async def test_a_fine_within_the_balance_is_taken_from_the_wallet_and_upheld_stays(
    live_app: tuple[str, Any],
    live_city: str,
    client: httpx.AsyncClient,
    stores: Any,
    admin: Account,
    make_user: MakeUser,
    instant_service: str,
) -> None:
    """Earned 80.00, fined 30.00: one balanced entry keyed by the action, 50.00 left, nothing owed; upheld on appeal it stays."""
    svc: Settlement = live_app[1].state.settlement
    w = await make_worker(stores, client, live_city)
    customer = await make_user("customer")
    await _earn(svc, stores, live_city, instant_service, customer.id, w.id, 10000)
    assert (await _wallet(client, w))["available_fen"] == 8000
    fine = await _give(client, admin, w.id, "fine", 3000)
    assert (fine["ledger_status"], fine["ledger_key"]) == ("booked", f"discipline:{fine['id']}")
    entry = await ledger.get(stores.pool, fine["ledger_key"])
    assert entry is not None
    assert entry.kind == "discipline.fine"
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in entry.lines) == [
        (lr.PENALTY_INCOME, 0, 3000),
        (lr.worker_payable(w.id), 3000, 0),
    ]
    assert await _wallet(client, w) == {
        "available_fen": 5000,
        "owed_fen": 0,
        "fines_fen": 3000,
        "bonuses_fen": 0,
    }
    r = await client.post(
        f"/v1/discipline/actions/{fine['id']}/appeal", headers=w.auth, json={"text": "不服"}
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/discipline/actions/{fine['id']}/decision",
        headers=admin.auth,
        json={"decision": "uphold", "reason": "核实属实"},
    )
    assert (r.json()["status"], r.json()["ledger_status"]) == ("upheld", "booked")
    assert (await _wallet(client, w))["available_fen"] == 5000
    await _clean(stores)


async def test_a_fine_beyond_the_balance_is_owed_netted_and_paid_back_when_overturned(
    live_app: tuple[str, Any],
    live_city: str,
    client: httpx.AsyncClient,
    stores: Any,
    admin: Account,
    make_user: MakeUser,
    instant_service: str,
) -> None:
    """10.00 in the wallet, fined 50.00: 10.00 taken, 40.00 owed; a 30.00 bonus and then earnings pay the debt first; overturned, the fine is reversed and everything recovered comes back; all in the audit chain."""
    svc: Settlement = live_app[1].state.settlement
    w = await make_worker(stores, client, live_city)
    customer = await make_user("customer")
    await _earn(svc, stores, live_city, instant_service, customer.id, w.id, 1250)  # net 1000
    fine = await _give(client, admin, w.id, "fine", 5000)
    entry = await ledger.get(stores.pool, fine["ledger_key"])
    assert entry is not None
    assert sorted((x.account, x.debit_fen, x.credit_fen) for x in entry.lines) == sorted(
        [
            (lr.PENALTY_INCOME, 0, 5000),
            (lr.worker_payable(w.id), 1000, 0),
            (lr.worker_receivable(w.id), 4000, 0),
        ]
    )
    assert await _wallet(client, w) == {
        "available_fen": 0,
        "owed_fen": 4000,
        "fines_fen": 5000,
        "bonuses_fen": 0,
    }
    r = await client.post("/v1/me/withdrawals", headers=w.auth, json={"amount_fen": 1000})
    assert r.status_code == 409  # nothing to withdraw while the wallet is empty
    bonus = await _give(client, admin, w.id, "bonus", 3000)
    assert bonus["ledger_status"] == "booked"
    recovered = await ledger.get(stores.pool, f"recover:{bonus['ledger_key']}")
    assert recovered is not None
    assert recovered.kind == "owed.recovered"
    assert await _wallet(client, w) == {
        "available_fen": 0,
        "owed_fen": 1000,
        "fines_fen": 5000,
        "bonuses_fen": 3000,
    }
    order = await _earn(svc, stores, live_city, instant_service, customer.id, w.id, 2500)  # 2000
    assert await ledger.get(stores.pool, f"recover:settle:order:{order}") is not None
    assert (await _wallet(client, w))["available_fen"] == 1000
    assert (await _wallet(client, w))["owed_fen"] == 0

    r = await client.post(
        f"/v1/discipline/actions/{fine['id']}/appeal", headers=w.auth, json={"text": "顾客误投诉"}
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/discipline/actions/{fine['id']}/decision",
        headers=admin.auth,
        json={"decision": "overturn", "reason": "录像证明无过错"},
    )
    assert (r.json()["status"], r.json()["ledger_status"]) == ("overturned", "reversed")
    reversal = await ledger.get(stores.pool, f"{fine['ledger_key']}:reversal")
    assert reversal is not None
    assert reversal.reverses == entry.id
    # Earned 10 + 30 bonus + 20 = 60.00; the fine never happened.
    assert await _wallet(client, w) == {
        "available_fen": 6000,
        "owed_fen": 0,
        "fines_fen": 0,
        "bonuses_fen": 3000,
    }
    assert await ledger.get(stores.pool, fine["ledger_key"]) is not None  # never edited
    trail = await audit_store.of_subject(stores.pool, f"worker:{w.id}")
    assert [e.action for e in reversed(trail)] == [
        "discipline.fine",
        "discipline.bonus",
        "discipline.fine.reversed",
        "discipline.appeal.overturned",
    ]
    assert (await audit_store.check(stores.pool)).ok
    await _clean(stores)


async def test_a_merchants_staff_is_fined_in_the_merchants_wallet(
    live_city: str,
    client: httpx.AsyncClient,
    stores: Any,
    admin: Account,
    make_user: MakeUser,
) -> None:
    """The merchant is paid its staff's orders, so their fines and bonuses move the merchant's wallet."""
    merchant = await make_user("merchant")
    await stores.pool.execute(
        "INSERT INTO merchants (id, name, city_id, licence_number, status) "
        "VALUES ($1, '好帮手', $2, $3, 'approved')",
        merchant.id,
        live_city,
        licence(),
    )
    team = await workforce_store.insert_team(
        stores.pool,
        name=f"队{merchant.id}",
        city_id=live_city,
        merchant_id=merchant.id,
        upsert=False,
    )
    w = await make_worker(stores, client, live_city)
    await stores.pool.execute("UPDATE workers SET team_id = $2 WHERE user_id = $1", w.id, team)
    await _give(client, admin, w.id, "bonus", 2000)
    fine = await _give(client, admin, w.id, "fine", 3000)
    assert fine["ledger_status"] == "booked"
    assert await _wallet(client, merchant) == {
        "available_fen": 0,
        "owed_fen": 1000,
        "fines_fen": 3000,
        "bonuses_fen": 2000,
    }
    assert (await _wallet(client, w))["fines_fen"] == 0
    await _clean(stores)


async def test_rows_from_before_the_ledger_are_booked_once_by_the_job(
    live_city: str, client: httpx.AsyncClient, stores: Any
) -> None:
    """Unbooked fines and bonuses (as 0021 stored them) are booked by book_unbooked, twice at once still once; an overturned one is void."""
    w = await make_worker(stores, client, live_city)
    ids = {}
    for kind, status in (("fine", "active"), ("bonus", "active"), ("fine", "overturned")):
        ids[(kind, status)] = await stores.pool.fetchval(
            "INSERT INTO discipline_actions (worker_id, kind, amount_fen, starts_at, status, "
            "reason, ledger_status, created_at) VALUES ($1, $2, 2000, now(), $3, '旧记录', "
            "'unbooked', now()) RETURNING id",
            w.id,
            kind,
            status,
        )
    await asyncio.gather(quality.book_unbooked(stores), quality.book_unbooked(stores))
    states = {
        key: (await quality_store.action(stores.pool, action_id)) for key, action_id in ids.items()
    }
    assert {k: a.ledger_status for k, a in states.items() if a} == {
        ("fine", "active"): "booked",
        ("bonus", "active"): "booked",
        ("fine", "overturned"): "void",
    }
    n = await stores.pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE key = ANY($1)",
        [quality.ledger_key(i) for i in ids.values()],
    )
    assert n == 2
    payee = Payee("worker", w.id)
    # The bonus (20.00) came in after the fine (20.00, all owed) in id order: netted to 0.
    balance = await ledger.balances(
        stores.pool, [lr.worker_payable(payee.id), lr.worker_receivable(payee.id)]
    )
    assert balance == {lr.worker_payable(w.id): 0, lr.worker_receivable(w.id): 0}
    assert await quality.book_unbooked(stores) == 0
    await _clean(stores)


async def test_a_fine_and_a_withdrawal_at_once_never_overdraw(
    live_app: tuple[str, Any],
    live_city: str,
    client: httpx.AsyncClient,
    stores: Any,
    admin: Account,
    make_user: MakeUser,
    instant_service: str,
) -> None:
    """80.00 in the wallet; a 50.00 withdrawal and a 50.00 fine at once: under the wallet's lock one goes first, and the wallet ends at 30.00 and the withdrawal is refused (fine first) or at 0 with 20.00 owed (withdrawal first), never below 0."""
    svc: Settlement = live_app[1].state.settlement
    w = await make_worker(stores, client, live_city)
    customer = await make_user("customer")
    await _earn(svc, stores, live_city, instant_service, customer.id, w.id, 10000)  # net 8000
    withdrawal, _fine = await asyncio.gather(
        client.post("/v1/me/withdrawals", headers=w.auth, json={"amount_fen": 5000}),
        _give(client, admin, w.id, "fine", 5000),
    )
    wallet = await _wallet(client, w)
    if withdrawal.status_code == 201:  # the withdrawal first: the fine takes the 30.00 left
        assert (wallet["available_fen"], wallet["owed_fen"]) == (0, 2000)
    else:  # the fine first: 30.00 left, too little to withdraw 50.00
        assert withdrawal.status_code == 409, withdrawal.text
        assert (wallet["available_fen"], wallet["owed_fen"]) == (3000, 0)
    assert wallet["fines_fen"] == 5000
    await _clean(stores)

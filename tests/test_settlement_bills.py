"""The WeChat trade bill over the wire: served by the payments sandbox (signed API, a
download whose SHA-1 is checked), read by our client, reconciled against the ledger."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from doorstep.embedded import free_port
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from payments.providers import PrepayRequest
from payments.wechat import WeChatPay, sandbox_config
from payments.wechat_sandbox import SandboxKeys, WeChatSandbox, WeChatSandboxServer
from settlement import tradebill, wechat_bills
from settlement.errors import BillUnavailable
from settlement.rules import SettlementParams
from settlement.service import Settlement
from settlement.wechat_bills import CHINA, WeChatBills


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[WeChatSandbox, WeChatPay, WeChatBills]]:
    """The payments sandbox with the bill API mounted, our payment client and bill client."""
    box = WeChatSandbox(SandboxKeys.generate(), refund_delay_s=0.05, timeout_hold_s=1.0)
    wechat_bills.mount(box)
    server = WeChatSandboxServer(box, free_port())
    await server.start()
    config = sandbox_config(box.keys, server.url)
    pay, bills = WeChatPay(config), WeChatBills(config)
    yield box, pay, bills
    await pay.aclose()
    await bills.close()
    await server.stop()


async def _paid(box: WeChatSandbox, pay: WeChatPay, fen: int) -> str:
    no = f"B{secrets.token_hex(8)}"
    await pay.prepay(
        PrepayRequest(
            out_trade_no=no,
            description="日常保洁",
            amount_fen=fen,
            channel="native",
            notify_url="http://127.0.0.1:9/none",  # nobody listens: the bill still has it
        )
    )
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{box.base_url}/sandbox/pay", json={"out_trade_no": no})
        assert r.status_code == 200, r.text
    return no


async def test_the_sandbox_serves_yesterdays_bill_and_reconciliation_finds_the_lost_payment(
    stores: Stores, sandbox: tuple[WeChatSandbox, WeChatPay, WeChatBills]
) -> None:
    """Two payments at the provider, one booked in our ledger: the downloaded bill (WeChat's format, hash checked) shows the other as missing in the ledger."""
    box, pay, bills = sandbox
    booked = await _paid(box, pay, 15000)
    lost = await _paid(box, pay, 8800)
    yesterday = datetime.now(CHINA).date() - timedelta(days=1)
    for t in box.trades.values():  # the provider's clock: these trades happened yesterday
        assert t.success_time is not None
        t.success_time -= timedelta(days=1)
    paid_at = box.trades[booked].success_time
    assert paid_at is not None
    async with stores.pool.acquire() as conn, conn.transaction():
        order_id = 10**12 + secrets.randbelow(10**9)  # an order number no test uses
        await ledger.post(
            conn,
            Entry(
                key=f"wechat:pay:{box.trades[booked].transaction_id}",
                kind="payment.captured",
                order_id=order_id,
                lines=(debit(lr.gateway("wechat"), 15000), credit(lr.order_funds(order_id), 15000)),
                data={"out_trade_no": booked, "provider_at": paid_at.isoformat()},
            ),
        )
    data = await bills.trade_bill(yesterday)
    assert data.decode().startswith("交易时间,公众账号ID,商户号")
    rows, summary = tradebill.read(data)
    assert {r.out_trade_no for r in rows} == {booked, lost}
    assert summary.settlement_fen == 23800
    svc = Settlement(stores, SettlementParams(), None, bills={"wechat": bills})
    run = await svc.reconcile("wechat", yesterday, data, datetime.now(UTC))
    mine = {(d.ref, d.problem) for d in run.items if d.ref in (booked, lost)}
    assert mine == {(lost, "missing_in_ledger")}


async def test_todays_bill_is_not_ready_and_a_forged_request_is_refused(
    sandbox: tuple[WeChatSandbox, WeChatPay, WeChatBills],
) -> None:
    """Today's bill is NO_STATEMENT_EXIST (bills come the next day); an unsigned request is 401."""
    box, _, bills = sandbox
    with pytest.raises(BillUnavailable, match="NO_STATEMENT_EXIST"):
        await bills.trade_bill(datetime.now(CHINA).date())
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{box.base_url}/v3/bill/tradebill?bill_date=2026-01-01")
    assert r.status_code == 401
    body: dict[str, Any] = r.json()
    assert body["code"] == "SIGN_ERROR"

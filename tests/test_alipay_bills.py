"""Alipay's daily trade bill (业务账单) over the wire and its reconciliation: the sandbox
gateway serves ``alipay.data.dataservice.bill.downloadurl.query`` and the zip of GBK CSVs
behind its ``bill_download_url``; our client (python-alipay-sdk through the adapter)
fetches it; the reconciliation compares it with the ledger. Real sandbox servers, real
PostgreSQL: a clean day, a missing payment, an amount difference, a refund."""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from payments.alipay_book import BEIJING
from payments.alipay_sandbox import AlipaySandbox
from payments.errors import ProviderRefused
from payments.providers import PrepayRequest, RefundRequest
from settlement import alipay_bill, alipay_bills
from settlement.alipay_bills import AlipayBills
from settlement.errors import BillUnavailable
from settlement.rules import SettlementParams
from settlement.service import Settlement
from tests.alipay_live import SELLER_ID, Live, live_alipay, make_keys
from tests.helpers import Account, MakeUser
from tests.test_alipay_app import _ordered_and_prepaid, prepaid_service  # noqa: F401 - fixture


def _past_day() -> date:
    """A day long over that no other test uses (bills exist only for days that are over)."""
    return date(2019, 1, 1) + timedelta(days=secrets.randbelow(2000))


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, dtime(hour, minute), BEIJING)


def _move_trade(sandbox: AlipaySandbox, out: str, day: date, hour: int) -> None:
    """The provider's clock: the trade was made and paid on ``day``, its refunds after."""
    trade = sandbox.book.trades[out]
    trade.created_at = _at(day, hour)
    trade.paid_at = _at(day, hour, 1)
    for n, refund in enumerate(trade.refunds.values()):
        refund.at = _at(day, hour + 1, n)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# ---- the wire, on a sandbox of this module's own ---------------------------------------------


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[tuple[Live, AlipayBills]]:
    """A sandbox gateway with the bill download mounted, the adapter and our bill client."""
    async with live_alipay(make_keys()) as running:
        alipay_bills.mount(running.sandbox)
        bills = AlipayBills(running.provider)
        yield running, bills
        await bills.close()


async def _paid(live: Live, fen: int) -> str:
    out = f"DB{secrets.token_hex(8)}"
    await live.provider.prepay(
        PrepayRequest(
            out_trade_no=out,
            description="日常保洁 3 小时",
            amount_fen=fen,
            channel="precreate",
            notify_url=live.notify_url,
        )
    )
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{live.sandbox.url}sandbox/pay", json={"out_trade_no": out})
    assert r.status_code == 200, r.text
    return out


async def test_the_bill_is_alipays_zip_of_gbk_csvs_behind_a_one_time_url(
    live: tuple[Live, AlipayBills],
) -> None:
    """The download URL (signed answer, checked by the SDK) gives a zip named by the seller's userId and the day, holding the 业务明细 and its 汇总 in GBK with GBK entry names; every row's values end with a tab; the footer's totals agree; the URL works once."""
    running, bills = live
    day = _past_day()
    first, second = await _paid(running, 15000), await _paid(running, 8800)
    await running.provider.refund(
        RefundRequest(
            out_trade_no=first,
            out_refund_no=f"RF{secrets.token_hex(5)}",
            refund_fen=5000,
            total_fen=15000,
            reason="少做了一项",
            notify_url=running.notify_url,
        )
    )
    _move_trade(running.sandbox, first, day, 9)
    _move_trade(running.sandbox, second, day, 14)

    answer = await running.provider.call(
        alipay_bills.METHOD, {"bill_type": "trade", "bill_date": day.isoformat()}
    )
    url = str(answer["bill_download_url"])
    query = parse_qs(urlparse(url).query)
    zip_name = f"{SELLER_ID}0156_{day:%Y%m%d}.csv.zip"
    assert urlparse(url).path == "/downloadBillFile.resource"
    assert (query["bizType"], query["fileType"], query["downloadFileName"]) == (
        ["trade"],
        ["csv.zip"],
        [zip_name],
    )
    async with httpx.AsyncClient() as http:
        got = await http.get(url)
        again = await http.get(url)
    assert got.status_code == 200
    assert again.status_code == 410  # one download per address, as Alipay's
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        infos = z.infolist()
    stem = f"{SELLER_ID}0156_{day:%Y%m%d}"
    names = [i.orig_filename.encode("cp437").decode("gbk") for i in infos]
    assert names == [f"{stem}_业务明细.csv", f"{stem}_业务明细(汇总).csv"]
    assert all(i.flag_bits & 0x800 == 0 for i in infos)  # not flagged UTF-8: GBK names

    text = alipay_bill.detail_text(got.content)
    lines = text.splitlines()
    assert lines[0] == "#支付宝业务明细查询"
    assert lines[1] == f"#账号：[{SELLER_ID}0156]"
    assert lines[3] == alipay_bill.DETAIL_START
    assert lines[4].startswith("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间")
    assert all(v.endswith("\t") for v in lines[5].split(","))
    assert lines[8] == alipay_bill.DETAIL_END
    assert lines[9] == "#交易合计：2笔，商家实收共238.00元，商家优惠共0.00元"
    assert lines[10] == "#退款合计：1笔，商家实收退款共-50.00元，商家优惠退款共0.00元"
    rows, totals = alipay_bill.read(got.content)
    assert [(r.out_trade_no, r.kind, r.order_fen) for r in rows] == [
        (first, "交易", 15000),
        (first, "退款", -5000),
        (second, "交易", 8800),
    ]
    assert totals.trade_receipt_fen == 23800

    data = await bills.trade_bill(day)  # our client: the same file through the SDK
    assert alipay_bill.read(data)[0] == rows


async def test_no_bill_for_a_day_not_over_and_bad_arguments_are_refused(
    live: tuple[Live, AlipayBills],
) -> None:
    """Today's bill does not exist yet (isp.bill_not_exist); a monthly date, a bad bill_type and an unsigned call are refused as Alipay refuses them; a stale download address is 410."""
    running, bills = live
    with pytest.raises(BillUnavailable, match="bill_not_exist"):
        await bills.trade_bill(datetime.now(BEIJING).date())
    for biz, code in (
        ({"bill_type": "trade", "bill_date": "2020-01"}, "invalid-arguments"),
        ({"bill_type": "signcustomer", "bill_date": "2020-01-02"}, "invalid-arguments"),
    ):
        with pytest.raises(ProviderRefused, match=code):
            await running.provider.call(alipay_bills.METHOD, biz)
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"{running.sandbox.gateway_url}?method={alipay_bills.METHOD}&app_id=x&sign_type=RSA2"
        )
        assert "isv.invalid-app-id" in r.text
        stale = await http.get(f"{running.sandbox.url}downloadBillFile.resource?token=nothing")
    assert stale.status_code == 410


async def test_an_amount_difference_is_listed(
    live: tuple[Live, AlipayBills], stores: Stores
) -> None:
    """The ledger booked 140.00 for a trade Alipay's bill lists at 150.00: one amount_mismatch naming our trade number, with both amounts."""
    running, bills = live
    day = _past_day()
    out = await _paid(running, 15000)
    _move_trade(running.sandbox, out, day, 11)
    trade = running.sandbox.book.trades[out]
    order_id = 10**12 + secrets.randbelow(10**9)  # an order number no test uses
    async with stores.pool.acquire() as conn, conn.transaction():
        await ledger.post(
            conn,
            Entry(
                key=f"alipay:pay:{trade.trade_no}",
                kind="payment.captured",
                order_id=order_id,
                lines=(debit(lr.gateway("alipay"), 14000), credit(lr.order_funds(order_id), 14000)),
                data={"out_trade_no": out, "provider_at": _at(day, 11, 1).isoformat()},
            ),
        )
    svc = Settlement(stores, SettlementParams(), None, bills={"alipay": bills})
    run = await svc.reconcile("alipay", day, await bills.trade_bill(day), datetime.now(UTC))
    assert [(d.kind, d.ref, d.problem, d.bill_fen, d.ledger_fen) for d in run.items] == [
        ("payment", out, "amount_mismatch", 15000, 14000)
    ]
    assert (run.provider, run.bill_rows, run.ledger_items) == ("alipay", 1, 1)


# ---- end to end: orders paid through the server's own Alipay sandbox --------------------------


async def _paid_order(
    app: Any, client: httpx.AsyncClient, stores: Stores, customer: Account, service: str
) -> tuple[int, str]:
    """An order paid through Alipay (QR code, the buyer confirms, the notification captured)."""
    sandbox: AlipaySandbox = app.state.alipay_sandbox.sandbox
    order_id, payment = await _ordered_and_prepaid(client, customer, service)
    out = str(payment["out_trade_no"])
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{sandbox.url}sandbox/pay", json={"out_trade_no": out})
    assert r.status_code == 200, r.text

    async def captured() -> bool:
        status = await stores.pool.fetchval(
            "SELECT status FROM payments WHERE out_trade_no = $1", out
        )
        return bool(status == "paid")

    await _until(captured, "the payment captured from its notification")
    return order_id, out


async def _refund(
    client: httpx.AsyncClient, stores: Stores, finance: Account, order_id: int, fen: int
) -> str:
    number = f"RF{secrets.token_hex(6)}"
    r = await client.post(
        f"/v1/orders/{order_id}/refunds",
        headers=finance.auth,
        json={"out_refund_no": number, "amount_fen": fen, "reason": "售后"},
    )
    assert r.status_code == 201, r.text

    async def done() -> bool:
        found = await stores.pool.fetchval(
            "SELECT status FROM refunds WHERE out_refund_no = $1", number
        )
        return bool(found == "succeeded")

    await _until(done, "the refund succeeded at Alipay")
    return number


async def _back_to(stores: Stores, sandbox: AlipaySandbox, out: str, day: date, hour: int) -> None:
    """Both clocks moved to ``day``: the sandbox's trade and our payment and refund rows."""
    _move_trade(sandbox, out, day, hour)
    trade = sandbox.book.trades[out]
    await stores.pool.execute(
        "UPDATE payments SET paid_at = $2 WHERE out_trade_no = $1", out, trade.paid_at
    )
    for number, refund in trade.refunds.items():
        await stores.pool.execute(
            "UPDATE refunds SET succeeded_at = $2 WHERE out_refund_no = $1", number, refund.at
        )


async def _reconcile(client: httpx.AsyncClient, finance: Account, day: date) -> dict[str, Any]:
    """Finance runs the reconciliation; the server downloads Alipay's bill itself."""
    r = await client.post(
        "/v1/finance/reconciliations",
        headers=finance.auth,
        json={"provider": "alipay", "bill_date": day.isoformat()},
    )
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    assert run["provider"] == "alipay"
    return run


async def test_a_clean_day_has_no_difference(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,  # the city the orders are booked in
    prepaid_service: str,  # noqa: F811
) -> None:
    """Two orders paid through Alipay, one partly refunded by finance: the day's bill (downloaded by the server from its sandbox) has three rows and agrees with the ledger — no difference."""
    app = live_app[1]
    sandbox: AlipaySandbox = app.state.alipay_sandbox.sandbox
    customer, finance = await make_user("customer"), await make_user("finance")
    day = _past_day()
    first, out1 = await _paid_order(app, client, stores, customer, prepaid_service)
    _, out2 = await _paid_order(app, client, stores, customer, prepaid_service)
    await _refund(client, stores, finance, first, 3000)
    await _back_to(stores, sandbox, out1, day, 9)
    await _back_to(stores, sandbox, out2, day, 16)
    run = await _reconcile(client, finance, day)
    assert (run["bill_rows"], run["ledger_items"], run["differences"]) == (3, 3, 0)
    assert run["items"] == []


async def test_a_payment_missing_from_the_ledger_is_listed(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,  # the city the orders are booked in
    prepaid_service: str,  # noqa: F811
) -> None:
    """A payment Alipay took for a trade number we never issued (its notification refused as an unknown trade, nothing booked) is listed as missing in the ledger beside an order that agrees."""
    app = live_app[1]
    sandbox: AlipaySandbox = app.state.alipay_sandbox.sandbox
    customer, finance = await make_user("customer"), await make_user("finance")
    day = _past_day()
    _, booked = await _paid_order(app, client, stores, customer, prepaid_service)
    stray = f"DX{secrets.token_hex(8)}"
    await app.state.payments.provider("alipay").prepay(
        PrepayRequest(
            out_trade_no=stray,
            description="Doorstep 订单",
            amount_fen=8800,
            channel="precreate",
            notify_url=app.state.payments.notify_url("alipay"),
        )
    )
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{sandbox.url}sandbox/pay", json={"out_trade_no": stray})
    assert r.status_code == 200

    async def refused() -> bool:
        found = await stores.pool.fetchval(
            "SELECT count(*) FROM payment_notifications WHERE out_trade_no = $1 "
            "AND outcome = 'rejected'",
            stray,
        )
        return bool(found)

    await _until(refused, "the stray payment's notification refused")
    await _back_to(stores, sandbox, booked, day, 10)
    await _back_to(stores, sandbox, stray, day, 11)
    run = await _reconcile(client, finance, day)
    assert [
        (d["kind"], d["ref"], d["problem"], d["bill_fen"], d["ledger_fen"]) for d in run["items"]
    ] == [("payment", stray, "missing_in_ledger", 8800, None)]


async def test_a_refund_alipay_made_that_we_did_not_book_is_listed(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,  # the city the orders are booked in
    prepaid_service: str,  # noqa: F811
) -> None:
    """Of two refunds of one paid order, finance's agrees with the bill (keyed by our out_refund_no, Alipay's out_request_no) and one made at Alipay outside our books is listed as a refund missing in the ledger."""
    app = live_app[1]
    sandbox: AlipaySandbox = app.state.alipay_sandbox.sandbox
    customer, finance = await make_user("customer"), await make_user("finance")
    day = _past_day()
    order_id, out = await _paid_order(app, client, stores, customer, prepaid_service)
    ours = await _refund(client, stores, finance, order_id, 2000)
    theirs = f"RX{secrets.token_hex(6)}"
    await app.state.payments.provider("alipay").refund(
        RefundRequest(
            out_trade_no=out,
            out_refund_no=theirs,
            refund_fen=1000,
            total_fen=12800,
            reason="商户后台退款",
            notify_url=app.state.payments.notify_url("alipay"),
        )
    )
    await _back_to(stores, sandbox, out, day, 13)
    run = await _reconcile(client, finance, day)
    assert run["bill_rows"] == 3
    assert [
        (d["kind"], d["ref"], d["problem"], d["bill_fen"], d["ledger_fen"]) for d in run["items"]
    ] == [("refund", theirs, "missing_in_ledger", 1000, None)]
    assert ours in sandbox.book.trades[out].refunds


async def test_a_bad_bill_upload_gets_a_clear_4xx(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """An upload that is not base64, a bill sent both ways, and a file that is not Alipay's bill are 422 naming the field and the rule; nothing is stored."""
    finance = await make_user("finance")
    base = {"provider": "alipay", "bill_date": "2021-02-03"}
    cases = [
        ({"bill_base64": "not base64!"}, "bill_base64", "invalid_money_input"),
        ({"bill": "x", "bill_base64": "eA=="}, "bill", "invalid_money_input"),
        (
            {"bill_base64": base64.b64encode(b"PK\x03\x04 broken").decode()},
            "bill",
            "bad_trade_bill",
        ),
        (
            {"bill_base64": base64.b64encode("交易时间,公众账号ID\n".encode("gbk")).decode()},
            "bill",
            "bad_trade_bill",
        ),
    ]
    before = (await client.get("/v1/finance/reconciliations", headers=finance.auth)).json()
    for extra, field, code in cases:
        r = await client.post(
            "/v1/finance/reconciliations", headers=finance.auth, json=base | extra
        )
        assert r.status_code == 422, r.text
        assert (r.json()["error"]["field"], r.json()["error"]["code"]) == (field, code)
    after = (await client.get("/v1/finance/reconciliations", headers=finance.auth)).json()
    assert after == before


async def test_two_runs_of_one_day_in_the_same_second_are_both_stored(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Reconciling Alipay's 2000-01-01 twice at once (the server fetching the bill): two runs, never a 500 from runs of one day in the same second (schemathesis found it)."""
    finance = await make_user("finance")
    body = {"bill_base64": None, "bill_date": "2000-01-01", "provider": "alipay"}
    answers = await asyncio.gather(
        *(
            client.post("/v1/finance/reconciliations", headers=finance.auth, json=body)
            for _ in range(3)
        )
    )
    assert [r.status_code for r in answers] == [201, 201, 201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 3

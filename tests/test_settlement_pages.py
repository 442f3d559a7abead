"""The money pages in a real browser (Debian's Chromium, headless): the worker's wallet and
withdrawal in /worker, finance's review and reconciliation in /admin. Any script error,
console error or failed request the test does not provoke fails it. Screenshots go to
docs/img/."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from settlement import alipay_bill, tradebill
from settlement.rules import crew_shares, split_fen
from tests.crew_orders import crew_order, merchant_staff
from tests.helpers import Account, MakeUser, page_until
from tests.test_apps import DESK, PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures
from tests.test_settlement import _fund, _paid_order, _svc, _worker

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_a_worker_withdraws_and_finance_rejects_then_reconciles(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
    tmp_path: Path,
) -> None:
    """The worker sees ¥100 available, a malformed and a too-small amount are refused under the field, ¥50 is requested; finance rejects it with a reason (the worker sees it and the money back) and uploads a bill whose difference is listed."""
    address = live_app[0]
    customer: Account = await make_user("customer")
    finance: Account = await make_user("finance", name="财务小李")
    worker = await _worker(stores, client, live_city)
    await _fund(_svc(live_app), stores, live_city, instant_service, customer.id, worker.id, 10000)

    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page, (422, "/v1/me/withdrawals"))
    await page.goto(f"http://{address}/worker#/earnings")
    await _sign_in(page, worker.phone)
    await page.wait_for_selector("#wallet-available", timeout=WAIT_MS)
    assert await page.inner_text("#wallet-available") == "¥100"
    assert await page.locator('#earn-orders li[data-status="settled"]').count() == 1
    await page.fill("#withdraw-amount", "12.345")  # three decimals: refused in the page
    await page.click("#withdraw-form button[type=submit]")
    await page.wait_for_selector('.field-error[data-for="amount_fen"]', timeout=WAIT_MS)
    await page.fill("#withdraw-amount", "5")  # below the ¥10 minimum: the API's 422
    await page.click("#withdraw-form button[type=submit]")
    await page.wait_for_selector(
        '.field-error[data-for="amount_fen"]:has-text("below_minimum")', timeout=WAIT_MS
    )
    await page.fill("#withdraw-amount", "50")
    await page.click("#withdraw-form button[type=submit]")
    await page.wait_for_selector('#withdrawals li[data-status="requested"]', timeout=WAIT_MS)
    assert await page.inner_text("#wallet-available") == "¥50"
    await _shot(page, "worker-wallet.png", full=True)
    wid = await page.get_attribute('#withdrawals li[data-status="requested"]', "data-withdrawal-id")

    desk = await browser.new_context(**DESK)
    office = await desk.new_page()
    office_errors = _errors_of(office)
    await office.goto(f"http://{address}/admin#/finance")
    await _sign_in(office, finance.phone)
    await office.wait_for_selector('body[data-ready="finance"]', timeout=WAIT_MS)
    sections = await office.eval_on_selector_all(
        "#nav a", "links => links.map(a => a.dataset.section)"
    )
    assert sections == ["finance", "marketing"]  # finance: money, and coupons' cost (growth.read)
    row = f'#withdrawal-queue tr[data-withdrawal-id="{wid}"]'
    await office.fill(f"{row} input[name=reason]", "收款账户未实名")
    await office.click(f"{row} button.reject")
    await office.wait_for_selector(
        f'#withdrawals tr[data-withdrawal-id="{wid}"][data-status="rejected"]', timeout=WAIT_MS
    )

    day = "2021-06-01"
    bill = tradebill.write(
        [
            tradebill.BillRow(
                trade_time=datetime(2021, 6, 1, 9, 30),
                appid="wxd678efh567hg6787",
                mchid="1900000109",
                transaction_id="4200009999",
                out_trade_no="P-unbooked",
                openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                trade_type="JSAPI",
                trade_state="SUCCESS",
                bank_type="OTHERS",
                currency="CNY",
                settlement_fen=6600,
                coupon_fen=0,
                refund_id="",
                out_refund_no="",
                refund_fen=0,
                refund_status="",
                description="保洁",
                attach="",
                fee_mfen=39600,
                rate="0.60%",
                total_fen=6600,
                requested_refund_fen=0,
            )
        ]
    )
    path = tmp_path / "tradebill.csv"
    path.write_bytes(bill)
    await office.fill("#recon-form input[name=bill_date]", day)
    await office.set_input_files("#bill-file", str(path))
    await office.click("#recon-form button[type=submit]")
    await office.wait_for_selector(
        '#recon-diffs tr[data-ref="P-unbooked"][data-problem="missing_in_ledger"]', timeout=WAIT_MS
    )
    await _shot(office, "admin-finance.png", full=True)

    await page.reload()
    await page.wait_for_selector(
        f'#withdrawals li[data-withdrawal-id="{wid}"][data-status="rejected"]', timeout=WAIT_MS
    )
    assert "收款账户未实名" in await page.inner_text(f'#withdrawals li[data-withdrawal-id="{wid}"]')
    assert await page.inner_text("#wallet-available") == "¥100"
    assert errors == []
    assert office_errors == []
    await context.close()
    await desk.close()


async def test_a_merchant_sees_their_wallet_and_withdraws_in_the_back_office(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """A merchant whose team's worker completed a 125.00 order sees 100.00 available after T+N, and a withdrawal of 30.00 is listed as requested."""
    svc = _svc(live_app)
    customer: Account = await make_user("customer")
    merchant: Account = await make_user("merchant", name="好帮手家政")
    team_id = await stores.pool.fetchval(
        "INSERT INTO teams (name, city_id, merchant_id) VALUES ($1, $2, $3) RETURNING id",
        f"team-{merchant.id}",
        live_city,
        merchant.id,
    )
    worker = await _worker(stores, client, live_city)
    await stores.pool.execute(
        "UPDATE workers SET team_id = $2 WHERE user_id = $1", worker.id, team_id
    )
    now = datetime.now(UTC)
    order = await _paid_order(
        stores, live_city, instant_service, customer.id, worker.id, 12500, completed_at=now
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await svc.open_settlement(conn, order, completed_at=now)
    await svc.settle_due(now + timedelta(days=svc.params.after_sales_days))

    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/admin#/wallet")
    await _sign_in(page, merchant.phone)
    await page.wait_for_selector('body[data-ready="wallet"]', timeout=WAIT_MS)
    assert await page.inner_text("#wallet-available") == "¥100"
    assert (
        await page.locator(
            f'#earn-orders tr[data-order-id="{order}"][data-status="settled"]'
        ).count()
        == 1
    )
    await page.fill("#withdraw-amount", "30")
    await page.click("#withdraw-form button[type=submit]")
    await page.wait_for_selector('#withdrawals tr[data-status="requested"]', timeout=WAIT_MS)
    assert await page.inner_text("#wallet-available") == "¥70"
    await _shot(page, "admin-merchant-wallet.png")
    assert errors == []
    await context.close()


def _yuan(fen: int) -> str:
    """Fen as the apps show it (client.js ``money``)."""
    return f"¥{fen // 100}" if fen % 100 == 0 else f"¥{fen / 100:.2f}"


async def test_a_crew_member_sees_their_own_share_of_a_crew_job_frozen_then_settled(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """The second member of a paid crew of 3 (a 600.10 job) sees in /worker#/earnings only their own share frozen, the job marked as their share of a crew of 3 with their net; after T+N the same share is available and the job settled."""
    svc = _svc(live_app)
    customer: Account = await make_user("customer")
    crew = [await _worker(stores, client, live_city) for _ in range(3)]
    now = datetime.now(UTC)
    price = 60010
    order = await crew_order(
        stores,
        city=live_city,
        service=instant_service,
        customer=customer.id,
        crew=[w.id for w in crew],
        price_fen=price,
        completed=True,
        paid=True,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await svc.open_settlement(conn, order, completed_at=now)
    fee = await stores.pool.fetchval(
        "SELECT commission_fen FROM settlements WHERE order_id = $1", order
    )
    share = split_fen(price - fee, 3)[1]

    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/worker#/earnings")
    await _sign_in(page, crew[1].phone)
    row = f'#earn-orders li[data-order-id="{order}"]'
    await page.wait_for_selector(f'{row}[data-status="pending"]', timeout=WAIT_MS)
    assert await page.inner_text("#wallet-frozen") == _yuan(share)
    assert await page.inner_text("#wallet-available") == "¥0"
    assert await page.get_attribute(row, "data-crew-size") == "3"
    assert "3 人班组" in await page.inner_text(f"{row} .chip.crew")
    assert await page.inner_text(f"{row} .price") == _yuan(share)

    await svc.settle_due(now + timedelta(days=svc.params.after_sales_days, minutes=1))
    await page.reload()
    await page.wait_for_selector(f'{row}[data-status="settled"]', timeout=WAIT_MS)
    assert await page.inner_text("#wallet-available") == _yuan(share)
    assert await page.inner_text("#wallet-frozen") == "¥0"
    assert errors == []
    await context.close()


async def test_finance_reconciles_an_alipay_bill_and_sees_its_differences(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    make_user: MakeUser,
    tmp_path: Path,
) -> None:
    """Finance picks 支付宝, uploads Alipay's bill as downloaded (the zip of GBK CSVs, sent as its bytes): the trade our ledger never booked is listed under the run, marked as Alipay's."""
    finance: Account = await make_user("finance", name="财务小王")
    day = date(2021, 7, 3)
    bill = alipay_bill.write(
        [
            alipay_bill.BillRow(
                trade_no="2021070322001400000000000001",
                out_trade_no="A-unbooked",
                kind=alipay_bill.TRADE,
                subject="日常保洁",
                created_at=datetime(2021, 7, 3, 9, 30),
                finished_at=datetime(2021, 7, 3, 9, 31),
                buyer="138******01",
                order_fen=6600,
                receipt_fen=6600,
                out_request_no="",
                fee_fen=-40,
            )
        ],
        seller_id="2088000000000001",
        day=day,
        exported_at=datetime(2021, 7, 4, 10, 0),
    )
    path = tmp_path / "20880000000000010156_20210703.csv.zip"
    path.write_bytes(bill)
    desk = await browser.new_context(**DESK)
    office = await desk.new_page()
    office_errors = _errors_of(office)
    await office.goto(f"http://{live_app[0]}/admin#/finance")
    await _sign_in(office, finance.phone)
    await office.wait_for_selector('body[data-ready="finance"]', timeout=WAIT_MS)
    await office.select_option("#recon-form select[name=provider]", "alipay")
    await office.fill("#recon-form input[name=bill_date]", day.isoformat())
    await office.set_input_files("#bill-file", str(path))
    await office.click("#recon-form button[type=submit]")
    await office.wait_for_selector(
        '#recon-diffs tr[data-ref="A-unbooked"][data-problem="missing_in_ledger"]', timeout=WAIT_MS
    )
    assert await office.get_attribute("#recon-out h4", "data-provider") == "alipay"
    await _shot(office, "admin-finance-alipay.png", full=True)
    assert office_errors == []
    await desk.close()


async def _card_text(page: Any, selector: str) -> str:
    """The text of an element of the worker's earnings card, once it is drawn."""
    text: str = await page_until(
        page,
        "(s) => document.querySelector(s)?.textContent",
        selector,
        what=f"{selector} drawn",
        timeout_ms=WAIT_MS,
    )
    return text


async def test_the_worker_card_counts_a_crew_members_share_and_a_merchants_staff_sees_whom_for(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """Of a crew of 3 that completed a 600.10 job today, the second member's today/total card in /worker#/earnings shows their share of the price as settlement splits it, not the whole price; the third, a merchant's staff member, sees their share marked as done for the merchant, whose wallet is paid."""
    svc = _svc(live_app)
    customer: Account = await make_user("customer")
    boss: Account = await make_user("merchant", name="好帮手家政")
    crew = [await _worker(stores, client, live_city) for _ in range(2)]
    _, staff = await merchant_staff(stores, client, live_city, merchant=boss.id)
    crew.append(staff)
    now = datetime.now(UTC)
    price = 60010
    order = await crew_order(
        stores,
        city=live_city,
        service=instant_service,
        customer=customer.id,
        crew=[w.id for w in crew],
        price_fen=price,
        completed=True,
        paid=True,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await svc.open_settlement(conn, order, completed_at=now)
    fee = await stores.pool.fetchval(
        "SELECT commission_fen FROM settlements WHERE order_id = $1", order
    )
    gross = [s.gross_fen for s in crew_shares(price, fee, 3)]

    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/worker#/earnings")
    await _sign_in(page, crew[1].phone)
    assert await _card_text(page, "#earn-today") == _yuan(gross[1])
    assert await page.inner_text("#earn-total") == _yuan(gross[1])
    assert await page.inner_text("#earn-today-jobs") == "1 单"
    assert "班组订单计我的份额" in await page.inner_text("#earn-note")
    assert await page.locator("#earn-merchant").count() == 0
    assert errors == []
    await context.close()

    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    staff_errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/worker#/earnings")
    await _sign_in(page, staff.phone)
    assert await _card_text(page, "#earn-merchant") == "为商家「好帮手家政」完成"
    assert await page.inner_text("#earn-today") == _yuan(gross[2])
    assert "结算到商家的钱包" in await page.inner_text("#earn-note")
    assert await page.get_attribute("#earnings", "data-merchant-id") == str(boss.id)
    assert errors == []
    assert staff_errors == []
    await context.close()


async def test_a_merchants_wallet_page_labels_a_crew_order_and_lists_its_members(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """A merchant with two staff (李师傅, 孙师傅) on a paid crew of 3 sees in /admin#/wallet the order labelled as its share of a crew of 3, both members named with their shares, and the row's net their sum."""
    svc = _svc(live_app)
    customer: Account = await make_user("customer")
    boss: Account = await make_user("merchant", name="好帮手家政")
    staff = []
    for name in ("李师傅", "孙师傅"):
        _, who = await merchant_staff(stores, client, live_city, merchant=boss.id)
        await stores.pool.execute("UPDATE users SET name = $2 WHERE id = $1", who.id, name)
        staff.append(who)
    lead = await _worker(stores, client, live_city)
    now = datetime.now(UTC)
    price = 60010
    order = await crew_order(
        stores,
        city=live_city,
        service=instant_service,
        customer=customer.id,
        crew=[lead.id, *(s.id for s in staff)],
        price_fen=price,
        completed=True,
        paid=True,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await svc.open_settlement(conn, order, completed_at=now)
    fee = await stores.pool.fetchval(
        "SELECT commission_fen FROM settlements WHERE order_id = $1", order
    )
    nets = [s.net_fen for s in crew_shares(price, fee, 3)]

    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/admin#/wallet")
    await _sign_in(page, boss.phone)
    row = f'#earn-orders tr[data-order-id="{order}"]'
    await page.wait_for_selector(f'{row}[data-status="pending"]', timeout=WAIT_MS)
    assert await page.get_attribute(row, "data-crew-size") == "3"
    assert await page.inner_text(f"{row} .chip.crew") == "3 人班组 · 本商家份额"
    members = await page.inner_text(f"{row} td.members")
    assert members == (
        f"李师傅 ({staff[0].id}) {_yuan(nets[1])}、孙师傅 ({staff[1].id}) {_yuan(nets[2])}"
    )
    assert _yuan(nets[1] + nets[2]) in await page.inner_text(row)
    assert errors == []
    await context.close()

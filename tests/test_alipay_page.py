"""The Alipay sandbox's pay page in a real browser (Debian's Chromium through Playwright):
a person opens the QR code's address (the "scan"), sees the amount, and confirms or cancels."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from payments.providers import PaymentNotice, PrepayRequest
from tests.alipay_live import Live, live_alipay, make_keys
from tests.helpers import MakeUser
from tests.live import book
from tests.test_apps import NO_INBOX, PHONE, _sign_in
from tests.test_apps import _errors_of as _errors_of_app
from tests.test_pages import CHROMIUM, SHOTS, WAIT_MS, _errors_of, _why_no_browser
from tests.test_payments import prepaid_service  # noqa: F401 - a fixture

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    """The sandbox and the merchant's notification endpoint for this module."""
    async with live_alipay(make_keys()) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's, not a Playwright download)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        await chromium.close()


async def _qr(live: Live, fen: int, channel: str = "precreate") -> tuple[str, str]:
    out = f"DS{secrets.token_hex(8)}"
    prepay = await live.provider.prepay(
        PrepayRequest(
            out_trade_no=out,
            description="日常保洁 2 小时",
            amount_fen=fen,
            channel=channel,  # type: ignore[arg-type]
            notify_url=live.notify_url,
        )
    )
    url = prepay.code_url if channel == "precreate" else prepay.pay_url
    assert url is not None
    return out, url


async def test_a_person_scans_and_confirms_and_the_merchant_is_notified(
    live: Live, browser: Any
) -> None:
    """Opening the QR code shows the amount in Chinese; 确认付款 pays it, the page says 支付成功 and the merchant receives the verified notification."""
    out, url = await _qr(live, 12800)
    page = await browser.new_page(viewport={"width": 390, "height": 780})
    errors = _errors_of(page)
    await page.goto(url)
    assert await page.locator("#amount").inner_text() == "¥128.00"
    assert await page.locator("#status").inner_text() == "WAIT_BUYER_PAY"
    await page.click("#confirm", timeout=WAIT_MS)
    await page.wait_for_selector("#outcome.ok", timeout=WAIT_MS)
    assert await page.locator("#outcome").inner_text() == "支付成功"
    assert await page.locator("#status").inner_text() == "TRADE_SUCCESS"
    assert await page.locator("#confirm").count() == 0  # no second payment
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "alipay-sandbox-paid.png"))
    await live.merchant.wait_for(out, 1)
    notice = next(
        n
        for n in live.merchant.notices
        if isinstance(n, PaymentNotice) and n.trade.out_trade_no == out
    )
    assert (notice.trade.status, notice.trade.amount_fen) == ("paid", 12800)
    assert errors == []
    await page.close()


async def test_cancel_and_a_declined_payment_leave_the_trade_unpaid_in_english(
    live: Live, browser: Any
) -> None:
    """In English, Cancel leaves the trade awaiting payment; with the declined fault, confirming says declined; the trade stays unpaid and nothing is notified."""
    out, url = await _qr(live, 990, channel="wap")
    page = await browser.new_page()
    errors = _errors_of(page)
    await page.goto(url)  # the wap URL: the gateway sends the browser to the pay page
    await page.click("#lang")
    assert await page.locator("#confirm").inner_text() == "Confirm payment"
    await page.click("#decline")
    await page.wait_for_selector("#outcome.err", timeout=WAIT_MS)
    assert "cancelled" in await page.locator("#outcome").inner_text()
    live.sandbox.set_faults(out, {"declined"})
    await page.click("#confirm")
    await page.wait_for_selector("#outcome.err", timeout=WAIT_MS)
    assert "declined" in await page.locator("#outcome").inner_text()
    assert await page.locator("#status").inner_text() == "WAIT_BUYER_PAY"
    assert (await live.provider.query(out)).status == "pending"
    assert live.merchant.for_trade(out) == []
    assert errors == []
    await page.close()


async def test_the_customer_pays_with_alipay_in_the_app(
    live_app: tuple[str, Any],
    browser: Any,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,  # noqa: F811
) -> None:
    """In the customer's app, 支付宝 gives the QR code's content (the sandbox's page); the payer confirms there; back in the app the order is confirmed and the card says paid ¥150."""
    customer = await make_user("customer", name="李女士")
    order = await book(client, customer, prepaid_service)
    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of_app(page, NO_INBOX)
    await page.goto(f"http://{live_app[0]}/app#/order/{order['id']}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#payment #due", timeout=WAIT_MS)
    assert await page.inner_text("#pay-alipay") == "支付宝"
    await page.click("#pay-alipay")
    await page.wait_for_selector("#code-url", timeout=WAIT_MS)
    sandbox_url = live_app[1].state.alipay_sandbox.url
    assert (await page.inner_text("#code-url")).startswith(sandbox_url + "qr/")
    href = await page.get_attribute("#pay-page", "href")
    assert href is not None
    wallet = await context.new_page()  # the payer's Alipay, as the sandbox shows it
    await wallet.goto(href)
    assert await wallet.inner_text("#amount") == "¥150.00"
    await wallet.click("#confirm")
    await wallet.wait_for_selector("#outcome.ok", timeout=WAIT_MS)
    for _ in range(100):
        if await page.locator("#pay-check").count():
            await page.click("#pay-check")
        else:
            await page.reload()
        await page.wait_for_selector("#payment", timeout=WAIT_MS)
        if await page.locator("#paid").count():
            break
        await page.wait_for_timeout(200)
    assert "¥150" in await page.inner_text("#paid")
    assert await page.get_attribute("#order .status", "data-status") == "confirmed"
    await context.close()
    assert errors == [], errors

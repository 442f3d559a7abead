"""The customer pays in the customer's app (headless Chromium): the order's payment card
shows the price lines and what is due, "pay with WeChat" gives the QR code's content and
the sandbox's payment page, where the person confirms; the order is then paid and
confirmed, and the card is the receipt."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import MakeUser
from tests.live import book
from tests.test_apps import NO_INBOX, PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures
from tests.test_payments import prepaid_service  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_the_customer_pays_in_the_app_on_the_sandbox_page(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
    prepaid_service: str,  # noqa: F811
) -> None:
    """待支付 with ¥150 due → pay → the sandbox page (¥150.00) → confirm → back in the app the
    order is confirmed and the card says paid ¥150."""
    customer = await make_user("customer", name="王先生")
    order = await book(client, customer, prepaid_service)
    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{live_app[0]}/app#/order/{order['id']}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#payment #due", timeout=WAIT_MS)
    assert "¥150" in await page.inner_text("#due")
    assert await page.get_attribute("#order .status", "data-status") == "awaiting_payment"
    await page.click("#pay")
    await page.wait_for_selector("#code-url", timeout=WAIT_MS)
    assert (await page.inner_text("#code-url")).startswith("weixin://wxpay/bizpayurl?pr=")
    await _shot(page, "app-pay.png")
    href = await page.get_attribute("#pay-page", "href")
    assert href is not None
    wallet = await context.new_page()  # the payer's WeChat, as the sandbox shows it
    await wallet.goto(href)
    assert "¥150.00" in await wallet.inner_text(".amount")
    await wallet.click("#confirm")
    await wallet.wait_for_selector("text=支付成功", timeout=WAIT_MS)
    for _ in range(100):
        await page.click("#pay-check") if await page.locator(
            "#pay-check"
        ).count() else await page.reload()
        await page.wait_for_selector("#payment", timeout=WAIT_MS)
        if await page.locator("#paid").count():
            break
        await page.wait_for_timeout(200)
    assert "¥150" in await page.inner_text("#paid")
    assert await page.get_attribute("#order .status", "data-status") == "confirmed"
    assert not await page.locator("#due").count()
    await _shot(page, "app-receipt.png")
    await context.close()
    assert errors == [], errors

"""Coupons in the apps (headless Chromium): the customer claims a coupon on the 优惠券/积分
page, the pay step preselects it and the customer pays price − discount on the sandbox's
page; the membership page shows the level, progress and benefits; the back office's 营销
section lists templates with their stats and makes one."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatch import service as dispatch_service
from dispatch.service import Caller
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import book
from tests.test_apps import DESK, NO_INBOX, PHONE, _errors_of, _shot, _sign_in
from tests.test_growth import _give_points
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures
from tests.test_payments import _on_site, _service, prepaid_service  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_the_customer_claims_a_coupon_and_pays_the_discounted_price(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    prepaid_service: str,  # noqa: F811
) -> None:
    """Claim 立减40 on the coupons page → book ¥150 → the pay step preselects the coupon →
    pay: ¥110 due, the sandbox page asks ¥110.00 → the receipt shows the coupon line."""
    name = f"立减40-{secrets.token_hex(2)}"
    r = await client.post(
        "/v1/admin/coupon-templates",
        headers=admin.auth,
        json={
            "name_zh": name,
            "name_en": "40 off",
            "kind": "amount",
            "amount_fen": 4000,
            "min_spend_fen": 10000,
            "valid_days": 7,
            "total_stock": 50,
        },
    )
    assert r.status_code == 201, r.text
    template_id = r.json()["id"]
    customer = await make_user("customer", name="李女士")
    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{live_app[0]}/app#/coupons")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector(f"#claim-{template_id}", timeout=WAIT_MS)
    await page.click(f"#claim-{template_id}")
    await page.wait_for_selector("#my-coupons [data-status=available]", timeout=WAIT_MS)
    assert name in await page.inner_text("#my-coupons")
    assert "积分" in await page.inner_text("#points")
    await _shot(page, "app-coupons.png", full=True)

    order = await book(client, customer, prepaid_service)
    await page.goto(f"http://{live_app[0]}/app#/order/{order['id']}")
    await page.wait_for_selector("#coupon-select", timeout=WAIT_MS)
    mine = (await client.get("/v1/me/coupons", headers=customer.auth)).json()
    coupon_id = next(c["id"] for c in mine if c["template_id"] == template_id)
    assert await page.input_value("#coupon-select") == str(coupon_id)
    assert "¥150" in await page.inner_text("#due")
    await page.click("#pay")
    await page.wait_for_selector("#code-url", timeout=WAIT_MS)
    assert "¥110" in await page.inner_text("#due")
    await _shot(page, "app-pay-coupon.png")
    href = await page.get_attribute("#pay-page", "href")
    assert href is not None
    wallet = await context.new_page()
    await wallet.goto(href)
    assert "¥110.00" in await wallet.inner_text(".amount")
    await wallet.click("#confirm")
    await wallet.wait_for_selector("text=支付成功", timeout=WAIT_MS)
    for _ in range(100):
        await page.reload()
        await page.wait_for_selector("#payment", timeout=WAIT_MS)
        if await page.locator("#paid").count():
            break
        await page.wait_for_timeout(200)
    assert "¥110" in await page.inner_text("#paid")
    assert "优惠券" in await page.inner_text("#payment")
    await context.close()
    assert errors == [], errors


async def test_the_final_payment_of_a_service_paid_afterwards_takes_a_coupon(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    worker_account: Account,
    stores: Stores,
) -> None:
    """A pay-after-service order of ¥99, completed: its pay step shows the coupon select
    with the ¥20 coupon preselected, and paying asks ¥79."""
    service = await _service(client, admin, 9900, None)
    r = await client.post(
        "/v1/admin/coupon-templates",
        headers=admin.auth,
        json={
            "name_zh": f"售后付立减20-{secrets.token_hex(2)}",
            "name_en": "20 off",
            "kind": "amount",
            "amount_fen": 2000,
            "min_spend_fen": 5000,
            "valid_days": 7,
            "total_stock": 50,
        },
    )
    assert r.status_code == 201, r.text
    customer = await make_user("customer", name="赵女士")
    r = await client.post(
        "/v1/coupons/claim", headers=customer.auth, json={"template_id": r.json()["id"]}
    )
    assert r.status_code == 201, r.text
    coupon_id = r.json()["id"]
    order = await book(client, customer, service)
    oid = order["id"]
    await _on_site(live_app, stores, oid, worker_account)
    tracking = live_app[1].state.tracking
    r = await client.get(f"/v1/orders/{oid}", headers=customer.auth)
    code = r.json()["start_code"]
    who = Caller("worker", worker_account.id)
    await dispatch_service.act(stores, tracking, oid, "start", who, start_code=code)
    await dispatch_service.act(stores, tracking, oid, "complete", who)
    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{live_app[0]}/app#/order/{oid}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#coupon-select", timeout=WAIT_MS)
    assert await page.input_value("#coupon-select") == str(coupon_id)
    assert "¥99" in await page.inner_text("#due")
    await page.click("#pay")
    await page.wait_for_selector("#code-url", timeout=WAIT_MS)
    assert "¥79" in await page.inner_text("#due")
    await context.close()
    assert errors == [], errors


async def test_the_membership_page_shows_the_level_progress_and_benefits(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    make_user: MakeUser,
    stores: Stores,
) -> None:
    """A customer with 6,000 points over the year: 我的 → 会员 shows 金卡会员, 14,000 more
    to 钻石 (progress 666 of 10,000: 1,000 of the 15,000 between them), ×1.5 points, the
    monthly pack of two ¥10 coupons issued this month, and the four levels."""
    customer = await make_user("customer", name="王先生")
    await _give_points(stores, customer.id, 6000)
    async with stores.pool.acquire() as conn, conn.transaction():
        await live_app[1].state.growth.members.check(conn, customer.id, datetime.now(UTC))
    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{live_app[0]}/app#/membership")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#membership", timeout=WAIT_MS)
    await page.goto(f"http://{live_app[0]}/app#/me")
    await page.wait_for_selector("#member-link", timeout=WAIT_MS)
    await page.click("#member-link")
    await page.wait_for_selector("#membership[data-level=gold]", timeout=WAIT_MS)
    assert "金卡会员" in await page.inner_text("#member-level")
    assert "6000" in await page.inner_text("#member-points")
    assert await page.get_attribute("#member-progress", "value") == "666"
    assert "14000" in await page.inner_text("#member-next")
    assert "钻石会员" in await page.inner_text("#member-next")
    benefits = await page.inner_text("#member-benefits")
    assert "×1.5" in benefits
    assert "2 张满¥80" in benefits
    assert (await page.inner_text("#member-pack")).count("¥10") == 2
    assert await page.locator("#member-levels [data-level]").count() == 4
    await _shot(page, "app-membership.png", full=True)
    await context.close()
    assert errors == [], errors


async def test_the_back_office_marketing_section_makes_a_template_and_shows_its_stats(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    make_user: MakeUser,
) -> None:
    """An admin opens 营销: the templates table with issued/used/cost; creating one adds a row."""
    admin = await make_user("admin", name="营销小周")
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/admin#/marketing")
    await _sign_in(page, admin.phone)
    await page.wait_for_selector('body[data-ready="marketing"]', timeout=WAIT_MS)
    assert await page.locator('#nav a[data-section="marketing"]').count() == 1
    before = await page.locator("#coupon-templates tbody tr").count()
    name = f"保洁券{secrets.token_hex(2)}"
    await page.fill("#template-form [name=name_zh]", name)
    await page.click("#create-template")
    await page.wait_for_selector(f"#coupon-templates tr:has-text('{name}')", timeout=WAIT_MS)
    assert await page.locator("#coupon-templates tbody tr").count() == before + 1
    await _shot(page, "admin-marketing.png")
    await context.close()
    assert errors == [], errors

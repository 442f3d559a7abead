"""The back office's roles, merchants and cities sections, and a merchant's own back
office, in headless Chromium (issue 18). Screenshots go to docs/img/ (docs/permissions.md).

An admin grants a city operator role from the roles page (a bad scope shown under its
field); the city operator signs in and sees their sections only, their city only, and
approves a merchant of their city (not another city's); the merchant runs its back
office: adds a worker to its team, prices a service (out of range shown under the
price), and assigns a routed order to its own staff.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dispatch import store as dispatch_store
from doorstep.stores import Stores
from tests.access import licence, new_city
from tests.helpers import Account, MakeUser
from tests.test_apps import DESK, _errors_of, _shot, _sign_in
from tests.test_pages import (  # noqa: F401 - fixtures
    WAIT_MS,
    _until,
    _why_no_browser,
    browser,
)
from workforce import store as workforce_store

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def _merchant(stores: Stores, owner: Account, city: str, status: str) -> None:
    await stores.pool.execute(
        "INSERT INTO merchants (id, name, city_id, licence_number, status) VALUES ($1,$2,$3,$4,$5)",
        owner.id,
        f"安心家政{owner.id}",
        city,
        licence(),
        status,
    )


async def _worker(stores: Stores, make_user: MakeUser, city: str, team: int | None) -> int:
    worker = await make_user("worker", name="张阿姨")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker.id,
        city_id=city,
        skills=(),
        home_lat=30.0,
        home_lng=104.0,
        team_id=team,
    )
    return worker.id


async def _sections(page: Any) -> list[str]:
    found: list[str] = await page.locator("#nav a").evaluate_all(
        "els => els.map(e => e.dataset.section)"
    )
    return found


async def test_admin_grants_and_a_city_operator_reviews_merchants(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    stores: Stores,
    make_user: MakeUser,
) -> None:
    """An admin grants city_operator in a city from the roles page; the operator sees only
    their city and their sections, and approves the pending merchant of their city."""
    address = live_app[0]
    city = await new_city(stores, "page-a")
    far = await new_city(stores, "page-b")
    admin = await make_user("admin", name="平台管理员")
    operator = await make_user("customer", name="成都运营")
    near_shop = await make_user("customer", name="近店主")
    far_shop = await make_user("customer", name="远店主")
    await _merchant(stores, near_shop, city, "pending")
    await _merchant(stores, far_shop, far, "pending")

    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page, (422, "/v1/grants"))
    await page.goto(f"http://{address}/admin#/roles")
    await _sign_in(page, admin.phone)
    await page.wait_for_selector('body[data-ready="roles"]', timeout=WAIT_MS)
    for section in ("roles", "merchants", "cities", "accounts"):
        assert section in await _sections(page)
    form = page.locator("#grant-form")
    await form.locator('input[name="user_id"]').fill(str(operator.id))
    await form.locator('select[name="role"]').select_option("city_operator")
    await form.locator('input[name="scope"]').fill("platform")
    await form.locator("button[type=submit]").click()
    await form.locator('.field-error[data-for="scope"]').wait_for(timeout=WAIT_MS)
    await form.locator('input[name="scope"]').fill(f"city:{city}")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector(f'#grants tr[data-user-id="{operator.id}"]', timeout=WAIT_MS)
    held = await stores.pool.fetchval(
        "SELECT scope FROM role_grants WHERE user_id = $1 AND revoked_at IS NULL", operator.id
    )
    assert held == f"city:{city}"
    await _shot(page, "admin-roles.png", full=True)
    await context.close()
    assert errors == [], errors

    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/admin#/merchants")
    await _sign_in(page, operator.phone)
    await page.wait_for_selector('body[data-ready="merchants"]', timeout=WAIT_MS)
    sections = await _sections(page)
    assert {"dispatch", "orders", "workers", "cities", "merchants", "analytics"} <= set(sections)
    assert not {"accounts", "catalog", "roles", "shop"} & set(sections)
    await page.wait_for_selector(f'#merchants tr[data-merchant-id="{near_shop.id}"]')
    assert await page.locator(f'#merchants tr[data-merchant-id="{far_shop.id}"]').count() == 0
    await _shot(page, "admin-merchants.png")
    await page.click(f'#merchants form[data-merchant-id="{near_shop.id}"] button.approve')

    async def approved() -> bool:
        status = await stores.pool.fetchval(
            "SELECT status FROM merchants WHERE id = $1", near_shop.id
        )
        return bool(status == "approved")

    await _until(approved, "the merchant is approved")
    await page.click('#nav a[data-section="cities"]')
    await page.wait_for_selector('body[data-ready="cities"]', timeout=WAIT_MS)
    shown = await page.locator("#cities tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.city)"
    )
    assert shown == [city]
    await context.close()
    assert errors == [], errors


async def test_a_merchant_runs_its_own_back_office(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    stores: Stores,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
) -> None:
    """A merchant adds a worker to its team, prices a service within the catalog's range
    (an out-of-range price shown under the field) and assigns a routed order to its staff;
    another merchant's worker and orders never appear."""
    address = live_app[0]
    city = await new_city(stores, "page-shop")
    owner = await make_user("merchant", name="安心家政老板")
    rival = await make_user("merchant", name="对手老板")
    await _merchant(stores, owner, city, "approved")
    await _merchant(stores, rival, city, "approved")
    team = await workforce_store.insert_team(
        stores.pool, name="安心一队", city_id=city, merchant_id=owner.id, upsert=False
    )
    rival_team = await workforce_store.insert_team(
        stores.pool, name="对手一队", city_id=city, merchant_id=rival.id, upsert=False
    )
    staff = await _worker(stores, make_user, city, team)
    newcomer = await _worker(stores, make_user, city, None)
    rival_worker = await _worker(stores, make_user, city, rival_team)
    customer = await make_user("customer")
    orders = {}
    for who in (owner, rival):
        async with stores.pool.acquire() as conn:
            order = await dispatch_store.insert(
                conn,
                city_id=city,
                customer_id=customer.id,
                service_code=instant_service,
                kind="instant",
                status="dispatching",
                lat=30.0,
                lng=104.0,
                duration_min=120,
                price_minor=15000,
                currency="CNY",
                start_code="123456",
                address_detail="锦江区春熙路1号",
                merchant_id=who.id,
            )
        orders[who.id] = order.id

    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page, (422, "/services/"))
    await page.goto(f"http://{address}/admin#/shop")
    await _sign_in(page, owner.phone)
    await page.wait_for_selector('body[data-ready="shop"]', timeout=WAIT_MS)
    assert await _sections(page) == [
        "workers",
        "shop",
        "wallet",
    ]  # wallet: its earnings (settlement)
    staff_ids = await page.locator("#shop-staff tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.workerId))"
    )
    assert staff_ids == [staff]
    await page.fill('#add-staff input[name="worker_id"]', str(newcomer))
    await page.click("#add-staff button[type=submit]")
    await page.wait_for_selector(f'#shop-staff tr[data-worker-id="{newcomer}"]', timeout=WAIT_MS)
    assert await page.locator(f'#shop-staff tr[data-worker-id="{rival_worker}"]').count() == 0

    price = page.locator(f'#shop-services form[data-service="{instant_service}"]')
    await price.locator('input[name="price_minor"]').fill("500")
    await price.locator("button[type=submit]").click()
    await price.locator('.field-error[data-for="price_minor"]').wait_for(timeout=WAIT_MS)
    await price.locator('input[name="price_minor"]').fill("138")
    await price.locator("button[type=submit]").click()

    async def priced() -> bool:
        found = await stores.pool.fetchval(
            "SELECT price_minor FROM merchant_services WHERE merchant_id = $1", owner.id
        )
        return bool(found == 13800)

    await _until(priced, "the merchant's price is stored")

    rows = await page.locator("#shop-orders tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.orderId))"
    )
    assert rows == [orders[owner.id]]
    await _shot(page, "admin-shop.png", full=True)
    order_form = page.locator(f'#shop-orders form[data-order-id="{orders[owner.id]}"]')
    await order_form.locator('select[name="worker_id"]').select_option(str(staff))
    await order_form.locator("button.assign").click()

    async def assigned() -> bool:
        found = await stores.pool.fetchval(
            "SELECT worker_id FROM orders WHERE id = $1", orders[owner.id]
        )
        return bool(found == staff)

    await _until(assigned, "the routed order is assigned to the merchant's own worker")
    r = await client.get(f"/v1/merchants/{owner.id}/orders", headers=rival.auth)
    assert r.status_code == 404
    await context.close()
    assert errors == [], errors


async def _open(
    chromium: Any, address: str, phone: str, section: str
) -> tuple[Any, Any, list[str]]:
    """A signed-in back office on ``section``; (context, page, the page's errors)."""
    context = await chromium.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/admin#/{section}")
    await _sign_in(page, phone)
    await page.wait_for_selector(f'body[data-ready="{section}"]', timeout=WAIT_MS)
    return context, page, errors


async def _goto(page: Any, section: str) -> None:
    await page.locator(f'#nav a[data-section="{section}"]').click()
    await page.wait_for_selector(f'body[data-ready="{section}"]', timeout=WAIT_MS)


async def test_sections_follow_the_callers_permissions(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
) -> None:
    """Granted in one city: customer service sees orders, after-sales and safety alerts but not finance, quality or exams; a city's finance sees withdrawals and settlements without the platform's money; a city operator records practical assessments and ranks their city's workers, without finance or after-sales. No section calls a route it may not."""
    address = live_app[0]
    city = await new_city(stores, "sec-a")
    await new_city(stores, "sec-b")
    holders = {}
    for role in ("customer_service", "finance", "city_operator"):
        who = await make_user("customer", name=f"{role}员")
        r = await client.post(
            "/v1/grants",
            headers=admin.auth,
            json={"user_id": who.id, "role": role, "scope": f"city:{city}"},
        )
        assert r.status_code == 201, r.text
        holders[role] = who

    context, page, errors = await _open(
        browser, address, holders["customer_service"].phone, "aftersales"
    )
    sections = set(await _sections(page))
    assert {"orders", "aftersales", "safety"} <= sections
    assert not {"finance", "discipline", "exams", "review", "wallet"} & sections
    await _goto(page, "safety")
    assert await page.locator("#reveals-filter").count() == 0  # the audit side is platform-wide
    options = await page.locator("#city_id-select option").evaluate_all(
        "els => els.map(e => e.value)"
    )
    assert options == [city]
    await context.close()
    assert errors == [], errors

    context, page, errors = await _open(browser, address, holders["finance"].phone, "finance")
    sections = set(await _sections(page))
    assert "finance" in sections
    assert not {"aftersales", "discipline", "safety"} & sections
    await page.wait_for_selector("#settlements")
    for platform_only in ("#settle-now", "#recon-form", "#rule-form", "#recon-runs"):
        assert await page.locator(platform_only).count() == 0, platform_only
    await context.close()
    assert errors == [], errors

    context, page, errors = await _open(browser, address, holders["city_operator"].phone, "exams")
    sections = set(await _sections(page))
    assert {"review", "exams", "discipline", "safety"} <= sections  # safety: a dispatcher's
    assert not {"finance", "aftersales"} & sections
    await page.wait_for_selector("#practical-form")
    assert await page.locator("#exams-table").count() == 0  # setting exams up is an admin's
    await _goto(page, "discipline")
    options = await page.locator("#discipline-city option").evaluate_all(
        "els => els.map(e => e.value)"
    )
    assert options == [city]
    await context.close()
    assert errors == [], errors

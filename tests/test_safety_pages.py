"""SOS in the apps, in a real browser (Chromium): the worker's SOS button (over the
worker socket) and the customer's on the order page reach the dispatcher console's
safety section, where the dispatcher acknowledges and resolves them."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.live import book, worker_profile
from tests.test_apps import DESK, PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import (  # noqa: F401 - fixtures
    WAIT_MS,
    _until,
    _why_no_browser,
    browser,
)

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def _console(browser: Any, address: str, city: str, dispatcher: Account) -> Any:  # noqa: F811
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    await page.goto(f"http://{address}/console?city={city}")
    await _sign_in(page, dispatcher.phone)
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    return page


@pytest.fixture
async def sos_city(stores: Stores) -> str:
    """A city of its own on the live test square: other tests leave SOS alerts open in the
    shared live city, which would keep the console's banner up."""
    from catalog import service as catalog_service
    from catalog import store as catalog_store
    from tests.conftest import RUN_ID
    from tests.helpers import SQUARE

    city = catalog_service.build_city(
        id=f"sos-{RUN_ID}-{next(_sos_cities)}",
        name_zh="求助测试城",
        name_en="SOS test city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    return city.id


_sos_cities = itertools.count()


async def _open_sos(stores: Stores, subject: int) -> int | None:
    found = await stores.pool.fetchval(
        "SELECT id FROM safety_alerts WHERE subject_id = $1 AND kind = 'sos' "
        "AND resolved_at IS NULL",
        subject,
    )
    return int(found) if found is not None else None


async def test_a_worker_s_sos_is_acknowledged_and_resolved_on_the_console(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    make_user: MakeUser,
    stores: Stores,
    sos_city: str,
) -> None:
    """The worker taps SOS twice (on shift: over the socket); the console's banner and safety list show it; the dispatcher acknowledges, then resolves with a note."""
    address = live_app[0]
    worker = await worker_profile(stores, make_user, sos_city)
    dispatcher = await make_user("dispatcher", name="调度小李")
    console = await _console(browser, address, sos_city, dispatcher)
    console_errors = _errors_of(console)
    context = await browser.new_context(
        **PHONE, geolocation={"latitude": 22.53, "longitude": 114.01, "accuracy": 8}
    )
    await context.grant_permissions(["geolocation"])
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/worker")
    await _sign_in(page, worker.phone)
    await page.click("#shift-toggle")
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    await page.click("#sos")
    assert await page.text_content("#sos") == "再按一次，立即通知平台"
    await page.click("#sos")
    await page.wait_for_selector("#sos-status[data-alert-id]", timeout=WAIT_MS)
    alert_id = int(await page.get_attribute("#sos-status", "data-alert-id") or 0)
    assert alert_id == await _open_sos(stores, worker.id)
    source = await stores.pool.fetchval("SELECT source FROM safety_alerts WHERE id = $1", alert_id)
    assert source == "worker_socket"
    await _shot(page, "worker-sos.png")

    await console.wait_for_selector("#sos-banner:not([hidden])", timeout=WAIT_MS)
    await console.click('#tabs button[data-tab="safety"]')
    row = console.locator(f'#safety li[data-alert-id="{alert_id}"]')
    await row.wait_for(timeout=WAIT_MS)
    assert await row.get_attribute("data-kind") == "sos"
    await _shot(console, "console-safety.png")
    await row.locator("button.ack").click()
    await console.wait_for_selector(
        f'#safety li[data-alert-id="{alert_id}"][data-acked="1"]', timeout=WAIT_MS
    )
    await console.wait_for_selector("#sos-banner[hidden]", state="attached", timeout=WAIT_MS)
    await row.locator('input[name="resolution"]').fill("已电话联系师傅，安全")
    await row.locator("button.resolve").click()
    await row.wait_for(state="detached", timeout=WAIT_MS)

    async def resolved() -> bool:
        return await _open_sos(stores, worker.id) is None

    await _until(resolved, "the alert is resolved")
    by = await stores.pool.fetchval(
        "SELECT acknowledged_by FROM safety_alerts WHERE id = $1", alert_id
    )
    assert by == dispatcher.id
    await context.close()
    await console.context.close()
    assert errors == [], errors
    assert console_errors == [], console_errors


async def test_a_customer_raises_an_sos_from_the_order_page(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
    instant_service: str,
) -> None:
    """With a worker assigned, the customer's order page has an SOS button; two taps open an SOS for that order."""
    address = live_app[0]
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await worker_profile(stores, make_user, live_city)
    order = await book(client, customer, instant_service)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page, (404, "/v1/me/inbox"))
    await page.goto(f"http://{address}/app#/order/{order['id']}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#sos", timeout=WAIT_MS)
    await page.click("#sos")
    await page.click("#sos")
    await page.wait_for_selector("#sos-status[data-alert-id]", timeout=WAIT_MS)
    alert_id = int(await page.get_attribute("#sos-status", "data-alert-id") or 0)
    row = await stores.pool.fetchrow(
        "SELECT subject_role, order_id FROM safety_alerts WHERE id = $1", alert_id
    )
    assert row is not None
    assert (row["subject_role"], row["order_id"]) == ("customer", order["id"])
    await _shot(page, "customer-sos.png")
    await context.close()
    assert errors == [], errors


async def test_the_back_office_safety_section(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    live_city: str,
) -> None:
    """An admin's safety section lists a city's open SOS (acknowledged from there), the address reveals and the audit chain's verification."""
    address = live_app[0]
    admin = await make_user("admin", name="安全专员")
    worker = await worker_profile(stores, make_user, live_city)
    r = await client.post("/v1/sos", headers=worker.auth, json={"lat": 22.53, "lng": 114.01})
    alert_id = r.json()["alert_id"]
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/admin#/safety")
    await _sign_in(page, admin.phone)
    await page.wait_for_selector('body[data-ready="safety"]', timeout=WAIT_MS)
    await page.select_option("#city_id-select", live_city)
    row = page.locator(f'#safety-table tr[data-alert-id="{alert_id}"]')
    await row.wait_for(timeout=WAIT_MS)
    await row.locator("button.ack").click()

    async def acknowledged() -> bool:
        at = await stores.pool.fetchval(
            "SELECT acknowledged_by FROM safety_alerts WHERE id = $1", alert_id
        )
        return bool(at == admin.id)

    await _until(acknowledged, "the admin acknowledged the SOS")
    await page.wait_for_selector('#audit-status[data-ok="1"]', timeout=WAIT_MS)
    await page.wait_for_selector("#reveals", timeout=WAIT_MS)
    await _shot(page, "admin-safety.png")
    await context.close()
    assert errors == [], errors


async def test_a_customer_keeps_emergency_contacts_in_the_app(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
) -> None:
    """The "me" page's contacts form shows the API's refusal under the bad phone, and saves a good one."""
    from tests.helpers import new_phone

    address = live_app[0]
    customer = await make_user("customer")
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page, (404, "/v1/me/inbox"), (422, "/v1/me/emergency-contacts"))
    await page.goto(f"http://{address}/app#/me")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector('body[data-ready="home"]', timeout=WAIT_MS)
    await page.click('#tabs a[data-tab="me"]')
    form = page.locator("#contacts-form")
    await form.wait_for(timeout=WAIT_MS)
    await form.locator('[data-field="contacts[0].name"]').fill("妈妈")
    await form.locator('[data-field="contacts[0].phone"]').fill("12345")
    await form.locator("button[type=submit]").click()
    await form.locator('.field-error[data-for="contacts[0].phone"]').wait_for(timeout=WAIT_MS)
    mum = new_phone()
    await form.locator('[data-field="contacts[0].phone"]').fill(mum)
    await form.locator("button[type=submit]").click()

    async def saved() -> bool:
        r = await client.get("/v1/me/emergency-contacts", headers=customer.auth)
        return bool(r.json() == [{"name": "妈妈", "phone": mum}])

    await _until(saved, "the contact is saved")
    await context.close()
    assert errors == [], errors

"""Number masking in the apps, in a real browser: the customer's order page and the
worker's job card each show the masked number that reaches the other (docs/privacy.md)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from tests.helpers import MakeUser
from tests.live import EngineCity, make_worker
from tests.test_apps import DESK, NO_INBOX, PHONE, _errors_of, _sign_in
from tests.test_pages import (  # noqa: F401 - fixtures
    WAIT_MS,
    PageServer,
    _why_no_browser,
    browser,
    page_server,
    pages_city,
)

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_customer_and_worker_see_the_same_masked_number(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """An assigned order: the customer's 联系师傅 and the worker's 联系顾客 both show the
    number the API gives, never a real phone."""
    address = live_app[0]
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    here = engine_city.here
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": instant_service, "lat": here[0], "lng": here[1]},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "nearest", "force": True},
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while (
        r := await client.get(f"/v1/orders/{order['id']}/contact", headers=customer.auth)
    ).status_code != 200:
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.05)
    number = r.json()["number"]

    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{address}/app#/order/{order['id']}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#contact-worker", timeout=WAIT_MS)
    await page.click("#contact-worker")
    await page.wait_for_selector("#contact-number", timeout=WAIT_MS)
    assert await page.inner_text("#contact-number") == number
    assert await page.get_attribute("#contact-number", "href") == f"tel:{number}"
    await context.close()
    assert errors == [], errors

    context = await browser.new_context(**DESK, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{address}/worker")
    await _sign_in(page, worker.phone)
    await page.wait_for_selector("#contact-customer", timeout=WAIT_MS)
    await page.click("#contact-customer")
    await page.wait_for_selector("#contact-number", timeout=WAIT_MS)
    assert await page.inner_text("#contact-number") == number
    assert number not in (customer.phone, worker.phone)
    await context.close()
    assert errors == [], errors

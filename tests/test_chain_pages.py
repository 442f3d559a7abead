"""Chained orders in the worker app, in a real browser: the chained offer says after which
job, the accepted job shows as next under the one in hand, and becomes the job when that
one is completed; the worker's "about N minutes left" on site brings the chained offer
(docs/dispatch.md#chained-orders). Screenshots: docs/img/worker-next-job.png,
docs/img/worker-time-left.png."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatch.engine import Engine
from doorstep.stores import Stores
from tests.helpers import MakeUser
from tests.live import EngineCity, book_here, make_worker
from tests.test_apps import PHONE, _errors_of, _shot, _sign_in
from tests.test_chain_engine import chaining, on_site
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_the_worker_app_shows_the_chained_job_as_next_then_as_the_job(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """The offer is marked chained; accepted, the job in service stays the current one with
    the chained one as next; when it is completed the chained one is the job."""
    here = engine_city.here
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, here)
    await on_site(client, stores, dispatcher, worker, first, ends_in_s=60)
    context = await browser.new_context(
        **PHONE, geolocation={"latitude": here[0] + 0.0003, "longitude": here[1], "accuracy": 8}
    )
    await context.grant_permissions(["geolocation"])
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/worker")
    await _sign_in(page, worker.phone)
    await page.click("#shift-toggle")
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    await page.wait_for_selector(
        f'#job[data-order-id="{first["id"]}"][data-status="in_service"]', timeout=WAIT_MS
    )
    second = await book_here(client, customer, instant_service, here)
    engine: Engine = live_app[1].state.engine
    report = await chaining(engine, live_app, 300.0).tick(engine_city.id, datetime.now(UTC))
    assert report.chained == 1
    offer = page.locator("#offers form[data-offer-id]:has(.chip.chained) >> nth=0")
    await offer.wait_for(timeout=WAIT_MS)
    assert str(first["id"]) in (await offer.locator(".chip.chained").inner_text())
    await offer.locator("button.accept").click()
    await page.wait_for_selector(f'#job-next[data-order-id="{second["id"]}"]', timeout=WAIT_MS)
    assert await page.get_attribute("#job", "data-order-id") == str(first["id"])
    await _shot(page, "worker-next-job.png")
    r = await client.post(f"/v1/orders/{first['id']}/complete", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    await page.wait_for_selector(
        f'#job[data-order-id="{second["id"]}"][data-status="assigned"]', timeout=WAIT_MS
    )
    assert await page.locator("#job-next").count() == 0
    assert errors == []
    await context.close()


async def test_the_worker_tells_the_time_left_in_the_app_and_is_offered_the_next_job(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """On a job in service that the catalogue says ends in an hour, 0 minutes is refused
    under the field; "about 3 minutes left" shows the expected finish, and the next tick
    offers the worker a chained job."""
    here = engine_city.here
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, here)
    await on_site(client, stores, dispatcher, worker, first, ends_in_s=3600)
    context = await browser.new_context(
        **PHONE, geolocation={"latitude": here[0] + 0.0003, "longitude": here[1], "accuracy": 8}
    )
    await context.grant_permissions(["geolocation"])
    page = await context.new_page()
    errors = _errors_of(page, (422, "/time-left"))
    await page.goto(f"http://{live_app[0]}/worker")
    await _sign_in(page, worker.phone)
    await page.click("#shift-toggle")
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)
    await page.wait_for_selector(
        f'#job[data-order-id="{first["id"]}"][data-status="in_service"]', timeout=WAIT_MS
    )
    assert "预计还需" in await page.inner_text("#time-left-form label")
    await page.fill("#time-left", "0")
    await page.click("#time-left-form button[type=submit]")
    await page.wait_for_selector(
        '#time-left-form .field-error[data-for="minutes_left"]', timeout=WAIT_MS
    )
    second = await book_here(client, customer, instant_service, here)
    engine: Engine = live_app[1].state.engine
    chain = chaining(engine, live_app, 300.0)
    assert (await chain.tick(engine_city.id, datetime.now(UTC))).chained == 0  # ends in 1 h
    await page.fill("#time-left", "3")
    await page.click("#time-left-form button[type=submit]")
    await page.wait_for_selector("#expected-end", timeout=WAIT_MS)
    assert "完成" in await page.inner_text("#expected-end")
    assert await stores.pool.fetchval(
        "SELECT expected_end_at FROM orders WHERE id = $1", first["id"]
    ) == datetime.fromisoformat(await page.get_attribute("#expected-end", "data-at") or "")
    report = await chain.tick(engine_city.id, datetime.now(UTC))
    assert report.chained == 1
    offer = page.locator("#offers form[data-offer-id]:has(.chip.chained) >> nth=0")
    await offer.wait_for(timeout=WAIT_MS)
    assert str(first["id"]) in await offer.locator(".chip.chained").inner_text()
    assert second["id"] == await stores.pool.fetchval(
        "SELECT order_id FROM offers WHERE worker_id = $1 AND after_order_id = $2",
        worker.id,
        first["id"],
    )
    await _shot(page, "worker-time-left.png")
    assert errors == []
    await context.close()

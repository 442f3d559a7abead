"""Chained orders in the worker app, in a real browser: the chained offer says after which
job, the accepted job shows as next under the one in hand, and becomes the job when that
one is completed; the worker's "about N minutes left" on site brings the chained offer
(docs/dispatch.md#chained-orders); the customer's arrival map of a chained order says the
worker is finishing a job nearby, when they leave it and the ETA after it. Screenshots:
docs/img/worker-next-job.png, docs/img/worker-time-left.png, docs/img/track-chained-phone.png."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatch.engine import Engine
from doorstep.stores import Stores
from tests.chain_setup import chaining, on_site
from tests.helpers import MakeUser, page_until
from tests.live import EngineCity, book_here, make_worker, send_acked
from tests.test_apps import PHONE, _errors_of, _shot, _sign_in
from tests.test_chained_eta import chained_pair
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


async def test_the_customer_page_of_a_chained_order_shows_the_job_before_then_the_live_eta(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """The arrival map of a chained order says (in Chinese, then English) the worker is
    finishing a job nearby, leaving at its expected end, with the ETA after it and no marker;
    a new estimate moves both; once the job before is completed the live ETA takes over."""
    worker, customer, ws, first, second = await chained_pair(
        live_app, client, make_user, stores, engine_city, instant_service, ends_in_s=900
    )
    share = (await client.post(f"/v1/orders/{second['id']}/share", headers=customer.auth)).json()
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}{share['page_path']}")
    await page.wait_for_selector('#chained:not([hidden])[data-by="duration"]', timeout=WAIT_MS)
    assert "师傅正在附近完成上一单" in await page.inner_text("#chained-title")
    departs = await page.inner_text("#chained-departs")
    assert "出发" in departs
    assert "按服务时长估算" in departs
    first_p50 = int(await page.get_attribute("#eta-range", "data-p50") or 0)
    assert first_p50 > 800  # ~15 min on the job before, then the drive
    assert await page.locator("#worker-marker").count() == 0
    assert await page.is_hidden("#fresh-badge")
    r = await client.post(
        f"/v1/orders/{first['id']}/time-left", headers=worker.auth, json={"minutes_left": 40}
    )
    assert r.status_code == 200, r.text
    await page.wait_for_selector('#chained[data-by="worker"]', timeout=WAIT_MS)
    assert "师傅预估" in await page.inner_text("#chained-departs")
    await page_until(
        page,
        "p50 => Number(document.getElementById('eta-range').dataset.p50) > p50 + 1200",
        first_p50,
        what="the ETA moved by the 25 more minutes of the estimate",
        timeout_ms=WAIT_MS,
    )
    await _shot(page, "track-chained-phone.png")
    english = await context.new_page()
    await english.goto(f"http://{live_app[0]}{share['page_path']}&lang=en")
    await english.wait_for_selector('#chained:not([hidden])[data-by="worker"]', timeout=WAIT_MS)
    assert "finishing a job nearby" in await english.inner_text("#chained-title")
    assert "the worker's estimate" in await english.inner_text("#chained-departs")
    await english.close()
    r = await client.post(f"/v1/orders/{first['id']}/complete", headers=worker.auth, json={})
    assert r.status_code == 200, r.text
    tracking = live_app[1].state.tracking
    here = engine_city.here
    for _ in range(200):  # the completion's event hands the worker's job to this order
        job = tracking.active_job(worker.id)
        if job is not None and job.info.order_id == second["id"]:
            break
        await asyncio.sleep(0.05)
    ts = int(time.time() * 1000)
    fix = {"type": "fix", "seq": ts, "ts_ms": ts, "lat": here[0], "lng": here[1], "accuracy_m": 5}
    assert (await send_acked(ws, fix))["accepted"] == 1
    await page.wait_for_selector("#chained", state="hidden", timeout=WAIT_MS)
    await page.wait_for_selector("#worker-marker", timeout=WAIT_MS)
    assert int(await page.get_attribute("#eta-range", "data-p50") or 0) < first_p50
    assert errors == []
    await ws.close()
    await context.close()

"""The three apps in a real browser (Debian's Chromium, headless), one story each.

A customer finds a service by search and books it (and sees an API error next to its
field); a worker whose browser position is emulated goes on shift, takes the engine's
offer, arrives, enters the start code, uploads a photo and completes, and the customer
rates the job; an admin freezes an account; a merchant sees only their own team. Any
script error, console error or failed request fails the test. Screenshots go to
docs/img/ (the pictures in docs/apps.md).
"""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from accounts import service as accounts
from catalog.areas import city_at
from dispatch.engine import Engine
from doorstep.stores import Stores
from geo.coords import wgs84_to_gcj02
from privacy.crypto import reveal
from tests.helpers import PASSWORD, Account, MakeUser, new_phone
from tests.live import EngineCity, make_worker
from tests.test_pages import (  # noqa: F401 - fixtures
    WAIT_MS,
    PageServer,
    _until,
    _why_no_browser,
    browser,
    page_server,
    pages_city,
)
from workforce import store as workforce_store

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
PHONE = {"viewport": {"width": 360, "height": 800}, "device_scale_factor": 2, "is_mobile": True}
DESK = {"viewport": {"width": 1280, "height": 800}}
NO_INBOX = (404, "/v1/me/inbox")  # another capability's route: the app hides its tab without it


def _errors_of(page: Any, *expected: tuple[int, str], outage: bool = False) -> list[str]:
    """The page's script errors, console errors (a CSP violation is one) and failed
    requests, except the ``(status, URL part)`` pairs the test provokes on purpose (and,
    with ``outage``, the browser's own line for a socket that cannot connect)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

    def console(m: Any) -> None:
        if m.type != "error" or m.text.startswith("Failed to load resource"):
            return
        if outage and m.text.startswith("WebSocket connection to"):
            return
        errors.append(m.text)

    def response(r: Any) -> None:
        if r.status >= 400 and not any(r.status == s and part in r.url for s, part in expected):
            errors.append(f"{r.status} {r.url}")

    page.on("console", console)
    page.on("response", response)
    return errors


async def _shot(page: Any, name: str, full: bool = False) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(IMG / name), full_page=full)


async def _sign_in(page: Any, phone: str) -> None:
    await page.fill("#login-phone", phone)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button[type=submit]")


@pytest.fixture(scope="module")
async def checklist_service(client: httpx.AsyncClient, admin: Account) -> str:
    """An instant service with a two-item checklist, in a category of its own."""
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"cat_{tag}", "name_zh": "家电清洗", "name_en": "Appliance cleaning"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"svc_{tag}",
            "category": f"cat_{tag}",
            "name_zh": "空调清洗",
            "name_en": "Air-conditioner cleaning",
            "description_zh": "挂机拆洗，高温蒸汽杀菌",
            "description_en": "Wall unit taken apart, steam cleaned",
            "price_minor": 12000,
            "duration_min": 60,
            "instant": True,
            "scheduled": True,
            "checklist": [
                {"zh": "拆下滤网清洗", "en": "Wash the filters"},
                {"zh": "试机确认制冷", "en": "Test that it cools"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    return f"svc_{tag}"


@pytest.fixture
def engine(live_app: tuple[str, Any]) -> Engine:
    """The app's engine (its loop is off in tests: the test ticks it)."""
    engine: Engine = live_app[1].state.engine
    return engine


async def test_customer_finds_a_service_by_search_and_books_it(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Search by words, price and city finds the service; its page, sign-in, a pinned address and the booking land in PostgreSQL."""
    address = live_app[0]
    await make_worker(stores, client, engine_city.id)  # the city can serve it
    customer = await make_user("customer", name="陈女士")
    context = await browser.new_context(**PHONE, locale="zh-CN")
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX, (422, "max_price=10000"))
    await page.goto(f"http://{address}/app")
    await page.wait_for_selector("#results[data-count]", timeout=WAIT_MS)
    await _shot(page, "app-home.png")

    # A price range in the wrong order: the API's error is shown under max_price.
    await page.fill("#min-price", "200")
    await page.fill("#max-price", "100")
    await page.click("#search-form button[type=submit]")
    await page.wait_for_selector('.field-error[data-for="max_price"]', timeout=WAIT_MS)
    assert await page.get_attribute("#max-price", "class") == "invalid"

    # Words, a price range around ¥150 and the city: the service is among the results,
    # and every result keeps to the range.
    await page.fill("#q", "日常 保洁")
    await page.fill("#min-price", "149")
    await page.fill("#max-price", "151")
    await page.select_option("#city", engine_city.id)
    await page.click("#search-form button[type=submit]")
    card = page.locator(f'#results a[data-service="{instant_service}"]')
    await card.wait_for(timeout=WAIT_MS)
    assert not await page.locator(".field-error").count()
    for price in await page.locator("#results .price").all_inner_texts():
        assert price == "¥150", price
    await _shot(page, "app-search.png")
    await card.click()
    await page.wait_for_selector("#service", timeout=WAIT_MS)
    assert "¥150" in await page.inner_text("#service")
    await page.click("#book")

    # Booking needs the customer: sign in, then a first address with its map pin.
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#address-form", timeout=WAIT_MS)
    await page.fill("#address-label", "家")
    await page.fill("#address-detail", "测试路1号 2栋301")
    await _shot(page, "app-address.png")
    await page.click("#save-address")
    await page.wait_for_selector("#book-form", timeout=WAIT_MS)
    await page.click("#submit-booking")
    await page.wait_for_selector("#order .status", timeout=WAIT_MS)
    row = await stores.pool.fetchrow(
        "SELECT id, service_code, city_id, address_detail, lat, lng FROM orders "
        "WHERE customer_id = $1",
        customer.id,
    )
    assert row is not None
    # The city whose area holds the pin (the session's test cities share one square).
    expected_city = await city_at(stores.pool, row["lat"], row["lng"])
    assert (row["service_code"], row["city_id"]) == (instant_service, expected_city)
    assert reveal("orders.address_detail", row["address_detail"]) == "测试路1号 2栋301"
    # The pin started in the middle of a test city (they share one square): the order is
    # in that square, where the page put it.
    assert abs(row["lat"] - engine_city.here[0]) < 0.05
    assert abs(row["lng"] - engine_city.here[1]) < 0.05
    assert f"#{row['id']}" in await page.inner_text("#order")
    await _shot(page, "app-order.png")
    await context.close()
    assert errors == [], errors


async def test_worker_takes_the_offer_and_completes_then_the_customer_rates(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine: Engine,
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    checklist_service: str,
) -> None:
    """The browser's position reaches the live index, the offer is taken, start code and completion change the order, and the rating lands."""
    address = live_app[0]
    worker = await make_worker(stores, client, engine_city.id)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    here = engine_city.here
    start = (here[0] + 0.002, here[1])  # ~220 m from the door
    context = await browser.new_context(
        **PHONE, geolocation={"latitude": start[0], "longitude": start[1], "accuracy": 8}
    )
    await context.grant_permissions(["geolocation"])
    page = await context.new_page()
    errors = _errors_of(page, (422, "/start"))  # the wrong start code, on purpose
    await page.goto(f"http://{address}/worker")
    await _sign_in(page, worker.phone)
    await page.click("#shift-toggle")
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)

    async def position() -> tuple[float, float] | None:
        r = await client.get(f"/v1/workers/{worker.id}/position", headers=dispatcher.auth)
        if r.status_code != 200:
            return None
        body = r.json()
        return (body["lat"], body["lng"])

    async def at(point: tuple[float, float]) -> bool:
        p = await position()
        return p is not None and abs(p[0] - point[0]) < 1e-6 and abs(p[1] - point[1]) < 1e-6

    await _until(lambda: at(start), "the browser's position is in the live index")

    # A first booking is offered and declined with a reason; the customer then cancels it.
    async def book() -> dict[str, Any]:
        r = await client.post(
            "/v1/orders",
            headers=customer.auth,
            json={"service_code": checklist_service, "lat": here[0], "lng": here[1]},
        )
        assert r.status_code == 201, r.text
        order: dict[str, Any] = r.json()
        return order

    first = await book()
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    offer = page.locator("#offers form:has(button.accept) >> nth=0")
    await offer.wait_for(timeout=WAIT_MS)
    assert await page.locator("#offers .countdown").count() == 1
    await _shot(page, "worker-offer.png")
    await offer.locator('select[name="reason"]').select_option(index=1)
    await offer.locator("button.decline").click()
    await page.wait_for_selector("#offers form", state="detached", timeout=WAIT_MS)
    declined = await stores.pool.fetchrow(
        "SELECT status, reason FROM offers WHERE order_id = $1 AND worker_id = $2",
        first["id"],
        worker.id,
    )
    assert declined is not None
    assert tuple(declined) == ("rejected", "时间冲突")
    r = await client.post(f"/v1/orders/{first['id']}/cancel", headers=customer.auth, json={})
    assert r.status_code == 200, r.text

    # The second booking is offered and accepted.
    order = await book()
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.offered == 1
    offer = page.locator("#offers form[data-offer-id]:has(button.accept) >> nth=0")
    await offer.wait_for(timeout=WAIT_MS)
    await offer.locator("button.accept").click()
    await page.wait_for_selector('#job[data-status="assigned"]', timeout=WAIT_MS)
    row = await stores.pool.fetchrow(
        "SELECT status, worker_id FROM orders WHERE id = $1", order["id"]
    )
    assert row is not None
    assert tuple(row) == ("assigned", worker.id)

    # Navigation opens AMap at the door in GCJ-02.
    href = await page.get_attribute("#nav-amap", "href") or ""
    glat, glng = wgs84_to_gcj02(here[0], here[1])
    assert f"to={glng:.6f},{glat:.6f}," in href, href
    await _shot(page, "worker-job.png")

    # The phone moves: the new position streams over the socket.
    closer = (here[0] + 0.0015, here[1])
    await context.set_geolocation({"latitude": closer[0], "longitude": closer[1], "accuracy": 8})
    await _until(lambda: at(closer), "the moved position is in the live index")

    await page.click("#arrive")
    await page.wait_for_selector('#job[data-status="arrived"]', timeout=WAIT_MS)
    # A wrong start code is refused next to the field; the right one starts the job.
    await page.fill("#start-code", "000000" if order["start_code"] != "000000" else "111111")
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector(
        "#start-form .field-error, #start-form .form-error:not(:empty)", timeout=WAIT_MS
    )
    assert (
        await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"])
        == "arrived"
    )
    await page.fill("#start-code", order["start_code"])
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector('#job[data-status="in_service"]', timeout=WAIT_MS)

    # A photo, uploaded through files/ (re-encoded there), then complete.
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(png, "PNG")
    await page.set_input_files(
        "#photo-input",
        files=[{"name": "job.png", "mimeType": "image/png", "buffer": png.getvalue()}],
    )
    await page.wait_for_selector("#photos img[data-file-id]", timeout=WAIT_MS)
    file_id = int(await page.get_attribute("#photos img", "data-file-id") or 0)
    purpose = await stores.pool.fetchval("SELECT purpose FROM files WHERE id = $1", file_id)
    assert purpose == "job_photo"
    # Complete waits for every checklist item.
    assert await page.is_disabled("#complete")
    await page.check('#checklist input[data-i="0"]')
    assert await page.is_disabled("#complete")
    await page.check('#checklist input[data-i="1"]')
    await _shot(page, "worker-in-service.png")
    await page.click("#complete")
    await page.wait_for_selector("#no-job", timeout=WAIT_MS)
    assert (
        await stores.pool.fetchval("SELECT status FROM orders WHERE id = $1", order["id"])
        == "completed"
    )
    # The photo is kept with the order (attached: the clean-up job leaves it alone).
    attached = await stores.pool.fetchval("SELECT attached_to FROM files WHERE id = $1", file_id)
    assert attached == f"order:{order['id']}"
    await page.click('#tabs a[data-tab="earnings"]')
    await page.wait_for_selector("#earn-today", timeout=WAIT_MS)
    assert await page.inner_text("#earn-today") == "¥120"
    await _shot(page, "worker-earnings.png")

    # The customer opens the order in their app and rates it four stars.
    mine = await context.new_page()
    errors += _errors_of(mine, NO_INBOX)
    await mine.goto(f"http://{address}/app#/order/{order['id']}")
    await _sign_in(mine, customer.phone)
    await mine.wait_for_selector("#rating-form", timeout=WAIT_MS)
    await mine.click('#stars button[data-stars="4"]')
    await mine.fill('#rating-form textarea[name="text"]', "准时，干净")
    await _shot(mine, "app-rate.png")
    await mine.click("#rating-form button[type=submit]")
    await mine.wait_for_selector("#rated", timeout=WAIT_MS)
    rating = await stores.pool.fetchrow(
        "SELECT stars, text, worker_id FROM ratings WHERE order_id = $1", order["id"]
    )
    assert rating is not None
    assert tuple(rating) == (4, "准时，干净", worker.id)
    # The worker's public profile shows it.
    await mine.goto(f"http://{address}/app#/worker/{worker.id}")
    await mine.wait_for_selector("#worker-card", timeout=WAIT_MS)
    assert "准时，干净" in await mine.inner_text("main")
    await page.click('#tabs a[data-tab="work"]')
    await page.click("#shift-toggle")  # off shift
    await page.wait_for_selector('#shift[data-on="0"]', timeout=WAIT_MS)
    await context.close()
    assert errors == [], errors


async def test_positions_taken_offline_are_sent_after_the_server_comes_back(
    page_server: PageServer,  # noqa: F811
    browser: Any,  # noqa: F811
    pages_city: tuple[str, tuple[float, float]],  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
) -> None:
    """While the server is down the page keeps its fixes; after it is back they are resumed from the hello and archived, none lost."""
    city, door = pages_city
    worker = await make_worker(stores, client, city)
    points = [(door[0] + 0.001 * k, door[1]) for k in range(4)]
    context = await browser.new_context(
        **PHONE, geolocation={"latitude": points[0][0], "longitude": points[0][1], "accuracy": 8}
    )
    await context.grant_permissions(["geolocation"])
    page = await context.new_page()
    errors = _errors_of(page, outage=True)
    await page.goto(f"http://{page_server.address}/worker")
    await _sign_in(page, worker.phone)
    await page.click("#shift-toggle")
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)

    async def archived(point: tuple[float, float]) -> bool:
        return bool(
            await stores.pool.fetchval(
                "SELECT count(*) FROM trail_points WHERE worker_id = $1 "
                "AND abs(lat - $2) < 1e-7 AND abs(lng - $3) < 1e-7",
                worker.id,
                point[0],
                point[1],
            )
        )

    await _until(lambda: archived(points[0]), "the first fix is archived")
    backlog = f"JSON.parse(localStorage.getItem('doorstep.worker.backlog.{worker.id}') || '[]')"

    await page_server.stop()
    await page.wait_for_selector('#conn[data-state="waiting"]', timeout=WAIT_MS)
    for k, point in enumerate(points[1:], start=1):
        await context.set_geolocation({"latitude": point[0], "longitude": point[1], "accuracy": 8})
        # Polled with evaluate: wait_for_function's string predicate is eval'd in the page,
        # which its CSP (no 'unsafe-eval') refused once in CI.
        kept_js = f"{backlog}.length >= {k}"
        await _until(lambda: page.evaluate(kept_js), f"{k} fixes kept offline")  # noqa: B023
    kept = await page.evaluate(f"{backlog}.map(f => f.lat)")
    assert kept == [p[0] for p in points[1:]]
    for point in points[1:]:
        assert not await archived(point)

    await page_server.start()
    await page.wait_for_selector('#conn[data-state="live"]', timeout=WAIT_MS)

    async def all_archived() -> bool:
        return all([await archived(p) for p in points[1:]])

    await _until(all_archived, "the fixes taken offline are archived")
    await _until(lambda: page.evaluate(f"{backlog}.length === 0"), "the backlog is emptied")
    seqs = await stores.pool.fetch(
        "SELECT seq FROM trail_points WHERE worker_id = $1 ORDER BY seq", worker.id
    )
    assert len(seqs) == len({r["seq"] for r in seqs}) == len(points)  # each once
    await context.close()
    assert errors == [], errors


async def test_admin_freezes_an_account_and_pauses_dispatch(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    make_user: MakeUser,
    engine_city: EngineCity,
    stores: Stores,
) -> None:
    """An admin freezes an account found by id (its token stops working) and pauses a city's dispatch, a reason required."""
    address = live_app[0]
    admin = await make_user("admin", name="运营小王")
    victim = await make_user("customer", name="待冻结")
    assert (await client.get("/v1/me", headers=victim.auth)).status_code == 200
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    # The pause without a reason and the price that is no number, on purpose:
    errors = _errors_of(page, (422, "/dispatch"), (422, "/v1/services/"))
    await page.goto(f"http://{address}/admin#/accounts")
    await _sign_in(page, admin.phone)
    await page.wait_for_selector('body[data-ready="accounts"]', timeout=WAIT_MS)
    for section in ("dispatch", "orders", "workers", "catalog", "cities", "accounts", "analytics"):
        assert await page.locator(f'#nav a[data-section="{section}"]').count() == 1
    assert (
        await page.get_attribute('#nav a[data-section="analytics"]', "href")
        == "/admin/analytics?lang=zh"
    )
    await page.fill("#user-id", str(victim.id))
    await page.click("#accounts-filter button[type=submit]")
    await page.wait_for_selector(
        f'#accounts tr[data-user-id="{victim.id}"][data-status="active"]', timeout=WAIT_MS
    )
    await page.click(f'#accounts button.freeze[data-user-id="{victim.id}"]')
    await page.wait_for_selector(
        f'#accounts tr[data-user-id="{victim.id}"][data-status="frozen"]', timeout=WAIT_MS
    )
    assert (await client.get("/v1/me", headers=victim.auth)).status_code == 401
    await _shot(page, "admin-accounts.png")
    # Catalog and prices: a price that is no number is refused by the field; ¥99.5 is saved.
    tag = secrets.token_hex(3)
    code = f"svc_{tag}"
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"cat_{tag}", "name_zh": "清洁", "name_en": "Cleaning"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": code,
            "category": f"cat_{tag}",
            "name_zh": "擦玻璃",
            "name_en": "Windows",
            "price_minor": 8000,
            "duration_min": 60,
            "instant": True,
            "scheduled": False,
        },
    )
    assert r.status_code == 201, r.text
    await page.click('#nav a[data-section="catalog"]')
    await page.wait_for_selector('body[data-ready="catalog"]', timeout=WAIT_MS)
    price = page.locator(f'#services form[data-service="{code}"]')
    await price.locator('input[name="price_minor"]').fill("九十")
    await price.locator("button[type=submit]").click()
    await price.locator('.field-error[data-for="price_minor"]').wait_for(timeout=WAIT_MS)
    await price.locator('input[name="price_minor"]').fill("99.5")
    await price.locator("button[type=submit]").click()

    async def repriced() -> bool:
        found = await stores.pool.fetchval("SELECT price_minor FROM services WHERE code = $1", code)
        return bool(found == 9950)

    await _until(repriced, "the new price is stored")
    await _shot(page, "admin-catalog.png")

    # Dispatch: pausing a city's automatic dispatch needs a reason (shown by the field).
    await page.click('#nav a[data-section="dispatch"]')
    row = page.locator(f'#dispatch-cities form[data-city="{engine_city.id}"]')
    await row.locator("button.pause").click()
    await row.locator('.field-error[data-for="reason"]').wait_for(timeout=WAIT_MS)

    async def paused() -> bool:
        return bool(
            await stores.pool.fetchval(
                "SELECT dispatch_paused FROM cities WHERE id = $1", engine_city.id
            )
        )

    assert not await paused()
    await row.locator('input[name="reason"]').fill("暴雨，暂停自动派单")
    await row.locator("button.pause").click()
    await _until(paused, "the city's dispatch is paused")
    await row.locator("button.resume").click()

    async def resumed() -> bool:
        return not await paused()

    await _until(resumed, "the city's dispatch is resumed")
    await context.close()
    assert errors == [], errors


async def test_a_merchant_sees_only_their_team(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
) -> None:
    """A merchant's back office has only the workers section (and their wallet), listing their team's workers and no one else."""
    address = live_app[0]
    merchant = await make_user("merchant", name="好家政老板")
    other_merchant = await make_user("merchant", name="别家老板")
    async with stores.pool.acquire() as conn:
        team = await workforce_store.insert_team(
            conn, name="好家政一队", city_id=engine_city.id, merchant_id=merchant.id, upsert=False
        )
        other_team = await workforce_store.insert_team(
            conn,
            name="别家一队",
            city_id=engine_city.id,
            merchant_id=other_merchant.id,
            upsert=False,
        )
    ids: dict[str, int] = {}
    for key, team_id in (("mine", team), ("theirs", other_team), ("loose", None)):
        user = await accounts.create_user(
            stores, phone=new_phone(), name=f"{key}师傅", password=PASSWORD, roles=["worker"]
        )
        await workforce_store.upsert_worker(
            stores.pool,
            user_id=user.id,
            city_id=engine_city.id,
            skills=(),
            home_lat=engine_city.here[0],
            home_lng=engine_city.here[1],
            team_id=team_id,
        )
        ids[key] = user.id
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/admin?lang=en")
    await _sign_in(page, merchant.phone)
    await page.wait_for_selector('body[data-ready="workers"]', timeout=WAIT_MS)
    sections = await page.locator("#nav a").evaluate_all("els => els.map(e => e.dataset.section)")
    assert sections == ["workers", "wallet"]
    shown = await page.locator("#workers tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.workerId))"
    )
    assert shown == [ids["mine"]]
    teams = await page.locator("#teams tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.teamId))"
    )
    assert teams == [team]
    await _shot(page, "admin-merchant.png")
    await context.close()
    assert errors == [], errors

"""The live pages in a real browser: Playwright driving Debian's Chromium, headless.

Three tests, each a whole story: the customer's arrival map following a worker over a
real worker socket (marker, ETA, stale badge, a dropped connection, arrival and the start
code), and the dispatcher console overriding the engine, for one worker and for a crew
(the database and the workers' sockets change). Screenshots go to ``.artifacts/screenshots/`` (gitignored).

`make test` installs Chromium with apt when it is missing and it can; without it these
tests are skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from api.serving import uvicorn_options
from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.settings import Settings
from doorstep.stores import Stores
from geo.roadgraph import load_futian_graph
from tests.helpers import PASSWORD, MakeUser, page_until
from tests.live import book_here, make_worker, next_of, online, open_worker

CHROMIUM = os.environ.get("DOORSTEP_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / ".artifacts" / "screenshots"
WAIT_MS = 15_000


def _why_no_browser() -> str | None:
    if not Path(CHROMIUM).is_file():
        return (
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium with apt when "
            "it runs as root with apt-get; or set DOORSTEP_CHROMIUM to a Chromium binary"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: pip install -e '.[dev]'"
    return None


pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")

# East Futian: on the bundled road graph, and clear of the other test cities' areas.
AREA = {
    "type": "Polygon",
    "coordinates": [
        [
            [114.022, 22.525],
            [114.038, 22.525],
            [114.038, 22.548],
            [114.022, 22.548],
            [114.022, 22.525],
        ]
    ],
}


@pytest.fixture(scope="module")
async def pages_city(stores: Stores) -> AsyncIterator[tuple[str, tuple[float, float]]]:
    """A city of these tests, its automatic dispatch paused (overrides only), and a door on a
    road in it; made inactive afterwards so that it catches no other test's bookings."""
    from tests.conftest import RUN_ID

    city = catalog_service.build_city(
        id=f"pages-{RUN_ID}",
        name_zh="页面城",
        name_en="Pages city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=AREA,
        crs="wgs84",
    )
    await catalog_store.write_city(stores.pool, city, upsert=True)
    await stores.pool.execute("UPDATE cities SET dispatch_paused = true WHERE id = $1", city.id)
    graph = load_futian_graph()
    node, _ = graph.nearest_node(22.5365, 114.0300)
    yield city.id, (float(graph.lat[node]), float(graph.lng[node]))
    await stores.pool.execute("UPDATE cities SET active = false WHERE id = $1", city.id)


class PageServer:
    """A uvicorn server of the app with short stale times, which the test can restart on
    the same port (a dropped network, as the browser sees it)."""

    def __init__(self, settings: Settings, stores: Stores, params: Path) -> None:
        from doorstep.embedded import free_port

        self.settings = replace(settings, params_file=params)
        self.stores = stores
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import uvicorn

        from api.app import create_app

        app = create_app(self.settings, self.stores)
        config = uvicorn.Config(
            app, **uvicorn_options(host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            assert not self._task.done(), "the page server did not start"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        assert self._task is not None
        await self._task


@pytest.fixture
async def page_server(
    settings: Settings, stores: Stores, tmp_path: Path
) -> AsyncIterator[PageServer]:
    """The app with a 3 s stale limit, no engine loop, and no speed limit on fixes (the test
    walks its worker quickly)."""
    params = tmp_path / "params.toml"
    params.write_text(
        "[presence]\nstale_after_s = 3.0\n[engine]\nenabled = false\n"
        "[fixes]\nmax_speed_mps = 5000.0\n"
        "[socket]\nframes_per_s = 50.0\nburst_frames = 50.0\n"
    )
    server = PageServer(settings, stores, params)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's, not a Playwright download)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        await chromium.close()


def _errors_of(page: Any, expected_404: str = "\0", *, outage: bool = False) -> list[str]:
    """Collect the page's script errors, console errors (a CSP violation is one) and failed
    requests, except 404s of URLs containing ``expected_404`` (and, with ``outage``, the
    browser's own console line for a socket that cannot connect while the test has the
    server down)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

    def console(m: Any) -> None:
        if m.type != "error" or m.text.startswith("Failed to load resource"):
            return
        if outage and m.text.startswith("WebSocket connection to"):
            return
        errors.append(m.text)

    def response(r: Any) -> None:
        if r.status >= 400 and not (r.status == 404 and expected_404 in r.url):
            errors.append(f"{r.status} {r.url}")

    page.on("console", console)
    page.on("response", response)
    return errors


async def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / name))


class Walker:
    """A worker's phone: fixes with the real clock, one frame each, acked."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seq = int(time.time() * 1000)

    async def fix(self, at: tuple[float, float]) -> None:
        self.seq += 1
        await self.ws.send(
            orjson.dumps(
                {
                    "type": "fix",
                    "seq": self.seq,
                    "ts_ms": int(time.time() * 1000),
                    "lat": at[0],
                    "lng": at[1],
                    "accuracy_m": 5.0,
                }
            ).decode()
        )
        ack = await next_of(self.ws, "ack")
        assert ack["accepted"] == 1, ack


async def _marker_at(page: Any, at: tuple[float, float]) -> None:
    """Wait until the worker's marker on the page is headed for ``at``."""
    await page_until(
        page,
        "([lat, lng]) => { const m = document.getElementById('worker-marker');"
        " return m && Math.abs(m.dataset.lat - lat) < 1e-5 && Math.abs(m.dataset.lng - lng) < 1e-5; }",
        [at[0], at[1]],
        what="the worker's marker at the fix",
        timeout_ms=WAIT_MS,
    )


async def _select_worker(page: Any, worker_id: int) -> None:
    """Open a worker's panel from the console's list. The list is rebuilt every second, so
    a click can land on a row just replaced: click again until the panel is that worker's."""
    for _ in range(10):
        await page.click(f'#workers [data-worker-id="{worker_id}"]')
        try:
            await page_until(
                page,
                "id => (document.querySelector('#detail-body h3')?.textContent || '')"
                ".includes(`#${id} `)",
                worker_id,
                what=f"worker {worker_id}'s panel",
                timeout_ms=2_000,
            )
            return
        except AssertionError:
            continue
    raise AssertionError(f"worker {worker_id}'s panel never opened")


async def _select_order(page: Any, order_id: int, ready: str = "h3") -> None:
    """Open an order's panel from the console's list (rebuilt every second, like the
    workers' list): click again until the panel is that order's and holds ``ready``."""
    for _ in range(10):
        await page.click(f'#orders [data-order-id="{order_id}"]')
        try:
            await page_until(
                page,
                "([id, ready]) => (document.querySelector('#detail-body h3')?.textContent"
                " || '').includes(`#${id} `) && !!document.querySelector(`#detail-body ${ready}`)",
                [order_id, ready],
                what=f"order {order_id}'s panel",
                timeout_ms=2_000,
            )
            return
        except AssertionError:
            continue
    raise AssertionError(f"order {order_id}'s panel never opened")


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds (up to 10 s)."""
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_customer_page_follows_the_worker_live(
    page_server: PageServer,
    browser: Any,
    pages_city: tuple[str, tuple[float, float]],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """The customer page follows the worker live and shows the start code only to the signed-in customer."""
    # Marker and ETA follow the worker's fixes, the badge turns stale, and the page comes back
    # after a dropped connection.
    city, door = pages_city
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    worker = await make_worker(stores, client, city, rating=(47, 10))
    order = await book_here(client, customer, instant_service, door)
    r = await client.post(
        f"/v1/orders/{order['id']}/assign",
        headers=dispatcher.auth,
        json={"worker_id": worker.id, "reason": "test", "force": True},
    )
    assert r.status_code == 200, r.text
    ws, _ = await open_worker(page_server.address, worker)
    phone = Walker(ws)
    start = (door[0] + 0.0045, door[1] + 0.002)  # ~540 m away
    await phone.fix(start)
    share = (await client.post(f"/v1/orders/{order['id']}/share", headers=customer.auth)).json()
    assert share["page_path"] == f"/track/{order['id']}?share={share['token']}"

    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = await context.new_page()
    errors = _errors_of(page, outage=True)  # the test stops the server on purpose
    await page.goto(f"http://{page_server.address}{share['page_path']}")
    await page.wait_for_selector('#status-title[data-status="assigned"]', timeout=WAIT_MS)
    await _marker_at(page, start)
    assert "★ 4.70" in await page.inner_text("#worker-rating")

    r = await client.post(f"/v1/orders/{order['id']}/depart", headers=worker.auth, json={})
    assert r.status_code == 200
    await page.wait_for_selector('#status-title[data-status="en_route"]', timeout=WAIT_MS)
    first_p50 = int(await page.get_attribute("#eta-range", "data-p50") or 0)
    assert first_p50 > 0
    here = start
    for k in range(1, 5):  # four steps towards the door, still outside the arrival radius
        here = (start[0] + (door[0] - start[0]) * k / 5, start[1] + (door[1] - start[1]) * k / 5)
        await phone.fix(here)
        await _marker_at(page, here)
        if k == 1:
            await page_until(
                page,
                "p50 => Number(document.getElementById('eta-range').dataset.p50) < p50",
                first_p50,
                what="a shorter ETA",
                timeout_ms=WAIT_MS,
            )
            assert "stale" not in (await page.get_attribute("#fresh-badge", "class") or "")
            await asyncio.sleep(1.0)  # let the marker finish gliding for the picture
            await _shot(page, "track-en-route-phone.png")

    # No fix for longer than stale_after_s (3 s here): the badge says so; a fix clears it.
    await page.wait_for_selector("#fresh-badge.stale", timeout=WAIT_MS)
    await phone.fix(here)
    await page.wait_for_selector("#fresh-badge:not(.stale)", timeout=WAIT_MS)

    # The connection drops (the server restarts); the page reconnects and resumes.
    await page_server.stop()
    await page.wait_for_selector("#conn:not([hidden])", timeout=WAIT_MS)
    await page_server.start()
    ws, _ = await open_worker(page_server.address, worker)
    phone.ws = ws
    await page.wait_for_selector("#conn", state="hidden", timeout=WAIT_MS)
    closer = (here[0] + (door[0] - here[0]) * 0.5, here[1] + (door[1] - here[1]) * 0.5)
    await phone.fix(closer)
    await _marker_at(page, closer)

    # The customer, signed in on their own tab (in English), sees the start code once the
    # worker is there.
    mine = await context.new_page()
    errors += _errors_of(mine)
    await mine.goto(f"http://{page_server.address}/track/{order['id']}?lang=en")
    await mine.fill("#login-phone", customer.phone)
    await mine.fill("#login-password", PASSWORD)
    await mine.click("#login-form button")
    await mine.wait_for_selector('#status-title[data-status="en_route"]', timeout=WAIT_MS)
    assert await mine.is_hidden("#code-card")
    await phone.fix(door)
    await phone.fix((door[0] + 0.00005, door[1]))  # two fixes inside the geofence: arrived
    for p in (page, mine):
        await p.wait_for_selector('#status-title[data-status="arrived"]', timeout=WAIT_MS)
    assert await mine.inner_text("#start-code") == order["start_code"]
    assert await page.is_hidden("#start-code")
    assert await page.is_visible("#code-card")  # says that only the booker sees the code
    await _shot(mine, "track-arrived-phone.png")
    await page.set_viewport_size({"width": 1280, "height": 800})  # the same page on a desk
    await _shot(page, "track-arrived-share-desktop.png")
    await context.close()
    await ws.close()
    assert errors == []


async def test_console_override_moves_the_job(
    live_app: tuple[str, Any],
    browser: Any,
    pages_city: tuple[str, tuple[float, float]],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A dispatcher's assign and reassign in the console move the job in the database and on both workers' sockets."""
    # Flow: sign in, see the open order and its scored candidates, assign it, then reassign it.
    address = live_app[0]
    city, door = pages_city
    dispatcher = await make_user("dispatcher", name="调度员小陈")
    a = await make_worker(stores, client, city)
    b = await make_worker(stores, client, city, rating=(49, 10))
    ws_a = await online(address, a, (door[0] + 0.002, door[1]))
    ws_b = await online(address, b, (door[0] - 0.003, door[1] + 0.002))
    customer = await make_user("customer")
    order = await book_here(client, customer, instant_service, door)

    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors = _errors_of(page, expected_404="/plan?")  # GET …/plan is another branch's work
    await page.goto(f"http://{address}/console?city={city}")
    await page.fill("#login-phone", dispatcher.phone)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector('body[data-feed="live"]', timeout=WAIT_MS)
    await page.click(f'#orders [data-order-id="{order["id"]}"]')
    for w in (a, b):
        await page.wait_for_selector(f'#candidates tr[data-worker-id="{w.id}"]', timeout=WAIT_MS)
    await page.wait_for_selector('body[data-map-ready="1"]', timeout=WAIT_MS)
    await _shot(page, "console-candidates.png")

    # An override needs a reason.
    await page.click(f'#candidates button.assign[data-worker-id="{a.id}"]')
    await page.wait_for_selector("#reason.invalid", timeout=WAIT_MS)
    assert (
        await stores.pool.fetchval("SELECT worker_id FROM orders WHERE id = $1", order["id"])
        is None
    )

    await page.fill("#reason", "顾客要求尽快")
    await page.click(f'#candidates button.assign[data-worker-id="{a.id}"]')
    job = await next_of(ws_a, "job")
    assert (job["order_id"], job["status"]) == (order["id"], "assigned")

    async def holder() -> Any:
        return await stores.pool.fetchrow(
            "SELECT status, worker_id FROM orders WHERE id = $1", order["id"]
        )

    assert tuple(await holder()) == ("assigned", a.id)
    await page.wait_for_selector("#detail-message.ok", timeout=WAIT_MS)

    # Reassign by id (the assigned worker is busy, so not among the candidates any more).
    await page.fill("#reason", "改派给评分更高的师傅")
    await page.fill("#worker-input", str(b.id))
    await page.click("#assign-by-id")
    job_b = await next_of(ws_b, "job")
    assert (job_b["order_id"], job_b["status"]) == (order["id"], "assigned")
    withdrawn = await next_of(ws_a, "job")
    assert (withdrawn["order_id"], withdrawn["status"]) == (order["id"], "withdrawn")

    async def moved() -> bool:
        row = await holder()
        return tuple(row) == ("assigned", b.id)

    await _until(moved, "the order is held by worker b")

    async def audited() -> bool:  # the audit row is written just after the change
        rows = await stores.pool.fetch(
            "SELECT action, worker_id FROM overrides WHERE order_id = $1 ORDER BY id", order["id"]
        )
        return [tuple(r) for r in rows] == [("assign", a.id), ("assign", b.id)]

    await _until(audited, "both overrides are audited")
    await page.wait_for_selector(
        '#legend [data-category="en_route"] b:text-is("1")', timeout=WAIT_MS
    )

    # A worker's panel: last hour's trail, and no day plan (none exists).
    await page.click('#tabs button[data-tab="workers"]')
    await _select_worker(page, b.id)
    await page.wait_for_selector("#no-plan", timeout=WAIT_MS)
    await page_until(
        page,
        "() => /\\d/.test(document.getElementById('trail-info').textContent)",
        what="the trail's figures",
        timeout_ms=WAIT_MS,
    )
    await _shot(page, "console-worker.png")

    # The plan's rendering, in the WorkerPlan shape of the day-plans branch (issue #5), whose
    # endpoint is not on this branch: the browser is handed one such answer.
    plan = {
        "worker_id": a.id,
        "city_id": city,
        "date": "2026-01-01",
        "version": 3,
        "planned_at": "2026-01-01T00:00:00+00:00",
        "stops": [
            {
                "seq": 0,
                "order_id": order["id"],
                "status": "assigned",
                "service_code": instant_service,
                "window_start": "2026-01-01T01:00:00+00:00",
                "window_end": "2026-01-01T03:00:00+00:00",
                "arrival_at": "2026-01-01T01:10:00+00:00",
                "start_at": "2026-01-01T01:10:00+00:00",
                "departure_at": "2026-01-01T03:10:00+00:00",
                "slack_s": 600,
                "duration_min": 120,
                "lat": door[0],
                "lng": door[1],
                "address_detail": "",
            }
        ],
        "breaks": [],
        "travel_s": 300,
        "distance_m": 1500,
    }

    async def fulfil(route: Any) -> None:
        await route.fulfill(status=200, content_type="application/json", body=orjson.dumps(plan))

    await page.route(f"**/v1/workers/{a.id}/plan?*", fulfil)
    await _select_worker(page, a.id)
    stop = page.locator(f'#plan-stops li[data-order-id="{order["id"]}"]')
    await stop.wait_for(timeout=WAIT_MS)
    assert "09:10–11:10" in await stop.inner_text()  # Asia/Shanghai times
    await context.close()
    for ws in (ws_a, ws_b):
        await ws.close()
    assert errors == [], errors


async def test_console_assigns_a_crew_and_replaces_a_member(
    live_app: tuple[str, Any],
    browser: Any,
    pages_city: tuple[str, tuple[float, float]],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Any,
) -> None:
    """In the console a dispatcher adds two candidates to a crew order's crew and assigns it (both sockets get the job), then gives one member's seat to a third worker (withdrawn / assigned); the audit has both; another dispatcher's replacement reaches the open panel through the feed."""
    from tests.test_crew_booking import crew_service

    address = live_app[0]
    city, door = pages_city
    service = await crew_service(client, admin, 2)
    dispatcher = await make_user("dispatcher", name="调度员小林")
    a, b, c = [await make_worker(stores, client, city) for _ in range(3)]
    sockets = [
        await online(address, w, (door[0] + 0.001 * (i + 1), door[1]))
        for i, w in enumerate((a, b, c))
    ]
    order = await book_here(client, await make_user("customer"), service, door)

    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/console?city={city}")
    await page.fill("#login-phone", dispatcher.phone)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector('body[data-feed="live"]', timeout=WAIT_MS)
    await page.click(f'#orders [data-order-id="{order["id"]}"]')
    for w in (a, b):
        await page.wait_for_selector(
            f'#candidates button.add-to-crew[data-worker-id="{w.id}"]', timeout=WAIT_MS
        )
    assert await page.locator("#assign-by-id").count() == 0  # never one worker for a crew
    await page.click(f'#candidates button.add-to-crew[data-worker-id="{a.id}"]')
    await page.click(f'#candidates button.add-to-crew[data-worker-id="{b.id}"]')
    assert await page.input_value("#crew-input") == f"{a.id}, {b.id}"
    await page.fill("#reason", "顾客指定两位师傅")
    await page.click("#assign-crew")
    for ws in sockets[:2]:
        job = await next_of(ws, "job")
        assert (job["order_id"], job["status"]) == (order["id"], "assigned")
    await page.wait_for_selector("#detail-message.ok", timeout=WAIT_MS)
    crew = await stores.pool.fetchval(
        "SELECT crew FROM (SELECT array_agg(worker_id ORDER BY seat) AS crew FROM order_crew "
        "WHERE order_id = $1 AND released_at IS NULL) x",
        order["id"],
    )
    assert list(crew) == [a.id, b.id]
    await _shot(page, "console-crew.png")

    # One member's seat to the third worker.
    await page.wait_for_selector("#replace-member", timeout=WAIT_MS)
    await page.select_option("#replace-out", str(b.id))
    await page.fill("#replace-in", str(c.id))
    await page.fill("#reason", "师傅临时有事")
    await page.click("#replace-member")
    gone = await next_of(sockets[1], "job")
    assert (gone["order_id"], gone["status"]) == (order["id"], "withdrawn")
    joined = await next_of(sockets[2], "job")
    assert (joined["order_id"], joined["status"]) == (order["id"], "assigned")

    async def audited() -> bool:
        rows = await stores.pool.fetch(
            "SELECT action, worker_id FROM overrides WHERE order_id = $1 ORDER BY id", order["id"]
        )
        return [tuple(r) for r in rows] == [("assign_crew", a.id), ("replace_member", c.id)]

    await _until(audited, "both crew overrides are audited")
    await page.wait_for_selector("#detail-message.ok", timeout=WAIT_MS)
    options = await page.locator("#replace-out option").evaluate_all(
        "(os) => os.map((o) => Number(o.value))"
    )
    assert options == [a.id, c.id]

    # Another dispatcher gives c's seat to a fourth worker: the open panel follows the
    # feed (its crew and the replace choices), keeping what this dispatcher typed.
    d = await make_worker(stores, client, city)
    sockets.append(await online(address, d, (door[0] + 0.004, door[1])))
    await page.fill("#reason", "正在填写")
    other = await make_user("dispatcher", name="调度员小周")
    r = await client.post(
        f"/v1/orders/{order['id']}/crew/replace",
        json={"out_worker_id": c.id, "in_worker_id": d.id, "reason": "另一位调度员改派"},
        headers=other.auth,
    )
    assert r.status_code == 200, r.text
    await page_until(
        page,
        "([a, d]) => { const os = [...document.querySelectorAll('#replace-out option')];"
        " return os.length === 2 && Number(os[0].value) === a && Number(os[1].value) === d; }",
        [a.id, d.id],
        what="the replace choices to follow the feed",
        timeout_ms=WAIT_MS,
    )
    assert f"#{d.id}" in await page.inner_text("#order-crew")
    assert await page.input_value("#reason") == "正在填写"
    await context.close()
    for ws in sockets:
        await ws.close()
    assert errors == []


# Each candidate's crew buttons (add to crew, put in a seat) by worker id: enabled, and why not.
_CREW_BUTTONS = (
    "() => Object.fromEntries([...document.querySelectorAll("
    "'#candidates button.add-to-crew, #candidates button.replace-with')].map((b) =>"
    " [`${b.className.includes('add-to-crew') ? 'add' : 'seat'}:${b.dataset.workerId}`,"
    " b.disabled ? `off:${b.title}` : 'on']))"
)


async def _crew_buttons_are(page: Any, want: dict[str, str], what: str) -> None:
    """Wait until the candidates' crew buttons are as ``want`` says (key ``add:<id>`` or
    ``seat:<id>``; "on", or "off" with a reason given)."""
    await page_until(
        page,
        f"(want) => {{ const got = ({_CREW_BUTTONS})(); return Object.entries(want).every("
        "([k, v]) => v === 'on' ? got[k] === 'on' : (got[k] === undefined"
        " || (got[k].startsWith('off:') && got[k].length > 4))); }",
        want,
        what=what,
        timeout_ms=WAIT_MS,
    )


async def test_console_crew_candidates_leave_out_the_crew(
    live_app: tuple[str, Any],
    browser: Any,
    pages_city: tuple[str, tuple[float, float]],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Any,
) -> None:
    """A crew order's candidates offer nobody already in the crew: one added to (or typed into) the crew being named is disabled with the reason, and adding them again leaves the lead first; once another dispatcher's crew holds the order its members are disabled in the open list, and after reopening only others can be put in a seat."""
    from tests.test_crew_booking import crew_service

    address = live_app[0]
    city, door = pages_city
    service = await crew_service(client, admin, 2)
    dispatcher = await make_user("dispatcher", name="调度员小吴")
    a, b, c = [await make_worker(stores, client, city) for _ in range(3)]
    sockets = [
        await online(address, w, (door[0] + 0.001 * (i + 1), door[1]))
        for i, w in enumerate((a, b, c))
    ]
    order = await book_here(client, await make_user("customer"), service, door)

    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/console?city={city}")
    await page.fill("#login-phone", dispatcher.phone)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector('body[data-feed="live"]', timeout=WAIT_MS)
    await _select_order(page, order["id"])
    await _crew_buttons_are(
        page, {f"add:{w.id}": "on" for w in (a, b, c)}, "every candidate can be added"
    )
    await page.click(f'#candidates button.add-to-crew[data-worker-id="{a.id}"]')
    await _crew_buttons_are(
        page,
        {f"add:{a.id}": "off", f"add:{b.id}": "on", f"add:{c.id}": "on"},
        "the one added is disabled, with the reason",
    )
    await page.click(f'#candidates button.add-to-crew[data-worker-id="{b.id}"]')
    # a's button cannot be clicked again: the lead stays first.
    assert await page.is_disabled(f'#candidates button.add-to-crew[data-worker-id="{a.id}"]')
    assert await page.input_value("#crew-input") == f"{a.id}, {b.id}"
    # Typed ids count too.
    await page.fill("#crew-input", str(c.id))
    await _crew_buttons_are(
        page,
        {f"add:{a.id}": "on", f"add:{b.id}": "on", f"add:{c.id}": "off"},
        "the typed id is disabled, the others free again",
    )

    # Another dispatcher's crew takes the order: the open list follows the feed.
    other = await make_user("dispatcher", name="调度员小郑")
    r = await client.post(
        f"/v1/orders/{order['id']}/crew/assign",
        json={"worker_ids": [a.id, b.id], "reason": "另一位调度员指派"},
        headers=other.auth,
    )
    assert r.status_code == 200, r.text
    await page.fill("#crew-input", "")
    await _crew_buttons_are(
        page,
        {f"add:{a.id}": "off", f"add:{b.id}": "off", f"add:{c.id}": "on"},
        "the crew holding the order is disabled in the open list",
    )

    # Reopened while the crew holds it: only others can be put in a seat.
    await page.check("#show-active")  # the list shows held orders too
    await _select_order(page, order["id"], "#replace-member")
    await _crew_buttons_are(
        page,
        {f"seat:{c.id}": "on", f"seat:{a.id}": "off", f"seat:{b.id}": "off"},
        "a seat for those outside the crew only",
    )
    await _shot(page, "console-crew-candidates.png")
    await page.click(f'#candidates button.replace-with[data-worker-id="{c.id}"]')
    assert await page.input_value("#replace-in") == str(c.id)
    await context.close()
    for ws in sockets:
        await ws.close()
    assert errors == []

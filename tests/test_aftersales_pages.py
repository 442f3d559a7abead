"""After-sales in Chromium: the customer opens a ticket from a completed order's page and
follows it; customer service finds it in the back-office queue with its timers, reads the
evidence and resolves it; the spot-check call-backs are listed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from tests import files_samples as s
from tests.crew_orders import crew_order
from tests.helpers import Account, MakeUser
from tests.live import make_worker
from tests.test_aftersales import _order
from tests.test_apps import DESK, PHONE, _errors_of, _shot, _sign_in
from tests.test_crew_booking import crew_service
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_a_customer_opens_a_ticket_and_customer_service_resolves_it(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """The order page's form sends kind, text, amount and a photo; the ticket page shows it; the queue lists it with timers; the ticket shows its photo, timeline and trail; compensation resolves it and the customer sees the outcome."""
    address = live_app[0]
    customer = await make_user("customer")
    worker = await make_worker(stores, client, live_city)
    order_id = await _order(stores, live_city, instant_service, customer.id, worker.id)
    await stores.pool.execute(
        "INSERT INTO trail_points (worker_id, ts, lat, lng, accuracy_m, seq, received_at) "
        "SELECT $1, now() - interval '2 hours' + i * interval '2 minutes', 22.53 + i * 0.0004, "
        "114.01 + i * i * 0.00002, 5, i, now() FROM generate_series(0, 30) i",
        worker.id,
    )
    steps = [
        ("book", None, "created", "customer", 230),
        ("confirm", "created", "confirmed", "system", 229),
        ("accept", "offered", "assigned", "worker", 225),
        ("depart", "assigned", "en_route", "worker", 180),
        ("arrive", "en_route", "arrived", "worker", 120),
        ("start", "arrived", "in_service", "worker", 115),
        ("complete", "in_service", "completed", "worker", 1),
    ]
    for action, before, after, actor, minutes_ago in steps:
        await stores.pool.execute(
            "INSERT INTO order_events (order_id, at, action, from_status, to_status, actor) "
            "VALUES ($1, now() - make_interval(mins => $2), $3, $4, $5, $6)",
            order_id,
            minutes_ago,
            action,
            before,
            after,
            actor,
        )

    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/app#/order/{order_id}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#aftersales #asc-new", timeout=WAIT_MS)
    await page.click("#asc-new")
    await page.select_option("#asc-kind", "compensation")
    await page.fill("#asc-desc", "师傅打碎了一个杯子，地板也没拖干净")
    await page.fill("#asc-asked", "30.50")
    await page.set_input_files(
        "#asc-photo-input",
        files=[{"name": "cup.jpg", "mimeType": "image/jpeg", "buffer": s.jpeg()}],
    )
    await page.wait_for_selector("#asc-photos img", timeout=WAIT_MS)
    await _shot(page, "app-aftersales-form.png", full=True)
    await page.click("#asc-submit")
    await page.wait_for_selector("#ticket[data-status=open]", timeout=WAIT_MS)
    row = await stores.pool.fetchrow(
        "SELECT id, kind, asked_fen FROM aftersales_tickets WHERE order_id = $1", order_id
    )
    assert row is not None
    assert (row["kind"], row["asked_fen"]) == ("compensation", 3050)
    ticket = int(row["id"])
    await page.wait_for_selector("#ticket-notes img", timeout=WAIT_MS)
    await page.fill('#ticket-message textarea[name="body"]', "杯子是朋友送的")
    await page.click("#ticket-message button[type=submit]")
    await page.wait_for_selector("#ticket-notes li:nth-child(2)", timeout=WAIT_MS)
    await page.evaluate("document.getElementById('toast')?.remove()")  # not in the picture
    await _shot(page, "app-aftersales-ticket.png", full=True)

    staff = await make_user("dispatcher", name="客服小王")
    desk = await browser.new_context(**DESK)
    back = await desk.new_page()
    back_errors = _errors_of(back)
    await back.goto(f"http://{address}/admin#/aftersales")
    await _sign_in(back, staff.phone)
    await back.wait_for_selector(
        f'#as-queue tr[data-ticket="{ticket}"] [data-timer=first]', timeout=WAIT_MS
    )
    await _shot(back, "admin-aftersales-queue.png")
    await back.click(f"#ticket-{ticket}")
    await back.wait_for_selector("#as-evidence #as-trail-svg", timeout=WAIT_MS)
    await back.wait_for_selector("#as-notes img", timeout=WAIT_MS)
    await back.fill('#as-resolve input[name="compensation"]', "30")
    await back.fill('#as-resolve input[name="note"]', "赔偿杯子")
    await back.check('#as-resolve input[name="worker_at_fault"]')
    await back.evaluate("document.getElementById('toast')?.remove()")
    await _shot(back, "admin-aftersales-ticket.png", full=True)
    await back.click("#as-resolve button[type=submit]")
    await back.wait_for_selector('#as-outcomes [data-outcome="compensation"]', timeout=WAIT_MS)
    status = await stores.pool.fetchval(
        "SELECT status FROM aftersales_tickets WHERE id = $1", ticket
    )
    assert status == "resolved"
    await back.click("#as-tab-spot")
    await back.wait_for_selector("#as-spot", timeout=WAIT_MS)

    await page.reload()
    await page.wait_for_selector('#ticket-outcome [data-outcome="compensation"]', timeout=WAIT_MS)
    await _shot(page, "app-aftersales-outcome.png")
    assert errors == []
    assert back_errors == []
    await context.close()
    await desk.close()


async def test_the_worker_states_their_case_from_their_app(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    instant_service: str,
) -> None:
    """The worker's app lists the tickets on their jobs; their statement makes the ticket a dispute and the form goes."""
    address = live_app[0]
    customer = await make_user("customer")
    worker = await make_worker(stores, client, live_city)
    order_id = await _order(stores, live_city, instant_service, customer.id, worker.id)
    r = await client.post(
        f"/v1/orders/{order_id}/aftersales",
        headers=customer.auth,
        json={"kind": "complaint", "description": "师傅态度不好"},
    )
    assert r.status_code == 201, r.text
    ticket = r.json()["ticket"]["id"]
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/worker#/aftersales")
    await _sign_in(page, worker.phone)
    box = f'#worker-aftersales .statement-form[data-ticket="{ticket}"]'
    await page.wait_for_selector(box, timeout=WAIT_MS)
    assert "师傅态度不好" in await page.inner_text("#worker-aftersales")
    await page.fill(f"{box} textarea", "我全程礼貌，有录音为证")
    await _shot(page, "worker-aftersales.png")
    await page.click(f"{box} button[type=submit]")
    await page.wait_for_selector(
        f'#worker-aftersales li[data-ticket="{ticket}"][data-status="disputed"]', timeout=WAIT_MS
    )
    assert await page.query_selector(box) is None
    status = await stores.pool.fetchval(
        "SELECT status FROM aftersales_tickets WHERE id = $1", ticket
    )
    assert status == "disputed"
    assert errors == []
    await context.close()


async def test_a_customer_insures_a_booking_from_the_booking_page(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Any,
    live_city: str,
) -> None:
    """A service with an insurance option shows a checkbox with premium and cover on the booking form; ticked, the order carries the cover and the premium line; a service without one shows none."""
    from tests.helpers import new_phone
    from tests.live import DEST
    from tests.planning import make_service

    address = live_app[0]
    code = await make_service(client, admin, instant=True)
    r = await client.put(
        f"/v1/admin/services/{code}/insurance",
        headers=admin.auth,
        json={"premium_fen": 800, "coverage_fen": 100000},
    )
    assert r.status_code == 200, r.text
    bare = await make_service(client, admin, instant=True)
    r = await client.get(f"/v1/services/{bare}/insurance")
    assert (r.status_code, r.json()["active"]) == (200, False)
    customer = await make_user("customer")
    r = await client.post(
        "/v1/me/addresses",
        headers=customer.auth,
        json={
            "label": "家",
            "detail": "保险路1号",
            "lat": DEST[0],
            "lng": DEST[1],
            "crs": "wgs84",
            "contact_phone": new_phone(),
        },
    )
    assert r.status_code == 201, r.text
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page, (404, "/v1/me/inbox"))
    await page.goto(f"http://{address}/app#/book/{bare}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#book-form", timeout=WAIT_MS)
    assert await page.locator("#insured").count() == 0
    await page.goto(f"http://{address}/app#/book/{code}")
    await page.wait_for_selector("#insured-row", timeout=WAIT_MS)
    text = await page.inner_text("#insured-row")
    assert "¥8" in text, text
    assert "¥1000" in text or "¥1,000" in text, text
    await page.check("#insured")
    await _shot(page, "app-book-insured.png")
    await page.click("#submit-booking")
    await page.wait_for_selector("#order .status", timeout=WAIT_MS)
    row = await stores.pool.fetchrow(
        "SELECT i.premium_fen, i.coverage_fen FROM order_insurance i JOIN orders o "
        "ON o.id = i.order_id WHERE o.customer_id = $1",
        customer.id,
    )
    assert row is not None
    assert (row["premium_fen"], row["coverage_fen"]) == (800, 100000)
    await context.close()
    assert errors == [], errors


async def test_the_evidence_of_a_crew_order_draws_every_members_trail(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    admin: Account,
) -> None:
    """Customer service reading a crew order's ticket sees one line per member on the trail drawing, the lead first, with a legend naming each member and their fixes."""
    address = live_app[0]
    service = await crew_service(client, admin, 2)
    crew = [await make_worker(stores, client, live_city) for _ in range(2)]
    customer = await make_user("customer")
    order_id = await crew_order(
        stores,
        city=live_city,
        service=service,
        customer=customer.id,
        crew=[w.id for w in crew],
        completed=True,
    )
    for k, w in enumerate(crew):  # two different walks during the job (it ran 3 h to now)
        await stores.pool.execute(
            "INSERT INTO trail_points (worker_id, ts, lat, lng, accuracy_m, seq, received_at) "
            "SELECT $1, now() - interval '2 hours' + i * interval '2 minutes', "
            "22.53 + i * 0.0004 * $2, 114.01 + i * 0.0003, 5, i, now() "
            "FROM generate_series(0, $3) i",
            w.id,
            1 - 2 * k,
            20 + 5 * k,
        )
    r = await client.post(
        f"/v1/orders/{order_id}/aftersales",
        headers=customer.auth,
        json={"kind": "complaint", "description": "两位师傅一直在外面走来走去"},
    )
    assert r.status_code == 201, r.text
    ticket = r.json()["ticket"]["id"]

    staff = await make_user("dispatcher", name="客服小李")
    desk = await browser.new_context(**DESK)
    back = await desk.new_page()
    errors = _errors_of(back)
    await back.goto(f"http://{address}/admin#/aftersales")
    await _sign_in(back, staff.phone)
    await back.wait_for_selector(f'#as-queue tr[data-ticket="{ticket}"]', timeout=WAIT_MS)
    await back.click(f"#ticket-{ticket}")
    await back.wait_for_selector("#as-evidence #as-trail-svg", timeout=WAIT_MS)
    lines = await back.eval_on_selector_all(
        "#as-trail-svg polyline",
        "ls => ls.map(l => [l.dataset.workerId, l.getAttribute('stroke')])",
    )
    assert [int(w) for w, _ in lines] == [w.id for w in crew]
    assert lines[0][1] != lines[1][1]  # told apart by colour
    legend = await back.eval_on_selector_all(
        "#as-crew-trails li", "ls => ls.map(l => [l.dataset.workerId, l.textContent])"
    )
    assert [int(w) for w, _ in legend] == [w.id for w in crew]
    await back.evaluate("document.getElementById('toast')?.remove()")
    await _shot(back, "admin-aftersales-crew-trails.png", full=True)
    assert [text.strip() for _, text in legend] == [
        f"领队 #{crew[0].id}（21 个定位点）",
        f"师傅 #{crew[1].id}（26 个定位点）",
    ]
    await desk.close()
    assert errors == [], errors

"""Reviews in the customer's app, in Chromium: the rating form's dimensions, tags and photo,
an edit within the window, and the worker's profile page with badges, dimension averages
and the worker's reply."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from tests import files_samples as s
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, make_worker
from tests.test_apps import PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures
from tests.test_reviews import completed, photo

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def _badge(client: httpx.AsyncClient, admin: Account, worker: Account) -> str:
    """A verified, unexpired certificate of a fresh kind for ``worker``; the kind's code."""
    kind = f"ck_{secrets.token_hex(3)}"
    r = await client.post(
        "/v1/certificate-kinds",
        headers=admin.auth,
        json={"code": kind, "name_zh": "电工证", "name_en": "Electrician", "validity_years": 6},
    )
    assert r.status_code == 201, r.text
    today = datetime.now(UTC).date()
    r = await client.post(
        f"/v1/workers/{worker.id}/certificates",
        headers=admin.auth,
        json={
            "kind": kind,
            "number": "SECRET-NUMBER-42",
            "issued_on": (today - timedelta(days=30)).isoformat(),
            "expires_on": (today + timedelta(days=300)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    r = await client.put(
        f"/v1/workers/{worker.id}/certificates/{r.json()['id']}/status",
        headers=admin.auth,
        json={"status": "verified"},
    )
    assert r.status_code == 200, r.text
    return kind


async def test_customer_reviews_with_dimensions_tags_photo_edits_and_sees_the_profile(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
    engine_city: EngineCity,
) -> None:
    """The form sends stars, three dimensions, two tags, text and a photo; the edit moves the worker's sum; the worker replies in their app; the profile shows badges, averages and the reply."""
    address = live_app[0]
    customer = await make_user("customer")
    worker = await make_worker(stores, client, engine_city.id)
    order_id = await completed(client, stores, customer, worker, instant_service, engine_city)
    kind = await _badge(client, admin, worker)
    avatar = await photo(client, worker, "avatar")
    r = await client.put(
        "/v1/workers/me/profile",
        headers=worker.auth,
        json={"photo_file_id": avatar, "working_since": "2015-03-01"},
    )
    assert r.status_code == 204, r.text

    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/app#/order/{order_id}")
    await _sign_in(page, customer.phone)
    await page.wait_for_selector("#rating-form #tag-pick .chip", timeout=WAIT_MS)
    await page.click('#stars button[data-stars="4"]')
    for dim, n in (("quality", 5), ("attitude", 4), ("punctuality", 3)):
        await page.click(f'#dim-{dim} button[data-stars="{n}"]')
    await page.click('#tag-pick [data-tag="准时"]')
    await page.click('#tag-pick [data-tag="专业"]')
    await page.fill('#rating-form textarea[name="text"]', "修得很仔细")
    await page.set_input_files(
        "#review-photo-input",
        files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": s.jpeg()}],
    )
    await page.wait_for_selector("#review-photos img", timeout=WAIT_MS)
    await _shot(page, "app-review-form.png", full=True)
    await page.click("#rating-form button[type=submit]")
    await page.wait_for_selector("#my-rating #edit-rating", timeout=WAIT_MS)
    row = await stores.pool.fetchrow(
        "SELECT stars, quality, attitude, punctuality, tags, text, cardinality(photo_ids) AS n "
        "FROM ratings WHERE order_id = $1",
        order_id,
    )
    assert row is not None
    assert tuple(row) == (4, 5, 4, 3, ["准时", "专业"], "修得很仔细", 1)

    # Within the window the customer edits it: five stars now; the worker's sum follows.
    await page.click("#edit-rating")
    await page.wait_for_selector("#rating-form", timeout=WAIT_MS)
    await page.click('#stars button[data-stars="5"]')
    await page.click("#rating-form button[type=submit]")
    await page.wait_for_selector("#my-rating", timeout=WAIT_MS)
    sums = await stores.pool.fetchrow(
        "SELECT rating_sum, rating_count FROM workers WHERE user_id = $1", worker.id
    )
    assert sums is not None
    assert tuple(sums) == (5, 1)

    # The worker replies from their app, under the review of their job.
    wctx = await browser.new_context(**PHONE)
    wpage = await wctx.new_page()
    errors += _errors_of(wpage)
    await wpage.goto(f"http://{address}/worker#/reviews")
    await _sign_in(wpage, worker.phone)
    box = f'#reviews .reply-form[data-order="{order_id}"]'
    await wpage.wait_for_selector(box, timeout=WAIT_MS)
    assert "修得很仔细" in await wpage.inner_text("#reviews")
    await wpage.fill(f"{box} textarea", "感谢认可！")
    await _shot(wpage, "worker-review-reply.png")
    await wpage.click(f"{box} button[type=submit]")
    await wpage.wait_for_selector(f'#reviews li[data-order="{order_id}"] .reply', timeout=WAIT_MS)
    assert await wpage.query_selector(box) is None  # one reply: the box is gone
    await wctx.close()
    reply = await stores.pool.fetchval("SELECT reply FROM ratings WHERE order_id = $1", order_id)
    assert reply == "感谢认可！"
    await page.goto(f"http://{address}/app#/worker/{worker.id}")
    await page.wait_for_selector("#worker-card #badges", timeout=WAIT_MS)
    card = await page.inner_text("main")
    assert "电工证" in card
    assert "SECRET-NUMBER" not in card
    assert "从业" in await page.inner_text("#worker-years")
    assert await page.get_attribute(f'#badges [data-kind="{kind}"]', "data-kind") == kind
    assert "5.0" in await page.inner_text('#worker-aggregates [data-dim="quality"]')
    assert "感谢认可！" in card
    assert "准时" in await page.inner_text("#worker-aggregates")
    await page.wait_for_selector("#worker-photo", timeout=WAIT_MS)
    await page.wait_for_selector(".review-thumbs img", timeout=WAIT_MS)  # the review's photo
    await _shot(page, "app-worker-profile.png", full=True)

    await page.goto(f"http://{address}/app#/service/{instant_service}")
    await page.wait_for_selector("#review-summary", timeout=WAIT_MS)
    assert "准时" in await page.inner_text("#service-aggregates")
    await context.close()
    # A visitor who is not signed in sees the review and how many photos it has; the
    # photos' links need a sign-in, and the page asks for none (no 401 in the console).
    vctx = await browser.new_context(**PHONE)
    visitor = await vctx.new_page()
    errors += _errors_of(visitor, (404, "/v1/me/inbox"))
    await visitor.goto(f"http://{address}/app#/service/{instant_service}")
    await visitor.wait_for_selector("#review-summary", timeout=WAIT_MS)
    await visitor.wait_for_selector(".review-thumbs", timeout=WAIT_MS)
    assert await visitor.locator(".review-thumbs img").count() == 0
    assert "登录后查看" in await visitor.inner_text(".review-thumbs")
    await vctx.close()
    assert errors == [], errors

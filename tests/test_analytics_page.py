"""The analytics page in a real browser (Playwright driving Debian's Chromium, headless):
an admin signs in, sees the seeded city's figures, the heatmap and the tables, and
exports a table as CSV. Any script error, console error or failed request fails it.
The screenshot goes to ``.artifacts/screenshots/analytics.png`` (docs/img has a copy).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from doorstep.stores import Stores
from tests.analytics_seed import SeededCity, seed_city
from tests.helpers import PASSWORD, MakeUser
from tests.test_pages import CHROMIUM, SHOTS, WAIT_MS, _errors_of, _why_no_browser

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


@pytest.fixture(scope="module")
async def seeded(stores: Stores) -> SeededCity:
    """A city with 800 orders over 10 days from the demand model."""
    from tests.conftest import RUN_ID

    return await seed_city(stores, f"board-{RUN_ID}", orders=800, days=10)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's, not a Playwright download)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        await chromium.close()


async def test_analytics_page_shows_the_figures_and_exports_csv(
    live_app: tuple[str, Any],
    stores: Stores,
    make_user: MakeUser,
    browser: Any,
    seeded: SeededCity,
    tmp_path: Path,
) -> None:
    """The page shows the seeded city's order count, GMV and heatmap, switches tables,
    and its CSV export holds the same rows as the database."""
    admin = await make_user("admin", name="运营")
    pool = stores.pool
    gmv = await pool.fetchval(
        "SELECT sum(price_minor) FROM orders WHERE city_id = $1 AND status = 'completed'",
        seeded.city_id,
    )
    by_category = await pool.fetch(
        "SELECT s.category, count(*) AS n FROM orders o JOIN services s ON s.code = o.service_code "
        "WHERE o.city_id = $1 GROUP BY 1 ORDER BY 1",
        seeded.city_id,
    )
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    page = await context.new_page()
    errors = _errors_of(page)
    url = (
        f"http://{live_app[0]}/admin/analytics?city={seeded.city_id}"
        f"&from={seeded.first_day.isoformat()}&to={seeded.last_day.isoformat()}"
    )
    await page.goto(url)
    await page.fill("#login-phone", admin.phone)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector('body[data-loaded="1"]', timeout=WAIT_MS)
    assert await page.text_content("#kpi-orders .value") == "800"
    # Whole yuan rounded half up, as the page's Intl.NumberFormat does (Python's round()
    # rounds half to even: ¥104,614.50 was shown ¥104,615 and expected ¥104,614).
    assert await page.text_content("#kpi-gmv .value") == f"¥{(gmv + 50) // 100:,}"
    assert await page.text_content("#kpi-orders .label") == "订单数"
    assert await page.get_attribute("#table", "data-rows") == "10"  # one row per day
    assert await page.locator("#trend-line").count() == 1
    heat_max = await page.text_content("#heat-max")
    assert heat_max is not None
    assert heat_max.startswith("最高 ")
    await page.wait_for_timeout(500)  # the basemap's roads finish drawing
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "analytics.png"))

    await page.click('#tabs button[data-tab="category"]')
    await page.wait_for_selector('#table[data-tab="category"]', timeout=WAIT_MS)
    assert await page.get_attribute("#table", "data-rows") == str(len(by_category))
    async with page.expect_download(timeout=WAIT_MS) as info:
        await page.click("#export-csv")
    download = await info.value
    assert download.suggested_filename.startswith(f"by-category-{seeded.city_id}-")
    saved = tmp_path / "export.csv"
    await download.save_as(saved)
    lines = list(csv.reader(io.StringIO(saved.read_text("utf-8-sig"))))
    assert lines[0][:2] == ["品类", "订单数"]
    assert [(x[0], int(x[1])) for x in lines[1:]] == [(r["category"], r["n"]) for r in by_category]

    # English on request.
    await page.goto(url + "&lang=en")
    await page.wait_for_selector('body[data-loaded="1"]', timeout=WAIT_MS)
    assert await page.text_content("#kpi-orders .label") == "Orders"
    assert await page.text_content("#kpi-orders .value") == "800"
    await context.close()
    assert errors == []

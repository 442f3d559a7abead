"""The pages' duration format in a real browser: hours appear from 60 minutes on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_pages import CHROMIUM, _why_no_browser

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_durations_past_an_hour_show_hours(live_app: tuple[str, Any]) -> None:
    """mmss (the console's SLA countdown, the ETA) is mm:ss under an hour and h:mm:ss from an hour on, never 1671:12."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"http://{live_app[0]}/console")
            shown = await page.evaluate(
                """async () => {
                  const { mmss } = await import("/static/common.js");
                  return [0, 59.6, 3599, 3600, 100272, 1671 * 60 + 12, -5].map(mmss);
                }"""
            )
        finally:
            await browser.close()
    assert shown == ["00:00", "01:00", "59:59", "1:00:00", "27:51:12", "27:51:12", "00:00"]

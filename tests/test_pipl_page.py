"""The customer's 个人信息 card in a real browser: export downloads the JSON of one's data,
asking for deletion freezes the account and shows the cancel code, the signed-out page
cancels with it (docs/privacy.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from tests.helpers import MakeUser
from tests.live import make_worker
from tests.test_apps import NO_INBOX, PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import (  # noqa: F401 - fixtures
    WAIT_MS,
    _why_no_browser,
    browser,
)

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_export_then_delete_then_cancel_in_the_app(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    make_user: MakeUser,
    tmp_path: Path,
) -> None:
    """我的: 导出我的数据 downloads the account's JSON; 申请注销 without the box ticked names
    the field, with it freezes the account and shows the code; signed out, 撤销注销 with the
    code gives the account back (the customer signs in again). No script errors."""
    address = live_app[0]
    customer = await make_user("customer", name="隐私测试")
    context = await browser.new_context(**PHONE, locale="zh-CN", accept_downloads=True)
    page = await context.new_page()
    # The 401s of the frozen account's last calls are expected.
    errors = _errors_of(page, NO_INBOX, (401, "/v1/"), (422, "/v1/me/deletion"))
    page.on("dialog", lambda d: d.accept())
    await page.goto(f"http://{address}/app#/me")
    await _sign_in(page, customer.phone)  # signed in, the app goes home
    await page.wait_for_selector("body[data-ready=home]", timeout=WAIT_MS)
    await page.goto(f"http://{address}/app#/me")
    await page.wait_for_selector("#privacy #export", timeout=WAIT_MS)
    assert await page.inner_text("#privacy h3") == "个人信息"
    async with page.expect_download(timeout=WAIT_MS) as info:
        await page.click("#export")
    download = await info.value
    path = tmp_path / "export.json"
    await download.save_as(path)
    data = json.loads(path.read_text())
    assert data["account"]["phone"] == customer.phone
    assert download.suggested_filename == f"doorstep-export-{customer.id}.json"
    await page.wait_for_selector("#toast", state="hidden", timeout=WAIT_MS)
    await _shot(page, "app-privacy.png", full=True)

    await page.click("#delete-account")  # the box is not ticked: 422 on `confirm`
    await page.wait_for_selector("#delete-form .field-error[data-for=confirm]", timeout=WAIT_MS)
    await page.check("#delete-confirm")
    await page.click("#delete-account")
    await page.wait_for_selector("#cancel-code", timeout=WAIT_MS)
    code = (await page.inner_text("#cancel-code")).strip()
    assert len(code) >= 20
    await _shot(page, "app-privacy-deleted.png", full=True)

    await page.reload()  # signed out: 我的 shows the sign-in and the cancel form
    await page.wait_for_selector("body[data-ready=meView] #cancel-deletion-form", timeout=WAIT_MS)
    await page.fill("#cancel-deletion-form [name=code]", code)
    await page.click("#cancel-deletion-form button[type=submit]")
    await page.wait_for_selector("#cancel-deletion-form[data-done]", timeout=WAIT_MS)
    await _sign_in(page, customer.phone)  # signed in, the app goes home
    await page.wait_for_selector("body[data-ready=home]", timeout=WAIT_MS)
    await page.goto(f"http://{address}/app#/me")
    await page.wait_for_selector("#privacy", timeout=WAIT_MS)
    await context.close()
    assert errors == [], errors

    context = await browser.new_context(**PHONE, locale="en-US")
    page = await context.new_page()
    await page.goto(f"http://{address}/app?lang=en#/me")
    await page.wait_for_selector("#cancel-deletion-form h3", timeout=WAIT_MS)
    assert await page.inner_text("#cancel-deletion-form h3") == "Cancel a deletion"
    await context.close()


async def test_a_worker_exports_from_the_worker_app(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    stores: Stores,
    client: httpx.AsyncClient,
    live_city: str,
    tmp_path: Path,
) -> None:
    """The worker's 我的 has the same 个人信息 card: 导出我的数据 downloads their JSON."""
    address = live_app[0]
    worker = await make_worker(stores, client, live_city)
    context = await browser.new_context(**PHONE, locale="zh-CN", accept_downloads=True)
    page = await context.new_page()
    errors = _errors_of(page, NO_INBOX)
    await page.goto(f"http://{address}/worker#/me")
    await _sign_in(page, worker.phone)  # signed in, the app routes to #/me
    await page.wait_for_selector("#privacy #export", timeout=WAIT_MS)
    async with page.expect_download(timeout=WAIT_MS) as info:
        await page.click("#export")
    download = await info.value
    path = tmp_path / "worker.json"
    await download.save_as(path)
    assert json.loads(path.read_text())["account"]["phone"] == worker.phone
    assert await page.is_visible("#delete-account")
    await context.close()
    assert errors == [], errors

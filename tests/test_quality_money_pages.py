"""A fine in the worker's wallet page, in a real browser (Debian's Chromium, headless): what
it took, what is owed, fines and bonuses so far. Any script error fails it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.test_apps import PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import WAIT_MS, _why_no_browser, browser  # noqa: F401 - fixtures
from tests.test_settlement import _fund, _svc, _worker

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


async def test_the_worker_sees_a_fine_beyond_the_balance_as_owed(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    live_city: str,
    instant_service: str,
) -> None:
    """¥100 in the wallet, a ¥130 fine: the page shows ¥0 available, ¥30 owed, ¥130 of fines."""
    customer: Account = await make_user("customer")
    worker = await _worker(stores, client, live_city)
    await _fund(_svc(live_app), stores, live_city, instant_service, customer.id, worker.id, 10000)
    r = await client.post(
        "/v1/discipline/actions",
        headers=admin.auth,
        json={"worker_id": worker.id, "kind": "fine", "reason": "爽约两次", "amount_fen": 13000},
    )
    assert r.status_code == 201, r.text
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/worker#/earnings")
    await _sign_in(page, worker.phone)
    await page.wait_for_selector("#wallet-owed", timeout=WAIT_MS)
    assert await page.inner_text("#wallet-available") == "¥0"
    assert await page.inner_text("#wallet-owed") == "¥30"
    assert await page.inner_text("#wallet-fines") == "¥130"
    assert await page.locator("#wallet-bonuses").count() == 0
    await _shot(page, "worker-wallet-fine.png", full=True)
    assert errors == []
    await context.close()

"""Certificates after onboarding: states with reasons and their audit, re-verification by
renewal, reminders 30 and 7 days before expiry through the notifications (inbox, SMS)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from doorstep.stores import Stores
from onboarding.certificates import due_reminder, remind_expiring
from tests.files_samples import pdf
from tests.helpers import Account
from tests.live import make_worker
from tests.onboarding_setup import Trade, make_trade, upload

T = TypeVar("T")
TODAY = date(2026, 12, 6)


async def _until(check: Callable[[], Awaitable[T]], timeout_s: float = 20.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("days_left", "sent", "due"),
    [
        (31, set(), None),
        (30, set(), 30),
        (25, {30}, None),
        (7, {30}, 7),
        (3, set(), 7),  # the 30-day one was missed: only the urgent one goes out
        (3, {7}, None),
        (-1, set(), None),
    ],
)
def test_which_reminder_is_due(days_left: int, sent: set[int], due: int | None) -> None:
    """30 days before, then 7; a threshold passed without a reminder is not sent late; never after expiry."""
    assert due_reminder(TODAY + timedelta(days=days_left), TODAY, sent) == due


async def _cert(stores: Stores, worker_id: int, kind: str, expires: date) -> int:
    return int(
        await stores.pool.fetchval(
            "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on, status) "
            "VALUES ($1, $2, $3, $4, $5, 'verified') RETURNING id",
            worker_id,
            kind,
            f"R{secrets.token_hex(5)}",
            expires - timedelta(days=1000),
            expires,
        )
    )


async def test_reminders_reach_the_worker_once_per_threshold(
    client: httpx.AsyncClient, admin: Account, stores: Stores, live_city: str
) -> None:
    """A certificate 25 days from expiry gets the 30-day reminder (inbox and SMS) once; at 6 days the 7-day one."""
    trade = await make_trade(client, admin, stores)
    w = await make_worker(stores, client, live_city, skills=(trade.skill,))
    today = date.today()
    cert = await _cert(stores, w.id, trade.certificate, today + timedelta(days=25))
    assert await remind_expiring(stores, today) >= 1
    assert await remind_expiring(stores, today) == 0

    async def kinds() -> list[str]:
        rows = await stores.pool.fetch(
            "SELECT kind FROM notifications WHERE user_id = $1 AND kind <> 'welcome'", w.id
        )
        return [r["kind"] for r in rows]

    assert await _until(kinds) == ["reminder_certificate"]
    body = await stores.pool.fetchval(
        "SELECT body FROM notifications WHERE user_id = $1 AND kind = 'reminder_certificate'", w.id
    )
    assert "电工证" in body
    assert "25" in body

    async def sms() -> list[str]:
        rows = await stores.pool.fetch(
            "SELECT template_code FROM sms_sandbox_outbox WHERE phone = $1", w.phone
        )
        return [r["template_code"] for r in rows]

    assert await _until(sms) == ["DS_CERT_EXPIRING_ZH"]
    await stores.pool.execute(
        "UPDATE worker_certificates SET expires_on = $2 WHERE id = $1",
        cert,
        today + timedelta(days=6),
    )
    assert await remind_expiring(stores, today) >= 1

    async def both() -> bool:
        return await _count(stores, w.id) == 2

    assert await _until(both)
    sent = await stores.pool.fetch(
        "SELECT days_before FROM certificate_reminders WHERE certificate_id = $1 ORDER BY days_before",
        cert,
    )
    assert [r["days_before"] for r in sent] == [7, 30]  # each once, the 30 for the old date


async def _count(stores: Stores, user_id: int) -> int:
    return int(
        await stores.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'reminder_certificate'",
            user_id,
        )
        or 0
    )


async def test_reverify_with_a_reason_then_renew_and_verify_again(
    client: httpx.AsyncClient, admin: Account, stores: Stores, live_city: str
) -> None:
    """Re-verification needs a reason and stops the certificate counting; the worker's renewal is pending until verified; every state is in the steps."""
    trade: Trade = await make_trade(client, admin, stores)
    w = await make_worker(stores, client, live_city, skills=(trade.skill,))
    cert = await _cert(stores, w.id, trade.certificate, date.today() + timedelta(days=20))
    base = f"/v1/workers/{w.id}/certificates/{cert}"
    r = await client.put(f"{base}/status", headers=admin.auth, json={"status": "reverify"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "reason"
    r = await client.put(
        f"{base}/status",
        headers=admin.auth,
        json={"status": "reverify", "reason": "发证机构核查不到此编号"},
    )
    assert (r.json()["status"], r.json()["reason"]) == ("reverify", "发证机构核查不到此编号")
    r = await client.put(f"{base}/status", headers=w.auth, json={"status": "verified"})
    assert r.status_code == 403
    scan = await upload(client, w, pdf(), "certificate")
    r = await client.post(
        f"{base}/renewal",
        headers=w.auth,
        json={
            "number": f"NEW{secrets.token_hex(3)}",
            "issued_on": "2026-01-01",
            "expires_on": "2020-01-01",
            "file_id": scan,
        },
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "expires_on")
    r = await client.post(
        f"{base}/renewal",
        headers=w.auth,
        json={
            "number": f"NEW{secrets.token_hex(3)}",
            "issued_on": "2026-01-01",
            "expires_on": "2031-01-01",
            "file_id": scan,
        },
    )
    assert r.status_code == 201, r.text
    renewed: dict[str, Any] = r.json()
    assert (renewed["status"], renewed["reason"]) == ("pending", f"renewal of certificate {cert}")
    r = await client.put(
        f"/v1/workers/{w.id}/certificates/{renewed['id']}/status",
        headers=admin.auth,
        json={"status": "verified"},
    )
    assert r.json()["status"] == "verified"
    steps = (await client.get(f"{base}/steps", headers=w.auth)).json()
    assert [s["status"] for s in steps] == ["reverify", "reverify"]
    assert steps[0]["reason"] == "发证机构核查不到此编号"
    assert steps[1]["reason"] == f"renewed by certificate {renewed['id']}"

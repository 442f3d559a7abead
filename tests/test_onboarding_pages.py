"""Onboarding in a real browser (Debian's Chromium, headless): an applicant applies from
the worker's app by phone and SMS code, fills in the profile (a wrong ID number is
shown under its field), uploads the documents (a photo too small is refused under the
file), submits, and passes an exam; a reviewer judges the documents and approves in the
back office. Any script error, console error or unexpected failed request fails the test.
Screenshots go to docs/img/."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from onboarding.idcard import make_id_number
from tests.access import grant, new_city
from tests.files_samples import jpeg, pdf
from tests.helpers import Account, MakeUser, new_phone, page_until
from tests.onboarding_setup import Trade, fill_in, make_trade, sign_up, sms_code
from tests.test_apps import DESK, PHONE, _errors_of, _shot, _sign_in
from tests.test_pages import (  # noqa: F401 - fixtures
    WAIT_MS,
    _why_no_browser,
    browser,
)

pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")


@pytest.fixture
async def trade(client: httpx.AsyncClient, admin: Account, stores: Stores) -> Trade:
    """A skill needing a certificate, a service, and a one-question exam for the skill."""
    made = await make_trade(client, admin, stores)
    r = await client.put(
        "/v1/training/exams",
        headers=admin.auth,
        json={
            "skill": made.skill,
            "title_zh": "安全用电考试",
            "title_en": "Electrical safety exam",
            "question_count": 1,
            "time_limit_s": 600,
            "pass_percent": 100,
            "max_attempts": 3,
            "questions": [
                {
                    "kind": "true_false",
                    "text_zh": "可以带电更换插座。",
                    "text_en": "A socket may be replaced live.",
                    "choices": [{"zh": "对", "en": "True"}, {"zh": "错", "en": "False"}],
                    "answer": [1],
                }
            ],
        },
    )
    assert r.status_code == 200, r.text
    return made


def _file(name: str, data: bytes, mime: str) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def test_an_applicant_applies_uploads_submits_and_passes_an_exam(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    live_city: str,
    trade: Trade,
) -> None:
    """From the worker's app: phone + SMS code, profile (bad ID number shown at its field), documents (a tiny photo refused at the file), submit; then the exam."""
    address = live_app[0]
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    errors = _errors_of(
        page, (422, "/v1/onboarding/application"), (422, "/v1/onboarding/application/documents")
    )
    await page.goto(f"http://{address}/worker")
    phone = new_phone()
    await page.fill("#apply-phone", phone)
    await page.fill("#apply-name", "王秀英")
    await page.click("#apply-code")
    code = await sms_code(stores, phone)
    await page.fill("#apply-sms", code)
    await page.click("#apply-login")
    await page.wait_for_selector('#app-status[data-status="draft"]', timeout=WAIT_MS)
    await _shot(page, "worker-apply.png", full=True)
    form = page.locator("#profile-form")
    await form.locator('input[name="real_name"]').fill("王秀英")
    await form.locator('input[name="id_number"]').fill("110105194912310021")
    await form.locator('select[name="city_id"]').select_option(live_city)
    await form.locator(f'input.skill[value="{trade.skill}"]').check()
    await form.locator("button[type=submit]").click()
    error = page.locator('#profile-form .field-error[data-for="id_number"]')
    await error.wait_for(timeout=WAIT_MS)
    assert "ISO 7064" in await error.inner_text()
    await form.locator('input[name="id_number"]').fill(
        make_id_number("440304", date(1988, 5, 6), 777)
    )
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector('#profile-form[data-saved-id^="4403"]', timeout=WAIT_MS)
    tiny = page.locator('li[data-missing="face"] form')
    await tiny.locator("input[type=file]").set_input_files(
        _file("face.jpg", jpeg(60, 30, gps=False), "image/jpeg")
    )
    await tiny.locator("button[type=submit]").click()
    refused = page.locator('li[data-missing="face"] .field-error[data-for="file_id"]')
    await refused.wait_for(timeout=WAIT_MS)
    assert "px" in await refused.inner_text()
    uploads = {
        "id_front": ("front.jpg", jpeg(700, 440, gps=False), "image/jpeg"),
        "id_back": ("back.jpg", jpeg(700, 441, gps=False), "image/jpeg"),
        "face": ("face.jpg", jpeg(480, 640, gps=False), "image/jpeg"),
        "health": ("health.pdf", pdf(), "application/pdf"),
        "no_criminal_record": ("record.pdf", pdf(), "application/pdf"),
        f"skill_certificate:{trade.certificate}": ("cert.pdf", pdf(), "application/pdf"),
    }
    for key, (name, data, mime) in uploads.items():
        item = page.locator(f'li[data-missing="{key}"] form')
        await item.locator("input[type=file]").set_input_files(_file(name, data, mime))
        if await item.locator('input[name="number"]').count():
            await item.locator('input[name="number"]').fill(f"NO{len(key)}{data[-6:].hex()[:6]}")
            await item.locator('input[name="issued_on"]').fill("2025-01-01")
            await item.locator('input[name="expires_on"]').fill("2030-01-01")
        await item.locator("button[type=submit]").click()
        await page.wait_for_selector(f'li[data-doc="{key}"]', timeout=WAIT_MS)
    await page.click("#submit-app")
    await page.wait_for_selector('#app-status[data-status="submitted"]', timeout=WAIT_MS)
    assert await page.locator("#identity-status").get_attribute("data-status") == "verified"
    await _shot(page, "worker-application.png", full=True)
    await page.click('#tabs a[data-tab="exams"]')
    exam = page.locator("form[data-exam]")
    await exam.wait_for(timeout=WAIT_MS)
    await exam.locator("button[type=submit]").click()
    await page.wait_for_selector("#exam-form", timeout=WAIT_MS)
    await _shot(page, "worker-exam.png")
    await page.locator('#exam-form input[data-en="False"]').check()
    await page.click("#hand-in")
    await page.wait_for_selector('form[data-exam][data-passed="1"]', timeout=WAIT_MS)
    await context.close()
    assert errors == [], errors


async def test_a_reviewer_judges_documents_and_approves_in_the_back_office(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    live_city: str,
    trade: Trade,
) -> None:
    """The review queue lists the submitted application; each document approved with a click, the application approved; the exams section lists the exam."""
    who = await sign_up(client, stores, name="陈晓梅")
    await fill_in(client, who, city=live_city, trade=trade, name="陈晓梅")
    app = (await client.post("/v1/onboarding/application/submit", headers=who.auth)).json()
    address = live_app[0]
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{address}/admin#/review")
    await _sign_in(page, admin.phone)
    await page.wait_for_selector('body[data-ready="review"]', timeout=WAIT_MS)
    row = page.locator(f'#review-queue tr[data-application="{app["id"]}"]')
    await row.wait_for(timeout=WAIT_MS)
    await row.locator("button").click()
    await page.wait_for_selector(f'#application[data-id="{app["id"]}"]', timeout=WAIT_MS)
    await _shot(page, "admin-review.png", full=True)
    for _ in range(6):
        pending = page.locator('form.doc-verdict[data-status="pending"]')
        if not await pending.count():
            break
        before = await pending.count()  # counted before the click: the page may answer first
        await pending.first.locator('button[data-verdict="approve"]').click()
        await page_until(
            page,
            "n => document.querySelectorAll('form.doc-verdict[data-status=\"pending\"]').length < n",
            before,
            what="one document fewer pending",
            timeout_ms=WAIT_MS,
        )
    await page.click('button[data-decision="approve"]')
    await page.wait_for_selector('#application[data-status="approved"]', timeout=WAIT_MS)
    assert await page.locator('#steps li[data-step="approved"]').count() == 1
    await page.click('#nav a[data-section="exams"]')
    await page.wait_for_selector('body[data-ready="exams"]', timeout=WAIT_MS)
    assert await page.locator("#exams-table tr[data-exam]").count() >= 1
    await _shot(page, "admin-exams.png")
    await context.close()
    assert errors == [], errors


async def test_an_admin_sees_rankings_and_overturns_an_appealed_suspension(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    engine_city: Any,
) -> None:
    """The discipline section ranks a city's workers; a worker's appealed suspension is overturned from the page."""
    from tests.live import make_worker

    w = await make_worker(stores, client, engine_city.id)
    r = await client.post(
        "/v1/discipline/actions",
        headers=admin.auth,
        json={"worker_id": w.id, "kind": "suspension", "reason": "迟到三次", "days": 3},
    )
    action = r.json()
    await client.post(
        f"/v1/discipline/actions/{action['id']}/appeal", headers=w.auth, json={"text": "交通管制"}
    )
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/admin#/discipline?city={engine_city.id}")
    await _sign_in(page, admin.phone)
    await page.wait_for_selector('body[data-ready="discipline"]', timeout=WAIT_MS)
    row = page.locator(f'#rankings tr[data-worker="{w.id}"]')
    await row.locator("button").click()
    form = page.locator(f'form.appeal-decision[data-action="{action["id"]}"]')
    await form.wait_for(timeout=WAIT_MS)
    await form.locator('input[name="reason"]').fill("核实属实，撤销")
    await _shot(page, "admin-discipline.png")
    await form.locator('button[data-decision="overturn"]').click()
    await page.wait_for_selector(
        f'form.appeal-decision[data-action="{action["id"]}"][data-status="overturned"]',
        timeout=WAIT_MS,
    )
    await context.close()
    assert errors == [], errors


async def test_a_city_operator_reviews_the_queue_of_their_city_in_the_back_office(
    live_app: tuple[str, Any],
    browser: Any,  # noqa: F811
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
) -> None:
    """A city_operator grant (onboarding.review) opens the 入职审核 section: their city's application is queued, another city's is not."""
    here, there = await new_city(stores, "q-here"), await new_city(stores, "q-there")
    apps = {}
    for city in (here, there):
        applicant = await make_user("customer")
        apps[city] = await stores.pool.fetchval(
            "INSERT INTO applications (user_id, city_id, real_name, status, submitted_at, "
            "created_at, updated_at) VALUES ($1, $2, '李四', 'submitted', now(), now(), now()) "
            "RETURNING id",
            applicant.id,
            city,
        )
    operator = await make_user("customer", name="城市运营小王")
    await grant(client, admin, operator, "city_operator", f"city:{here}")
    context = await browser.new_context(**DESK)
    page = await context.new_page()
    errors = _errors_of(page)
    await page.goto(f"http://{live_app[0]}/admin#/review")
    await _sign_in(page, operator.phone)
    await page.wait_for_selector('body[data-ready="review"]', timeout=WAIT_MS)
    await page.wait_for_selector(
        f'#review-queue tr[data-application="{apps[here]}"]', timeout=WAIT_MS
    )
    assert await page.locator(f'#review-queue tr[data-application="{apps[there]}"]').count() == 0
    assert errors == []
    await context.close()

"""Every HTTP answer carries security headers; /metrics needs its token or an admin (issue 14)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import errors
from api.secheaders import DEFAULT_CSP, SecureStarlette
from tests.helpers import METRICS_AUTH, Account, MakeUser, page_until

CHROMIUM = os.environ.get("DOORSTEP_CHROMIUM", "/usr/bin/chromium")


def _assert_secured(r: httpx.Response, csp: str | None = DEFAULT_CSP) -> None:
    assert r.headers["x-content-type-options"] == "nosniff", r.headers
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    if csp is not None:
        assert r.headers["content-security-policy"] == csp


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/v1/no-such-route", 404),
        ("DELETE", "/healthz", 405),
        ("GET", "/v1/me", 401),
        ("POST", "/v1/auth/login", 415),
        ("GET", "/static/common.js", 200),
    ],
)
async def test_json_and_error_answers_carry_the_headers(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    """JSON, static files and 401/404/405/415 errors carry nosniff, a deny-all CSP, Referrer-Policy and X-Frame-Options."""
    r = await client.request(method, path)
    assert r.status_code == status, r.text
    _assert_secured(r)


@pytest.mark.parametrize("path", ["/console", "/track/1"])
async def test_pages_keep_their_own_policy_and_get_the_rest(
    client: httpx.AsyncClient, path: str
) -> None:
    """The pages keep their CSP (scripts from self) and carry the other headers."""
    r = await client.get(path)
    assert r.status_code == 200
    _assert_secured(r, csp=None)
    assert "script-src 'self'" in r.headers["content-security-policy"]


def _inline_hashes(tag: str) -> list[str]:
    page = resources.files("api.static").joinpath("docs.html").read_text()
    return [
        "sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        for body in re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    ]


async def test_docs_has_a_policy_allowing_only_its_inline_script_and_style(
    client: httpx.AsyncClient,
) -> None:
    """/docs carries nosniff and a CSP naming the hashes of its own inline script and style."""
    r = await client.get("/docs")
    assert r.status_code == 200
    _assert_secured(r, csp=None)
    csp = r.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp
    for tag in ("script", "style"):
        hashes = _inline_hashes(tag)
        assert hashes
        assert all(f"'{h}'" in csp for h in hashes)


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")
async def test_docs_still_renders_in_a_browser_under_its_policy(live_app: tuple[str, Any]) -> None:
    """Chromium renders /docs (the endpoint list from /openapi.json) with no CSP violation."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),  # a CSP violation is a console error; /favicon.ico's 404 is not one
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(f"http://{live_app[0]}/docs")
            await page_until(
                page,
                "() => document.getElementById('info').textContent.includes('OpenAPI')",
                what="the API page's info",
            )
            assert await page.locator("#main").inner_text() != ""
            assert problems == []
        finally:
            await browser.close()


async def test_an_unexpected_error_answer_carries_the_headers() -> None:
    """A 500 from the outermost error middleware carries the headers too (the middleware wraps it)."""

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = SecureStarlette(
        routes=[Route("/boom", boom)],
        exception_handlers={HTTPException: errors.http_exception, Exception: errors.unexpected},
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    _assert_secured(r)


# --- /metrics ---------------------------------------------------------------------------


async def test_metrics_are_not_public(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """/metrics without a token is 401, with a customer's or a wrong bearer 401/403."""
    assert (await client.get("/metrics")).status_code == 401
    customer = await make_user()
    assert (await client.get("/metrics", headers=customer.auth)).status_code == 403
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert (await client.get("/metrics", headers=wrong)).status_code == 401


async def test_metrics_answer_the_scrapers_token_and_admins(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """/metrics answers the DOORSTEP_METRICS_TOKEN bearer and an admin's access token."""
    for headers in (METRICS_AUTH, admin.auth):
        r = await client.get("/metrics", headers=headers)
        assert r.status_code == 200, r.text
        assert "doorstep_http_requests_total" in r.text


async def test_the_metrics_token_opens_nothing_else(client: httpx.AsyncClient) -> None:
    """The scraper's token is no access token: any other endpoint refuses it."""
    assert (await client.get("/v1/me", headers=METRICS_AUTH)).status_code == 403
    assert (await client.get("/v1/users", headers=METRICS_AUTH)).status_code == 403

"""Schemathesis hooks for tests/test_schemathesis.py (loaded by ``st`` through
``SCHEMATHESIS_HOOKS``; never imported by the suite itself).

Requests carry the run's token through an auth provider (so that the ``ignored_auth``
check knows how to leave it out). ``POST /v1/auth/logout`` revokes the token it is called with: it is sent with a token of
a fresh login of the same account (``DOORSTEP_ST_PHONE``/``DOORSTEP_ST_PASSWORD``), so
that the rest of the run keeps a working token. ``POST /v1/me/deletion`` is sent
unconfirmed (it would freeze the run's account).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis


def _fresh_token() -> str:
    r = httpx.post(
        os.environ["DOORSTEP_ST_BASE"] + "/v1/auth/login",
        json={
            "phone": os.environ["DOORSTEP_ST_PHONE"],
            "password": os.environ["DOORSTEP_ST_PASSWORD"],
        },
        timeout=30,
    )
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


@schemathesis.auth()
class Bearer:
    """The run's access token (``DOORSTEP_ST_TOKEN``); logout gets one of its own."""

    def get(self, case: Any, context: Any) -> str:
        """The token every request carries."""
        return os.environ["DOORSTEP_ST_TOKEN"]

    def set(self, case: Any, data: str, context: Any) -> None:
        """Put it in the Authorization header."""
        if case.operation.method.upper() == "POST" and case.operation.path == "/v1/auth/logout":
            data = _fresh_token()
        if (
            case.operation.method.upper() == "POST"
            and case.operation.path == "/v1/me/deletion"
            and isinstance(case.body, dict)
            and case.body.get("confirm") is True
        ):
            # A real request would freeze the run's account (tests/test_pipl.py covers it):
            # the unconfirmed request goes through every check instead (a declared 422).
            case.body = {**case.body, "confirm": False}
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = f"Bearer {data}"

"""Tokens in query strings never reach uvicorn's logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.logredact import LOGGERS, RedactTokens, redact
from tests.helpers import Account


def test_token_values_are_replaced_and_the_rest_kept() -> None:
    """access_token, share and refresh_token values are redacted; paths and other parameters stay."""
    assert redact("/v1/ws/orders/9?share=abc.def-123") == "/v1/ws/orders/9?share=<redacted>"
    assert (
        redact("/console?city=shenzhen&access_token=eyJ.x.y&lang=en")
        == "/console?city=shenzhen&access_token=<redacted>&lang=en"
    )
    assert redact("/v1/orders?limit=10") == "/v1/orders?limit=10"
    assert redact("/v1/x?shared=1&myshare=2") == "/v1/x?shared=1&myshare=2"


def test_the_filter_rewrites_uvicorns_access_record() -> None:
    """A record shaped like uvicorn's access line comes out of the filter without the token."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/track/9?share=secret-token", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    assert "secret-token" not in record.getMessage()
    assert "/track/9?share=<redacted>" in record.getMessage()


async def test_the_app_installs_the_filter(live_app: tuple[str, Any]) -> None:
    """Once the app has started, uvicorn's access and error loggers carry the filter."""
    for name in LOGGERS:
        assert any(isinstance(f, RedactTokens) for f in logging.getLogger(name).filters)


@pytest.mark.parametrize(
    "query",
    [
        "%61ccess_token={t}",
        "access%5Ftoken={t}",
        "%73hare={t}",
        "ACCESS_TOKEN={t}",
        "%2561ccess_token={t}",
        "next=%2Ftrack%2F9%3Fshare%3D{t}",
        "x={t}",
    ],
)
def test_encoded_keys_and_values_are_redacted(query: str) -> None:
    """Percent-encoded keys (%61ccess_token, access%5Ftoken, %73hare), any case, nested values and bare JWTs are redacted."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXBhcnQ"
    line = redact(f"/v1/ws/orders/9?lang=en&{query.format(t=jwt)}")
    assert "eyJ" not in line
    assert "<redacted>" in line
    assert line.startswith("/v1/ws/orders/9?lang=en&")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_uvicorns_real_log_lines_hold_no_encoded_token(
    live_app: tuple[str, Any], client: httpx.AsyncClient, admin: Account
) -> None:
    """Requests and sockets with ?%61ccess_token=, access%5Ftoken= and %73hare= leave no token in uvicorn's own access and websocket log records."""
    address = live_app[0]
    token = admin.token
    collect = _Collect()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(collect)
    try:
        r = await client.get(f"/v1/me?%61ccess_token={token}")
        assert r.status_code == 422  # REST takes no token from the URL, however spelled
        assert r.json()["error"] == {
            "code": "token_in_query",
            "message": r.json()["error"]["message"],
            "field": "access_token",
        }
        assert (await client.get(f"/track/1?%73hare={token}")).status_code == 200
        for query in (f"%61ccess_token={token}", f"access%5Ftoken={token}", f"%73hare={token}"):
            async with connect(f"ws://{address}/v1/ws/orders/1?{query}") as ws:
                with contextlib.suppress(ConnectionClosed):
                    await ws.recv()
        async with connect(f"ws://{address}/v1/ws/worker?%61ccess_token={token}") as ws:
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
        for _ in range(1000):  # the websocket lines are written as the sockets close
            if sum("WebSocket" in line for line in collect.lines) >= 3:
                break
            await asyncio.sleep(0.02)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(collect)
            logger.setLevel(level)
    assert any("/v1/me?%61ccess_token=<redacted>" in line for line in collect.lines)
    assert sum("/v1/ws/orders/1?" in line for line in collect.lines) >= 3
    leaked = [line for line in collect.lines if token in line or token[:40] in line]
    assert leaked == []


def test_a_file_links_signature_is_redacted() -> None:
    """A signed download link's sig (a credential until it expires) never reaches the log."""
    line = redact("/v1/files/7/content?exp=1893456000&sig=AbCdEf0123456789xyz")
    assert "AbCdEf0123456789xyz" not in line
    assert line == "/v1/files/7/content?exp=1893456000&sig=<redacted>"

"""A client that closes its connection before its request body arrives is not a server
error: no traceback, one INFO line, and the server goes on answering (api/errors.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest


async def test_a_body_cut_short_by_the_client_is_logged_as_gone_not_as_a_server_error(
    live_app: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Content-Length 400, 20 bytes sent, connection closed: an INFO 'client went away', no ERROR record, and the next request is served."""
    base = f"http://{live_app[0]}"
    at = urlsplit(base)
    assert at.hostname is not None
    assert at.port is not None
    caplog.set_level(logging.INFO, logger="doorstep.api")
    _reader, writer = await asyncio.open_connection(at.hostname, at.port)
    writer.write(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b'Content-Length: 400\r\n\r\n{"phone": "13800000'
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the server has started reading the body
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        if any("client went away" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    gone = [r for r in caplog.records if "client went away" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO]
    assert "POST /v1/auth/login" in gone[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/healthz")
    assert r.status_code == 200, r.text

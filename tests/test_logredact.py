"""Tokens in query strings never reach uvicorn's logs."""

from __future__ import annotations

import logging
from typing import Any

from api.logredact import LOGGERS, RedactTokens, redact


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

"""Keep tokens out of the logs: uvicorn logs request paths with their query strings.

Browsers cannot set headers on a websocket, so the live pages pass ``?access_token=``
or a share link's ``?share=``; uvicorn's access log (HTTP) and its websocket log line
would write those tokens to disk. A filter on uvicorn's loggers replaces their values.
"""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(r"((?:^|[?&])(?:access_token|share|refresh_token)=)[^&\s\"]*")
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """``text`` with the values of token query parameters replaced by ``<redacted>``."""
    return _SECRET.sub(r"\1<redacted>", text) if "=" in text else text


class RedactTokens(logging.Filter):
    """Rewrites a record's string arguments (and message) so no token is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Add the filter to uvicorn's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())

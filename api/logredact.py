"""Keep tokens out of the logs: uvicorn logs request paths with their query strings.

Browsers cannot set headers on a websocket, so the live pages pass ``?access_token=``
or a share link's ``?share=``; uvicorn's access log (HTTP) and its websocket log line
would write those tokens to disk. A filter on uvicorn's loggers replaces their values.

Issue 14: the filter matched the raw text, but the server decodes query keys before it
reads them, so ``?%61ccess_token=<JWT>``, ``%73hare=`` or ``access%5Ftoken=`` opened a
socket and were logged in full. Now each query parameter's key is percent-decoded (as
the server does, and again while that changes it) before it is compared, in any case;
a value that decodes to something holding a JWT (``eyJ…``, the shape of every token we
issue) or another ``key=token`` is redacted whatever its key; and a bare JWT anywhere
in the line (a path segment, a header value) is redacted too. REST routes refuse tokens
in the URL outright (``api.routing.TokenInQuery``); only sockets accept them.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

SECRET_KEYS = frozenset({"access_token", "share", "refresh_token", "sig"})  # sig: a file link
LOGGERS = ("uvicorn.access", "uvicorn.error")
REDACTED = "<redacted>"

# A JWT: three base64url segments, the first the encoding of '{"'. Also percent-encoded.
_JWT = re.compile(r"eyJ[A-Za-z0-9_%-]{4,}\.[A-Za-z0-9_%-]{4,}\.[A-Za-z0-9_%-]{4,}")
_QUERY = re.compile(r"\?([^\s\"']*)")
_NESTED = re.compile(r"(?:^|[?&;\s])(?:access_token|share|refresh_token)\s*=", re.IGNORECASE)


def _decoded(text: str) -> str:
    """Percent-decode (``+`` as space) until nothing changes (at most three times)."""
    for _ in range(3):
        once = unquote_plus(text)
        if once == text:
            break
        text = once
    return text


def _secret_value(value: str) -> bool:
    plain = _decoded(value)
    return bool(_JWT.search(plain) or _NESTED.search(plain))


def redact_query(query: str) -> str:
    """A query string with the values of token parameters replaced by ``<redacted>``."""
    out = []
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        name = _decoded(key).strip().lower()
        if name in SECRET_KEYS or _secret_value(value) or (not sep and _secret_value(key)):
            out.append(f"{key}={REDACTED}" if sep else REDACTED)
        else:
            out.append(part)
    return "&".join(out)


def redact(text: str) -> str:
    """``text`` with token query values (keys decoded) and any JWT replaced."""
    if "?" in text:
        text = _QUERY.sub(lambda m: "?" + redact_query(m.group(1)), text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


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

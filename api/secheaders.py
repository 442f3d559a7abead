"""Security headers on every HTTP response: one pure-ASGI middleware.

Issue 14: JSON answers and ``/docs`` had no ``X-Content-Type-Options: nosniff`` and only
the pages had a Content-Security-Policy. Every response now carries:

- ``X-Content-Type-Options: nosniff`` — a browser never runs JSON as a script or page;
- ``Content-Security-Policy`` — for anything that sets none itself (JSON, errors, text)
  ``default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'``:
  opened in a browser, an answer can load nothing and run nothing. The pages set their
  own (``api/routes/pages.py``), ``/docs`` its own with the hashes of its inline script
  and style (``api/routes/system.py``); a policy a route set is kept;
- ``Referrer-Policy: no-referrer`` — share tokens sit in page URLs;
- ``X-Frame-Options: DENY`` — for browsers without ``frame-ancestors``.

It wraps the whole application, Starlette's error middleware included, so the 500
answer of an unexpected error carries them as well as 404 and 405. Pure ASGI rather
than ``BaseHTTPMiddleware``: it only adds headers to ``http.response.start``, never
buffers a body, and leaves websockets alone.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", DEFAULT_CSP),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


class SecurityHeaders:
    """Adds :data:`HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SecureStarlette(Starlette):
    """Starlette with :class:`SecurityHeaders` outside its own middleware stack, so even
    the answer of ``ServerErrorMiddleware`` (the outermost) carries the headers."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())

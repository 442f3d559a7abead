"""The one place that turns errors into HTTP responses (and, later, close codes)."""

from __future__ import annotations

import logging
from typing import ClassVar

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from doorstep.errors import DoorstepError, ErrorKind

log = logging.getLogger("doorstep.api")

STATUS: dict[ErrorKind, int] = {
    "malformed": 400,
    "invalid": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "rate_limited": 429,
    "unavailable": 503,
}


class RequestError(DoorstepError):
    """A request that is wrong before any domain code sees it; carries its own status."""

    status: ClassVar[int] = 400


class UnsupportedMediaType(RequestError):
    """The body is not declared as JSON."""

    status = 415
    code = "unsupported_media_type"


class BodyTooLarge(RequestError):
    """The body is larger than the limit."""

    status = 413
    code = "body_too_large"


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    details: dict[str, object] | None = None,
) -> Response:
    """``{"error": {"code", "message", "field"}}`` with ``status`` (and ``details`` when
    the error carries some, e.g. the next bookable windows)."""
    error: dict[str, object] = {"code": code, "message": message, "field": field}
    if details is not None:
        error["details"] = details
    body = orjson.dumps({"error": error})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def status_of(exc: DoorstepError) -> int:
    """The HTTP status for a domain or request error."""
    if isinstance(exc, RequestError):
        return exc.status
    return STATUS[exc.kind]


def from_domain(exc: DoorstepError) -> Response:
    """The response for a domain error."""
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    retry_after_s = getattr(exc, "retry_after_s", None)  # rate limits say when to retry
    if isinstance(retry_after_s, int):
        headers = {"Retry-After": str(retry_after_s)}
    details = getattr(exc, "details", None)
    return error_response(
        status,
        exc.code,
        exc.message,
        exc.field,
        headers,
        details if isinstance(details, dict) else None,
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 etc. in our JSON shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "no_such_route", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {
        404: f"no route {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, None, headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its request body arrived: nobody is left to
    answer, and it is not the server's error, so no traceback — one line at INFO and a 400
    that no one reads (nothing was applied: the body was never decoded)."""
    assert isinstance(exc, ClientDisconnect)
    log.info("client went away during %s %s", request.method, request.url.path)
    return error_response(400, "client_disconnected", "the request body never arrived", None)


async def unexpected(request: Request, exc: Exception) -> Response:
    """A bug: log it with its traceback and answer 500 in our JSON shape."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the server failed; this is logged", None)

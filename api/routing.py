"""Endpoints declared once: path, method, who may call, body and response types.

The same declarations build the Starlette routes and the OpenAPI document, and a
test walks them to check that every route enforces its roles and rejects bad input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accounts.service import TokenPolicy, authenticate
from accounts.tokens import Claims
from api.bodies import read_json
from api.errors import error_response, from_domain
from doorstep.errors import DoorstepError, Forbidden, InvalidInput, Unauthenticated
from doorstep.settings import Settings
from doorstep.stores import STORE_ERRORS, Stores

PUBLIC: frozenset[str] = frozenset()
ANY_ROLE: frozenset[str] = frozenset({"customer", "worker", "merchant", "dispatcher", "admin"})
STAFF: frozenset[str] = frozenset({"dispatcher", "admin"})

Handler = Callable[..., Awaitable[Any]]

log = logging.getLogger("doorstep.api")


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A documented query parameter."""

    name: str
    kind: type
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route. ``roles`` empty means public; else the caller needs one of them."""

    method: str
    path: str
    handler: Handler
    roles: frozenset[str]
    summary: str
    tag: str
    body: type | None = None
    returns: Any = None
    status: int = 200
    query: tuple[QueryParam, ...] = ()
    media_type: str = "application/json"

    @property
    def public(self) -> bool:
        """True if no token is needed."""
        return not self.roles


@dataclass
class Ctx:
    """What a handler is given: the stores, settings, caller and a fixed ``now``."""

    request: Request
    stores: Stores
    settings: Settings
    policy: TokenPolicy
    now: int
    caller: Claims | None = None

    @property
    def user(self) -> Claims:
        """The authenticated caller (only on non-public endpoints)."""
        assert self.caller is not None
        return self.caller

    def has_role(self, *roles: str) -> bool:
        """True if the caller holds any of ``roles``."""
        return self.caller is not None and any(r in self.caller.roles for r in roles)

    def path_int(self, name: str) -> int:
        """A positive integer path parameter."""
        raw = self.request.path_params[name]
        text = str(raw)
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) < 2**63:
            raise InvalidInput("must be a positive 64-bit integer", field=name)
        return int(raw)

    def path_str(self, name: str) -> str:
        """A string path parameter."""
        return str(self.request.path_params[name])

    def query_int(self, name: str, default: int, *, ge: int, le: int) -> int:
        """An integer query parameter within ``[ge, le]``."""
        raw = self.request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput("must be an integer", field=name) from None
        if not ge <= value <= le:
            raise InvalidInput(f"must be between {ge} and {le}", field=name)
        return value

    def query_str(self, name: str, *, choices: frozenset[str] | None = None) -> str | None:
        """A string query parameter, optionally one of ``choices``."""
        raw = self.request.query_params.get(name)
        if raw is not None and choices is not None and raw not in choices:
            raise InvalidInput(f"must be one of {', '.join(sorted(choices))}", field=name)
        return raw


def _fallback(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(value: Any) -> bytes:
    """JSON with orjson (dataclasses, datetimes, dates and msgspec structs included)."""
    return orjson.dumps(value, default=_fallback, option=orjson.OPT_NON_STR_KEYS)


class Router:
    """Collects the endpoints of one area of the API."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        roles: frozenset[str],
        summary: str,
        body: type | None = None,
        returns: Any = None,
        status: int = 200,
        query: tuple[QueryParam, ...] = (),
        media_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint; the decorated coroutine takes ``(ctx)`` or ``(ctx, body)``."""

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    roles,
                    summary,
                    self.tag,
                    body,
                    returns,
                    status,
                    query,
                    media_type,
                )
            )
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """A GET endpoint."""
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """A POST endpoint."""
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """A PUT endpoint."""
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """A PATCH endpoint."""
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """A DELETE endpoint."""
        return self.route("DELETE", path, **kw)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use 'Authorization: Bearer <access token>'", field="authorization")
    return token.strip()


async def authorize(ctx: Ctx, endpoint: Endpoint) -> None:
    """Authenticate the caller if the endpoint needs it, and check their role."""
    token = bearer_token(ctx.request)
    if endpoint.public:
        if token is not None:
            ctx.caller = await authenticate(ctx.stores, ctx.policy, token, now=ctx.now)
        return
    if token is None:
        raise Unauthenticated("this endpoint needs an access token", field="authorization")
    ctx.caller = await authenticate(ctx.stores, ctx.policy, token, now=ctx.now)
    if not endpoint.roles.intersection(ctx.caller.roles):
        raise Forbidden(f"needs one of the roles: {', '.join(sorted(endpoint.roles))}")


Observer = Callable[[Endpoint, int, float], None]


def to_route(endpoint: Endpoint, observe: Observer) -> Route:
    """The Starlette route that runs ``endpoint``."""

    async def run(request: Request) -> Response:
        started = time.perf_counter()
        state = request.app.state
        ctx = Ctx(
            request=request,
            stores=state.stores,
            settings=state.settings,
            policy=state.policy,
            now=int(time.time()),
        )
        try:
            await authorize(ctx, endpoint)
            if endpoint.body is not None:
                body: Any = await read_json(
                    request, endpoint.body, max_bytes=ctx.settings.max_body_bytes
                )
                result = await endpoint.handler(ctx, body)
            else:
                result = await endpoint.handler(ctx)
            if isinstance(result, Response):
                response = result
            elif result is None:
                response = Response(status_code=204)
            else:
                response = Response(
                    encode(result), status_code=endpoint.status, media_type="application/json"
                )
        except DoorstepError as e:
            response = from_domain(e)
        except STORE_ERRORS as e:  # an outage is not the request's fault, nor a bug: 503
            log.warning("%s %s: stores unavailable: %s", endpoint.method, endpoint.path, e)
            response = error_response(
                503,
                "unavailable",
                "the server's stores are unavailable; try again shortly",
                None,
                {"Retry-After": "5"},
            )
        observe(endpoint, response.status_code, time.perf_counter() - started)
        return response

    run.__name__ = endpoint.handler.__name__
    return Route(endpoint.path, run, methods=[endpoint.method], name=endpoint.handler.__name__)


__all__ = [
    "ANY_ROLE",
    "PUBLIC",
    "STAFF",
    "Ctx",
    "Endpoint",
    "QueryParam",
    "Router",
    "encode",
    "error_response",
    "to_route",
]

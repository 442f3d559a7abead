"""Endpoints declared once: path, method, who may call, body and response types.

The same declarations build the Starlette routes and the OpenAPI document, and a
test walks them to check that every route enforces its roles and rejects bad input.
"""

from __future__ import annotations

import hmac
import ipaddress
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

from accounts.service import Client, TokenPolicy, authenticate
from accounts.throttle import network_of
from accounts.tokens import Claims
from api.bodies import read_json
from api.errors import error_response, from_domain
from api.params import QueryParam, check_query
from doorstep.errors import DoorstepError, Forbidden, InvalidInput, NotFound, Unauthenticated
from doorstep.settings import IPNetwork, Settings
from doorstep.stores import STORE_ERRORS, Stores
from permissions.rules import PLATFORM, Scope, Viewer, acts_platform_wide, granted_scope

PUBLIC: frozenset[str] = frozenset()
ANY_ROLE: frozenset[str] = frozenset(
    {"customer", "worker", "merchant", "dispatcher", "admin", "finance", "reviewer"}
)
STAFF: frozenset[str] = frozenset({"dispatcher", "admin"})

Handler = Callable[..., Awaitable[Any]]

log = logging.getLogger("doorstep.api")


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
    errors: tuple[tuple[int, str], ...] = ()
    perm: str = ""  # the permission it needs (permissions/rules.py); see ``permission``

    @property
    def public(self) -> bool:
        """True if no token is needed."""
        return not self.roles

    @property
    def permission(self) -> str:
        """The declared permission; undeclared: ``public``, or ``<tag>.read`` for a GET
        and ``<tag>.write`` otherwise (tests/test_access_matrix.py wants it in the
        catalogue of permissions/rules.py, so an undeclared one is noticed)."""
        if self.perm:
            return self.perm
        if self.public:
            return "public"
        return f"{self.tag}.{'read' if self.method == 'GET' else 'write'}"


@dataclass
class Ctx:
    """What a handler is given: the stores, settings, caller and a fixed ``now``."""

    request: Request
    stores: Stores
    settings: Settings
    policy: TokenPolicy
    now: int
    caller: Claims | None = None
    # Where the caller acts on this route: the platform (an admin's or a dispatcher's base
    # role), a grant's cities or merchants, their own merchant (the merchant role); None
    # for a customer or a worker acting on their own data.
    scope: Scope | None = None

    @property
    def user(self) -> Claims:
        """The authenticated caller (only on non-public endpoints)."""
        assert self.caller is not None
        return self.caller

    @property
    def client(self) -> Client:
        """The caller's network for rate limits, and whether it is exempt from them."""
        ip = client_ip(self.request, self.settings.trusted_proxies)
        return Client(network_of(ip), exempt=_within(ip, self.settings.rate_limit_exempt))

    @property
    def viewer(self) -> Viewer:
        """The caller and their scope on this route, for domain packages."""
        return Viewer(self.user.user_id, self.scope)

    @property
    def staff(self) -> bool:
        """True if the caller acts as platform staff here: platform-wide, or in cities."""
        return self.scope is not None and (self.scope.platform or bool(self.scope.cities))

    def in_city(self, city_id: str, field: str = "city_id") -> str:
        """``city_id`` if the caller's scope reaches it (customers and workers are not
        limited here); else 404: a city-scoped caller does not see other cities."""
        if self.scope is not None and not self.scope.has_city(city_id):
            raise NotFound(f"no city {city_id!r} in your scope", field=field)
        return city_id

    def reaches(self, city_id: str | None, merchant_id: int | None = None) -> bool:
        """True if the caller's scope on this route reaches an object of ``city_id`` (or of
        ``merchant_id``); False without a scope (customers and workers: their own rules)."""
        return self.scope is not None and (
            self.scope.has_city(city_id) or self.scope.has_merchant(merchant_id)
        )

    async def reaches_order(self, order_id: int) -> bool:
        """True if the caller's scope reaches the order (its city, or its merchant); False
        for an order that does not exist or a caller without a scope."""
        if self.scope is not None and self.scope.platform:
            return True
        row = await self.stores.pool.fetchrow(
            "SELECT city_id, merchant_id FROM orders WHERE id = $1", order_id
        )
        return row is not None and self.reaches(row["city_id"], row["merchant_id"])

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
        errors: dict[int, str] | None = None,
        perm: str = "",
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint; the decorated coroutine takes ``(ctx)`` or ``(ctx, body)``.

        ``errors`` documents the statuses the route's own rules answer besides those every
        route of its kind can (see api/openapi.py), each with when it happens.
        """

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
                    tuple(sorted((errors or {}).items())),
                    perm,
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


def _within(ip: str, networks: tuple[IPNetwork, ...]) -> bool:
    if not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def client_ip(request: Request, trusted_proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address: the socket peer, unless the peer is a trusted proxy; then
    the rightmost address of X-Forwarded-For that is not a trusted proxy (each proxy
    appends the address it was connected from, so hops left of an untrusted one are the
    client's own say)."""
    peer = request.client.host if request.client else ""
    if not _within(peer, trusted_proxies):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # not an address: the last proxy we trust is all we know
        if not _within(hop, trusted_proxies):
            return hop
        peer = hop
    return peer


class TokenInQuery(InvalidInput):
    """A token in a REST URL: URLs end up in logs and browser history; headers do not."""

    code = "token_in_query"


_URL_TOKENS = frozenset({"access_token", "refresh_token"})


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use 'Authorization: Bearer <access token>'", field="authorization")
    return token.strip()


METRICS_ROLE = "metrics"  # held only by the scraper's DOORSTEP_METRICS_TOKEN
_SCRAPER = Claims(
    user_id=0, roles=(METRICS_ROLE,), jti="metrics-token", typ="access", issued_at=0, expires_at=0
)


async def _caller(ctx: Ctx, token: str) -> Claims:
    """The claims of an access token, or the scraper's for the metrics token."""
    expected = ctx.settings.metrics_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return _SCRAPER
    return await authenticate(ctx.stores, ctx.policy, token, now=ctx.now)


async def authorize(ctx: Ctx, endpoint: Endpoint) -> None:
    """Authenticate the caller if the endpoint needs it, and check their role."""
    for name in ctx.request.query_params:  # keys percent-decoded: %61ccess_token too
        if name in _URL_TOKENS:
            raise TokenInQuery(
                "tokens are not taken from the URL (it is logged); send "
                "'Authorization: Bearer <access token>'",
                field=name,
            )
    token = bearer_token(ctx.request)
    if endpoint.public:
        if token is not None:
            ctx.caller = await _caller(ctx, token)
        return
    if token is None:
        raise Unauthenticated("this endpoint needs an access token", field="authorization")
    ctx.caller = await _caller(ctx, token)
    ctx.scope, allowed = scope_on(ctx.caller, endpoint)
    if not allowed:
        raise Forbidden(
            f"needs the permission {endpoint.permission!r} or one of the roles: "
            f"{', '.join(sorted(endpoint.roles))}"
        )


def scope_on(caller: Claims, endpoint: Endpoint) -> tuple[Scope | None, bool]:
    """Whether ``caller`` may call ``endpoint``, and in which scope (:func:`scope_for`)."""
    return scope_for(caller, endpoint.roles, endpoint.permission)


def scope_for(
    caller: Claims, route_roles: frozenset[str], permission: str
) -> tuple[Scope | None, bool]:
    """Whether ``caller`` may use a route (or socket) that lists ``route_roles`` and needs
    ``permission``, and in which scope.

    In order: a base role acting platform-wide (admin, dispatcher; any but customer,
    worker and merchant) that the route lists;
    a grant holding the route's permission (its scopes); the merchant role the route
    lists (their own merchant); another base role the route lists (own data: None).
    """
    roles = route_roles.intersection(caller.roles)
    if any(acts_platform_wide(r) for r in roles):
        return PLATFORM, True
    granted = granted_scope(caller.perm_map(), permission)
    if granted is not None:
        return granted, True
    if "merchant" in roles:
        return Scope(merchants=frozenset({caller.user_id})), True
    return None, bool(roles)


Observer = Callable[[Endpoint, int, float], None]


async def _run(endpoint: Endpoint, request: Request) -> Response:
    """Authorize, check the query, read the body, call the handler, map its errors."""
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
        params = request.query_params
        check_query(params, params.multi_items(), endpoint.query)
        if endpoint.body is not None:
            body: Any = await read_json(
                request, endpoint.body, max_bytes=ctx.settings.max_body_bytes
            )
            result = await endpoint.handler(ctx, body)
        else:
            result = await endpoint.handler(ctx)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        return Response(encode(result), status_code=endpoint.status, media_type="application/json")
    except DoorstepError as e:
        return from_domain(e)
    except STORE_ERRORS as e:  # an outage is not the request's fault, nor a bug: 503
        log.warning("%s %s: stores unavailable: %s", endpoint.method, endpoint.path, e)
        return error_response(
            503,
            "unavailable",
            "the server's stores are unavailable; try again shortly",
            None,
            {"Retry-After": "5"},
        )


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class PathRoute(Route):
    """One path and every endpoint declared on it, dispatched by method.

    One route per path (not per endpoint) so that a method the path lacks is answered
    405 with an ``Allow`` header listing all the path's methods: Starlette's router
    would stop at the first route whose path matches and list only its methods.
    ``HEAD`` is answered wherever ``GET`` is.
    """

    def __init__(self, endpoints: list[Endpoint], observe: Observer) -> None:
        declared = {ep.method: ep for ep in endpoints}
        if "GET" in declared:
            declared.setdefault("HEAD", declared["GET"])
        self.by_method = {m: declared[m] for m in _METHOD_ORDER if m in declared}
        self.allow = ", ".join(self.by_method)

        async def run(request: Request) -> Response:
            endpoint = self.by_method.get(request.method)
            if endpoint is None:
                return error_response(
                    405,
                    "method_not_allowed",
                    f"{request.method} is not allowed on {request.url.path}; use {self.allow}",
                    None,
                    {"Allow": self.allow},
                )
            started = time.perf_counter()
            response = await _run(endpoint, request)
            observe(endpoint, response.status_code, time.perf_counter() - started)
            return response

        first = endpoints[0]
        super().__init__(first.path, run, name=first.path)
        self.methods = None  # every method reaches ``run``, which answers 405 itself

    @property
    def endpoints(self) -> list[Endpoint]:
        """The declared endpoints of this path (``HEAD`` not repeated)."""
        return [ep for method, ep in self.by_method.items() if method != "HEAD"]


def to_routes(endpoints: list[Endpoint], observe: Observer) -> list[PathRoute]:
    """One Starlette route per path, in the order the paths were first declared."""
    by_path: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_path.setdefault(ep.path, []).append(ep)
    return [PathRoute(eps, observe) for eps in by_path.values()]


__all__ = [
    "ANY_ROLE",
    "PUBLIC",
    "STAFF",
    "Ctx",
    "Endpoint",
    "PathRoute",
    "QueryParam",
    "Router",
    "encode",
    "error_response",
    "to_routes",
]

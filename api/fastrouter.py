"""A Starlette router that finds an HTTP request's route by its path's first two segments.

Starlette's router tries its routes in order, a regular expression each, until one
matches: with ~190 routes, a request for ``/v1/payments/wechat/notify`` made ~114
``Route.matches`` calls, about a sixth of the server's CPU for a duplicate payment
notification (cProfile of ``benchmarks.money --profile-burst``, 2026-12-06). This router
indexes the routes whose first two path segments are literal by those segments and tries
only the routes of the request's key, with the routes that could match any path (a
parameter in the first two segments, mounts, websocket routes) merged in at their places:
the first route that matches in full is the one Starlette's scan would have found, since
every route left out cannot match the path. When none matches in full (a 405 of another
route, a redirect to the path with or without its trailing slash, a 404), Starlette's own
scan runs, so those answers are Starlette's.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

Key = tuple[str, ...]


def path_key(path: str) -> Key:
    """The first two segments of a path (``/v1/orders/7`` → ``("v1", "orders")``)."""
    return tuple(path.split("/", 3)[1:3])


def route_key(route: BaseRoute) -> Key:
    """The literal prefix of the first two segments every path the route matches has:
    two segments, one (a parameter second: ``/track/{order_id}``) or none (tried for
    every path: a parameter first, mounts, websocket routes)."""
    if not isinstance(route, Route):
        return ()
    key = path_key(route.path)
    for n, part in enumerate(key):
        if "{" in part:
            return key[:n]
    return key


class IndexedRouter(Router):
    """:class:`starlette.routing.Router` with the route lookup of the module docstring."""

    _by_two: dict[Key, list[BaseRoute]]  # a path's two segments: its candidates
    _by_one: dict[str, list[BaseRoute]]  # its first segment, when its two are not known
    _wild: list[BaseRoute]
    _indexed: tuple[int, int] = (0, -1)  # (id, length) of the routes list indexed

    def _reindex(self) -> None:
        keyed = [(route_key(r), r) for r in self.routes]

        def among(*keys: Key) -> list[BaseRoute]:
            return [r for k, r in keyed if k in keys]  # in the routes' order

        self._by_two = {k: among((), k[:1], k) for k, _ in keyed if len(k) == 2}
        self._by_one = {k[0]: among((), k[:1]) for k, _ in keyed if k}
        self._wild = among(())
        self._indexed = (id(self.routes), len(self.routes))

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that may match ``path``, in order."""
        if self._indexed != (id(self.routes), len(self.routes)):
            self._reindex()
        key = path_key(path)
        found = self._by_two.get(key)
        if found is None:
            found = self._by_one.get(key[0], self._wild)
        return found

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch as Starlette does, trying only the candidate routes of an HTTP path."""
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                if "router" not in scope:
                    scope["router"] = self
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)  # 405, redirect or 404: Starlette's answer


def install(app: Starlette) -> None:
    """Give ``app`` an :class:`IndexedRouter` over its routes (before its first call)."""
    old = app.router
    app.router = IndexedRouter(
        old.routes, redirect_slashes=old.redirect_slashes, lifespan=old.lifespan_context
    )

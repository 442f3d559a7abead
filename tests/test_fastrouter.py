"""The indexed router finds the route Starlette's scan would, trying fewer routes."""

from __future__ import annotations

import re

from starlette.routing import BaseRoute, Match

from api.app import create_app
from api.fastrouter import IndexedRouter, path_key, route_key
from doorstep.settings import from_env


def _first_full(routes: list[BaseRoute], path: str, method: str) -> BaseRoute | None:
    scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
    for route in routes:
        if route.matches(dict(scope))[0] is Match.FULL:
            return route
    return None


def _sample_paths(routes: list[BaseRoute]) -> list[str]:
    out = ["/", "/nope", "/v1", "/v1/", "/static/app.css", "/v1/nope/x", "//v1"]
    for route in routes:
        template = getattr(route, "path", "/x")
        for value in ("7", "abc", "a/b"):
            concrete = re.sub(r"\{[^}]+\}", value, template)
            out += [concrete, concrete + "/", concrete.rstrip("/") + "/zz"]
    return out


def test_every_path_gets_the_route_starlettes_scan_finds() -> None:
    """For paths made from every route of the app (and near misses), the first full match is Starlette's."""
    app = create_app(from_env())
    router = app.router
    assert isinstance(router, IndexedRouter)
    for path in _sample_paths(router.routes):
        for method in ("GET", "POST", "DELETE"):
            expected = _first_full(router.routes, path, method)
            assert _first_full(router.candidates(path), path, method) is expected, path


def test_a_notification_is_looked_up_among_few_routes() -> None:
    """The payment notification path is tried against a handful of routes, not all of them."""
    router = create_app(from_env()).router
    assert isinstance(router, IndexedRouter)
    assert len(router.candidates("/v1/payments/wechat/notify")) <= 12 < len(router.routes) / 10


def test_keys_stop_at_the_first_parameter() -> None:
    """A route's key is its literal prefix within the first two segments."""
    assert path_key("/v1/orders/7/pay") == ("v1", "orders")
    assert path_key("/") == ("",)
    app = create_app(from_env())
    keys = {getattr(r, "path", ""): route_key(r) for r in app.router.routes}
    assert keys["/v1/payments/{provider}/notify"] == ("v1", "payments")
    assert keys["/track/{order_id}"] == ("track",)
    assert keys["/static"] == ()

"""The pages: the customer's arrival map, the dispatcher console and the three apps
(customer /app, worker /worker, back office /admin).

Each is a static HTML file from ``api/static`` (JS modules and CSS beside it, Leaflet
vendored under ``api/static/vendor/leaflet``); the data comes over the API and the
websockets, with the caller's own token or share link. Nothing is loaded from another
host, so the pages work on closed networks.
"""

from __future__ import annotations

from importlib import resources

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from api.routing import PUBLIC, Ctx, QueryParam, Router

router = Router("pages")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",  # the share token is in the page's URL
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _page(name: str) -> Response:
    body = resources.files("api.static").joinpath(name).read_bytes()
    return Response(body, media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get(
    "/track/{order_id}",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=(
        QueryParam(
            "share",
            str,
            "a share token (POST /v1/orders/{id}/share); else sign in",
            max_length=4096,
        ),
        QueryParam("lang", str, "zh (default) or en", choices=("zh", "en")),
    ),
    summary="The customer's arrival map (?share=<token>, or the customer signs in on the page)",
)
async def track_page(ctx: Ctx) -> Response:
    ctx.path_int("order_id")  # a bad id is a 422 naming it, not a page that cannot work
    return _page("track.html")


@router.get(
    "/console",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=(
        QueryParam("city", str, "the city to watch (else the page lists them)", max_length=40),
        QueryParam("lang", str, "zh (default) or en", choices=("zh", "en")),
    ),
    summary="The dispatcher console (?city=<city_id>; the dispatcher signs in on the page)",
)
async def console_page(ctx: Ctx) -> Response:
    return _page("console.html")


STATIC = Mount(
    "/static", app=StaticFiles(packages=[("api", "static")], follow_symlink=False), name="static"
)


_LANG = (QueryParam("lang", str, "zh (default) or en"),)


@router.get(
    "/app",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=_LANG,
    summary="The customer's app (phone): search, book, addresses, orders, tracking, rating",
)
async def customer_app(ctx: Ctx) -> Response:
    return _page("app.html")


@router.get(
    "/worker",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=_LANG,
    summary="The worker's app (phone): shift, position, offers, the job flow, plan, earnings",
)
async def worker_app(ctx: Ctx) -> Response:
    return _page("worker.html")


@router.get(
    "/admin",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=_LANG,
    summary="The back office (desktop): dispatch, orders, workers and teams, catalog, accounts",
)
async def admin_app(ctx: Ctx) -> Response:
    return _page("admin.html")

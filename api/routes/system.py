"""Health, readiness, metrics, the OpenAPI document and the docs page.

``/metrics`` is not public (business volumes, login failures): the scraper's
``DOORSTEP_METRICS_TOKEN`` or an admin's access token (``api.routing.METRICS_ROLE``).
``/docs`` runs an inline script: its Content-Security-Policy names that script's and
style's SHA-256 hashes, so nothing else can run there (``api/secheaders.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from functools import cache
from importlib import resources

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from api.routing import METRICS_ROLE, PUBLIC, Ctx, Router, encode

router = Router("system")


class Health(msgspec.Struct):
    """The process is up."""

    status: str


class Readiness(msgspec.Struct):
    """Whether each store answers."""

    status: str
    postgres: str
    redis: str


async def _check(probe: asyncio.Future[object] | asyncio.Task[object], timeout_s: float) -> str:
    try:
        await asyncio.wait_for(probe, timeout_s)
    except Exception as e:  # any failure means "not ready"; say which
        return f"down: {type(e).__name__}: {e}"[:200]
    return "ok"


@router.get("/healthz", roles=PUBLIC, returns=Health, summary="The process is up")
async def healthz(ctx: Ctx) -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    roles=PUBLIC,
    returns=Readiness,
    summary="PostgreSQL and Redis answer (503 if either does not)",
)
async def readyz(ctx: Ctx) -> Response:
    pg = await _check(asyncio.ensure_future(ctx.stores.pool.fetchval("SELECT 1")), 2.0)
    rd = await _check(asyncio.ensure_future(ctx.stores.redis.ping()), 2.0)
    ready = pg == "ok" and rd == "ok"
    body = Readiness(status="ok" if ready else "unavailable", postgres=pg, redis=rd)
    return Response(
        encode(msgspec.to_builtins(body)),
        status_code=200 if ready else 503,
        media_type="application/json",
    )


@router.get(
    "/metrics",
    perm="metrics.read",
    roles=frozenset({"admin", METRICS_ROLE}),
    returns=str,
    media_type="text/plain",
    summary="Prometheus metrics: 'Authorization: Bearer <DOORSTEP_METRICS_TOKEN>', or an admin",
)
async def metrics(ctx: Ctx) -> Response:
    await ctx.request.app.state.backbone_metrics.refresh()
    return Response(
        generate_latest(ctx.request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/openapi.json", roles=PUBLIC, returns=dict, summary="This API as OpenAPI 3.1")
async def openapi(ctx: Ctx) -> Response:
    return Response(ctx.request.app.state.openapi, media_type="application/json")


@router.get(
    "/docs",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    summary="A page that renders the OpenAPI document",
)
async def docs(ctx: Ctx) -> Response:
    page, csp = _docs_page()
    return Response(
        page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": csp}
    )


@cache
def _docs_page() -> tuple[bytes, str]:
    """The docs page and a policy that lets exactly its inline script and style run
    (their SHA-256 hashes) and lets it fetch /openapi.json, nothing else."""
    page = resources.files("api.static").joinpath("docs.html").read_bytes()
    text = page.decode()

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
            for b in bodies
        )

    csp = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    )
    return page, csp

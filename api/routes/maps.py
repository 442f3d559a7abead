"""The basemap of a city as GeoJSON, for the live pages (no tiles from anywhere else)."""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response

from api.routing import PUBLIC, Ctx, Router
from catalog import service as catalog
from geo import basemap, bundled, roadgraph

router = Router("maps")
GEOJSON = "application/geo+json"


@functools.lru_cache(maxsize=32)
def _roads(bbox: tuple[float, float, float, float]) -> tuple[bytes, bytes, str]:
    """(body, gzipped body, etag) of the roads near ``bbox``."""
    city_id = roadgraph.city_for_bbox(bbox)
    if city_id is None:  # no bundled network under this city: an empty road layer
        return _packed(basemap.roads([], [], bbox))
    nodes, edges = bundled.read_road_nodes(city_id), bundled.read_road_edges(city_id)
    return _packed(basemap.roads(nodes, edges, bbox))


@functools.lru_cache(maxsize=32)
def _areas(bbox: tuple[float, float, float, float], area_json: bytes) -> tuple[bytes, bytes, str]:
    """(body, gzipped body, etag) of the districts and the service area near ``bbox``."""
    collection = basemap.areas(orjson.loads(area_json), bundled.read_shenzhen_districts(), bbox)
    return _packed(collection)


def _packed(collection: dict[str, Any]) -> tuple[bytes, bytes, str]:
    body = orjson.dumps(collection)
    return body, gzip.compress(body, 6, mtime=0), '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


def _respond(ctx: Ctx, packed: tuple[bytes, bytes, str]) -> Response:
    """The body (gzipped if the client takes it), cacheable, 304 if the client has it."""
    body, zipped, etag = packed
    headers = {"ETag": etag, "Cache-Control": "public, max-age=600", "Vary": "Accept-Encoding"}
    if ctx.request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in ctx.request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(zipped, media_type=GEOJSON, headers=headers)
    return Response(body, media_type=GEOJSON, headers=headers)


async def _layer(
    ctx: Ctx, build: Callable[[tuple[float, float, float, float], bytes], Any]
) -> Response:
    city = await catalog.get_city(ctx.stores.pool, ctx.path_str("city_id"))
    bbox = basemap.expand(tuple(city.bbox), basemap.MARGIN_DEG)  # type: ignore[arg-type]
    # Built once per city outline (a fraction of a second), off the event loop.
    packed = await asyncio.to_thread(build, bbox, orjson.dumps(city.service_area))
    return _respond(ctx, packed)


@router.get(
    "/v1/cities/{city_id}/map/roads.geojson",
    roles=PUBLIC,
    returns=dict,
    media_type=GEOJSON,
    summary="The roads around a city (WGS-84, simplified), for a self-drawn basemap",
)
async def city_roads(ctx: Ctx) -> Response:
    return await _layer(ctx, lambda bbox, _area: _roads(bbox))


@router.get(
    "/v1/cities/{city_id}/map/areas.geojson",
    roles=PUBLIC,
    returns=dict,
    media_type=GEOJSON,
    summary="A city's service area and the districts around it (WGS-84, simplified)",
)
async def city_areas(ctx: Ctx) -> Response:
    return await _layer(ctx, _areas)

"""Uploads of photos and documents, their metadata, signed links and downloads.

An upload's body is the file's raw bytes (``POST /v1/files?purpose=…``), not
multipart: a browser sends a ``File`` with ``fetch(url, {method: "POST", body: file})``,
a phone app its bytes, and no form parser (``python-multipart``) is needed. The
declared ``Content-Type`` and any file name are ignored: files/ reads the type from
the bytes.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.errors import BodyTooLarge, RequestError
from api.routing import ANY_ROLE, PUBLIC, Ctx, QueryParam, Router, encode
from files import links, service
from files.blobs import BlobStore, local_store
from files.content import EXTENSION, FIELD
from files.errors import LinkExpired, UploadNotAllowed
from files.models import FileLink, StoredFile
from files.purposes import Purpose, get, registered

router = Router("files")


class PurposeOut(msgspec.Struct):
    """What a purpose accepts: types (read from the bytes), bytes, the longest image edge
    kept, and who may upload (``null``: anyone signed in)."""

    name: str
    media_types: list[str]
    max_bytes: int
    max_edge_px: int
    uploaders: list[str] | None


class LinkExpiredGone(RequestError):
    """A download link past its expiry: 410, ask for a new one."""

    status = 410
    code = "link_expired"


def _blobs(ctx: Ctx) -> BlobStore:
    return local_store(ctx.settings.data_dir)


def _key(ctx: Ctx) -> bytes:
    return links.link_key(ctx.policy.key)


async def _read_body(request: Request, purpose: Purpose) -> bytes:
    """The raw body, refused with 413 as soon as it passes the purpose's limit."""
    limit = purpose.max_bytes
    message = f"the file is larger than {limit} bytes, the limit for {purpose.name}"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(message, field=FIELD)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(message, field=FIELD)
        chunks.append(chunk)
    return b"".join(chunks)


@router.get(
    "/v1/file-purposes",
    roles=PUBLIC,
    returns=list[PurposeOut],
    summary="What each upload purpose accepts (types, size, image edge, uploaders)",
)
async def file_purposes(ctx: Ctx) -> list[PurposeOut]:
    return [
        PurposeOut(
            name=p.name,
            media_types=sorted(p.media_types),
            max_bytes=p.max_bytes,
            max_edge_px=p.max_edge_px,
            uploaders=sorted(p.uploaders) if p.uploaders is not None else None,
        )
        for p in registered()
    ]


@router.post(
    "/v1/files",
    errors={
        422: "the bytes are not a type the purpose takes, or an image cannot be read",
        429: "too many uploads; Retry-After says when",
    },
    perm="self",
    roles=ANY_ROLE,
    returns=StoredFile,
    status=201,
    query=(
        QueryParam(
            "purpose",
            str,
            "what the file is for (GET /v1/file-purposes)",
            required=True,
            max_length=40,
        ),
    ),
    summary="Upload a photo or document: the raw bytes as the body (201; 200 for a repeat)",
)
async def upload_file(ctx: Ctx) -> StoredFile | Response:
    purpose = get(ctx.query_str("purpose"))
    if not purpose.may_upload(ctx.user):  # before reading a byte of the body
        raise UploadNotAllowed(
            f"{purpose.name} files are uploaded by: {', '.join(sorted(purpose.uploaders or ()))}",
            field="purpose",
        )
    data = await _read_body(ctx.request, purpose)
    file, created = await service.upload(
        ctx.stores, _blobs(ctx), ctx.user, purpose=purpose.name, data=data, now=ctx.now
    )
    if created:
        return file
    return Response(encode(file), status_code=200, media_type="application/json")


@router.get(
    "/v1/files/{file_id}",
    perm="self",
    roles=ANY_ROLE,
    returns=StoredFile,
    summary="A file's metadata (its owner, staff, or whom its purpose lets read it)",
)
async def file_metadata(ctx: Ctx) -> StoredFile:
    return await service.get_file(ctx.stores, ctx.user, ctx.path_int("file_id"))


@router.get(
    "/v1/files/{file_id}/url",
    perm="self",
    roles=ANY_ROLE,
    returns=FileLink,
    query=(
        QueryParam(
            "ttl_s",
            int,
            f"seconds the link stays valid, {links.MIN_TTL_S}–{links.MAX_TTL_S} "
            f"(default {links.DEFAULT_TTL_S})",
            ge=links.MIN_TTL_S,
            le=links.MAX_TTL_S,
        ),
    ),
    summary="A signed, expiring download link (for whoever may read the file)",
)
async def file_url(ctx: Ctx) -> FileLink:
    ttl_s = ctx.query_int("ttl_s", links.DEFAULT_TTL_S, ge=links.MIN_TTL_S, le=links.MAX_TTL_S)
    return await service.issue_link(
        ctx.stores,
        ctx.user,
        ctx.path_int("file_id"),
        key=_key(ctx),
        now=ctx.now,
        ttl_s=ttl_s,
        origin=str(ctx.request.base_url),
    )


@router.get(
    "/v1/files/{file_id}/content",
    errors={
        403: "the link's signature does not match",
        410: "the link has expired, or the file was deleted",
    },
    roles=PUBLIC,
    returns=str,
    media_type="application/octet-stream",
    query=(
        QueryParam("exp", int, "the link's expiry (unix seconds)", required=True, ge=0, le=2**62),
        QueryParam("sig", str, "the link's signature", required=True, max_length=200),
    ),
    summary="Download through a signed link (403 changed, 410 expired)",
)
async def file_content(ctx: Ctx) -> Response:
    request = ctx.request
    try:
        file, expires_at = await service.open_link(
            ctx.stores,
            key=_key(ctx),
            file_id=ctx.path_int("file_id"),
            exp=request.query_params.get("exp"),
            sig=request.query_params.get("sig"),
            now=ctx.now,
        )
    except LinkExpired as e:
        raise LinkExpiredGone(e.message, field=e.field) from None
    etag = f'"{file.sha256}"'
    disposition = "attachment" if file.media_type == "application/pdf" else "inline"
    name = f"file-{file.id}.{EXTENSION.get(file.media_type, 'bin')}"
    headers = {
        "Content-Disposition": f'{disposition}; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        # Personal data: no shared cache keeps it, and no browser beyond the link's life.
        "Cache-Control": f"private, max-age={max(0, expires_at - ctx.now)}, immutable",
        "ETag": etag,
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    data = await _blobs(ctx).get(file.sha256)
    return Response(data, media_type=file.media_type, headers=headers)


@router.delete(
    "/v1/files/{file_id}",
    perm="self",
    roles=ANY_ROLE,
    summary="Delete one of my files that is not attached to anything (409 if it is)",
)
async def delete_file(ctx: Ctx) -> None:
    await service.delete(ctx.stores, _blobs(ctx), ctx.user, ctx.path_int("file_id"))

"""Request bodies: JSON only, size-limited, decoded strictly (doorstep.wire)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from api.errors import BodyTooLarge, UnsupportedMediaType
from doorstep.wire import Input, decode

__all__ = ["Input", "read_json", "to_builtins"]

T = TypeVar("T")


async def read_json(request: Request, typ: type[T], *, max_bytes: int) -> T:
    """Read, size-check and decode the request body."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("send the body as application/json", field="content-type")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return decode(b"".join(chunks), typ)


def to_builtins(obj: Any) -> Any:
    """Structures as plain JSON-able values."""
    return msgspec.to_builtins(obj)

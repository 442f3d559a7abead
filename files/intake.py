"""What an upload becomes before it is stored: sniffed, checked, cleaned. Pure, CPU-bound.

Images come out re-encoded (files.images); a PDF is kept as sent once its structure and
names pass (files.content). Either way the result's type is what the bytes are, never
what the client said.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from files.content import FIELD, MediaType, check_pdf, sniff
from files.errors import FileTooLarge, UnsupportedFileType
from files.images import clean_image
from files.purposes import Purpose


@dataclass(frozen=True, slots=True)
class Prepared:
    """The bytes to store, their type, hash and (images) size in pixels."""

    data: bytes
    media_type: MediaType
    sha256: str
    width: int | None
    height: int | None


def prepare(data: bytes, purpose: Purpose) -> Prepared:
    """Check ``data`` against ``purpose`` and clean it; raise a named refusal otherwise."""
    if not data:
        raise UnsupportedFileType("the body is empty; send the file's bytes", field=FIELD)
    if len(data) > purpose.max_bytes:
        raise FileTooLarge(
            f"{len(data)} bytes; {purpose.name} allows at most {purpose.max_bytes}", field=FIELD
        )
    sniffed = sniff(data, purpose.media_types, purpose=purpose.name)
    if sniffed.media_type == "application/pdf":
        check_pdf(data)
        return Prepared(data, "application/pdf", hashlib.sha256(data).hexdigest(), None, None)
    cleaned = clean_image(data, sniffed.media_type, max_edge_px=purpose.max_edge_px)
    return Prepared(
        cleaned.data,
        cleaned.media_type,
        hashlib.sha256(cleaned.data).hexdigest(),
        cleaned.width,
        cleaned.height,
    )

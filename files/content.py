"""What an upload really is, read from its bytes. Pure: no I/O, no decoding.

The name a client gives a file and the Content-Type it declares are never used: an
``.exe`` renamed ``photo.jpg`` and sent as ``image/jpeg`` starts with ``MZ`` and is
refused as a Windows program. Past the magic bytes, each accepted format is walked to
its structural end (JPEG markers to EOI, PNG chunks to IEND, the RIFF size of WebP,
PDF's last ``%%EOF``), so that what follows the end — where polyglots hide a ZIP, a
program or a script — can be looked at.

Images are re-encoded afterwards (files.images), so nothing but their pixels is kept
whatever follows them; an archive, program, script or document behind an image is
still refused, because an upload like that is an attack, not a photo. A trailer that is
video (``ftyp``: the "motion photo" many Android phones append to a JPEG) or unknown
camera data is dropped with the rest of the metadata.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal

from files.errors import CorruptFile, HiddenContent, UnsupportedFileType

MediaType = Literal["image/jpeg", "image/png", "image/webp", "application/pdf"]
IMAGE_TYPES: frozenset[MediaType] = frozenset({"image/jpeg", "image/png", "image/webp"})
DOCUMENT_TYPES: frozenset[MediaType] = IMAGE_TYPES | {"application/pdf"}
EXTENSION: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/pdf": "pdf",
}

FIELD = "body"
_BLANK = b"\x00 \t\r\n"

# Formats we recognise only to name them in a refusal.
_KNOWN_OTHERS: tuple[tuple[bytes, int, str], ...] = (
    (b"MZ", 0, "a Windows program (MZ)"),
    (b"\x7fELF", 0, "a Linux program (ELF)"),
    (b"\xcf\xfa\xed\xfe", 0, "a macOS program (Mach-O)"),
    (b"\xca\xfe\xba\xbe", 0, "a Java class or macOS program"),
    (b"#!", 0, "a script"),
    (b"PK\x03\x04", 0, "a ZIP archive (or an Office/APK file)"),
    (b"Rar!", 0, "a RAR archive"),
    (b"7z\xbc\xaf", 0, "a 7-Zip archive"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"GIF8", 0, "a GIF image"),
    (b"BM", 0, "a BMP image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"ftypheic", 4, "a HEIC image (set the phone's camera to 'most compatible' / JPEG)"),
    (b"ftypheix", 4, "a HEIC image (set the phone's camera to 'most compatible' / JPEG)"),
    (b"ftypmif1", 4, "a HEIF image"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"ftyp", 4, "a video"),
    (b"\xd0\xcf\x11\xe0", 0, "an old Office document"),
    (b"{\\rtf", 0, "an RTF document"),
)

# Signatures that make a trailer (data after an image's end) an attack: archives,
# documents, markup and scripts a browser or tool might pick up anywhere in it, and
# programs at its start (two bytes like "MZ" turn up by chance in camera data).
_DANGEROUS_ANYWHERE = re.compile(
    rb"PK\x03\x04|PK\x05\x06|PK\x01\x02|Rar!\x1a\x07|7z\xbc\xaf\x27\x1c|%PDF-"
    rb"|<\s*(?:script|html|svg|iframe|object|embed|body|\?php|\?xml)|<!doctype|javascript:",
    re.IGNORECASE,
)
_PROGRAMS = (b"MZ", b"\x7fELF", b"#!", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


@dataclass(frozen=True, slots=True)
class Sniffed:
    """An upload's type as its bytes say, and where its structure ends."""

    media_type: MediaType
    end: int  # offset just past the format's structural end; len(data) if nothing follows

    def trailer(self, data: bytes) -> bytes:
        """What follows the end of the format's structure."""
        return data[self.end :]


def describe(data: bytes) -> str:
    """A person's name for what ``data`` is, for refusals."""
    for magic, offset, name in _KNOWN_OTHERS:
        if data[offset : offset + len(magic)] == magic:
            return name
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<script")):
        return "an HTML page"
    if head.startswith((b"<svg", b"<?xml")):
        return "an SVG/XML document"
    if not data:
        return "empty"
    return "of an unknown type"


def media_type_of(data: bytes) -> MediaType | None:
    """The accepted type ``data``'s magic bytes announce, if any."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:5] == b"%PDF-":
        return "application/pdf"
    return None


def sniff(data: bytes, allowed: frozenset[MediaType], *, purpose: str) -> Sniffed:
    """The type of ``data`` from its bytes, checked against ``allowed``, walked to its end.

    Raises :class:`UnsupportedFileType`, :class:`CorruptFile` (the structure stops short)
    or :class:`HiddenContent` (an archive, program, script or document after the end).
    """
    media_type = media_type_of(data)
    allowed_names = ", ".join(sorted(allowed))
    if media_type is None:
        raise UnsupportedFileType(
            f"the content is {describe(data)}; {purpose} accepts {allowed_names} "
            "(checked from the bytes, not the name or Content-Type)",
            field=FIELD,
        )
    if media_type not in allowed:
        raise UnsupportedFileType(
            f"the content is {media_type}; {purpose} accepts {allowed_names}", field=FIELD
        )
    end = _END[media_type](data)
    sniffed = Sniffed(media_type, end)
    check_trailer(sniffed, data)
    return sniffed


def check_trailer(sniffed: Sniffed, data: bytes) -> None:
    """Refuse a polyglot: a dangerous signature after the format's end.

    For a PDF any trailer beyond whitespace is refused: a PDF is stored as sent, so what
    follows its last ``%%EOF`` would be served too.
    """
    trailer = sniffed.trailer(data)
    if not trailer.strip(_BLANK):
        return
    what = f"{len(trailer)} bytes follow the end of the {sniffed.media_type} content"
    if sniffed.media_type == "application/pdf":
        raise HiddenContent(f"{what}; a PDF must end with %%EOF", field=FIELD)
    start = trailer.lstrip(_BLANK)
    if start[4:8] != b"ftyp" and (
        start.startswith(_PROGRAMS) or _DANGEROUS_ANYWHERE.search(trailer)
    ):
        hidden = describe(start)
        if hidden.startswith("of "):
            hidden = "an archive, program, document or markup"
        raise HiddenContent(
            f"{what}: {hidden} hidden behind the image (a polyglot) is refused", field=FIELD
        )


def _corrupt(media_type: str, rule: str) -> CorruptFile:
    return CorruptFile(f"the {media_type} content is damaged or cut short: {rule}", field=FIELD)


def jpeg_end(data: bytes) -> int:
    """Offset just past the EOI marker, walking segments (entropy-coded data skipped)."""
    n = len(data)
    i = 2
    while True:
        if i + 1 >= n:
            raise _corrupt("image/jpeg", "no end-of-image marker")
        if data[i] != 0xFF:
            raise _corrupt("image/jpeg", f"expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # EOI
            return i + 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RST: no length
            i += 2
            continue
        if i + 3 >= n:
            raise _corrupt("image/jpeg", "a segment is cut short")
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            raise _corrupt("image/jpeg", f"a segment at byte {i} has length {length}")
        i += 2 + length
        if i > n:
            raise _corrupt("image/jpeg", "a segment is cut short")
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    raise _corrupt("image/jpeg", "the scan data has no end")
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    i = j + 1 if nxt == 0xFF else j + 2
                    continue
                i = j
                break


def png_end(data: bytes) -> int:
    """Offset just past the IEND chunk; every chunk's CRC checked (Pillow skips the
    image data's, and a damaged deflate stream can still inflate)."""
    n = len(data)
    i = 8
    while True:
        if i + 8 > n:
            raise _corrupt("image/png", "no IEND chunk")
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > n:
            raise _corrupt("image/png", f"chunk {kind.decode('latin-1')!r} is cut short")
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[i + 4 : end - 4]) != crc:
            raise _corrupt("image/png", f"chunk {kind.decode('latin-1')!r} fails its CRC")
        i = end
        if kind == b"IEND":
            return i


def webp_end(data: bytes) -> int:
    """Offset just past the RIFF container its header announces."""
    size = int.from_bytes(data[4:8], "little") + 8
    size += size & 1  # RIFF pads to even
    if size > len(data) + 1 or size < 12:
        raise _corrupt("image/webp", "the RIFF size is larger than the file")
    return min(size, len(data))


def pdf_end(data: bytes) -> int:
    """Offset just past the last ``%%EOF`` marker (and its end of line)."""
    at = data.rfind(b"%%EOF")
    if at < 0:
        raise _corrupt("application/pdf", "no %%EOF marker")
    return at + 5


_END = {
    "image/jpeg": jpeg_end,
    "image/png": png_end,
    "image/webp": webp_end,
    "application/pdf": pdf_end,
}

# Names that give a PDF active content: scripts, launching programs, embedded files,
# Flash/3D, XFA forms, form submission. (``/OpenAction`` alone is common and harmless:
# scanners use it to set the zoom; it runs a script only through ``/JS``.) Matched as
# plain PDF names; inside compressed object streams they are not visible, which is why
# PDFs are served as attachments in a sandbox (see docs/api.md, Files).
_PDF_ACTIVE = re.compile(
    rb"/(JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA|SubmitForm|ImportData|GoToE)"
    rb"(?![A-Za-z0-9])"
)


def check_pdf(data: bytes) -> None:
    """Refuse a PDF that names active content (scripts, launch actions, embedded files)."""
    if not re.match(rb"%PDF-[12]\.\d", data):
        raise _corrupt("application/pdf", "the header is not %PDF-1.x or %PDF-2.x")
    found = _PDF_ACTIVE.search(data)
    if found:
        name = found.group(1).decode()
        raise UnsupportedFileType(
            f"the PDF carries active content (/{name}); upload a plain scan or photo",
            field=FIELD,
        )

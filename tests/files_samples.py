"""Sample uploads for the files tests: real images and documents made with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112
RED = (255, 0, 0)
BLUE = (0, 0, 255)


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: make, model, orientation and a GPS position in Futian."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "Xiaomi"
    exif[0x0110] = "Redmi Note 12"
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (22.0, 32.0, 10.5)
    gps[3] = "E"
    gps[4] = (114.0, 3.0, 1.25)
    return exif


def picture(width: int = 60, height: int = 30) -> Image.Image:
    """Blue with a red block in the top-left corner (a third of the width, half the height)."""
    im = Image.new("RGB", (width, height), BLUE)
    im.paste(RED, (0, 0, width // 3, height // 2))
    return im


def jpeg(width: int = 60, height: int = 30, *, orientation: int = 1, gps: bool = True) -> bytes:
    """A JPEG with (by default) EXIF carrying a GPS position, and a comment."""
    out = io.BytesIO()
    extra: dict[str, object] = {"comment": b"shot at home"}
    if gps:
        extra["exif"] = exif_with_gps(orientation)
    picture(width, height).save(out, "JPEG", quality=95, **extra)
    return out.getvalue()


def png(width: int = 60, height: int = 30, *, gps: bool = True) -> bytes:
    """A PNG with an eXIf chunk carrying a GPS position and a text chunk."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "22.5362,114.0503")
    out = io.BytesIO()
    extra: dict[str, object] = {"pnginfo": info}
    if gps:
        extra["exif"] = exif_with_gps()
    picture(width, height).save(out, "PNG", **extra)
    return out.getvalue()


def webp(width: int = 60, height: int = 30) -> bytes:
    """A WebP with EXIF carrying a GPS position."""
    out = io.BytesIO()
    picture(width, height).save(out, "WEBP", quality=90, exif=exif_with_gps())
    return out.getvalue()


def pdf() -> bytes:
    """A one-page PDF, as a scanner's software writes one."""
    out = io.BytesIO()
    picture(200, 280).save(out, "PDF", resolution=72)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(width: int = 30000, height: int | None = None) -> bytes:
    """A real decompression bomb: a valid 1-bit PNG of black pixels, 30000² by default
    (~110 KB for 900 million pixels)."""
    height = width if height is None else height
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def windows_program() -> bytes:
    """The start of a Windows executable (a DOS stub header and PE signature)."""
    stub = bytearray(b"MZ" + b"\x90\x00" * 29 + b"\x00" * 4)
    stub[0x3C:0x40] = (64).to_bytes(4, "little")
    return bytes(stub[:64]) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 400


def zip_archive() -> bytes:
    """A small ZIP archive holding one script."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("run.js", "alert(document.cookie)")
    return out.getvalue()

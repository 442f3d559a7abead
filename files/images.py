"""Images decoded for real and re-encoded with Pillow: pixels kept, everything else dropped.

Pure computation (bytes in, bytes out), CPU-bound: the service runs it in a thread.

- Decoding for real is the type check that magic bytes cannot make: a JPEG header on
  garbage, a truncated file or a damaged chunk fails here and is refused.
- A decompression bomb (a few KB that inflate to gigapixels) is refused by its declared
  size before any pixel is decoded: Pillow's own guard (``Image.MAX_IMAGE_PIXELS``,
  which raises above twice the limit and warns above it) and ours (:func:`pixel_limit`).
- The EXIF orientation is applied to the pixels first, then a new image is built from
  the pixels alone, so EXIF (with the phone's GPS position, its make and serial),
  XMP, IPTC, comments, PNG text chunks and embedded thumbnails cannot follow it out
  (Pillow carries some of them from ``info`` into a save, e.g. a JPEG comment). A
  colour profile is applied (converted to sRGB) and then dropped too.
- The longest edge is bounded by the purpose (``max_edge_px``); an animated image keeps
  its first frame.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageCms

from files.content import FIELD, MediaType
from files.errors import CorruptFile, ImageTooLarge

# Pixels an upload may have, refused beyond before any is decoded. A JPEG is decoded
# at a reduced scale when it is to be shrunk (``draft``), so Pillow's own limit
# (``Image.MAX_IMAGE_PIXELS``, 89.5 MP: a 64 MP phone photo passes) is ours too; PNG
# and WebP decode at full size, 4 bytes a pixel, so they stop at 40 MP (160 MB).
MAX_PIXELS_FULL_DECODE = 40_000_000
JPEG_QUALITY = 85
WEBP_QUALITY = 85

_FORMAT: dict[MediaType, str] = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True, slots=True)
class Cleaned:
    """A re-encoded image: its bytes, type and size in pixels."""

    data: bytes
    media_type: MediaType
    width: int
    height: int


def pixel_limit(media_type: MediaType) -> int:
    """The most pixels an upload of ``media_type`` may have (never above Pillow's own)."""
    pillow = Image.MAX_IMAGE_PIXELS
    if pillow is None:
        return MAX_PIXELS_FULL_DECODE
    if media_type == "image/jpeg":
        return int(pillow)
    return min(MAX_PIXELS_FULL_DECODE, int(pillow))


def clean_image(data: bytes, media_type: MediaType, *, max_edge_px: int) -> Cleaned:
    """Decode ``data`` (already sniffed as ``media_type``) and re-encode it without metadata.

    Raises :class:`CorruptFile` if it does not decode, :class:`ImageTooLarge` for a bomb.
    """
    fmt = _FORMAT[media_type]
    limit = pixel_limit(media_type)
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            f"the image declares more pixels than may be decoded (limit {limit:,})", field=FIELD
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptFile(f"the {media_type} content does not decode: {e}", field=FIELD) from None
    with im:
        width, height = im.size
        if width * height > limit:
            raise ImageTooLarge(
                f"the image is {width}×{height} = {width * height:,} pixels; "
                f"the limit is {limit:,}",
                field=FIELD,
            )
        if width < 1 or height < 1:
            raise CorruptFile("the image has no pixels", field=FIELD)
        orientation = _orientation(im)
        icc = im.info.get("icc_profile")
        try:
            if fmt == "JPEG":  # decode at a reduced scale when the result is shrunk anyway
                im.draft(None, (max_edge_px, max_edge_px))
            im.load()
            pixels = _normalize(im, icc if isinstance(icc, bytes) else None, fmt)
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise CorruptFile(
                f"the {media_type} content does not decode: {e}", field=FIELD
            ) from None
    if orientation in _TRANSPOSE:
        pixels = pixels.transpose(_TRANSPOSE[orientation])
    if max(pixels.size) > max_edge_px:
        pixels.thumbnail((max_edge_px, max_edge_px), Image.Resampling.LANCZOS)
    # A new image from the pixels alone: no info, no cached EXIF, nothing to carry over.
    clean = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())
    out = io.BytesIO()
    if fmt == "JPEG":
        clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "PNG":
        clean.save(out, "PNG")
    else:
        clean.save(out, "WEBP", quality=WEBP_QUALITY)
    return Cleaned(out.getvalue(), media_type, clean.width, clean.height)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1 when absent or unreadable: a damaged EXIF is dropped anyway)."""
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # Pillow raises many types on a damaged EXIF block
        return 1
    return value if isinstance(value, int) else 1


def _normalize(im: Image.Image, icc: bytes | None, fmt: str) -> Image.Image:
    """The first frame as L, LA, RGB or RGBA (what every output format can hold), in sRGB."""
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    if fmt == "JPEG":
        target = "L" if im.mode in ("L", "1") else "RGB"
    elif im.mode in ("L", "1", "I;16", "I", "F") and not has_alpha:
        target = "L" if fmt == "PNG" else "RGB"
    else:
        target = "RGBA" if has_alpha else "RGB"
    if icc and target in ("RGB", "RGBA") and im.mode in ("RGB", "RGBA", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, src, _SRGB, outputMode=target)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # a profile we cannot read: keep the pixels as they are
        if converted is not None:
            return converted
    if im.mode == target:
        return im.copy()
    if im.mode in ("I;16", "I", "F") and target == "L":  # 16-bit and float grey: scale down
        return im.point(lambda v: v / 256).convert("L") if im.mode != "F" else im.convert("L")
    return im.convert(target)

"""The files package's pure rules: sniffing, structure, cleaning, links, limits, purposes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from files import content, links, rules
from files.content import IMAGE_TYPES, MediaType
from files.errors import (
    BadSignature,
    CorruptFile,
    FileTooLarge,
    HiddenContent,
    ImageTooLarge,
    InvalidFileInput,
    LinkExpired,
    UnsupportedFileType,
    UploadLimit,
)
from files.images import clean_image
from files.intake import prepare
from files.purposes import get, register_purpose, staff_may_read
from tests import files_samples as s

PHOTO = get("review_photo")
CERT = get("certificate")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (s.jpeg(), "image/jpeg"),
        (s.png(), "image/png"),
        (s.webp(), "image/webp"),
        (s.pdf(), "application/pdf"),
        (s.windows_program(), None),
        (s.zip_archive(), None),
        (b"GIF89a" + b"\x00" * 20, None),
    ],
)
def test_media_type_comes_from_the_magic_bytes(data: bytes, expected: str | None) -> None:
    """The type is read from the content's first bytes; anything else is not an accepted type."""
    assert content.media_type_of(data) == expected


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (s.windows_program(), "a Windows program (MZ)"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 50, "a Linux program (ELF)"),
        (s.zip_archive(), "a ZIP archive"),
        (b"<!DOCTYPE html><script>alert(1)</script>", "an HTML page"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "an SVG/XML document"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20, "a HEIC image"),
    ],
)
def test_a_disguised_or_unsupported_file_is_refused_naming_what_it_is(
    data: bytes, says: str
) -> None:
    """An .exe named .jpg, a ZIP, HTML, SVG or HEIC is refused on field body, saying what it is."""
    with pytest.raises(UnsupportedFileType) as info:
        content.sniff(data, IMAGE_TYPES, purpose="review_photo")
    assert info.value.field == "body"
    assert says in info.value.message
    assert "image/jpeg, image/png, image/webp" in info.value.message


def test_an_accepted_type_the_purpose_does_not_allow_is_refused() -> None:
    """A PDF is a document, not a photo: review photos refuse it, naming what they accept."""
    with pytest.raises(UnsupportedFileType) as info:
        prepare(s.pdf(), PHOTO)
    assert "the content is application/pdf; review_photo accepts" in info.value.message
    assert prepare(s.pdf(), CERT).media_type == "application/pdf"


@pytest.mark.parametrize("make", [s.jpeg, s.png, s.webp, s.pdf])
def test_a_truncated_file_is_refused_as_corrupt(make: object) -> None:
    """Cut in half, each accepted format is refused as damaged (its structure stops short)."""
    assert callable(make)
    data: bytes = make()
    with pytest.raises(CorruptFile) as info:
        prepare(data[: len(data) // 2], CERT)
    assert info.value.field == "body"


def test_a_damaged_png_fails_its_crc_and_a_bad_jpeg_header_fails_to_decode() -> None:
    """Bytes changed inside the image data or header are caught: PNG by CRC, JPEG by Pillow."""
    data = bytearray(s.png(200, 200))
    at = data.find(b"IDAT") + 10
    data[at : at + 4] = b"\x00\x01\x02\x03"
    with pytest.raises(CorruptFile, match="fails its CRC"):
        prepare(bytes(data), PHOTO)
    jpeg = bytearray(s.jpeg())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = b"\x00\x00\x00\x00"  # zero height and width
    with pytest.raises(CorruptFile, match="does not decode"):
        prepare(bytes(jpeg), PHOTO)


@pytest.mark.parametrize(
    "trailer",
    [
        s.zip_archive(),
        s.windows_program(),
        b"<html><script>alert(document.cookie)</script></html>",
        b"%PDF-1.4\n1 0 obj<</OpenAction<</JS(app.alert(1))>>>>endobj\n%%EOF",
    ],
)
@pytest.mark.parametrize("make", [s.jpeg, s.png, s.webp])
def test_a_polyglot_is_refused(make: object, trailer: bytes) -> None:
    """An image with an archive, a program, HTML or a PDF appended is refused as hidden_content."""
    assert callable(make)
    with pytest.raises(HiddenContent) as info:
        prepare(make() + trailer, PHOTO)
    assert info.value.field == "body"
    assert "hidden behind the image" in info.value.message


def test_a_motion_photo_is_kept_as_its_still_image() -> None:
    """A JPEG with a video appended (Android's motion photo) is accepted; the video is dropped."""
    video = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 2000
    prepared = prepare(s.jpeg() + video, PHOTO)
    assert b"ftyp" not in prepared.data
    assert prepared.data.endswith(b"\xff\xd9")


def test_camera_data_after_an_image_is_dropped_not_refused() -> None:
    """A binary camera trailer (Samsung's SEFT) that holds "MZ" by chance is not taken for a
    program: the image is accepted and the trailer dropped."""
    trailer = b"\x00\x00SEFH" + bytes(range(256)) + b"..MZ.." + b"\x01" * 300 + b"SEFT"
    prepared = prepare(s.jpeg() + trailer, PHOTO)
    assert b"SEF" not in prepared.data


def test_a_pdf_with_data_after_its_end_or_a_script_is_refused() -> None:
    """A PDF is stored as sent, so a trailer after %%EOF or a /JavaScript action is refused."""
    with pytest.raises(HiddenContent):
        prepare(s.pdf() + s.zip_archive(), CERT)
    scripted = s.pdf().replace(
        b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /JavaScript >>"
    )
    with pytest.raises(UnsupportedFileType, match="active content"):
        prepare(scripted, CERT)
    assert prepare(s.pdf() + b"\r\n", CERT).media_type == "application/pdf"


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    """A 110 KB PNG declaring 900 million pixels is refused by Pillow's MAX_IMAGE_PIXELS guard."""
    bomb = s.png_bomb()
    assert len(bomb) < 200_000
    with pytest.raises(ImageTooLarge) as info:
        prepare(bomb, CERT)
    assert info.value.field == "body"


def test_an_image_over_our_pixel_limit_is_refused_by_its_declared_size() -> None:
    """A 10000×8000 image (under Pillow's own guard) is refused by ours, naming both numbers."""
    with pytest.raises(ImageTooLarge, match="10000×8000 = 80,000,000 pixels"):
        prepare(s.png_bomb(10000, 8000), CERT)


@pytest.mark.parametrize(
    ("make", "media_type"), [(s.jpeg, "image/jpeg"), (s.png, "image/png"), (s.webp, "image/webp")]
)
def test_cleaning_strips_exif_gps_and_every_other_metadata(make: object, media_type: str) -> None:
    """Re-encoded, an image carries no EXIF (so no GPS), no text chunk, comment, XMP or ICC."""
    assert callable(make)
    original = make()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(s.GPS_IFD)  # it was there
    cleaned = clean_image(original, media_type, max_edge_px=2048)  # type: ignore[arg-type]
    out = Image.open(io.BytesIO(cleaned.data))
    assert (
        out.format == {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}[media_type]
    )
    assert dict(out.getexif()) == {}
    assert out.getexif().get_ifd(s.GPS_IFD) == {}
    for key in ("exif", "comment", "xmp", "icc_profile", "Location", "XML:com.adobe.xmp"):
        assert key not in out.info
    assert b"Xiaomi" not in cleaned.data
    assert b"22.5362" not in cleaned.data


def test_orientation_is_applied_before_the_exif_goes() -> None:
    """A photo taken sideways (orientation 6) comes out upright: 30×60, red block top-right."""
    cleaned = clean_image(s.jpeg(60, 30, orientation=6), "image/jpeg", max_edge_px=2048)
    out = Image.open(io.BytesIO(cleaned.data)).convert("RGB")
    assert (cleaned.width, cleaned.height) == out.size == (30, 60)
    r, _, b = out.getpixel((27, 3))  # type: ignore[misc]
    assert r > 200
    assert b < 60
    r, _, b = out.getpixel((3, 3))  # type: ignore[misc]
    assert b > 200
    assert r < 60


def test_the_longest_edge_is_bounded_by_the_purpose() -> None:
    """An image wider than the purpose's max edge is scaled down, keeping its aspect ratio."""
    cleaned = clean_image(s.png(3000, 1000, gps=False), "image/png", max_edge_px=1024)
    assert (cleaned.width, cleaned.height) == (1024, 341)


def test_a_colour_profile_is_applied_and_dropped() -> None:
    """A photo with an ICC colour profile is converted to sRGB and comes out without the profile."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    s.picture().save(out, "JPEG", icc_profile=profile)
    cleaned = clean_image(out.getvalue(), "image/jpeg", max_edge_px=2048)
    assert "icc_profile" not in Image.open(io.BytesIO(cleaned.data)).info


def test_cleaning_is_deterministic_so_a_repeat_upload_has_the_same_hash() -> None:
    """The same upload, cleaned twice, gives the same bytes (the hash dedups repeats)."""
    data = s.jpeg()
    assert prepare(data, PHOTO).sha256 == prepare(data, PHOTO).sha256


def test_an_upload_over_the_purpose_limit_and_an_empty_one_are_refused() -> None:
    """More bytes than the purpose allows is file_too_large; nothing at all is named too."""
    small = register_purpose(
        "test_tiny_rule", media_types=IMAGE_TYPES, max_bytes=100, may_read=staff_may_read
    )
    with pytest.raises(FileTooLarge, match="allows at most 100"):
        prepare(s.jpeg(), small)
    with pytest.raises(UnsupportedFileType, match="empty"):
        prepare(b"", small)


def test_jpeg_walk_handles_fill_bytes_and_restart_markers() -> None:
    """Restart markers and stuffed bytes inside scan data do not end the image early."""
    out = io.BytesIO()
    s.picture(200, 200).save(out, "JPEG", restart_marker_blocks=1)
    data = out.getvalue()
    assert b"\xff\xd0" in data
    assert content.jpeg_end(data) == len(data)
    assert content.jpeg_end(data + b"junk") == len(data)


KEY = links.link_key("k" * 48)


def test_a_link_verifies_until_it_expires() -> None:
    """An issued link's signature checks; at its expiry it is refused as expired on field exp."""
    path, expires_at = links.issue(KEY, file_id=7, now=1000, ttl_s=60)
    assert path.startswith("/v1/files/7/content?exp=1060&sig=")
    sig = path.rsplit("sig=", 1)[1]
    links.check_signature(KEY, file_id=7, expires_at=expires_at, sig=sig)
    links.check_expiry(expires_at, now=1059)
    with pytest.raises(LinkExpired) as info:
        links.check_expiry(expires_at, now=1060)
    assert info.value.field == "exp"


@pytest.mark.parametrize(
    "change",
    ["file", "expiry", "signature", "short", "other key"],
)
def test_a_changed_link_is_refused(change: str) -> None:
    """Another file, a later expiry, an edited or short signature, another server's key: refused."""
    expires_at = 2000
    sig = links.sign(KEY, file_id=7, expires_at=expires_at)
    file_id = 7
    key = KEY
    if change == "file":
        file_id = 8
    elif change == "expiry":
        expires_at += 3600
    elif change == "signature":
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif change == "short":
        sig = sig[:-1]
    else:
        key = links.link_key("another server's key, long enough....")
    with pytest.raises(BadSignature) as info:
        links.check_signature(key, file_id=file_id, expires_at=expires_at, sig=sig)
    assert info.value.field == "sig"


def test_link_parameters_are_checked_by_name() -> None:
    """A missing or non-numeric exp, a missing sig and a ttl out of range are named."""
    with pytest.raises(InvalidFileInput) as info:
        links.parse_expiry(None)
    assert info.value.field == "exp"
    with pytest.raises(InvalidFileInput):
        links.parse_expiry("12e3")
    with pytest.raises(InvalidFileInput) as info:
        links.check_signature(KEY, file_id=1, expires_at=1, sig=None)
    assert info.value.field == "sig"
    with pytest.raises(InvalidFileInput) as info:
        links.issue(KEY, file_id=1, now=0, ttl_s=links.MAX_TTL_S + 1)
    assert info.value.field == "ttl_s"


def test_the_upload_window_resets_after_an_hour() -> None:
    """Counts run in a fixed window from the first upload; an hour later it starts again."""
    assert rules.window_after(None, 0, now=500) == (500, 0)
    assert rules.window_after(500, 7, now=500 + rules.WINDOW_S - 1) == (500, 7)
    assert rules.window_after(500, 7, now=500 + rules.WINDOW_S) == (500 + rules.WINDOW_S, 0)


def test_upload_limits_count_files_and_bytes() -> None:
    """The 61st upload in a window and an upload past the stored-bytes quota are refused."""
    rules.check_upload(
        window_start=0, uploads=rules.UPLOADS_PER_WINDOW - 1, stored_bytes=0, new_bytes=1, now=10
    )
    with pytest.raises(UploadLimit, match=r"try again in 3590 s"):
        rules.check_upload(
            window_start=0, uploads=rules.UPLOADS_PER_WINDOW, stored_bytes=0, new_bytes=1, now=10
        )
    with pytest.raises(UploadLimit, match="MB stored per user"):
        rules.check_upload(
            window_start=0, uploads=0, stored_bytes=rules.MAX_STORED_BYTES, new_bytes=1, now=10
        )


def test_a_builtin_purpose_can_be_taken_over_once_and_bad_rules_are_refused() -> None:
    """A capability replaces a built-in purpose's rule once; a second registration is an error."""

    async def nobody(caller: object, file: object, db: object) -> bool:
        return False

    register_purpose(
        "test_takeover", media_types=IMAGE_TYPES, max_bytes=10, may_read=nobody, builtin=True
    )
    taken = register_purpose(
        "test_takeover", media_types=IMAGE_TYPES, max_bytes=20, may_read=nobody
    )
    assert get("test_takeover") is taken
    with pytest.raises(ValueError, match="registered already"):
        register_purpose("test_takeover", media_types=IMAGE_TYPES, max_bytes=20, may_read=nobody)
    with pytest.raises(ValueError, match="max_bytes"):
        register_purpose("test_bad_size", media_types=IMAGE_TYPES, max_bytes=0, may_read=nobody)
    with pytest.raises(ValueError, match="purpose name"):
        register_purpose("Bad Name", media_types=IMAGE_TYPES, max_bytes=10, may_read=nobody)
    with pytest.raises(InvalidFileInput) as info:
        get("no_such_purpose")
    assert info.value.field == "purpose"


def _encoded(mode: str, color: object, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (20, 10), color).save(out, fmt, **kw)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "media_type", "mode"),
    [
        (_encoded("I;16", 40000, "PNG"), "image/png", "L"),
        (_encoded("1", 1, "PNG"), "image/png", "L"),
        (_encoded("LA", (100, 50), "PNG"), "image/png", "RGBA"),
        (_encoded("L", 100, "JPEG"), "image/jpeg", "L"),
        (_encoded("CMYK", (0, 255, 255, 0), "JPEG"), "image/jpeg", "RGB"),
        (_encoded("RGBA", (1, 2, 3, 100), "WEBP"), "image/webp", "RGBA"),
    ],
    ids=["png-16bit", "png-1bit", "png-grey-alpha", "jpeg-grey", "jpeg-cmyk", "webp-alpha"],
)
def test_every_pixel_mode_comes_out_in_one_its_format_holds(
    data: bytes, media_type: MediaType, mode: str
) -> None:
    """16-bit, 1-bit, grey+alpha, CMYK and alpha images are re-encoded in a mode their format saves."""
    cleaned = clean_image(data, media_type, max_edge_px=100)
    assert Image.open(io.BytesIO(cleaned.data)).mode == mode

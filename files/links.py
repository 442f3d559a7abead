"""Signed, expiring download links. Pure: the caller passes the key and ``now``.

A link is ``/v1/files/{id}/content?exp={unix seconds}&sig={signature}`` where the
signature is HMAC-SHA256, under a key derived from the server's secret key (so it can
never be confused with a token signature), over the file's id and the expiry. Changing
either breaks the signature; the comparison is constant-time. The signature is checked
before the file is looked up, so a link nobody issued learns nothing (not even whether
the id exists); a file's content never changes and ids are never reused. Whoever holds a link may download until
it expires (an ``<img>`` cannot send a bearer token): the access check happens when
the link is issued, and links are short-lived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from files.errors import BadSignature, InvalidFileInput, LinkExpired

DEFAULT_TTL_S = 15 * 60
MAX_TTL_S = 24 * 3600
MIN_TTL_S = 10
_CONTEXT = b"doorstep/files/link/v1"
_SIG_LEN = 43  # base64url of 32 bytes, unpadded


def link_key(secret_key: str) -> bytes:
    """The key that signs links, derived from the server's secret key."""
    return hmac.new(secret_key.encode(), _CONTEXT, hashlib.sha256).digest()


def sign(key: bytes, *, file_id: int, expires_at: int) -> str:
    """The signature of a link to ``file_id`` valid until ``expires_at``."""
    message = f"{file_id}:{expires_at}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def path(file_id: int, *, expires_at: int, sig: str) -> str:
    """The link's path and query."""
    return f"/v1/files/{file_id}/content?exp={expires_at}&sig={sig}"


def issue(key: bytes, *, file_id: int, now: int, ttl_s: int) -> tuple[str, int]:
    """A link valid for ``ttl_s`` seconds from ``now``: (path, expires_at)."""
    if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
        raise InvalidFileInput(f"must be between {MIN_TTL_S} and {MAX_TTL_S}", field="ttl_s")
    expires_at = now + ttl_s
    sig = sign(key, file_id=file_id, expires_at=expires_at)
    return path(file_id, expires_at=expires_at, sig=sig), expires_at


def parse_expiry(raw: str | None) -> int:
    """The ``exp`` query parameter as an integer (unix seconds)."""
    if raw is None:
        raise InvalidFileInput("a download link needs exp and sig; ask for a new link", field="exp")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise InvalidFileInput("must be a unix time in seconds", field="exp")
    return int(raw)


def check_signature(key: bytes, *, file_id: int, expires_at: int, sig: str | None) -> None:
    """Raise :class:`BadSignature` unless ``sig`` is this server's signature of the link."""
    if sig is None:
        raise InvalidFileInput("a download link needs exp and sig; ask for a new link", field="sig")
    expected = sign(key, file_id=file_id, expires_at=expires_at)
    if len(sig) != _SIG_LEN or not hmac.compare_digest(sig.encode(), expected.encode()):
        raise BadSignature("the link's signature does not match; it was changed", field="sig")


def check_expiry(expires_at: int, *, now: int) -> None:
    """Raise :class:`LinkExpired` once ``now`` has reached ``expires_at``."""
    if now >= expires_at:
        raise LinkExpired(
            f"the link expired {now - expires_at} s ago; ask for a new one", field="exp"
        )

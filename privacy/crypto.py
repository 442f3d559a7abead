"""Personal data encrypted at rest, and the keyed blind index that finds it (docs/privacy.md).

A value is sealed with AES-256-GCM under the current data key into a text token
``pii1.<key id>.<base64url(nonce | ciphertext | tag)>``; the associated data is the
column's name (``users.phone``), so a token copied into another column does not open.
Every key listed still opens the tokens it sealed (rotation: a new key seals, old keys
open until ``doorstep keys rotate`` has re-sealed every row). The empty string stays
empty (the columns' default; it says only that nothing was given).

Opening fails closed: an unknown key id, a wrong key, a changed token or a value that
is no token at all raises :class:`UnreadableData` — never is the stored text handed out
as if it were the plaintext.

The blind index is HMAC-SHA256 under a key of its own over ``<kind>:<value>``: equal
values have equal indexes (login by phone, uniqueness of phones and ID numbers), and
the index says nothing about the value without the key.

The keys: ``DOORSTEP_DATA_KEYS`` (``kid:base64,kid:base64``, the first seals) and
``DOORSTEP_BLIND_INDEX_KEY``; without them, both are derived from the server's secret
key (``DOORSTEP_SECRET_KEY`` or the data dir's), key id ``s0`` — a development default.

Store functions take a connection, not the keys: the process's keys are installed once
(:func:`install`, by :meth:`doorstep.stores.Stores.open`) and read by :func:`current`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from doorstep.errors import DoorstepError, InvalidInput

if TYPE_CHECKING:
    from doorstep.settings import Settings

log = logging.getLogger("doorstep.privacy")

PREFIX = "pii1"
DERIVED_KID = "s0"
_KID = re.compile(r"^[a-z0-9]{1,16}$")
_NONCE = 12


class UnreadableData(DoorstepError):
    """Stored personal data that cannot be opened with the keys this process holds."""

    kind = "unavailable"
    code = "unreadable_data"


def _b64decode(raw: str, field_name: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput("not base64", field=field_name) from None


def parse_data_keys(
    raw: str, field_name: str = "DOORSTEP_DATA_KEYS"
) -> tuple[tuple[str, bytes], ...]:
    """``kid:base64key,kid:base64key`` → ((kid, 32 bytes), …), the first the one that seals."""
    out: list[tuple[str, bytes]] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not _KID.match(kid):
            raise InvalidInput(
                "each key is <id>:<base64 of 32 bytes>, the id 1-16 of a-z0-9", field=field_name
            )
        key = _b64decode(b64.strip(), field_name)
        if len(key) != 32:
            raise InvalidInput(f"key {kid!r} must be 32 bytes, got {len(key)}", field=field_name)
        if any(k == kid for k, _ in out):
            raise InvalidInput(f"key id {kid!r} listed twice", field=field_name)
        out.append((kid, key))
    if not out:
        raise InvalidInput("no key given", field=field_name)
    return tuple(out)


def parse_index_key(raw: str, field_name: str = "DOORSTEP_BLIND_INDEX_KEY") -> bytes:
    """A blind-index key: base64 of at least 32 bytes."""
    key = _b64decode(raw.strip(), field_name)
    if len(key) < 32:
        raise InvalidInput("must be at least 32 bytes (base64)", field=field_name)
    return key


def new_key() -> str:
    """A fresh key, base64url (for ``DOORSTEP_DATA_KEYS`` or ``DOORSTEP_BLIND_INDEX_KEY``)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"doorstep-pii", info=info).derive(
        secret.encode()
    )


@dataclass(frozen=True, slots=True)
class DataKeys:
    """The data keys (the first seals, all open) and the blind-index key."""

    keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    index_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one data key")

    @classmethod
    def derived(cls, secret: str) -> DataKeys:
        """The development default: both keys derived from the server's secret key."""
        if not secret:
            raise ValueError("no secret to derive the data keys from")
        return cls(
            ((DERIVED_KID, _derive(secret, b"data key s0")),), _derive(secret, b"blind index")
        )

    @classmethod
    def configured(cls, *, data_keys: str, index_key: str, secret: str) -> DataKeys:
        """From the settings' raw strings; what is not set is derived from ``secret``."""
        base = cls.derived(secret) if not (data_keys and index_key) else None
        keys = parse_data_keys(data_keys) if data_keys else base.keys if base else ()
        index = parse_index_key(index_key) if index_key else base.index_key if base else b""
        return cls(keys, index)

    @classmethod
    def of(cls, settings: Settings) -> DataKeys:
        """The keys of these settings (derived from their secret key when unset)."""
        from doorstep.settings import load_secret_key

        return cls.configured(
            data_keys=settings.data_keys,
            index_key=settings.blind_index_key,
            secret=settings.secret_key or load_secret_key(settings.data_dir),
        )

    @property
    def current(self) -> str:
        """The id of the key that seals."""
        return self.keys[0][0]

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, the current first."""
        return tuple(k for k, _ in self.keys)

    def _key(self, kid: str) -> bytes | None:
        for k, key in self.keys:
            if k == kid:
                return key
        return None

    def seal(self, column: str, value: str) -> str:
        """``value`` encrypted for ``column`` under the current key ('' stays '')."""
        if value == "":
            return ""
        kid, key = self.keys[0]
        nonce = os.urandom(_NONCE)
        ct = AESGCM(key).encrypt(nonce, value.encode(), column.encode())
        return f"{PREFIX}.{kid}.{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"

    def open(self, column: str, token: str) -> str:
        """The plaintext of a token sealed for ``column``; :class:`UnreadableData` if it
        cannot be opened (never the token itself)."""
        if token == "":
            return ""
        parts = token.split(".", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise UnreadableData(
                f"{column} holds a value that is not encrypted (run `doorstep keys rotate`)"
            )
        key = self._key(parts[1])
        if key is None:
            raise UnreadableData(
                f"{column} was encrypted with key {parts[1]!r}, which this server does not hold "
                "(DOORSTEP_DATA_KEYS)"
            )
        try:
            blob = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            plain = AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], column.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise UnreadableData(
                f"{column} does not open with key {parts[1]!r}: wrong key or changed data"
            ) from None
        return plain.decode()

    def index(self, kind: str, value: str) -> bytes:
        """The blind index of ``value`` (normalised by the caller) in ``kind`` (``phone``,
        ``id_number``): 32 bytes."""
        return hmac.new(self.index_key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def fingerprint(self) -> str:
        """Names the keys without revealing them (logs, conflicts between installs)."""
        h = hashlib.sha256(self.index_key)
        for kid, key in self.keys:
            h.update(kid.encode() + key)
        return h.hexdigest()[:12]


def key_id(token: str) -> str | None:
    """The id of the key a token was sealed with; None for '' or a value that is no token."""
    parts = token.split(".", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else None


_installed: DataKeys | None = None


def install(keys: DataKeys) -> None:
    """Make ``keys`` the process's keys, unless some are installed already: one process
    serves one deployment (tests open several stores in one process; the first keys stay)."""
    global _installed
    if _installed is None:
        _installed = keys
    elif _installed.fingerprint() != keys.fingerprint():
        log.warning(
            "data keys %s already installed in this process; keeping them (not %s)",
            _installed.fingerprint(),
            keys.fingerprint(),
        )


def current() -> DataKeys:
    """The process's keys; an error if none were installed (fail closed)."""
    if _installed is None:
        raise UnreadableData("no data keys installed in this process (Stores.open installs them)")
    return _installed


@contextmanager
def using(keys: DataKeys) -> Iterator[DataKeys]:
    """Install ``keys`` for the duration of the block (tests, the rotation command)."""
    global _installed
    before = _installed
    _installed = keys
    try:
        yield keys
    finally:
        _installed = before


def seal(column: str, value: str) -> str:
    """:meth:`DataKeys.seal` with the process's keys."""
    return current().seal(column, value)


def reveal(column: str, token: str) -> str:
    """:meth:`DataKeys.open` with the process's keys."""
    return current().open(column, token)


def blind(kind: str, value: str) -> bytes:
    """:meth:`DataKeys.index` with the process's keys."""
    return current().index(kind, value)


def reveal_fields(row: Mapping[str, object], columns: Mapping[str, str]) -> dict[str, object]:
    """A row as a dict with the named fields opened: ``columns`` maps a field to its column."""
    out = dict(row)
    for name, column in columns.items():
        value = out.get(name)
        if isinstance(value, str):
            out[name] = reveal(column, value)
    return out

"""What an upload is for, and the rules that go with it: types, sizes, who may read.

Every file is uploaded for a purpose. The purpose fixes the types accepted (checked
from the bytes), the largest upload, the longest image edge kept, who may upload, and
who besides the owner may read the file (``may_read``). The purposes the platform's
capabilities need are registered here with conservative readers (staff, or admins
for ID cards); the capability that owns one registers it again with its own rule when
it lands — reviews making photos public once attached, onboarding letting reviewers
read ID cards, after-sales letting the ticket's parties read evidence — without
changing this package::

    from files.service import register_purpose

    async def review_photo_readers(caller, file, db) -> bool:
        return file.attached_to is not None  # public once on a published review

    register_purpose("review_photo", media_types=IMAGE_TYPES, max_bytes=10 * MB,
                     may_read=review_photo_readers, uploaders=frozenset({"customer"}))

A built-in purpose may be taken over once; any other second registration is an error.
The rules here are plain async functions with no I/O; a capability's rule may query
``db`` (a connection) to find the parties of its object.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from doorstep.db import Conn
from files.content import DOCUMENT_TYPES, IMAGE_TYPES, MediaType
from files.errors import InvalidFileInput
from files.models import Caller, StoredFile

MB = 1024 * 1024
STAFF = frozenset({"admin", "dispatcher"})
MAX_UPLOAD_BYTES = 50 * MB  # no purpose may allow more
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

ReadRule = Callable[[Caller, StoredFile, Conn], Awaitable[bool]]
"""Whether ``caller`` (not the owner: owners always may) may read ``file``."""


@dataclass(frozen=True, slots=True)
class Purpose:
    """One purpose's rules."""

    name: str
    media_types: frozenset[MediaType]
    max_bytes: int
    may_read: ReadRule
    max_edge_px: int = 2048
    uploaders: frozenset[str] | None = None  # roles that may upload; None: anyone signed in
    builtin: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"purpose name {self.name!r} must match {_NAME.pattern}")
        if not self.media_types or not self.media_types <= DOCUMENT_TYPES:
            raise ValueError(f"media_types must be a non-empty subset of {sorted(DOCUMENT_TYPES)}")
        if not 1 <= self.max_bytes <= MAX_UPLOAD_BYTES:
            raise ValueError(f"max_bytes must be within 1..{MAX_UPLOAD_BYTES}")
        if not 64 <= self.max_edge_px <= 8192:
            raise ValueError("max_edge_px must be within 64..8192")

    def may_upload(self, caller: Caller) -> bool:
        """True if ``caller``'s roles may upload files of this purpose."""
        return self.uploaders is None or bool(self.uploaders.intersection(caller.roles))


async def staff_may_read(caller: Caller, file: StoredFile, db: Conn) -> bool:
    """Dispatchers and admins."""
    return bool(STAFF.intersection(caller.roles))


async def admins_may_read(caller: Caller, file: StoredFile, db: Conn) -> bool:
    """Admins only (ID cards: not every dispatcher needs to see them)."""
    return "admin" in caller.roles


async def signed_in_once_attached(caller: Caller, file: StoredFile, db: Conn) -> bool:
    """Anyone signed in once the owner attached it (an avatar on a profile); staff always."""
    return file.attached_to is not None or bool(STAFF.intersection(caller.roles))


_registry: dict[str, Purpose] = {}


def register_purpose(
    name: str,
    *,
    media_types: frozenset[MediaType],
    max_bytes: int,
    may_read: ReadRule,
    max_edge_px: int = 2048,
    uploaders: frozenset[str] | None = None,
    builtin: bool = False,
) -> Purpose:
    """Register a purpose (or take over a built-in one, once); return it.

    Raises ``ValueError`` for a bad rule or a name another capability registered.
    """
    purpose = Purpose(name, media_types, max_bytes, may_read, max_edge_px, uploaders, builtin)
    existing = _registry.get(name)
    if existing is not None and not (existing.builtin and not builtin):
        raise ValueError(f"purpose {name!r} is registered already")
    _registry[name] = purpose
    return purpose


def get(name: str | None) -> Purpose:
    """The registered purpose ``name``, or :class:`InvalidFileInput` naming ``purpose``."""
    if name is None:
        raise InvalidFileInput(
            f"say what the file is for: one of {', '.join(sorted(_registry))}", field="purpose"
        )
    found = _registry.get(name)
    if found is None:
        raise InvalidFileInput(
            f"unknown purpose; one of {', '.join(sorted(_registry))}", field="purpose"
        )
    return found


def find(name: str) -> Purpose | None:
    """The registered purpose ``name``, if any (files of a purpose no longer registered
    stay readable by their owner and staff)."""
    return _registry.get(name)


def registered() -> list[Purpose]:
    """Every registered purpose, by name."""
    return [_registry[n] for n in sorted(_registry)]


def _builtin(
    name: str,
    media_types: frozenset[MediaType],
    max_bytes: int,
    may_read: ReadRule,
    max_edge_px: int,
    uploaders: frozenset[str] | None = None,
) -> None:
    register_purpose(
        name,
        media_types=media_types,
        max_bytes=max_bytes,
        may_read=may_read,
        max_edge_px=max_edge_px,
        uploaders=uploaders,
        builtin=True,
    )


# Photos are kept at 2048 px (a phone screen's worth); documents at 3000 px so that the
# small print of a certificate or licence stays legible.
_builtin("avatar", IMAGE_TYPES, 5 * MB, signed_in_once_attached, 1024)
_builtin("review_photo", IMAGE_TYPES, 10 * MB, staff_may_read, 2048, frozenset({"customer"}))
_builtin("job_photo", IMAGE_TYPES, 10 * MB, staff_may_read, 2048, frozenset({"worker"}))
_builtin("aftersales_evidence", IMAGE_TYPES, 10 * MB, staff_may_read, 2048)
_builtin("certificate", DOCUMENT_TYPES, 10 * MB, staff_may_read, 3000)
_builtin("id_card", IMAGE_TYPES, 10 * MB, admins_may_read, 3000)
_builtin("business_licence", DOCUMENT_TYPES, 10 * MB, staff_may_read, 3000)

"""The shapes the files package hands out, and what it needs to know of a caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Caller(Protocol):
    """Who is asking: a user id and roles (``accounts.tokens.Claims`` is one)."""

    @property
    def user_id(self) -> int: ...

    @property
    def roles(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An uploaded file's metadata. Its content is the blob named by ``sha256``.

    ``attached_to`` names what the file belongs to once its owner used it (e.g.
    ``review:42``, ``application:7``); until then it may be deleted by its owner and is
    removed by the clean-up after a day.
    """

    id: int
    owner_id: int
    purpose: str
    media_type: str
    size_bytes: int
    sha256: str
    width: int | None
    height: int | None
    attached_to: str | None
    attached_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FileLink:
    """A signed download link: ``path`` on this server, ``url`` with its origin."""

    file_id: int
    path: str
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one clean-up pass removed."""

    files_deleted: int  # unattached files past their grace period
    blobs_deleted: int  # contents no file refers to any more
    orphans_deleted: int  # contents on disk with no record (a crash between write and insert)
    temp_deleted: int  # half-written temporary files

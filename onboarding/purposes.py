"""Who may read onboarding's uploads: the files' built-in ``id_card`` and
``certificate`` purposes, taken over with reviewers added (files/purposes.py)."""

from __future__ import annotations

from doorstep.db import Conn
from files.content import DOCUMENT_TYPES, IMAGE_TYPES
from files.models import Caller, StoredFile
from files.purposes import MB, STAFF, find, register_purpose


async def reviewers_may_read_id(caller: Caller, file: StoredFile, db: Conn) -> bool:
    """Admins and reviewers (an ID card is not every dispatcher's business)."""
    return bool({"admin", "reviewer"} & set(caller.roles))


async def reviewers_or_staff_may_read(caller: Caller, file: StoredFile, db: Conn) -> bool:
    """Reviewers, dispatchers and admins."""
    return bool((STAFF | {"reviewer"}) & set(caller.roles))


def register() -> None:
    """Take the built-in purposes over (once per process)."""
    current = find("id_card")
    if current is None or current.builtin:
        register_purpose(
            "id_card",
            media_types=IMAGE_TYPES,
            max_bytes=10 * MB,
            may_read=reviewers_may_read_id,
            max_edge_px=3000,
        )
    current = find("certificate")
    if current is None or current.builtin:
        register_purpose(
            "certificate",
            media_types=DOCUMENT_TYPES,
            max_bytes=10 * MB,
            may_read=reviewers_or_staff_may_read,
            max_edge_px=3000,
        )


register()

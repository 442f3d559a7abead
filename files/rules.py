"""Per-user upload limits. Pure: counts and ``now`` come in, a verdict goes out.

The counts live in PostgreSQL (``file_upload_counts``, and the sizes of a user's files),
taken under a row lock in the upload's transaction: parallel uploads cannot slip past
the limit, and losing Redis changes nothing (the limits never were in Redis).
"""

from __future__ import annotations

from files.errors import UploadLimit

UPLOADS_PER_WINDOW = 60  # new files per user per hour (a worker's day of job photos fits)
WINDOW_S = 3600
MAX_STORED_BYTES = 500 * 1024 * 1024  # what one user may keep stored at once


def window_after(window_start: int | None, uploads: int, *, now: int) -> tuple[int, int]:
    """(window start, uploads counted in it) before this upload: a new window once the
    old one is ``WINDOW_S`` old."""
    if window_start is None or now >= window_start + WINDOW_S or now < window_start:
        return now, 0
    return window_start, uploads


def check_upload(
    *, window_start: int, uploads: int, stored_bytes: int, new_bytes: int, now: int
) -> None:
    """Raise :class:`UploadLimit` if one more upload of ``new_bytes`` breaks a limit."""
    if uploads >= UPLOADS_PER_WINDOW:
        wait_s = window_start + WINDOW_S - now
        raise UploadLimit(
            f"at most {UPLOADS_PER_WINDOW} uploads per hour; try again in {wait_s} s",
            field="body",
        )
    if stored_bytes + new_bytes > MAX_STORED_BYTES:
        raise UploadLimit(
            f"at most {MAX_STORED_BYTES // 2**20} MB stored per user "
            f"({stored_bytes // 2**20} MB now); delete unused files first",
            field="body",
        )

"""PostgreSQL access for files, their blobs and upload counts.

Every change to a blob's existence — writing it with its row, deleting an unused one,
removing an orphan from disk — happens under a transaction-scoped advisory lock on the
blob's hash (:func:`lock_blob`), so an upload and a clean-up of the same content never
interleave: the upload writes the blob and inserts the row, or the clean-up removes
both, never a row without its blob.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from doorstep.db import Conn, Tx
from files.models import StoredFile

_LOCK_CLASS = 0x66696C65  # "file": the first key of the two-key advisory locks on blobs
_COLUMNS = (
    "id, owner_id, purpose, media_type, size_bytes, sha256, width, height, "
    "attached_to, attached_at, created_at"
)


def ts(now: int | float) -> datetime:
    """A unix time as an aware datetime."""
    return datetime.fromtimestamp(now, UTC)


def _file(r: asyncpg.Record) -> StoredFile:
    return StoredFile(
        id=r["id"],
        owner_id=r["owner_id"],
        purpose=r["purpose"],
        media_type=r["media_type"],
        size_bytes=r["size_bytes"],
        sha256=r["sha256"],
        width=r["width"],
        height=r["height"],
        attached_to=r["attached_to"],
        attached_at=r["attached_at"],
        created_at=r["created_at"],
    )


def _lock_key(sha256: str) -> int:
    return int.from_bytes(bytes.fromhex(sha256[:8]), "big", signed=True)


async def lock_blob(tx: Tx, sha256: str) -> None:
    """Wait for, then hold until the transaction ends, the lock on blob ``sha256``."""
    await tx.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLASS, _lock_key(sha256))


async def try_lock_blob(tx: Tx, sha256: str) -> bool:
    """Take the lock on blob ``sha256`` if nobody holds it (clean-up skips busy blobs)."""
    got = await tx.fetchval(
        "SELECT pg_try_advisory_xact_lock($1, $2)", _LOCK_CLASS, _lock_key(sha256)
    )
    return bool(got)


async def insert_blob(tx: Tx, *, sha256: str, size_bytes: int, media_type: str, now: int) -> None:
    """Record that blob ``sha256`` is completely written (nothing if recorded already)."""
    await tx.execute(
        "INSERT INTO file_blobs (sha256, size_bytes, media_type, created_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
        sha256,
        size_bytes,
        media_type,
        ts(now),
    )


async def blob_recorded(db: Conn, sha256: str) -> bool:
    """True if blob ``sha256`` has its row."""
    return await db.fetchval("SELECT 1 FROM file_blobs WHERE sha256 = $1", sha256) is not None


async def recorded_among(db: Conn, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` that have a row."""
    rows = await db.fetch("SELECT sha256 FROM file_blobs WHERE sha256 = ANY($1::text[])", hashes)
    return {r["sha256"] for r in rows}


async def delete_blob_if_unused(tx: Tx, sha256: str) -> bool:
    """Delete blob ``sha256``'s row if no file refers to it; True if deleted."""
    deleted = await tx.fetchval(
        "DELETE FROM file_blobs b WHERE b.sha256 = $1 "
        "AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256) RETURNING 1",
        sha256,
    )
    return deleted is not None


async def unused_blobs(db: Conn, *, limit: int) -> list[str]:
    """Blobs no file refers to."""
    rows = await db.fetch(
        "SELECT b.sha256 FROM file_blobs b "
        "WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256) LIMIT $1",
        limit,
    )
    return [r["sha256"] for r in rows]


async def insert_file(
    tx: Tx,
    *,
    owner_id: int,
    purpose: str,
    sha256: str,
    media_type: str,
    size_bytes: int,
    width: int | None,
    height: int | None,
    now: int,
) -> StoredFile:
    """A new, unattached file."""
    row = await tx.fetchrow(
        "INSERT INTO files (owner_id, purpose, sha256, media_type, size_bytes, width, height, "
        f"created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING {_COLUMNS}",
        owner_id,
        purpose,
        sha256,
        media_type,
        size_bytes,
        width,
        height,
        ts(now),
    )
    assert row is not None
    return _file(row)


async def unattached_copy(tx: Tx, *, owner_id: int, purpose: str, sha256: str) -> StoredFile | None:
    """The owner's unattached file of this purpose with this content, if one exists."""
    row = await tx.fetchrow(
        f"SELECT {_COLUMNS} FROM files WHERE owner_id = $1 AND purpose = $2 AND sha256 = $3 "
        "AND attached_to IS NULL ORDER BY id LIMIT 1",
        owner_id,
        purpose,
        sha256,
    )
    return None if row is None else _file(row)


async def file_by_id(db: Conn, file_id: int) -> StoredFile | None:
    """The file, if it exists."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM files WHERE id = $1", file_id)
    return None if row is None else _file(row)


async def delete_unattached(tx: Tx, *, file_id: int, owner_id: int) -> StoredFile | None:
    """Delete the owner's file if it is not attached; the deleted file, or None."""
    row = await tx.fetchrow(
        f"DELETE FROM files WHERE id = $1 AND owner_id = $2 AND attached_to IS NULL "
        f"RETURNING {_COLUMNS}",
        file_id,
        owner_id,
    )
    return None if row is None else _file(row)


async def attach(
    tx: Tx, *, file_id: int, owner_id: int, purpose: str, ref: str, now: int
) -> StoredFile | None:
    """Attach the owner's unattached file of ``purpose`` to ``ref``; None if it cannot be."""
    row = await tx.fetchrow(
        f"UPDATE files SET attached_to = $4, attached_at = $5 WHERE id = $1 AND owner_id = $2 "
        f"AND purpose = $3 AND attached_to IS NULL RETURNING {_COLUMNS}",
        file_id,
        owner_id,
        purpose,
        ref,
        ts(now),
    )
    return None if row is None else _file(row)


async def detach(tx: Tx, *, file_id: int, ref: str) -> StoredFile | None:
    """Detach the file from ``ref`` (it becomes unattached again); None if not attached there."""
    row = await tx.fetchrow(
        "UPDATE files SET attached_to = NULL, attached_at = NULL WHERE id = $1 "
        f"AND attached_to = $2 RETURNING {_COLUMNS}",
        file_id,
        ref,
    )
    return None if row is None else _file(row)


async def delete_stale_unattached(tx: Tx, *, created_before: int, limit: int) -> list[str]:
    """Delete up to ``limit`` unattached files created before the time; their blobs' hashes."""
    rows = await tx.fetch(
        "DELETE FROM files WHERE id IN (SELECT id FROM files WHERE attached_to IS NULL "
        # FOR UPDATE (not NO KEY): the claimed rows are deleted
        "AND created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
        "AND attached_to IS NULL RETURNING sha256",
        ts(created_before),
        limit,
    )
    return [r["sha256"] for r in rows]


async def take_upload_count(tx: Tx, owner_id: int) -> tuple[int | None, int]:
    """Lock the owner's upload count until the transaction ends: (window start, uploads)."""
    await tx.execute(
        "INSERT INTO file_upload_counts (owner_id, window_start, uploads) VALUES ($1, now(), 0) "
        "ON CONFLICT (owner_id) DO NOTHING",
        owner_id,
    )
    row = await tx.fetchrow(
        "SELECT window_start, uploads FROM file_upload_counts WHERE owner_id = $1 FOR UPDATE",
        owner_id,
    )
    assert row is not None
    if row["uploads"] == 0:
        return None, 0
    return int(row["window_start"].timestamp()), row["uploads"]


async def upload_count(db: Conn, owner_id: int) -> tuple[int | None, int]:
    """The owner's upload count without locking it (a fast early refusal)."""
    row = await db.fetchrow(
        "SELECT window_start, uploads FROM file_upload_counts WHERE owner_id = $1", owner_id
    )
    if row is None or row["uploads"] == 0:
        return None, 0
    return int(row["window_start"].timestamp()), row["uploads"]


async def set_upload_count(tx: Tx, owner_id: int, *, window_start: int, uploads: int) -> None:
    """Store the owner's count after an upload."""
    await tx.execute(
        "UPDATE file_upload_counts SET window_start = $2, uploads = $3 WHERE owner_id = $1",
        owner_id,
        ts(window_start),
        uploads,
    )


async def stored_bytes(db: Conn, owner_id: int) -> int:
    """The total size of the owner's files."""
    total = await db.fetchval(
        "SELECT coalesce(sum(size_bytes), 0) FROM files WHERE owner_id = $1", owner_id
    )
    return int(total)

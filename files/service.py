"""Uploads, access, links, attachment and clean-up: the async glue of the files package.

Nothing is stored half-way. An upload is checked and cleaned (files.intake, in a
thread) before anything is written; then, in one transaction holding the blob's lock,
the upload count is taken, the blob written (atomically) and its rows inserted. A
refused upload leaves no blob and no row; a crash between the blob's write and the
commit leaves at most a blob with no row, which :func:`cleanup` removes.

Other capabilities use :func:`register_purpose` (who may read their files),
:func:`attach` and :func:`detach` (inside their own transactions) and :func:`cleanup`
(from the job runner).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from doorstep.db import Conn, Tx
from doorstep.stores import Stores
from files import links, rules, store
from files.blobs import BlobStore
from files.content import FIELD
from files.errors import FileAttached, FileNotFound, FileTooLarge, UploadNotAllowed
from files.intake import Prepared, prepare
from files.models import Caller, CleanupReport, FileLink, StoredFile
from files.purposes import STAFF, Purpose, find, get, register_purpose, registered

__all__ = [
    "attach",
    "cleanup",
    "delete",
    "detach",
    "get_file",
    "issue_link",
    "open_link",
    "register_purpose",
    "registered",
    "upload",
]

log = logging.getLogger("doorstep.files")

UNATTACHED_GRACE_S = 24 * 3600  # an unattached file is removed after a day
ORPHAN_GRACE_S = 3600  # a blob on disk with no row, or a temporary file, after an hour
_BATCH = 500
# Decoding and re-encoding run here, two at a time per process: a burst of uploads
# queues instead of holding every core and a few hundred MB each, and the default
# executor stays free for the blob store's file operations.
_INTAKE = ThreadPoolExecutor(max_workers=2, thread_name_prefix="doorstep-files")


async def may_read(db: Conn, caller: Caller, file: StoredFile) -> bool:
    """The owner always; others as the file's purpose rules (staff if no longer registered)."""
    if file.owner_id == caller.user_id:
        return True
    purpose = find(file.purpose)
    if purpose is None:
        return bool(STAFF.intersection(caller.roles))
    return await purpose.may_read(caller, file, db)


async def get_file(stores: Stores, caller: Caller, file_id: int) -> StoredFile:
    """The file if ``caller`` may read it; else :class:`FileNotFound` (as if it did not exist)."""
    file = await store.file_by_id(stores.pool, file_id)
    if file is None or not await may_read(stores.pool, caller, file):
        raise FileNotFound(f"no file {file_id}", field="file_id")
    return file


async def upload(
    stores: Stores,
    blobs: BlobStore,
    caller: Caller,
    *,
    purpose: str | None,
    data: bytes,
    now: int,
) -> tuple[StoredFile, bool]:
    """Check, clean and store ``data``; (the file, True if new — False: the owner's
    unattached copy of the same content for the same purpose, returned again)."""
    rule = get(purpose)
    if not rule.may_upload(caller):
        raise UploadNotAllowed(
            f"{rule.name} files are uploaded by: {', '.join(sorted(rule.uploaders or ()))}",
            field="purpose",
        )
    if len(data) > rule.max_bytes:
        raise FileTooLarge(
            f"{len(data)} bytes; {rule.name} allows at most {rule.max_bytes}", field=FIELD
        )
    # An early look at the count, so a caller over the limit costs no decoding; the count
    # that holds is taken under its lock below.
    window_start, uploads = await store.upload_count(stores.pool, caller.user_id)
    window_start, uploads = rules.window_after(window_start, uploads, now=now)
    rules.check_upload(
        window_start=window_start, uploads=uploads, stored_bytes=0, new_bytes=0, now=now
    )
    prepared = await asyncio.get_running_loop().run_in_executor(_INTAKE, prepare, data, rule)
    return await _store(stores, blobs, caller.user_id, rule, prepared, now)


async def _store(
    stores: Stores, blobs: BlobStore, owner_id: int, rule: Purpose, p: Prepared, now: int
) -> tuple[StoredFile, bool]:
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.lock_blob(conn, p.sha256)
        same = await store.unattached_copy(
            conn, owner_id=owner_id, purpose=rule.name, sha256=p.sha256
        )
        if same is not None:
            return same, False
        window_start, uploads = await store.take_upload_count(conn, owner_id)
        window_start, uploads = rules.window_after(window_start, uploads, now=now)
        rules.check_upload(
            window_start=window_start,
            uploads=uploads,
            stored_bytes=await store.stored_bytes(conn, owner_id),
            new_bytes=len(p.data),
            now=now,
        )
        written = await blobs.put(p.sha256, p.data)
        try:
            await store.set_upload_count(
                conn, owner_id, window_start=window_start, uploads=uploads + 1
            )
            await store.insert_blob(
                conn, sha256=p.sha256, size_bytes=len(p.data), media_type=p.media_type, now=now
            )
            file = await store.insert_file(
                conn,
                owner_id=owner_id,
                purpose=rule.name,
                sha256=p.sha256,
                media_type=p.media_type,
                size_bytes=len(p.data),
                width=p.width,
                height=p.height,
                now=now,
            )
        except BaseException:
            if written:  # still under the blob's lock: nobody else can have used it
                await blobs.delete(p.sha256)
            raise
    return file, True


async def issue_link(
    stores: Stores, caller: Caller, file_id: int, *, key: bytes, now: int, ttl_s: int, origin: str
) -> FileLink:
    """A signed link to the file's content, if ``caller`` may read it."""
    file = await get_file(stores, caller, file_id)
    path, expires_at = links.issue(key, file_id=file.id, now=now, ttl_s=ttl_s)
    return FileLink(
        file_id=file.id,
        path=path,
        url=origin.rstrip("/") + path,
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )


async def open_link(
    stores: Stores,
    *,
    key: bytes,
    file_id: int,
    exp: str | None,
    sig: str | None,
    now: int,
) -> tuple[StoredFile, int]:
    """Check a link (signature first, then expiry) and find its file: (file, expires_at).

    The content is read by the caller from the blob store (``file.sha256``).
    """
    expires_at = links.parse_expiry(exp)
    links.check_signature(key, file_id=file_id, expires_at=expires_at, sig=sig)
    links.check_expiry(expires_at, now=now)
    file = await store.file_by_id(stores.pool, file_id)
    if file is None:
        raise FileNotFound(f"file {file_id} was deleted", field="file_id")
    return file, expires_at


async def delete(stores: Stores, blobs: BlobStore, caller: Caller, file_id: int) -> None:
    """The owner deletes an unattached file; its content goes at once if nothing else uses it."""
    async with stores.pool.acquire() as conn:
        file = await store.file_by_id(conn, file_id)
        if file is None or file.owner_id != caller.user_id:  # staff included: owners delete
            raise FileNotFound(f"no file {file_id} of yours", field="file_id")
        async with conn.transaction():
            await store.lock_blob(conn, file.sha256)
            deleted = await store.delete_unattached(conn, file_id=file_id, owner_id=caller.user_id)
            if deleted is None:
                raise FileAttached(
                    f"file {file_id} is attached to {file.attached_to or 'something'}; "
                    "it stays while it is used",
                    field="file_id",
                )
            unused = await store.delete_blob_if_unused(conn, file.sha256)
        if unused:
            await _remove_if_unrecorded(conn, blobs, file.sha256, wait=True)


async def attach(
    db: Tx, *, file_id: int, owner_id: int, purpose: str, ref: str, now: int
) -> StoredFile:
    """Attach the owner's unattached file of ``purpose`` to ``ref`` (e.g. ``review:42``),
    inside the caller's transaction. Raises :class:`FileNotFound` (not theirs, not that
    purpose, deleted) or :class:`FileAttached`."""
    if not 1 <= len(ref) <= 100:
        raise ValueError("ref must be 1..100 characters")
    done = await store.attach(
        db, file_id=file_id, owner_id=owner_id, purpose=purpose, ref=ref, now=now
    )
    if done is not None:
        return done
    file = await store.file_by_id(db, file_id)
    if file is None or file.owner_id != owner_id or file.purpose != purpose:
        raise FileNotFound(f"no {purpose} file {file_id} of yours", field="file_id")
    raise FileAttached(f"file {file_id} is attached to {file.attached_to} already", field="file_id")


async def detach(db: Tx, *, file_id: int, ref: str) -> StoredFile:
    """Detach the file from ``ref``; it is unattached again (and cleaned up if left so)."""
    done = await store.detach(db, file_id=file_id, ref=ref)
    if done is None:
        raise FileNotFound(f"file {file_id} is not attached to {ref}", field="file_id")
    return done


async def _remove_if_unrecorded(conn: Tx, blobs: BlobStore, sha256: str, *, wait: bool) -> bool:
    """Remove blob ``sha256`` from the store if it has no row, under its lock; True if so."""
    async with conn.transaction():
        if wait:
            await store.lock_blob(conn, sha256)
        elif not await store.try_lock_blob(conn, sha256):
            return False
        if await store.blob_recorded(conn, sha256):
            return False
        await blobs.delete(sha256)
        return True


async def cleanup(
    stores: Stores,
    blobs: BlobStore,
    *,
    now: int,
    unattached_grace_s: int = UNATTACHED_GRACE_S,
    orphan_grace_s: int = ORPHAN_GRACE_S,
) -> CleanupReport:
    """Remove what nothing uses: files left unattached past their grace, contents no file
    refers to, contents on disk with no record (older than ``orphan_grace_s``), and
    half-written temporary files. Safe to run while uploads go on, and in several
    processes at once; for the job runner to call periodically."""
    files_deleted = 0
    async with stores.pool.acquire() as conn:
        while True:
            async with conn.transaction():
                hashes = await store.delete_stale_unattached(
                    conn, created_before=now - unattached_grace_s, limit=_BATCH
                )
            files_deleted += len(hashes)
            if len(hashes) < _BATCH:
                break
        blobs_deleted = 0
        skipped: set[str] = set()
        while True:
            batch = [h for h in await store.unused_blobs(conn, limit=_BATCH) if h not in skipped]
            for sha256 in batch:
                async with conn.transaction():
                    gone = await store.try_lock_blob(conn, sha256) and (
                        await store.delete_blob_if_unused(conn, sha256)
                    )
                if not gone:
                    skipped.add(sha256)
                    continue
                if await _remove_if_unrecorded(conn, blobs, sha256, wait=True):
                    blobs_deleted += 1
            if not batch:
                break
        orphans_deleted = 0
        chunk: list[str] = []
        async for sha256, written_at in blobs.listing():
            if written_at < now - orphan_grace_s:
                chunk.append(sha256)
            if len(chunk) >= _BATCH:
                orphans_deleted += await _remove_orphans(conn, blobs, chunk)
                chunk = []
        if chunk:
            orphans_deleted += await _remove_orphans(conn, blobs, chunk)
    temp_deleted = await blobs.sweep_temporary(older_than=now - orphan_grace_s)
    report = CleanupReport(files_deleted, blobs_deleted, orphans_deleted, temp_deleted)
    if any((files_deleted, blobs_deleted, orphans_deleted, temp_deleted)):
        log.info("files clean-up: %s", report)
    return report


async def _remove_orphans(conn: Tx, blobs: BlobStore, hashes: list[str]) -> int:
    recorded = await store.recorded_among(conn, hashes)
    removed = 0
    for sha256 in hashes:
        if sha256 not in recorded and await _remove_if_unrecorded(conn, blobs, sha256, wait=False):
            removed += 1
    return removed

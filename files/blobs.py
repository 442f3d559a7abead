"""Where file contents live: a blob store keyed by the SHA-256 of the content.

:class:`BlobStore` is the interface; :class:`LocalBlobStore` keeps blobs under the data
directory (``<data_dir>/files/ab/cd/abcd…``). An S3-compatible store implements the
same five methods (PUT/GET/DELETE/HEAD of an object named by its hash, a listing with
last-modified times); nothing else in the package touches the disk.

Writes are atomic: a blob is written to a temporary file, flushed to disk, and renamed
to its name, so a blob that exists under its name is complete. A crash mid-write leaves
a temporary file, and a crash after the rename but before the database row leaves a
blob nothing refers to; the clean-up (files.service.cleanup) removes both.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path
from typing import Protocol

_HASH = re.compile(r"^[0-9a-f]{64}$")
_PREFIX = re.compile(r"^[0-9a-f]{2}$")


class BlobMissing(LookupError):
    """A blob the database refers to is not in the store (a server fault, never a client's)."""


class BlobStore(Protocol):
    """Content-addressed storage: every method takes the hex SHA-256 of the content."""

    async def put(self, sha256: str, data: bytes) -> bool:
        """Store ``data`` under its hash, atomically; True if written, False if it was there."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The content, or :class:`BlobMissing`."""
        ...

    async def exists(self, sha256: str) -> bool:
        """True if the blob is stored."""
        ...

    async def delete(self, sha256: str) -> None:
        """Remove the blob; nothing happens if it is not there."""
        ...

    def listing(self) -> AsyncIterator[tuple[str, float]]:
        """Every stored blob as (sha256, unix time it was written), in no particular order."""
        ...

    async def sweep_temporary(self, *, older_than: float) -> int:
        """Remove half-written temporary files older than ``older_than`` (unix time)."""
        ...


def check_hash(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits (it becomes a path)."""
    if not _HASH.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256


class LocalBlobStore:
    """Blobs as files under ``root``, two directory levels deep by hash prefix."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives."""
        check_hash(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, sha256: str, data: bytes) -> bool:
        """Write to a temporary file, fsync, rename into place, fsync the directory."""
        return await asyncio.to_thread(self._put, sha256, data)

    def _put(self, sha256: str, data: bytes) -> bool:
        final = self.path(sha256)
        if final.exists():
            return False
        self.tmp.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = self.tmp / f"{sha256}.{uuid.uuid4().hex}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return True

    async def get(self, sha256: str) -> bytes:
        """Read the whole blob (uploads are bounded to a few MB)."""
        try:
            return await asyncio.to_thread(self.path(sha256).read_bytes)
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    async def exists(self, sha256: str) -> bool:
        """True if the blob's file exists."""
        return await asyncio.to_thread(self.path(sha256).exists)

    async def delete(self, sha256: str) -> None:
        """Unlink the blob's file if present."""
        await asyncio.to_thread(self.path(sha256).unlink, missing_ok=True)

    async def listing(self) -> AsyncIterator[tuple[str, float]]:
        """Blobs by walking the two directory levels, a directory at a time."""
        if not self.root.is_dir():
            return
        for top in sorted(await asyncio.to_thread(_subdirs, self.root)):
            for sub in sorted(await asyncio.to_thread(_subdirs, top)):
                for entry in await asyncio.to_thread(_blobs_in, sub):
                    yield entry

    async def sweep_temporary(self, *, older_than: float) -> int:
        """Unlink temporary files last written before ``older_than``."""
        return await asyncio.to_thread(self._sweep_temporary, older_than)

    def _sweep_temporary(self, older_than: float) -> int:
        if not self.tmp.is_dir():
            return 0
        removed = 0
        for entry in self.tmp.iterdir():
            try:
                if entry.stat().st_mtime < older_than:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _subdirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if _PREFIX.match(p.name) and p.is_dir()]


def _blobs_in(path: Path) -> list[tuple[str, float]]:
    found = []
    for entry in path.iterdir():
        if _HASH.match(entry.name):
            try:
                found.append((entry.name, entry.stat().st_mtime))
            except FileNotFoundError:
                continue
    return found


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@lru_cache(maxsize=8)
def local_store(data_dir: Path) -> LocalBlobStore:
    """The blob store of a deployment whose data directory is ``data_dir``."""
    return LocalBlobStore(data_dir / "files")

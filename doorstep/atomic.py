"""Files that several server processes of one data dir write and read at once.

Two ``doorstep serve`` processes started together on one ``DOORSTEP_DATA_DIR`` used to
race on the files a first start creates (the signing key, the sandboxes' keys and
addresses): one read a file the other had created but not yet written, or two created
different keys. Here a file appears whole or not at all — it is written to a temporary
name and published by a rename (replace) or a hard link (create once) — so a reader sees
the old content or the new, never a part, and a key made once is the one every process
uses.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _temp(path: Path, data: bytes) -> Path:
    """``data`` in a new private file beside ``path``, on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return temp


def replace_private(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) so that readers see the previous content or ``data``."""
    temp = _temp(path, data)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def create_private_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of ``path``; if there is none, ``make()``'s, written (mode 0600) unless
    another process published its own first — then that one is returned and used."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    temp = _temp(path, make())
    try:
        os.link(temp, path)  # fails if the file exists: the first one published wins
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
    return path.read_bytes()

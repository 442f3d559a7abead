"""Password hashing with Argon2id (argon2-cffi), run off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2-cffi's defaults follow RFC 9106's second recommendation
# A hash to verify against when the phone is unknown, so that a miss costs as much as a hit.
_DUMMY = _HASHER.hash("doorstep-no-such-user")


async def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (computed in a thread: it takes tens of ms)."""
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; a ``None`` hash costs the same and fails."""
    return await asyncio.to_thread(_verify, stored, password)

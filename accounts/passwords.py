"""Password hashing with Argon2id (argon2-cffi), run off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass
class _Argon2:
    hasher: PasswordHasher
    # A hash to verify against when the phone is unknown, so that a miss costs as much as a hit.
    dummy: str


def _argon2(hasher: PasswordHasher) -> _Argon2:
    return _Argon2(hasher, hasher.hash("doorstep-no-such-user"))


# argon2-cffi's defaults follow RFC 9106's second recommendation.
_ARGON2 = _argon2(PasswordHasher())


def set_cost(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Argon2id with these parameters for the hashes made from now on in this process.

    For the test process only (tests/conftest.py): at the default cost (t=3, 64 MiB, p=4)
    each account a test creates and logs in costs ~0.4 s of CPU. A hash records its own
    parameters, so a hash of either cost verifies in a process using the other."""
    new = _argon2(
        PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    )
    _ARGON2.hasher, _ARGON2.dummy = new.hasher, new.dummy


def _hash(password: str) -> str:
    return _ARGON2.hasher.hash(password)


async def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (computed in a thread: it takes tens of ms)."""
    return await asyncio.to_thread(_hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _ARGON2.hasher.verify(stored or _ARGON2.dummy, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; a ``None`` hash costs the same and fails."""
    return await asyncio.to_thread(_verify, stored, password)

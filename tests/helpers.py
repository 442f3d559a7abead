"""Shared helpers for the tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

PASSWORD = "correct horse battery"

_phones = itertools.count(int(secrets.token_hex(2), 16) * 1000)


def new_phone() -> str:
    """A phone number no other test (nor the demo seed, which never uses 147) has."""
    return f"147{next(_phones) % 10**8:08d}"


@dataclass(frozen=True)
class Account:
    """A user created for a test, with a live access token."""

    id: int
    phone: str
    roles: tuple[str, ...]
    token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


MakeUser = Callable[..., Awaitable[Account]]


SQUARE = {  # a 2 km square in Futian, WGS-84
    "type": "Polygon",
    "coordinates": [
        [[114.00, 22.52], [114.02, 22.52], [114.02, 22.54], [114.00, 22.54], [114.00, 22.52]]
    ],
}


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (Linux /proc)."""
    from pathlib import Path

    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids

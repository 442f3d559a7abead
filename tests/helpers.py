"""Shared helpers for the tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

PASSWORD = "correct horse battery"
METRICS_TOKEN = secrets.token_urlsafe(32)  # the test server's DOORSTEP_METRICS_TOKEN
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # what may read /metrics

_phones = itertools.count(int(secrets.token_hex(2), 16) * 1000)


_networks = itertools.count(1)
_RUN_NET = secrets.token_hex(2)


def from_network() -> dict[str, str]:
    """An X-Forwarded-For header of a network no other test uses (an IPv6 /64 in the
    documentation range; the test server trusts loopback as its proxy), so that the
    per-network login and registration limits of one test never meet another's."""
    return {"X-Forwarded-For": f"2001:db8:{_RUN_NET}:{next(_networks):x}::1"}


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


def client_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bytes | None = b"abcd",
    rsv: int = 0,
) -> bytes:
    """A client's frame (RFC 6455 §5.2): masked with ``mask`` unless it is None; ``rsv``
    is the three RSV bits (0-7); the length in 7, 16 or 64 bits as the payload needs."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head = bytes((first, masked | n))
    elif n < 65536:
        head = bytes((first, masked | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, masked | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def page_until(
    page: Any, expression: str, arg: Any = None, *, what: str, timeout_ms: int = 15_000
) -> Any:
    """Poll a page expression (a JS function of `arg`) until it is truthy; return its value.

    Playwright's wait_for_function compiles its string predicate inside the page, which
    our pages' CSP (no 'unsafe-eval') may refuse; evaluate runs it through the debugger
    protocol instead, which CSP does not govern.
    """
    deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
    while True:
        value = await page.evaluate(expression, arg)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for {what}")
        await asyncio.sleep(0.05)


def dies_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` giving a test's subprocess server SIGTERM when the test process
    dies, so a run killed by ``timeout`` (or a crashed xdist worker) leaves no server."""
    parent = os.getpid()

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            os._exit(121)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(122)

    return setup


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where a task waits: every coroutine of its await chain, outermost first (Python
    3.11's ``Task.get_stack`` shows only the outermost frame of a suspended task, which
    for a server's lifespan says nothing about the step that hangs)."""
    parts = []
    link: Any = task.get_coro()
    while link is not None:
        frame = (
            getattr(link, "cr_frame", None)
            or getattr(link, "gi_frame", None)
            or getattr(link, "ag_frame", None)
        )
        if frame is not None:
            parts.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        link = (
            getattr(link, "cr_await", None)
            or getattr(link, "gi_yieldfrom", None)
            or getattr(link, "ag_await", None)
        )
    return " -> ".join(parts) or "(running or done)"


async def stop_server(server: Any, task: asyncio.Task[None], within_s: float = 60.0) -> None:
    """Stop an in-process uvicorn server, failing with every task's stack if it has not
    stopped within ``within_s`` instead of hanging the run (a CI run once hung here)."""
    server.should_exit = True
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if task in done:
        task.result()
        return
    stacks = [f"{other.get_name()}: {awaiting(other)}" for other in asyncio.all_tasks()]
    server.force_exit = True
    task.cancel()
    raise AssertionError(
        f"the server did not stop within {within_s} s; tasks:\n" + "\n".join(stacks)
    )

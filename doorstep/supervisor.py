"""Keeps child servers alive: a thread restarts one that dies, with a backoff and a limit.

The embedded PostgreSQL and Valkey are children of the ``doorstep`` process. When one
dies (killed by the OOM killer, by hand, a crash), the application cannot heal it: its
clients reconnect, but to nothing. The :class:`Supervisor` notices the exit within
``poll_s`` and starts the server again through the child's own ``relaunch`` (same port,
same data, same password, so every URL the application holds stays valid).

A server that keeps dying is not restarted forever: after ``max_restarts`` restarts in a
row (a run of ``stable_s`` without dying resets the count) the supervisor logs an error
and leaves it down; ``/readyz`` then answers 503 until ``doorstep`` is restarted.

The thread that starts a child must outlive it (the child's parent-death signal fires
when that *thread* exits), so the supervisor thread, which starts the replacements, is
also the one that stops every child at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol, Self

log = logging.getLogger("doorstep.embedded")


class Child(Protocol):
    """A child server the supervisor can watch, start again and stop."""

    name: str
    address: str

    @property
    def pid(self) -> int:
        """The process id."""
        ...

    def exit_code(self) -> int | None:
        """The exit code if the process has ended (reaping it), else ``None``."""
        ...

    def relaunch(self) -> Self:
        """Start the same server again (same port and data); raise if it does not come up."""
        ...

    def stop(self) -> None:
        """Stop the server cleanly."""
        ...


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a dead child is started again.

    The n-th restart in a row waits ``first_delay_s × 2^(n-1)`` (at most ``max_delay_s``);
    after ``max_restarts`` in a row the child is left down. A child that stays up for
    ``stable_s`` starts a new row.
    """

    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_restarts: int = 5
    stable_s: float = 60.0
    poll_s: float = 0.2

    def delay_s(self, restart: int) -> float:
        """How long the ``restart``-th restart in a row (1-based) waits first."""
        return float(min(self.first_delay_s * 2 ** (restart - 1), self.max_delay_s))


@dataclass(slots=True)
class _Watch:
    child: Child
    up_since: float
    in_a_row: int = 0
    given_up: bool = False


class Supervisor(threading.Thread):
    """Watches children, restarts those that die, and stops them all on :meth:`stop_all`."""

    #: Marks the thread for ``doorstep.embedded``: children may be started from it.
    keeps_children = True

    def __init__(self, children: list[Child], policy: RestartPolicy) -> None:
        super().__init__(name="doorstep-supervisor", daemon=True)
        self._policy = policy
        self._watches = [_Watch(c, time.monotonic()) for c in children]
        self._stopping = threading.Event()

    def children(self) -> list[Child]:
        """The children as they are now (a restarted one is its new instance)."""
        return [w.child for w in self._watches]

    def stop_all(self) -> None:
        """Stop watching, then stop every child (last started first); wait for it."""
        self._stopping.set()
        if self.is_alive():
            self.join()
        else:  # never started, or already ended: stop from here
            self._stop_children()

    def run(self) -> None:
        try:
            while not self._stopping.wait(self._policy.poll_s):
                for watch in self._watches:
                    if watch.given_up or self._stopping.is_set():
                        continue
                    code = watch.child.exit_code()
                    if code is not None:
                        self._revive(watch, code)
        finally:
            self._stop_children()

    def _stop_children(self) -> None:
        for watch in reversed(self._watches):
            try:
                watch.child.stop()
            except Exception:
                log.exception("could not stop %s", watch.child.name)
            else:
                log.info("%s stopped", watch.child.name)

    def _revive(self, watch: _Watch, code: int) -> None:
        policy, dead = self._policy, watch.child
        if watch.up_since and time.monotonic() - watch.up_since >= policy.stable_s:
            watch.in_a_row = 0
        if watch.in_a_row >= policy.max_restarts:
            watch.given_up = True
            log.error(
                "%s (pid %d) exited with code %d after %d restarts in a row; not restarting "
                "it again (its log is in the data dir's logs/); /readyz answers 503 until "
                "doorstep is restarted",
                dead.name,
                dead.pid,
                code,
                watch.in_a_row,
            )
            return
        watch.in_a_row += 1
        delay_s = policy.delay_s(watch.in_a_row)
        if self._stopping.wait(delay_s):
            return
        try:
            fresh = dead.relaunch()
        except Exception as e:
            watch.up_since = 0.0
            log.warning(
                "%s (pid %d) exited with code %d; restart %d of at most %d in a row failed "
                "after %.1f s: %s",
                dead.name,
                dead.pid,
                code,
                watch.in_a_row,
                policy.max_restarts,
                delay_s,
                str(e).splitlines()[0],
            )
            return
        watch.child, watch.up_since = fresh, time.monotonic()
        log.warning(
            "%s (pid %d) exited with code %d; restarted on %s with the same data as pid %d "
            "after %.1f s (restart %d of at most %d in a row)",
            dead.name,
            dead.pid,
            code,
            fresh.address,
            fresh.pid,
            delay_s,
            watch.in_a_row,
            policy.max_restarts,
        )

"""The relay: numbers committed events and hands them to consumers.

Every server process (and ``doorstep worker``) runs a relay. Each role — the sequencer,
and one per consumer — is held by one process at a time through a session-level
PostgreSQL advisory lock on the relay's own connection; when that process dies, its
connection ends, the lock is free, and another process takes the role within
``lease_retry_s``. The sequencer looks for committed events every ``sequence_every_s``
(a few milliseconds: producers do not NOTIFY, because PostgreSQL serialises the commits
of notifying transactions); when it numbers some it wakes the consumers of its own
process at once and those of others through ``NOTIFY doorstep_event_seq``, which the
same connection LISTENs for. A poll every ``poll_s`` covers lost notifications.

A consumer reads its events after its cursor, in seq order, a batch at a time, and
runs its handler for each inside one transaction that also moves the cursor: the
handler's database writes and the cursor commit together, so a crash redelivers the
batch and the writes are not made twice (a consumer with a ``handle_batch`` gets the
batch's events at once, in that transaction: one statement for many events). A cursor
that moved under us (a process that lost its lease and kept going) makes the
transaction roll back. If a handler fails,
the batch is rolled back and handled one event at a time; the failing event is
*parked* with its retry time and the consumer moves on — except for later events of
the same aggregate, which are parked behind it, so an aggregate's events are never
handled out of order. Parked deliveries are retried with backoff
(``events.rules.after_failure``) and end *dead* after ``max_attempts``, listed for an
admin who can replay them.

Effects outside PostgreSQL (Redis, sockets) happen at least once: a handler that
publishes and then fails — or whose batch fails later — publishes again on retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from doorstep.db import Tx
from events import store
from events.rules import DeliveryParams, after_failure, describe
from events.types import Event, check_types

log = logging.getLogger("doorstep.events")

Handler = Callable[[Tx, Event], Awaitable[None]]
BatchHandler = Callable[[Tx, list[Event]], Awaitable[None]]
SEQUENCER = "sequencer"
_LOCK_SPACE = 0x64736576  # "dsev": advisory locks of the relay's roles


@dataclass(frozen=True, slots=True)
class Consumer:
    """A named reaction to some event types."""

    name: str
    types: frozenset[str]
    handle: Handler
    # Called after a transaction holding some of its handled events commits (e.g. to
    # push what they stored), and after one rolls back (to forget it). In order, in the
    # delivering process; a failure here is logged, the events stay handled.
    committed: Callable[[], Awaitable[None]] | None = None
    aborted: Callable[[], None] | None = None
    # Optional: a batch's events at once, in seq order, in the batch's transaction, with
    # the same effects as ``handle`` on each in turn, in fewer statements (one read for
    # all their orders, one insert). Events parked behind their aggregate are left out.
    # ``handle`` stays the one-by-one path: after a failure, and for parked retries.
    handle_batch: BatchHandler | None = None
    # Nobody waits to see its effects live (a snapshot, a job cancelled, a binding made):
    # it gathers for ``background_gather_s`` rather than ``gather_s``.
    background: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name == SEQUENCER or not self.name.replace("-", "").isalnum():
            raise ValueError(f"consumer name {self.name!r}: letters, digits and '-' only")
        check_types(self.types)


class _LeaseLost(Exception):
    """The cursor moved under us: another process holds the consumer now."""


@dataclass
class ConsumerStats:
    """What one consumer did in this process."""

    handled: int = 0
    failed: int = 0
    parked: int = 0
    dead: int = 0
    # Seconds from an event's commit to its handling, newest last (bounded).
    lags_s: list[float] = field(default_factory=list)

    def lag(self, seconds: float) -> None:
        self.lags_s.append(seconds)
        if len(self.lags_s) > 10_000:
            del self.lags_s[:5_000]


@dataclass
class _Role:
    name: str
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Relay:
    """The event relay of one process."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        database_url: str,
        consumers: list[Consumer],
        params: DeliveryParams | None = None,
    ) -> None:
        names = [c.name for c in consumers]
        if len(set(names)) != len(names):
            raise ValueError("two consumers with one name")
        self.pool = pool
        self.database_url = database_url
        self.consumers = {c.name: c for c in consumers}
        self.params = params or DeliveryParams()
        self.stats = {c.name: ConsumerStats() for c in consumers}
        self.head = 0  # highest seq known in this process
        self._roles: dict[str, _Role] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection[Any] | None = None
        self._locks = {c.name: asyncio.Lock() for c in consumers}
        self._blocked: dict[str, set[str]] = {c.name: set() for c in consumers}
        # Each consumer's cursor as stored, and when it was written: the position in
        # memory may run ahead of it over events of other types.
        self._stored: dict[str, int] = {}
        self._stored_at: dict[str, float] = {}
        self._positions: dict[str, int] = {}  # how far each consumer held here has read
        self._stopping = False

    # --- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Run the relay in the background."""
        self._task = asyncio.create_task(self._run(), name="event-relay")

    async def stop(self) -> None:
        """Stop every role and release the leases."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._drop_roles()
        await self._close_conn()

    def held(self) -> list[str]:
        """The roles this process holds now."""
        return sorted(name for name, role in self._roles.items() if role.task is not None)

    async def _run(self) -> None:
        delay = 0.5
        outage_since: float | None = None
        failures = 0
        while not self._stopping:
            try:
                await self._connect()
                if outage_since is not None:
                    log.warning(
                        "event relay connected again after %.0f s (%d failed attempts)",
                        time.monotonic() - outage_since,
                        failures,
                    )
                    outage_since, failures = None, 0
                delay = 0.5
                await self._hold_roles()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("event relay lost PostgreSQL: %s; retrying", e)
                failures += 1
            await self._drop_roles()
            await self._close_conn()
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.database_url)
        self._conn = conn
        await conn.add_listener("doorstep_event_seq", self._on_sequenced)
        self.head = max(self.head, await store.head(conn))

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)
            if not conn.is_closed():
                conn.terminate()

    def _on_sequenced(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError, TypeError):
            self.head = max(self.head, int(str(payload)))
        self._wake_consumers()

    def _wake_consumers(self) -> None:
        for name, role in self._roles.items():
            if name != SEQUENCER:
                role.wake.set()

    async def _hold_roles(self) -> None:
        """Take every free role, run it, keep trying the others; return when the
        connection fails."""
        conn = self._conn
        assert conn is not None
        wanted = [SEQUENCER, *self.consumers]
        while not self._stopping:
            if conn.is_closed():
                raise OSError("the relay's connection closed")
            for name in wanted:
                role = self._roles.get(name)
                if role is not None and role.task is not None:
                    if role.task.done():  # a role's loop ended with an error: fail over
                        exc = role.task.exception()
                        raise exc if isinstance(exc, Exception) else OSError("role ended")
                    continue
                got = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_SPACE, name
                )
                if got:
                    role = self._roles[name] = _Role(name)
                    loop = (
                        self._sequence_loop(role) if name == SEQUENCER else self._consume_loop(role)
                    )
                    role.task = asyncio.create_task(loop, name=f"events-{name}")
                    log.info("event relay holds %s", name)
            # Liveness of the connection (and its locks) is checked each round.
            await asyncio.sleep(self.params.lease_retry_s)
            await conn.fetchval("SELECT 1")

    async def _drop_roles(self) -> None:
        roles, self._roles = self._roles, {}
        for role in roles.values():
            if role.task is not None:
                role.task.cancel()
        for role in roles.values():
            if role.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await role.task

    async def _wait(self, role: _Role, timeout_s: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns normally when it is
        # cancelled just as the wake-up comes, the cancellation lost — the role's loop then
        # ran on and stop() waited for it for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await role.wake.wait()
        role.wake.clear()

    # --- the sequencer ---------------------------------------------------------------

    async def _sequence_loop(self, role: _Role) -> None:
        batch = max(self.params.batch, 500)
        while True:
            before = self.head
            head = await store.sequence(self.pool, batch)
            if head > before:
                self.head = head
                self._wake_consumers()
            if head - before >= batch:
                continue  # more may be waiting
            await self._wait(role, self.params.sequence_every_s)

    # --- consumers -------------------------------------------------------------------

    async def _consume_loop(self, role: _Role) -> None:
        consumer = self.consumers[role.name]
        async with self._locks[consumer.name]:
            self._blocked[consumer.name] = await store.blocked_aggregates(self.pool, consumer.name)
        position = await store.cursor(self.pool, consumer.name)
        self._stored[consumer.name] = position
        retry_at = time.monotonic()
        delivered_at, behind = 0.0, False
        gather_s = self.params.background_gather_s if consumer.background else self.params.gather_s
        while True:
            if time.monotonic() >= retry_at:
                retry_at = time.monotonic() + await self._retry_parked(consumer)
            head = self.head
            if position >= head:
                self.head = head = max(head, await store.head(self.pool))
            if position < head:
                # Gather: at most one delivery per gather_s (background_gather_s for a
                # background consumer), unless the last one left
                # events behind (a full batch: catching up goes at full speed).
                hold = delivered_at + gather_s - time.monotonic()
                if hold > 0 and not behind:
                    await asyncio.sleep(hold)
                    head = self.head
                delivered_at = time.monotonic()
                position = await self._deliver(consumer, position, head)
                behind = position < head
                self._positions[consumer.name] = position
                continue
            await self._wait(role, min(self.params.poll_s, max(0.0, retry_at - time.monotonic())))

    async def _deliver(self, consumer: Consumer, position: int, head: int) -> int:
        """Hand over the next batch; returns the new position."""
        name = consumer.name
        async with self._locks[name]:
            events = await store.after(self.pool, position, head, consumer.types, self.params.batch)
            new = events[-1].seq if len(events) >= self.params.batch else head
            stored = self._stored.get(name, position)
            if not events:
                # None of its types: move on in memory, and write the cursor at most
                # once per poll_s (a restart re-reads a stretch without its events).
                if time.monotonic() - self._stored_at.get(name, 0.0) >= self.params.poll_s:
                    async with self.pool.acquire() as conn, conn.transaction():
                        if not await store.advance(conn, name, stored, new):
                            raise _LeaseLost(name)
                    self._stored[name], self._stored_at[name] = new, time.monotonic()
                return new
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    if consumer.handle_batch is None:
                        for event in events:
                            await self._handle_or_wait(conn, consumer, event)
                    else:
                        ready = [
                            e for e in events if not await self._park_if_blocked(conn, name, e)
                        ]
                        if ready:
                            await consumer.handle_batch(conn, ready)
                    if not await store.advance(conn, name, stored, new):
                        raise _LeaseLost(name)
            except _LeaseLost:
                _aborted(consumer)
                raise
            except Exception:
                _aborted(consumer)
                # Someone failed: again one by one, parking the ones that fail.
                await self._deliver_singly(consumer, stored, new, events)
            else:
                self._count(consumer, events)
                await _committed(consumer)
            self._stored[name], self._stored_at[name] = new, time.monotonic()
            return new

    async def _handle_or_wait(self, conn: Tx, consumer: Consumer, event: Event) -> bool:
        """Handle the event, or park it behind its aggregate's parked one; True if handled."""
        if await self._park_if_blocked(conn, consumer.name, event):
            return False
        await consumer.handle(conn, event)
        return True

    async def _park_if_blocked(self, conn: Tx, name: str, event: Event) -> bool:
        """Park the event behind its aggregate's parked one, if there is one; True if so."""
        if event.aggregate not in self._blocked[name]:
            return False
        await store.park(
            conn,
            name,
            event,
            state="pending",
            attempts=0,
            next_at=datetime.now(UTC),
            error="waiting behind an earlier event of the same aggregate",
        )
        return True

    def _count(self, consumer: Consumer, events: list[Event]) -> None:
        stats = self.stats[consumer.name]
        now = datetime.now(UTC)
        for event in events:
            if event.aggregate not in self._blocked[consumer.name]:
                stats.handled += 1
                stats.lag((now - event.occurred_at).total_seconds())

    async def _deliver_singly(
        self, consumer: Consumer, position: int, new: int, events: list[Event]
    ) -> None:
        stats = self.stats[consumer.name]
        for event in events:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    handled = await self._handle_or_wait(conn, consumer, event)
                    if not await store.advance(conn, consumer.name, position, event.seq):
                        raise _LeaseLost(consumer.name)
                if handled:
                    stats.handled += 1
                    stats.lag((datetime.now(UTC) - event.occurred_at).total_seconds())
                else:
                    stats.parked += 1
                await _committed(consumer)
            except _LeaseLost:
                _aborted(consumer)
                raise
            except Exception as e:
                _aborted(consumer)
                stats.failed += 1
                outcome, next_at = after_failure(1, now=datetime.now(UTC), params=self.params)
                log.warning(
                    "consumer %s failed on event %s (%s %s): %s; %s",
                    consumer.name,
                    event.id,
                    event.type,
                    event.aggregate,
                    describe(e),
                    "dead-lettered" if outcome == "dead" else f"retrying at {next_at}",
                )
                async with self.pool.acquire() as conn, conn.transaction():
                    await store.park(
                        conn,
                        consumer.name,
                        event,
                        state="dead" if outcome == "dead" else "pending",
                        attempts=1,
                        next_at=next_at or datetime.now(UTC),
                        error=describe(e),
                    )
                    if not await store.advance(conn, consumer.name, position, event.seq):
                        raise _LeaseLost(consumer.name) from None
                if outcome == "dead":
                    stats.dead += 1
                else:
                    stats.parked += 1
                    self._blocked[consumer.name].add(event.aggregate)
            position = event.seq
        if position != new:
            async with self.pool.acquire() as conn, conn.transaction():
                if not await store.advance(conn, consumer.name, position, new):
                    raise _LeaseLost(consumer.name)

    async def _retry_parked(self, consumer: Consumer) -> float:
        """Try the parked deliveries that are due; seconds until the next one is."""
        stats = self.stats[consumer.name]
        async with self._locks[consumer.name]:
            while True:
                now = datetime.now(UTC)
                due = await store.heads_due(self.pool, consumer.name, now, 100)
                if not due:
                    break
                for parked in due:
                    event = (await store.by_ids(self.pool, [parked.event_id]))[parked.event_id]
                    try:
                        async with self.pool.acquire() as conn, conn.transaction():
                            await consumer.handle(conn, event)
                            if not await store.unpark(conn, parked.id, parked.attempts):
                                raise _LeaseLost(consumer.name)
                        stats.handled += 1
                        stats.lag((datetime.now(UTC) - event.occurred_at).total_seconds())
                        await _committed(consumer)
                    except _LeaseLost:
                        _aborted(consumer)
                        raise
                    except Exception as e:
                        _aborted(consumer)
                        stats.failed += 1
                        attempts = parked.attempts + 1
                        outcome, next_at = after_failure(attempts, now=now, params=self.params)
                        if outcome == "dead":
                            stats.dead += 1
                            log.warning(
                                "consumer %s gave up on event %s after %d attempts: %s",
                                consumer.name,
                                event.id,
                                attempts,
                                describe(e),
                            )
                        await store.failed_again(
                            self.pool,
                            parked.id,
                            attempts=attempts,
                            state=outcome if outcome == "dead" else "pending",
                            next_at=next_at or now,
                            error=describe(e),
                        )
            self._blocked[consumer.name] = await store.blocked_aggregates(self.pool, consumer.name)
            nxt = await store.next_due(self.pool, consumer.name)
        if nxt is None:
            return self.params.poll_s
        return max(0.05, min(self.params.poll_s, (nxt - datetime.now(UTC)).total_seconds()))

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every consumer has read past every event committed before the call
        (tests, and a clean shutdown). Parked deliveries are not waited for."""
        deadline = time.monotonic() + timeout_s
        while await store.unsequenced(self.pool):
            if time.monotonic() > deadline:
                raise TimeoutError("events are still waiting for a sequence number")
            await asyncio.sleep(0.01)
        target = await store.head(self.pool)
        while True:
            cursors = await store.cursors(self.pool)
            if all(
                max(cursors.get(name, 0), self._positions.get(name, 0)) >= target
                for name in self.consumers
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("consumers are still behind")
            await asyncio.sleep(0.01)

    def wake(self, consumer: str) -> None:
        """Look at ``consumer``'s parked deliveries now (after an admin's replay)."""
        role = self._roles.get(consumer)
        if role is not None:
            role.wake.set()


async def in_runs(
    tx: Tx, events: list[Event], types: frozenset[str], run: BatchHandler, one: Handler
) -> None:
    """A ``handle_batch`` made of two: each stretch of consecutive events of ``types`` to
    ``run`` at once, every other event to ``one``, in seq order (so an aggregate's events
    take effect in their order, as one by one)."""
    stretch: list[Event] = []
    for event in events:
        if event.type in types:
            stretch.append(event)
            continue
        if stretch:
            await run(tx, stretch)
            stretch = []
        await one(tx, event)
    if stretch:
        await run(tx, stretch)


async def _committed(consumer: Consumer) -> None:
    if consumer.committed is not None:
        try:
            await consumer.committed()
        except Exception:  # the events are handled and stay so
            log.exception("consumer %s: its after-commit step failed", consumer.name)


def _aborted(consumer: Consumer) -> None:
    if consumer.aborted is not None:
        try:
            consumer.aborted()
        except Exception:
            log.exception("consumer %s: its after-rollback step failed", consumer.name)

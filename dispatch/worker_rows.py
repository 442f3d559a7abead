"""The rows each worker's candidate is built from, kept between the engine's ticks.

``dispatch.candidates.load_candidates`` builds a :class:`~matching.model.Candidate` per
worker near a tick's orders (~11k at 500 orders × 100k workers) from their profile
(skills, rating, team, exams passed), verified certificates, weekly availability, the
exceptions on the days that matter and their discipline (suspensions, dismissals,
priority rewards). Read for every worker every tick, those rows were most of the call's
client CPU (benchmarks/README.md, ``load_candidates``). :class:`WorkerRows` keeps each
worker's :class:`Profile` (the rows, parsed: free intervals computed, certificates as a
dict) and re-reads only workers written since its last read.

**Staleness.** Every write to those tables logs the worker in ``worker_changes`` with the
writing transaction's id (triggers, migration 0042). A read runs in one repeatable-read
transaction: it takes the database's snapshot, reads the workers logged by transactions
*not visible in the previous read's snapshot* (so a transaction that committed after the
previous read is seen however long it ran, whatever order transactions commit in),
forgets them, and reads the profiles it lacks, all under that one snapshot. A profile
kept is therefore as of the read's snapshot, as if it had been read then. What depends on
the time (a suspension ending, a priority starting) is kept as the rows and judged
against each call's ``now``. The free intervals depend on the days: a call for other days
(midnight) starts over. A TRUNCATE logs worker 0: start over.

Old log entries are deleted by each reader: those of transactions finished before a
snapshot it took at least ``retention_s`` ago; a reader that has not read for
``retention_s / 2`` starts over instead of trusting its previous snapshot, and every
``reload_s`` one starts over anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from doorstep.db import Conn
from doorstep.stores import Stores
from workforce.gating import blocked_by
from workforce.models import DayException, Window
from workforce.schedule import windows_on

Intervals = tuple[tuple[int, int], ...]
Action = tuple[str, str, datetime, datetime | None]  # kind, status, starts_at, ends_at
Exception_ = tuple[date, bool, int | None, int | None]  # on_date, available, start, end
EMPTY_SKILLS: frozenset[str] = frozenset()


def _intervals(
    days: Iterable[date], weekly: list[Window], exceptions: list[DayException], zone: ZoneInfo
) -> Intervals:
    out = []
    for day in days:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        for start_min, end_min in windows_on(day, weekly, exceptions):
            out.append(
                (
                    int((midnight + timedelta(minutes=start_min)).timestamp()),
                    int((midnight + timedelta(minutes=end_min)).timestamp()),
                )
            )
    merged: list[tuple[int, int]] = []
    for a, b in sorted(out):  # one day's 24:00 meets the next day's 00:00: one night shift
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return tuple(merged)


def free_intervals(
    days: Iterable[date], pattern: str, exceptions: Iterable[Exception_], zone: ZoneInfo
) -> Intervals:
    """:func:`_intervals` of a weekly pattern as :func:`read_profiles` reads it
    ("weekday start_min end_min" windows joined by commas) and exception rows."""
    weekly = [Window(*map(int, window.split())) for window in pattern.split(",") if window]
    days_off = [DayException(d, a, s, e, "") for d, a, s, e in exceptions]
    return _intervals(days, weekly, days_off, zone)


class Profile(msgspec.Struct, frozen=True, gc=False):
    """What a worker's candidate takes from PostgreSQL's worker tables, parsed (a Struct:
    built and read faster than a NamedTuple; scalars, strings, dates and frozen containers
    only, so untracked by the cycle collector like ``Candidate``)."""

    skills: frozenset[str]
    rating_sum: int
    rating_count: int
    team_id: int | None
    untrained: frozenset[str]  # held skills whose exam is not passed (exams required)
    certificates: dict[str, date]  # verified: kind -> the latest expiry
    available: Intervals  # free intervals on the call's days (availability ∖ exceptions)
    actions: tuple[Action, ...]  # suspensions, dismissals, priority rewards not overturned

    def blocked(self, now: datetime) -> bool:
        """Suspended or dismissed now (``workforce.gating.blocked_by``)."""
        return blocked_by(self.actions, now) is not None

    def priority(self, now: datetime) -> bool:
        """A dispatch priority reward in force now (``workforce.store.dispatch_priority``)."""
        return any(
            kind == "priority" and starts_at <= now and (ends_at is None or ends_at > now)
            for kind, _, starts_at, ends_at in self.actions
        )


async def read_profiles(
    db: Conn, ids: Sequence[int], days: Sequence[date], zone: ZoneInfo
) -> dict[int, Profile]:
    """The profiles of ``ids`` (those with a ``workers`` row), free intervals on ``days``.

    Free intervals are computed once per distinct weekly pattern and exceptions, not once
    per worker, and shared by the workers on them (the same immutable tuple)."""
    ids = list(ids)
    if not ids:
        return {}
    workers = await db.fetch(  # unpacked in this column order below
        "SELECT user_id, skills, rating_sum, rating_count, team_id, exams_required, "
        "coalesce((SELECT array_agg(q.skill) FROM skill_qualifications q "
        "WHERE q.user_id = workers.user_id), '{}') AS passed "
        "FROM workers WHERE user_id = ANY($1)",
        ids,
    )
    certs = await db.fetch(
        "SELECT worker_id, kind, max(expires_on) AS expires_on FROM worker_certificates "
        "WHERE worker_id = ANY($1) AND status = 'verified' GROUP BY worker_id, kind",
        ids,
    )
    # Each worker's weekly pattern as one string (the key its free intervals are kept
    # under: workers on the same shifts share them).
    weekly = await db.fetch(
        "SELECT worker_id, string_agg(weekday || ' ' || start_min || ' ' || end_min, ',' "
        "ORDER BY weekday, start_min) AS pattern FROM worker_availability "
        "WHERE worker_id = ANY($1) GROUP BY worker_id",
        ids,
    )
    exceptions = await db.fetch(
        "SELECT worker_id, on_date, available, start_min, end_min FROM "
        "worker_availability_exceptions WHERE worker_id = ANY($1) AND on_date = ANY($2)",
        ids,
        list(days),
    )
    discipline = await db.fetch(
        "SELECT worker_id, kind, status, starts_at, ends_at FROM discipline_actions "
        "WHERE worker_id = ANY($1) AND kind IN ('suspension', 'dismissal', 'priority') "
        "AND status <> 'overturned' ORDER BY worker_id, id",
        ids,
    )
    cert_map: dict[int, dict[str, date]] = {}
    for r in certs:
        cert_map.setdefault(r["worker_id"], {})[r["kind"]] = r["expires_on"]
    weekly_map: dict[int, str] = {r["worker_id"]: r["pattern"] for r in weekly}
    exc_map: dict[int, list[Exception_]] = {}
    for r in exceptions:
        exc_map.setdefault(r["worker_id"], []).append(
            (r["on_date"], r["available"], r["start_min"], r["end_min"])
        )
    action_map: dict[int, list[Action]] = {}
    for r in discipline:
        action_map.setdefault(r["worker_id"], []).append(
            (r["kind"], r["status"], r["starts_at"], r["ends_at"])
        )
    free: dict[tuple[str, tuple[Exception_, ...]], Intervals] = {}
    out = {}
    for w, skills, rating_sum, rating_count, team_id, exams_required, passed in workers:
        key = (weekly_map.get(w, ""), tuple(exc_map.get(w, ())))
        available = free.get(key)
        if available is None:
            available = free[key] = free_intervals(days, *key, zone)
        held = frozenset(skills)
        out[w] = Profile(
            skills=held,
            rating_sum=int(rating_sum),
            rating_count=int(rating_count),
            team_id=team_id,
            untrained=held - frozenset(passed) if exams_required else EMPTY_SKILLS,
            certificates=cert_map.get(w) or {},
            available=available,
            actions=tuple(action_map.get(w, ())),
        )
    return out


class WorkerRows:
    """Worker id -> :class:`Profile`, for the workers asked about, kept current from the
    ``worker_changes`` log (see the module's doc)."""

    def __init__(self, *, reload_s: float = 3600.0, retention_s: float = 3600.0) -> None:
        self.reload_s = reload_s
        self.retention_s = retention_s
        self._profiles: dict[int, Profile | None] = {}  # None: no ``workers`` row
        self._snapshot: str | None = None  # the last read's, as pg_snapshot text
        self._key: tuple[tuple[date, ...], str] | None = None  # the days and zone kept for
        self._read_mono = 0.0  # when the last read ran
        self._started_mono = 0.0  # when the copy last started over
        self._marks: deque[tuple[float, str]] = deque()  # (when, snapshot): for pruning
        self.starts = 0  # times the copy started over (tests, logs)
        self.read = 0  # profiles read by the last call
        self.forgotten = 0  # profiles forgotten by the last call (changed)
        # One call at a time: a call storing profiles read under an older snapshot after
        # another forgot them would keep them stale.
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        """Forget everything: the next call reads every profile it is asked for."""
        self._profiles.clear()
        self._snapshot = None

    async def profiles(
        self, stores: Stores, ids: Iterable[int], days: Sequence[date], zone: ZoneInfo
    ) -> dict[int, Profile]:
        """The profiles of ``ids`` that exist, current as of this call's snapshot."""
        async with self._lock:
            return await self._profiles_of(stores, list(ids), days, zone)

    async def _profiles_of(
        self, stores: Stores, ids: list[int], days: Sequence[date], zone: ZoneInfo
    ) -> dict[int, Profile]:
        mono = time.monotonic()
        key = (tuple(days), zone.key)
        if (
            key != self._key
            or self._snapshot is None
            or mono - self._read_mono >= self.retention_s / 2
            or mono - self._started_mono >= self.reload_s
        ):
            self.clear()
            self._key = key
            self._started_mono = mono
            self.starts += 1
        kept = self._profiles
        async with (
            stores.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # The first statement: the transaction's snapshot, which every read below uses.
            snapshot: str = await conn.fetchval("SELECT pg_current_snapshot()::text")
            self.forgotten = 0
            if self._snapshot is not None:
                changed = await conn.fetch(
                    "SELECT DISTINCT worker_id FROM worker_changes "
                    "WHERE xid >= pg_snapshot_xmin($1::text::pg_snapshot) "
                    "AND NOT pg_visible_in_snapshot(xid, $1::text::pg_snapshot)",
                    self._snapshot,
                )
                for (w,) in changed:
                    if w == 0:  # a TRUNCATE: start over
                        self.forgotten += len(kept)
                        kept.clear()
                        break
                    if kept.pop(w, False) is not False:
                        self.forgotten += 1
            missing = [w for w in ids if w not in kept]
            self.read = len(missing)
            if missing:
                found = await read_profiles(conn, missing, days, zone)
                for w in missing:
                    kept[w] = found.get(w)
        self._snapshot = snapshot
        self._read_mono = mono
        await self._prune(stores, mono, snapshot)
        out = {}
        for w in ids:
            p = kept[w]
            if p is not None:
                out[w] = p
        return out

    async def _prune(self, stores: Stores, mono: float, snapshot: str) -> None:
        """Delete log entries of transactions finished before a snapshot this copy took
        ``retention_s`` ago (every reader newer than that has seen them; one older
        starts over). A mark every ``retention_s / 6``."""
        marks = self._marks
        if not marks or mono - marks[-1][0] >= self.retention_s / 6:
            marks.append((mono, snapshot))
        if marks and mono - marks[0][0] >= self.retention_s:
            _, old = marks.popleft()
            await stores.pool.execute(
                "DELETE FROM worker_changes WHERE xid < pg_snapshot_xmin($1::text::pg_snapshot)",
                old,
            )

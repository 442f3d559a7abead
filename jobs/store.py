"""Jobs from asyncpg: defer inside a transaction, cancel, list, retry, count.

Procrastinate's tables (migration 0014) are read and written here directly through its
stable SQL functions (``procrastinate_defer_jobs_v1``, ``procrastinate_retry_job_v1``), so
that deferring takes part in the caller's asyncpg transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from jobs.errors import JobNotFound, JobNotRetryable

DEFAULT_QUEUE = "default"


async def defer(
    tx: Tx,
    task: str,
    args: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
    lock: str | None = None,
    queueing_lock: str | None = None,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
) -> int | None:
    """Enqueue ``task`` in the caller's transaction; its id.

    ``at``: not before then. ``lock``: jobs sharing it run one at a time, in the order
    deferred. ``queueing_lock``: at most one waiting job per value — a second is not
    enqueued and None is returned (the transaction goes on).
    """
    if at is not None and at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    sql = (
        "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW($1::varchar, $2::varchar, $3::int, "
        "$4::text, $5::text, $6::jsonb, $7::timestamptz)::procrastinate_job_to_defer_v1]))[1]"
    )
    params = (queue, task, priority, lock, queueing_lock, args or {}, at)
    if queueing_lock is None:
        return int(await tx.fetchval(sql, *params))
    try:
        async with tx.transaction():  # a savepoint: a duplicate must not abort the caller
            return int(await tx.fetchval(sql, *params))
    except asyncpg.UniqueViolationError:
        return None


async def cancel_waiting(
    tx: Conn, *, job_id: int | None = None, queueing_lock: str | None = None
) -> int:
    """Cancel jobs that have not started (by id or queueing lock); how many were."""
    if (job_id is None) == (queueing_lock is None):
        raise ValueError("give job_id or queueing_lock")
    # One statement per key, not one with "($1 IS NOT NULL AND id = $1) OR (…)": that
    # one's generic plan (asyncpg prepares it) scanned the whole jobs table — 15 % of the
    # database's time in a burst of payment notifications (benchmarks/README.md, money).
    if job_id is not None:
        status = await tx.execute(
            "UPDATE procrastinate_jobs SET status = 'cancelled' WHERE status = 'todo' AND id = $1",
            job_id,
        )
    else:
        status = await tx.execute(
            "UPDATE procrastinate_jobs SET status = 'cancelled' "
            "WHERE status = 'todo' AND queueing_lock = $1",
            queueing_lock,
        )
    return int(status.split()[-1])


async def cancel_waiting_locks(tx: Conn, queueing_locks: list[str]) -> int:
    """Cancel the jobs not started yet that hold any of ``queueing_locks`` (one statement:
    the partial unique index on ``queueing_lock`` finds each); how many were."""
    status = await tx.execute(
        "UPDATE procrastinate_jobs SET status = 'cancelled' "
        "WHERE status = 'todo' AND queueing_lock = ANY($1::text[])",
        queueing_locks,
    )
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as the admin sees it."""

    id: int
    queue: str
    task: str
    status: str
    args: dict[str, Any]
    lock: str | None
    queueing_lock: str | None
    scheduled_at: datetime | None
    attempts: int
    deferred_at: datetime | None
    last_error: str | None


_JOB = (
    "SELECT j.id, j.queue_name AS queue, j.task_name AS task, j.status::text AS status, j.args, "
    "j.lock, j.queueing_lock, j.scheduled_at, j.attempts, "
    "(SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'deferred') "
    "AS deferred_at, "
    "(SELECT x.error FROM job_errors x WHERE x.job_id = j.id ORDER BY x.attempt DESC LIMIT 1) "
    "AS last_error FROM procrastinate_jobs j"
)


def _job(row: asyncpg.Record) -> JobRow:
    return JobRow(**dict(row))


async def get(db: Conn, job_id: int) -> JobRow:
    """One job or :class:`JobNotFound`."""
    row = await db.fetchrow(f"{_JOB} WHERE j.id = $1", job_id)
    if row is None:
        raise JobNotFound(f"no job {job_id}", field="job_id")
    return _job(row)


async def list_jobs(
    db: Conn, *, status: str | None, task: str | None, after_id: int, limit: int
) -> list[JobRow]:
    """Jobs by id, filtered."""
    rows = await db.fetch(
        f"{_JOB} WHERE j.id > $1 AND ($2::text IS NULL OR j.status::text = $2) "
        "AND ($3::text IS NULL OR j.task_name = $3) ORDER BY j.id LIMIT $4",
        after_id,
        status,
        task,
        limit,
    )
    return [_job(r) for r in rows]


async def retry(db: Conn, job_id: int, *, now: datetime) -> JobRow:
    """A failed job back to waiting, due now."""
    job = await get(db, job_id)
    if job.status != "failed":
        raise JobNotRetryable(
            f"job {job_id} is {job.status}; only a failed job can be retried", field="job_id"
        )
    await db.execute("SELECT procrastinate_retry_job_v2($1, $2, NULL, NULL, NULL)", job_id, now)
    return await get(db, job_id)


async def recover_stalled(db: Conn, *, heartbeat_s: float, now: datetime) -> list[int]:
    """Jobs left running by workers that stopped sending heartbeats (killed, frozen),
    back to waiting; their ids. Procrastinate leaves that to the application."""
    rows = await db.fetch(
        "SELECT j.id FROM procrastinate_jobs j "
        "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
        "WHERE j.status = 'doing' AND (j.worker_id IS NULL "
        "OR w.last_heartbeat < $1::timestamptz - make_interval(secs => $2))",
        now,
        heartbeat_s,
    )
    ids = [int(r["id"]) for r in rows]
    for job_id in ids:
        await db.execute("SELECT procrastinate_retry_job_v2($1, $2, NULL, NULL, NULL)", job_id, now)
    return ids


async def cancel(db: Conn, job_id: int) -> JobRow:
    """A waiting job cancelled."""
    job = await get(db, job_id)
    if job.status != "todo" or not await cancel_waiting(db, job_id=job_id):
        raise JobNotRetryable(
            f"job {job_id} is {job.status}; only a waiting job can be cancelled", field="job_id"
        )
    return await get(db, job_id)


async def record_error(db: Conn, job_id: int, attempt: int, error: str) -> None:
    """Why an attempt failed."""
    await db.execute(
        "INSERT INTO job_errors (job_id, attempt, error) VALUES ($1, $2, $3) "
        "ON CONFLICT (job_id, attempt) DO UPDATE SET error = excluded.error, at = now()",
        job_id,
        attempt,
        error,
    )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """For /metrics: jobs by (queue, status), and how late the oldest ready job is."""

    by_status: dict[tuple[str, str], int]
    oldest_ready_s: dict[str, float]


async def stats(db: Conn, now: datetime | None = None) -> QueueStats:
    """Counts and lag, one query each."""
    now = now or datetime.now(UTC)
    rows = await db.fetch(
        "SELECT queue_name, status::text AS status, count(*) AS n FROM procrastinate_jobs "
        "WHERE status IN ('todo', 'doing', 'failed') GROUP BY 1, 2"
    )
    lag = await db.fetch(
        "SELECT j.queue_name, min(greatest(coalesce(j.scheduled_at, '-infinity'), e.at)) AS since "
        "FROM procrastinate_jobs j JOIN procrastinate_events e "
        "ON e.job_id = j.id AND e.type = 'deferred' "
        "WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= $1) "
        "GROUP BY 1",
        now,
    )
    return QueueStats(
        by_status={(r["queue_name"], r["status"]): int(r["n"]) for r in rows},
        oldest_ready_s={r["queue_name"]: max(0.0, (now - r["since"]).total_seconds()) for r in lag},
    )

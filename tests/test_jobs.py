"""Background jobs on Procrastinate: transactional defer, delays, retries, locks,
cancellation, cron, stalled workers, the admin's list and retry, /metrics."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
import pytest
from procrastinate import Blueprint, JobContext, RetryStrategy

from doorstep.settings import Settings
from doorstep.stores import Stores
from jobs import app as jobs_app
from jobs import store as jobs_store
from jobs.runner import JobParams, JobRunner, recover_stalled
from tests.helpers import METRICS_AUTH, Account, dies_with_parent

QUEUE = f"test-{secrets.token_hex(3)}"
PARAMS = JobParams(concurrency=4, poll_s=0.05, heartbeat_s=0.3, stalled_after_s=1.0)
bp = Blueprint()


async def _record(context: JobContext, key: str, hold_ms: int = 0) -> None:
    stores = jobs_app.service(context, Stores)
    started = datetime.now(UTC)
    if hold_ms:
        await asyncio.sleep(hold_ms / 1000)
    await stores.pool.execute(
        "INSERT INTO test_job_runs (key, attempt, started_at, ended_at) VALUES ($1, $2, $3, now())",
        key,
        context.job.attempts,
        started,
    )


@bp.task(name="record", queue=QUEUE, pass_context=True)
async def record(context: JobContext, key: str, hold_ms: int = 0) -> None:
    """Record that it ran."""
    await _record(context, key, hold_ms)


@bp.task(name="flaky", queue=QUEUE, pass_context=True, retry=RetryStrategy(max_attempts=1))
async def flaky(context: JobContext, key: str, fail_until: int) -> None:
    """Fail while the job's attempts are below ``fail_until``, then record."""
    if context.job.attempts < fail_until:
        raise RuntimeError(f"flaky {key} attempt {context.job.attempts}")
    await _record(context, key)


@bp.periodic(cron="* * * * * *", periodic_id=QUEUE)
@bp.task(name="tick", queue=QUEUE, pass_context=True)
async def tick(context: JobContext, timestamp: int) -> None:
    """Every second."""
    await _record(context, f"tick-{QUEUE}")


@pytest.fixture(scope="module")
async def runner(stores: Stores, settings: Settings) -> AsyncIterator[JobRunner]:
    """A job worker for this module's tasks, on this run's database."""
    await stores.pool.execute(
        "CREATE TABLE IF NOT EXISTS test_job_runs (key text NOT NULL, attempt int NOT NULL, "
        "started_at timestamptz NOT NULL, ended_at timestamptz NOT NULL)"
    )
    assert settings.database_url is not None
    app = jobs_app.build(settings.database_url, {"t": bp})
    worker = JobRunner(app, stores.pool, {Stores: stores, JobParams: PARAMS}, PARAMS)
    await worker.start()
    yield worker
    await worker.stop()


async def _runs(stores: Stores, key: str) -> list[Any]:
    return list(
        await stores.pool.fetch(
            "SELECT attempt, started_at, ended_at FROM test_job_runs WHERE key = $1 ORDER BY started_at",
            key,
        )
    )


async def _until(check: Any, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _key() -> str:
    return secrets.token_hex(4)


def test_the_migration_holds_procrastinates_latest_schema() -> None:
    """Migration 0014 carries procrastinate's schema up to its newest migration file: an
    upgrade of procrastinate that adds one fails here until a migration adds it too."""
    names = sorted(
        p.name.removesuffix(".sql")
        for p in resources.files("procrastinate.sql.migrations").iterdir()
        if p.name.endswith(".sql")
    )
    assert names[-1] == jobs_app.SCHEMA_VERSION


async def test_a_job_deferred_in_a_rolled_back_transaction_never_exists(
    stores: Stores, runner: JobRunner
) -> None:
    """defer() takes part in the caller's transaction: rolled back, no job; committed, it runs."""
    gone, kept = _key(), _key()

    async def change_that_fails() -> None:
        async with stores.pool.acquire() as conn, conn.transaction():
            await jobs_store.defer(conn, "t:record", {"key": gone}, queue=QUEUE)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    async with stores.pool.acquire() as conn, conn.transaction():
        job_id = await jobs_store.defer(conn, "t:record", {"key": kept}, queue=QUEUE)
    assert job_id is not None

    async def ran() -> bool:
        return bool(await _runs(stores, kept))

    await _until(ran)
    assert not await _runs(stores, gone)
    assert not await stores.pool.fetchval(
        "SELECT count(*) FROM procrastinate_jobs WHERE args->>'key' = $1", gone
    )


async def test_a_delayed_job_runs_at_its_time_not_before(stores: Stores, runner: JobRunner) -> None:
    """A job deferred for T starts at T or later."""
    key = _key()
    at = datetime.now(UTC) + timedelta(seconds=1.0)
    async with stores.pool.acquire() as conn:
        await jobs_store.defer(conn, "t:record", {"key": key}, queue=QUEUE, at=at)

    async def ran() -> bool:
        return bool(await _runs(stores, key))

    await _until(ran)
    assert (await _runs(stores, key))[0]["started_at"] >= at


async def test_jobs_sharing_a_lock_run_one_at_a_time_in_order(
    stores: Stores, runner: JobRunner
) -> None:
    """Three jobs with one lock never overlap and run in the order deferred (concurrency 4)."""
    keys = [_key() for _ in range(3)]
    lock = f"lock-{_key()}"
    async with stores.pool.acquire() as conn, conn.transaction():
        for key in keys:
            await jobs_store.defer(
                conn, "t:record", {"key": key, "hold_ms": 150}, queue=QUEUE, lock=lock
            )

    async def ran() -> bool:
        return all([await _runs(stores, k) for k in keys])

    await _until(ran)
    runs = [(await _runs(stores, k))[0] for k in keys]
    for earlier, later in itertools.pairwise(runs):
        assert earlier["ended_at"] <= later["started_at"]


async def test_a_queueing_lock_keeps_one_waiting_job(stores: Stores, runner: JobRunner) -> None:
    """A second job with a waiting one's queueing lock is not enqueued, and the caller's
    transaction goes on."""
    lock = f"q-{_key()}"
    later = datetime.now(UTC) + timedelta(hours=1)
    async with stores.pool.acquire() as conn, conn.transaction():
        first = await jobs_store.defer(
            conn, "t:record", {"key": _key()}, queue=QUEUE, at=later, queueing_lock=lock
        )
        second = await jobs_store.defer(
            conn, "t:record", {"key": _key()}, queue=QUEUE, at=later, queueing_lock=lock
        )
        assert await conn.fetchval("SELECT 1") == 1
    assert first is not None
    assert second is None
    async with stores.pool.acquire() as conn:
        assert await jobs_store.cancel_waiting(conn, queueing_lock=lock) == 1


async def test_a_failing_job_is_retried_then_listed_and_retried_by_an_admin(
    stores: Stores, runner: JobRunner, client: httpx.AsyncClient, admin: Account
) -> None:
    """A job that keeps failing is retried by its strategy, then failed with its error on
    the admin's list; the admin's retry runs it again and it succeeds."""
    key = _key()
    async with stores.pool.acquire() as conn:
        job_id = await jobs_store.defer(conn, "t:flaky", {"key": key, "fail_until": 2}, queue=QUEUE)
    assert job_id is not None

    async def failed() -> bool:
        return (await jobs_store.get(stores.pool, job_id)).status == "failed"

    await _until(failed)
    r = await client.get("/v1/admin/jobs?status=failed&task=t:flaky&limit=500", headers=admin.auth)
    assert r.status_code == 200, r.text
    row = next(j for j in r.json() if j["id"] == job_id)
    assert row["attempts"] == 2
    assert f"flaky {key} attempt 1" in row["last_error"]
    r = await client.post(f"/v1/admin/jobs/{job_id}/retry", headers=admin.auth)
    assert r.status_code == 200, r.text

    async def ran() -> bool:
        return bool(await _runs(stores, key))

    await _until(ran)
    assert (await _runs(stores, key))[0]["attempt"] == 3
    r = await client.post(f"/v1/admin/jobs/{job_id}/retry", headers=admin.auth)
    assert r.status_code in (404, 409)  # deleted once it succeeded, or not failed
    r = await client.get("/v1/admin/jobs?status=sleeping", headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "status"


async def test_an_admin_cancels_a_waiting_job_and_it_never_runs(
    stores: Stores, runner: JobRunner, client: httpx.AsyncClient, admin: Account
) -> None:
    """A waiting job cancelled by an admin is cancelled for good; a second cancel is a 409."""
    key = _key()
    async with stores.pool.acquire() as conn:
        job_id = await jobs_store.defer(
            conn,
            "t:record",
            {"key": key},
            queue=QUEUE,
            at=datetime.now(UTC) + timedelta(seconds=0.5),
        )
    r = await client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    await asyncio.sleep(1.0)
    assert not await _runs(stores, key)
    r = await client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=admin.auth)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "job_state"
    r = await client.post("/v1/admin/jobs/999999999/cancel", headers=admin.auth)
    assert r.status_code == 404


async def test_a_periodic_task_runs_on_its_schedule(stores: Stores, runner: JobRunner) -> None:
    """A task on a one-second cron runs again and again."""

    async def twice() -> bool:
        return len(await _runs(stores, f"tick-{QUEUE}")) >= 2

    await _until(twice, 10)


async def test_a_dead_workers_running_job_is_started_again(
    stores: Stores, runner: JobRunner
) -> None:
    """A job left running by a worker that stopped sending heartbeats goes back to waiting
    and runs (the kill -9 case)."""
    key = _key()
    async with stores.pool.acquire() as conn, conn.transaction():
        dead = await conn.fetchval(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') "
            "RETURNING id"
        )
        job_id = await jobs_store.defer(
            conn, "t:record", {"key": key}, queue=QUEUE, at=datetime.now(UTC) + timedelta(hours=1)
        )
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = $2 WHERE id = $1",
            job_id,
            dead,
        )
    assert job_id in await recover_stalled(stores.pool, PARAMS)

    async def ran() -> bool:
        return bool(await _runs(stores, key))

    await _until(ran)


async def test_queue_depth_lag_and_failures_are_on_metrics(
    stores: Stores, runner: JobRunner, client: httpx.AsyncClient
) -> None:
    """/metrics shows jobs by queue and status, the oldest ready job's wait and the relay."""
    async with stores.pool.acquire() as conn:
        await jobs_store.defer(
            conn,
            "t:record",
            {"key": _key()},
            queue=f"{QUEUE}-idle",  # nobody works this queue
        )
    await asyncio.sleep(0.2)
    r = await client.get("/metrics", headers=METRICS_AUTH)
    assert r.status_code == 200
    text = r.text
    assert f'doorstep_jobs{{queue="{QUEUE}-idle",status="todo"}} 1.0' in text
    assert f'doorstep_jobs_lag_seconds{{queue="{QUEUE}-idle"}}' in text
    assert "doorstep_events_head" in text
    assert "doorstep_events_behind" in text


async def test_doorstep_worker_processes_run_the_apps_tasks(
    stores: Stores, settings: Settings, tmp_path: Any
) -> None:
    """Two `doorstep worker` processes (no HTTP) register, share the queue and run the app's
    own tasks: a deferred jobs:recover_stalled puts a dead worker's job back to waiting."""
    import os
    import signal
    import sys

    assert settings.redis_url is not None
    assert settings.database_url is not None
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "DOORSTEP_SECRET_KEY": settings.secret_key,
        "DOORSTEP_REDIS_PREFIX": settings.redis_prefix,
        "DOORSTEP_DATA_DIR": str(tmp_path),
        "DOORSTEP_LOG_LEVEL": "WARNING",
    }
    # Workers' rows come and go (stalled ones are pruned): look for two new ids.
    before = await stores.pool.fetchval("SELECT coalesce(max(id), 0) FROM procrastinate_workers")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "doorstep",
            "worker",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=dies_with_parent(),
        )
        for _ in range(2)
    ]
    try:

        async def registered() -> bool:
            n = await stores.pool.fetchval(
                "SELECT count(*) FROM procrastinate_workers WHERE id > $1", before
            )
            return bool(n >= 2)

        await _until(registered, 60)
        async with stores.pool.acquire() as conn, conn.transaction():
            dead = await conn.fetchval(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - interval '1 hour') RETURNING id"
            )
            stuck = await jobs_store.defer(
                conn,
                "t:record",
                {"key": _key()},
                queue=f"{QUEUE}-nobody",
                at=datetime.now(UTC) + timedelta(hours=1),
            )
            await conn.execute(
                "UPDATE procrastinate_jobs SET status = 'doing', worker_id = $2 WHERE id = $1",
                stuck,
                dead,
            )
            await jobs_store.defer(conn, "jobs:recover_stalled", {"timestamp": 0}, queue="jobs")

        assert stuck is not None

        async def recovered() -> bool:
            return (await jobs_store.get(stores.pool, stuck)).status == "todo"

        await _until(recovered, 60)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:  # a clean exit; 90 s, as a worker finishing its jobs on a loaded 2-core
                # machine went past 30 s once (it takes a few seconds on a quiet one)
                assert await asyncio.wait_for(proc.wait(), 90) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


def test_a_second_app_in_one_process_has_the_same_task_names() -> None:
    """Building the job app twice (as the tests' second servers do) names each task once,
    ``ns:task``, never ``ns:ns:task`` (whose jobs would fail as unknown tasks)."""
    from api.background import blueprints
    from jobs.app import build, task_names

    first = build("postgresql://nobody@127.0.0.1/none", blueprints())
    second = build("postgresql://nobody@127.0.0.1/none", blueprints())
    assert task_names(first) == task_names(second)
    assert "jobs:recover_stalled" in task_names(second)
    periodic = {key for key, _ in second.periodic_registry.periodic_tasks}
    assert "jobs:recover_stalled" in periodic

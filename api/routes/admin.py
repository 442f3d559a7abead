"""The platform backbone for admins: events, their failed deliveries, background jobs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from api.bodies import Input
from api.routing import Ctx, QueryParam, Router
from doorstep.errors import InvalidInput
from events import probe
from events import store as events_store
from events.errors import DeadEventNotFound, UnknownConsumer
from jobs import store as jobs_store

router = Router("backbone")
ADMIN = frozenset({"admin"})
JOB_STATES = frozenset({"todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted"})


class ProbeIn(Input):
    """Send a probe event and wait for its delivery."""

    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 5.0


class ProbeOut(msgspec.Struct):
    """What became of a probe."""

    event_id: int
    delivered: bool
    lag_ms: float | None


def _aggregate(ctx: Ctx) -> str:
    raw = ctx.query_str("aggregate")
    if raw is None:
        raise InvalidInput("give the aggregate, e.g. order:42", field="aggregate")
    kind, _, ident = raw.partition(":")
    if not kind or not ident or len(raw) > 100:
        raise InvalidInput("an aggregate is kind:id, e.g. order:42", field="aggregate")
    return raw


@router.get(
    "/v1/admin/events",
    perm="backbone.read",
    roles=ADMIN,
    returns=list[dict[str, Any]],
    query=(
        QueryParam(
            "aggregate",
            str,
            "kind:id, e.g. order:42",
            True,
            max_length=100,
            pattern=r"^[^:]+:[\s\S]+$",
        ),
        QueryParam("limit", int, "at most this many, 1–500 (default 200)", ge=1, le=500),
    ),
    summary="An aggregate's domain events, oldest first",
)
async def list_events(ctx: Ctx) -> list[dict[str, Any]]:
    found = await events_store.of_aggregate(
        ctx.stores.pool, _aggregate(ctx), limit=ctx.query_int("limit", 200, ge=1, le=500)
    )
    return [e.as_json() for e in found]


@router.get(
    "/v1/admin/events/deliveries",
    errors={422: "no consumer of that name"},
    perm="backbone.read",
    roles=ADMIN,
    returns=list[dict[str, Any]],
    query=(
        QueryParam(
            "state",
            str,
            "pending (being retried) or dead (given up; default)",
            choices=("pending", "dead"),
        ),
        QueryParam("consumer", str, "only this consumer's", max_length=200),
        QueryParam(
            "after_id", int, "keyset cursor: the last id of the previous page", ge=0, le=2**62
        ),
        QueryParam("limit", int, "page size 1–500 (default 100)", ge=1, le=500),
    ),
    summary="Deliveries of events that failed: retrying (pending) or dead-lettered",
)
async def list_deliveries(ctx: Ctx) -> list[dict[str, Any]]:
    consumer = ctx.query_str("consumer")
    relay = ctx.request.app.state.relay
    if consumer is not None and consumer not in relay.consumers:
        raise UnknownConsumer(
            f"no consumer {consumer!r}; known: {', '.join(sorted(relay.consumers))}",
            field="consumer",
        )
    rows = await events_store.list_parked(
        ctx.stores.pool,
        state=ctx.query_str("state", choices=frozenset({"pending", "dead"})) or "dead",
        consumer=consumer,
        after_id=ctx.query_int("after_id", 0, ge=0, le=2**62),
        limit=ctx.query_int("limit", 100, ge=1, le=500),
    )
    return [r.as_json() for r in rows]


@router.post(
    "/v1/admin/events/deliveries/{delivery_id}/replay",
    errors={409: "the delivery is not dead"},
    perm="backbone.operate",
    roles=ADMIN,
    returns=dict[str, Any],
    summary="Deliver a dead-lettered event again (now, after its consumer's other parked ones)",
)
async def replay_delivery(ctx: Ctx) -> dict[str, Any]:
    parked = await events_store.replay(
        ctx.stores.pool, ctx.path_int("delivery_id"), datetime.now(UTC)
    )
    if parked is None:
        raise DeadEventNotFound(
            f"no dead delivery {ctx.path_int('delivery_id')}", field="delivery_id"
        )
    ctx.request.app.state.relay.wake(parked.consumer)
    return parked.as_json()


@router.post(
    "/v1/admin/events/probe",
    perm="backbone.operate",
    roles=ADMIN,
    body=ProbeIn,
    returns=ProbeOut,
    summary="Append a probe event and wait until the relay delivered it (an end-to-end check)",
)
async def send_probe(ctx: Ctx, body: ProbeIn) -> ProbeOut:
    pool = ctx.stores.pool
    async with pool.acquire() as conn, conn.transaction():
        event_id = await probe.send(conn, f"admin-{secrets.token_hex(6)}")
        sent = await conn.fetchval("SELECT occurred_at FROM events WHERE id = $1", event_id)
    handled = await probe.wait_handled(pool, event_id, timeout_s=body.timeout_s)
    lag = (handled - sent).total_seconds() * 1000 if handled is not None else None
    return ProbeOut(event_id=event_id, delivered=handled is not None, lag_ms=lag)


@router.get(
    "/v1/admin/jobs",
    perm="backbone.read",
    roles=ADMIN,
    returns=list[jobs_store.JobRow],
    query=(
        QueryParam(
            "status",
            str,
            "todo, doing, failed (default), cancelled, aborted, …",
            choices=tuple(sorted(JOB_STATES)),
        ),
        QueryParam("task", str, "only this task", max_length=200),
        QueryParam(
            "after_id", int, "keyset cursor: the last id of the previous page", ge=0, le=2**62
        ),
        QueryParam("limit", int, "page size 1–500 (default 100)", ge=1, le=500),
    ),
    summary="Background jobs, failed ones by default, with their last error",
)
async def list_jobs(ctx: Ctx) -> list[jobs_store.JobRow]:
    return list(
        await jobs_store.list_jobs(
            ctx.stores.pool,
            status=ctx.query_str("status", choices=JOB_STATES) or "failed",
            task=ctx.query_str("task"),
            after_id=ctx.query_int("after_id", 0, ge=0, le=2**62),
            limit=ctx.query_int("limit", 100, ge=1, le=500),
        )
    )


@router.post(
    "/v1/admin/jobs/{job_id}/retry",
    errors={409: "the job is not failed or cancelled"},
    perm="backbone.operate",
    roles=ADMIN,
    returns=jobs_store.JobRow,
    summary="Run a failed job again, now",
)
async def retry_job(ctx: Ctx) -> jobs_store.JobRow:
    return await jobs_store.retry(ctx.stores.pool, ctx.path_int("job_id"), now=datetime.now(UTC))


@router.post(
    "/v1/admin/jobs/{job_id}/cancel",
    errors={409: "the job is not waiting"},
    perm="backbone.operate",
    roles=ADMIN,
    returns=jobs_store.JobRow,
    summary="Cancel a job that has not started",
)
async def cancel_job(ctx: Ctx) -> jobs_store.JobRow:
    return await jobs_store.cancel(ctx.stores.pool, ctx.path_int("job_id"))

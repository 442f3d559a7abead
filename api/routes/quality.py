"""Quality and discipline: complaints and spot checks, scores and rankings, rewards and
penalties with appeals (issue 18 §4).

Staff reach the workers their scope reaches (``workforce.service.visible_worker``): admins
and dispatchers every worker, a reviewer's or a city operator's grant the workers of its
cities (another city's worker: 404 in the path, 422 in a body); a worker their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from api.bodies import Input
from api.routing import Ctx, QueryParam, Router
from quality import service, store
from quality.rules import Score
from quality.service import Evaluation, Ranked
from quality.store import Action, ActionStep
from workforce import service as workforce
from workforce.errors import WorkerNotFound

router = Router("quality")


async def _body_worker(ctx: Ctx, worker_id: int) -> None:
    """A worker named in a body: 422 if unknown or out of the caller's scope."""
    if not await service.sees(ctx.stores, ctx.viewer, worker_id):
        raise service.InvalidQualityInput(f"no worker {worker_id}", field="worker_id")


async def _path_worker(ctx: Ctx, worker_id: int) -> None:
    """A worker in the path: 404 if unknown or out of the caller's scope."""
    if not await service.sees(ctx.stores, ctx.viewer, worker_id):
        raise WorkerNotFound(f"no worker {worker_id}", field="worker_id")


STAFF = frozenset({"admin", "dispatcher"})
ADMIN = frozenset({"admin"})
STAFF_OR_WORKER = frozenset({"admin", "dispatcher", "worker"})
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=500)]


class QualityEventIn(Input):
    """A complaint (with a note) or a spot check (passed or not)."""

    worker_id: Id
    kind: Literal["complaint", "spot_check"]
    passed: bool | None = None
    order_id: Id | None = None
    note: Text = ""


class ActionIn(Input):
    """A reward or penalty given by hand."""

    worker_id: Id
    kind: Literal["warning", "fine", "suspension", "dismissal", "bonus", "badge", "priority"]
    reason: Text
    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None


class AppealIn(Input):
    """Why the worker disputes the action."""

    text: Text


class AppealDecisionIn(Input):
    """Uphold or overturn, with a reason."""

    decision: Literal["uphold", "overturn"]
    reason: Text


class Recorded(msgspec.Struct):
    """The id of what was recorded."""

    id: int


def _now(ctx: Ctx) -> datetime:
    return datetime.fromtimestamp(ctx.now, UTC)


@router.post(
    "/v1/quality/events",
    perm="quality.write",
    roles=STAFF,
    body=QualityEventIn,
    returns=Recorded,
    status=201,
    errors={
        422: "an unknown worker; a spot check without passed, a complaint without a note, "
        "another's order"
    },
    summary="Record a complaint or a spot check (staff)",
)
async def record(ctx: Ctx, body: QualityEventIn) -> Recorded:
    await _body_worker(ctx, body.worker_id)
    return Recorded(
        await service.record(
            ctx.stores,
            ctx.user,
            worker_id=body.worker_id,
            kind=body.kind,
            passed=body.passed,
            order_id=body.order_id,
            note=body.note,
            now=_now(ctx),
        )
    )


@router.get(
    "/v1/quality/workers/{worker_id}",
    perm="quality.read",
    roles=STAFF_OR_WORKER,
    returns=Score,
    summary="A worker's quality score and its parts (staff; the worker their own)",
)
async def score(ctx: Ctx) -> Score:
    worker_id = ctx.path_int("worker_id")
    await _path_worker(ctx, worker_id)
    return await service.score_of(ctx.stores, worker_id, _now(ctx))


@router.post(
    "/v1/quality/workers/{worker_id}/evaluate",
    perm="quality.write",
    roles=ADMIN,
    returns=Evaluation,
    summary="Score the worker and give the rewards or penalties the rules call for (admin)",
)
async def evaluate(ctx: Ctx) -> Evaluation:
    worker_id = ctx.path_int("worker_id")
    await _path_worker(ctx, worker_id)
    return await service.evaluate(ctx.stores, ctx.user, worker_id, _now(ctx))


@router.get(
    "/v1/quality/rankings",
    perm="quality.read",
    roles=STAFF,
    returns=list[Ranked],
    query=(
        QueryParam("city_id", str, "the city", required=True, max_length=40),
        QueryParam("limit", int, "how many, 1–500 (default 50)", ge=1, le=500),
    ),
    errors={422: "an unknown city"},
    summary="A city's workers by quality score, best first",
)
async def rankings(ctx: Ctx) -> list[Ranked]:
    city_id = ctx.query_str("city_id")
    if not city_id:
        raise service.InvalidQualityInput("name the city", field="city_id")
    await workforce.check_city(ctx.stores, city_id)
    ctx.in_city(city_id)
    return await service.rankings(
        ctx.stores, city_id, limit=ctx.query_int("limit", 50, ge=1, le=500), now=_now(ctx)
    )


@router.post(
    "/v1/discipline/actions",
    perm="quality.write",
    roles=ADMIN,
    body=ActionIn,
    returns=Action,
    status=201,
    errors={422: "an unknown worker; a fine or bonus without an amount, a suspension without days"},
    summary="Give a reward or penalty by hand (admin); a fine or bonus is booked in the wallet",
)
async def give(ctx: Ctx, body: ActionIn) -> Action:
    await _body_worker(ctx, body.worker_id)
    return await service.give(
        ctx.stores,
        ctx.user,
        worker_id=body.worker_id,
        kind=body.kind,
        reason=body.reason,
        amount_fen=body.amount_fen,
        days=body.days,
        now=_now(ctx),
    )


@router.get(
    "/v1/discipline/actions",
    perm="quality.read",
    roles=STAFF_OR_WORKER,
    returns=list[Action],
    query=(QueryParam("worker_id", int, "whose (staff; a worker sees their own)", ge=1, le=2**62),),
    errors={404: "no such worker, or one outside the caller's cities"},
    summary="A worker's rewards and penalties, newest first",
)
async def actions(ctx: Ctx) -> list[Action]:
    raw = ctx.request.query_params.get("worker_id")
    worker_id = ctx.query_int("worker_id", 0, ge=1, le=2**62) if raw else ctx.user.user_id
    if worker_id != ctx.user.user_id:
        await _path_worker(ctx, worker_id)
    return await store.actions(ctx.stores.pool, worker_id)


@router.post(
    "/v1/discipline/actions/{action_id}/appeal",
    perm="quality.write",
    roles=frozenset({"worker"}),
    body=AppealIn,
    returns=Action,
    errors={409: "not a penalty, or appealed already", 422: "no reason given"},
    summary="Appeal a penalty of yours, once, saying why",
)
async def appeal(ctx: Ctx, body: AppealIn) -> Action:
    return await service.appeal(
        ctx.stores, ctx.user, ctx.path_int("action_id"), body.text, _now(ctx)
    )


@router.post(
    "/v1/discipline/actions/{action_id}/decision",
    perm="quality.write",
    roles=ADMIN,
    body=AppealDecisionIn,
    returns=Action,
    errors={409: "the action is not appealed", 422: "no reason given"},
    summary="Uphold or overturn an appealed action (admin); overturning lifts it and reverses its money",
)
async def decide(ctx: Ctx, body: AppealDecisionIn) -> Action:
    found = await service.visible_action(ctx.stores, ctx.viewer, ctx.path_int("action_id"))
    return await service.decide(
        ctx.stores,
        ctx.user,
        found.id,
        uphold=body.decision == "uphold",
        reason=body.reason,
        now=_now(ctx),
    )


@router.get(
    "/v1/discipline/actions/{action_id}/steps",
    perm="quality.read",
    roles=STAFF_OR_WORKER,
    returns=list[ActionStep],
    summary="An action's audit trail: given, appealed, upheld or overturned",
)
async def steps(ctx: Ctx) -> list[ActionStep]:
    found = await service.visible_action(ctx.stores, ctx.viewer, ctx.path_int("action_id"))
    return await store.steps(ctx.stores.pool, found.id)

"""Quality scores, rewards and penalties with appeals: the async glue of quality/.

Who: staff (admins, dispatchers) record complaints and spot checks and see scores and
rankings; admins evaluate (the rules propose, the evaluation gives) and give actions by
hand, and decide appeals; a worker sees their own score and actions and appeals a
penalty once, with a reason. A suspension or dismissal keeps the worker from offers at
once (``workforce.gating``); an overturned one no longer does. Fines and bonuses are
recorded with their amount and ``ledger_status = unbooked``: no ledger package exists
yet to move the money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from accounts.tokens import Claims
from doorstep.stores import Stores
from quality import rules, store
from quality.errors import ActionNotFound, AppealState, InvalidQualityInput

__all__ = ["Evaluation", "InvalidQualityInput", "Ranked"]
from quality.rules import QualityParams, Score
from quality.store import Action
from workforce import store as workforce_store
from workforce.errors import WorkerNotFound

PARAMS = QualityParams()
STAFF = frozenset({"admin", "dispatcher"})


@dataclass(frozen=True, slots=True)
class Ranked:
    """A line of the rankings."""

    rank: int
    worker_id: int
    name: str
    score: int
    rating: float
    jobs: int
    badges: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A score and the actions it gave."""

    score: Score
    actions: list[Action]


def _reason(text: str, field: str = "reason", required: bool = True) -> str:
    text = text.strip()
    if required and not text:
        raise InvalidQualityInput("say why: a reason is required", field=field)
    if len(text) > 500:
        raise InvalidQualityInput("must be at most 500 characters", field=field)
    return text


async def _worker(stores: Stores, worker_id: int, *, in_body: bool = True) -> None:
    """A worker named in a body is 422 if unknown; one in the path, 404."""
    if await workforce_store.worker(stores.pool, worker_id, detail=False) is None:
        if in_body:
            raise InvalidQualityInput(f"no worker {worker_id}", field="worker_id")
        raise WorkerNotFound(f"no worker {worker_id}", field="worker_id")


async def record(
    stores: Stores,
    caller: Claims,
    *,
    worker_id: int,
    kind: str,
    passed: bool | None,
    order_id: int | None,
    note: str,
    now: datetime,
) -> int:
    """A complaint or a spot check (a spot check says whether it passed)."""
    await _worker(stores, worker_id)
    if (kind == "spot_check") != (passed is not None):
        raise InvalidQualityInput(
            "a spot check says whether it passed; a complaint does not", field="passed"
        )
    if order_id is not None and not await stores.pool.fetchval(
        "SELECT 1 FROM orders WHERE id = $1 AND worker_id = $2", order_id, worker_id
    ):
        raise InvalidQualityInput(f"order {order_id} is not this worker's", field="order_id")
    return await store.insert_event(
        stores.pool,
        worker_id=worker_id,
        kind=kind,
        passed=passed,
        order_id=order_id,
        note=_reason(note, "note", required=kind == "complaint"),
        actor_id=caller.user_id,
        now=now,
    )


async def score_of(stores: Stores, worker_id: int, now: datetime) -> Score:
    """A worker's score over the window."""
    await _worker(stores, worker_id, in_body=False)
    since = now - timedelta(days=PARAMS.window_days)
    found = await store.facts(stores.pool, [worker_id], since, PARAMS.late_grace_min)
    return rules.score(found[worker_id], PARAMS)


async def evaluate(stores: Stores, caller: Claims, worker_id: int, now: datetime) -> Evaluation:
    """Score the worker and give what the rules propose (a kind given in the last 30 days
    is not given again)."""
    s = await score_of(stores, worker_id, now)
    recent = await store.recent_kinds(stores.pool, worker_id, now - timedelta(days=30))
    suspensions = await store.suspensions_since(stores.pool, worker_id, now - timedelta(days=180))
    given = []
    async with stores.pool.acquire() as conn, conn.transaction():
        for p in rules.proposals(s, PARAMS, suspensions_before=suspensions):
            if p.kind in recent:
                continue
            given.append(
                await store.insert_action(
                    conn,
                    worker_id=worker_id,
                    kind=p.kind,
                    amount_fen=p.amount_fen,
                    starts_at=now,
                    ends_at=rules.ends_at(p, now),
                    reason=p.reason,
                    score=s.score,
                    actor_id=caller.user_id,
                )
            )
    return Evaluation(s, given)


async def give(
    stores: Stores,
    caller: Claims,
    *,
    worker_id: int,
    kind: rules.Kind,
    reason: str,
    amount_fen: int | None,
    days: int | None,
    now: datetime,
) -> Action:
    """An action by hand: fines and bonuses need an amount, suspensions days."""
    await _worker(stores, worker_id)
    reason = _reason(reason)
    if kind in ("fine", "bonus") and not amount_fen:
        raise InvalidQualityInput(f"a {kind} needs amount_fen > 0", field="amount_fen")
    if kind not in ("fine", "bonus") and amount_fen:
        raise InvalidQualityInput(f"a {kind} has no amount", field="amount_fen")
    if kind in ("suspension", "priority") and not days:
        raise InvalidQualityInput(f"a {kind} needs days > 0", field="days")
    async with stores.pool.acquire() as conn, conn.transaction():
        return await store.insert_action(
            conn,
            worker_id=worker_id,
            kind=kind,
            amount_fen=amount_fen,
            starts_at=now,
            ends_at=now + timedelta(days=days) if days else None,
            reason=reason,
            score=None,
            actor_id=caller.user_id,
        )


async def visible_action(stores: Stores, caller: Claims, action_id: int) -> Action:
    """The action if the caller is staff or its worker."""
    found = await store.action(stores.pool, action_id)
    if found is None or not (STAFF & set(caller.roles) or found.worker_id == caller.user_id):
        raise ActionNotFound(f"no action {action_id}", field="action_id")
    return found


async def appeal(
    stores: Stores, caller: Claims, action_id: int, text: str, now: datetime
) -> Action:
    """The worker appeals a penalty of theirs, once, saying why."""
    text = _reason(text, "text")
    async with stores.pool.acquire() as conn, conn.transaction():
        found = await store.action(conn, action_id, lock=True)
        if found is None or found.worker_id != caller.user_id:
            raise ActionNotFound(f"no action {action_id} of yours", field="action_id")
        if found.kind not in rules.PENALTIES:
            raise AppealState("only penalties are appealed", field="action_id")
        if found.status != "active":
            raise AppealState(
                f"the action is {found.status}; it is appealed once", field="action_id"
            )
        updated = await store.update_action(
            conn, action_id, status="appealed", appeal_text=text, appealed_at=now
        )
        await store.add_step(
            conn, action_id, step="appealed", actor_id=caller.user_id, now=now, reason=text
        )
    return updated


async def decide(
    stores: Stores, caller: Claims, action_id: int, *, uphold: bool, reason: str, now: datetime
) -> Action:
    """Uphold or overturn an appealed action, with a reason; overturning lifts it."""
    reason = _reason(reason)
    async with stores.pool.acquire() as conn, conn.transaction():
        found = await store.action(conn, action_id, lock=True)
        if found is None:
            raise ActionNotFound(f"no action {action_id}", field="action_id")
        if found.status != "appealed":
            raise AppealState(f"the action is {found.status}, not appealed", field="action_id")
        status = "upheld" if uphold else "overturned"
        updated = await store.update_action(
            conn,
            action_id,
            status=status,
            decided_by=caller.user_id,
            decided_at=now,
            decision_reason=reason,
        )
        await store.add_step(
            conn, action_id, step=status, actor_id=caller.user_id, now=now, reason=reason
        )
    return updated


async def rankings(stores: Stores, city_id: str, *, limit: int, now: datetime) -> list[Ranked]:
    """A city's workers by quality score, best first."""
    workers = await store.city_workers(stores.pool, city_id)
    ids = [r["user_id"] for r in workers]
    since = now - timedelta(days=PARAMS.window_days)
    found = await store.facts(stores.pool, ids, since, PARAMS.late_grace_min) if ids else {}
    badges = {
        r["worker_id"]: int(r["n"])
        for r in await stores.pool.fetch(
            "SELECT worker_id, count(*) AS n FROM discipline_actions WHERE worker_id = ANY($1) "
            "AND kind = 'badge' AND status <> 'overturned' GROUP BY worker_id",
            ids,
        )
    }
    scored = [(rules.score(found[r["user_id"]], PARAMS), r) for r in workers]
    scored.sort(key=lambda x: (-x[0].score, -x[0].facts.jobs, x[1]["user_id"]))
    return [
        Ranked(
            i + 1,
            r["user_id"],
            r["name"],
            s.score,
            s.rating,
            s.facts.jobs,
            badges.get(r["user_id"], 0),
        )
        for i, (s, r) in enumerate(scored[:limit])
    ]

"""Quality scores, rewards and penalties with appeals: the async glue of quality/.

Who: staff (admins, dispatchers) record complaints and spot checks and see scores and
rankings; admins evaluate (the rules propose, the evaluation gives) and give actions by
hand, and decide appeals — and the holders of ``quality.read``/``quality.write`` through a
grant (the reviewer and city operator templates) do the same for the workers of their
cities (:func:`sees`); a worker sees their own score and actions and appeals a penalty
once, with a reason. A suspension or dismissal keeps the worker from offers at
once (``workforce.gating``); an overturned one no longer does.

Fines and bonuses move money in the ledger, in the transaction that gives the action
(entry ``discipline:<action id>``). The wallet is the one the worker's earnings go to
(``settlement``: the worker's own, or their merchant's for a merchant's staff). A fine
takes the wallet's available balance as far as it goes; the rest is owed
(``worker_receivable``/``merchant_receivable``) and recovered from the next money that
comes in. A bonus is paid from ``incentive_expense``. An overturned fine is reversed
(a mirror entry, never an edit) and what was recovered of it is paid back. The money
moved and the appeal rulings are entries of the audit chain (``audit/``). Actions
recorded before the ledger existed (``unbooked``) are booked by :func:`book_unbooked`
(the job ``quality:book_unbooked``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from accounts.tokens import Claims
from audit import store as audit_store
from doorstep.db import Tx
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, Line, credit, debit
from quality import rules, store
from quality.errors import ActionNotFound, AppealState, InvalidQualityInput

__all__ = ["Evaluation", "InvalidQualityInput", "Ranked"]
from permissions.rules import Viewer
from quality.rules import QualityParams, Score
from quality.store import Action
from settlement import service as wallets
from settlement import store as settlement_store
from settlement.models import Payee
from workforce import service as workforce_service
from workforce import store as workforce_store
from workforce.errors import WorkerNotFound

PARAMS = QualityParams()


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


def ledger_key(action_id: int) -> str:
    """The ledger entry of an action's money (its reversal: ``<key>:reversal``)."""
    return f"discipline:{action_id}"


async def payee_of(db: Tx, worker_id: int) -> Payee:
    """The wallet a worker's money goes to: their merchant's for a merchant's staff (the
    merchant is paid their orders and answers for its team), else their own."""
    merchant = await settlement_store.merchant_of(db, worker_id)
    return Payee("merchant", merchant) if merchant is not None else Payee("worker", worker_id)


async def book(tx: Tx, action: Action) -> Action:
    """Book a fine's or a bonus's money in the caller's transaction (idempotent by
    :func:`ledger_key`); other actions are returned as they are."""
    if action.kind not in ("fine", "bonus") or not action.amount_fen:
        return action
    if action.ledger_status != "unbooked":  # booked (or void) already: nothing moves twice
        return action
    payee = await payee_of(tx, action.worker_id)
    await wallets.lock_wallet(tx, payee)
    key, amount = ledger_key(action.id), action.amount_fen
    lines: list[Line]
    if action.kind == "fine":
        taken, owed = rules.fine_split(amount, await wallets.available_of(tx, payee))
        lines = [credit(lr.PENALTY_INCOME, amount)]
        if taken:
            lines.append(debit(wallets.payable(payee), taken))
        if owed:
            lines.append(debit(wallets.receivable(payee), owed))
        memo = f"fine {action.id} of worker {action.worker_id}: {taken} fen paid, {owed} owed"
    else:
        lines = [debit(lr.INCENTIVE_EXPENSE, amount), credit(wallets.payable(payee), amount)]
        memo = f"bonus {action.id} of worker {action.worker_id}"
    await ledger.post(
        tx,
        Entry(
            key=key,
            kind=f"discipline.{action.kind}",
            lines=tuple(lines),
            memo=memo,
            data={
                "action_id": action.id,
                "worker_id": action.worker_id,
                "payee_kind": payee.kind,
                "payee_id": payee.id,
            },
        ),
    )
    if action.kind == "bonus":  # money in: what the payee owes us is netted first
        await wallets.net_owed(tx, payee, cause=key)
    await audit_store.append(  # the tamper-evident chain (audit/), same transaction
        tx,
        actor_id=action.created_by,
        action=f"discipline.{action.kind}",
        subject=f"worker:{action.worker_id}",
        detail={
            "action_id": action.id,
            "amount_fen": amount,
            "wallet": f"{payee.kind}:{payee.id}",
            "ledger_key": key,
            "reason": action.reason,
        },
    )
    return await store.update_action(tx, action.id, ledger_status="booked", ledger_key=key)


async def _reverse(tx: Tx, action: Action, reason: str, actor_id: int) -> Action:
    """An overturned action's money: the entry is reversed (booked) or never booked (void)."""
    if action.ledger_status == "unbooked":
        return await store.update_action(tx, action.id, ledger_status="void")
    if action.ledger_status != "booked" or action.ledger_key is None:
        return action
    original = await ledger.get(tx, action.ledger_key)
    assert original is not None, action.ledger_key
    payee = Payee(
        "merchant" if original.data.get("payee_kind") == "merchant" else "worker",
        int(original.data.get("payee_id", action.worker_id)),
    )
    await wallets.lock_wallet(tx, payee)
    reversal = f"{action.ledger_key}:reversal"
    await ledger.reverse(
        tx, action.ledger_key, reversal_key=reversal, memo=f"overturned on appeal: {reason}"
    )
    await wallets.net_owed(tx, payee, cause=reversal)  # what was recovered of it goes back
    await audit_store.append(
        tx,
        actor_id=actor_id,
        action=f"discipline.{action.kind}.reversed",
        subject=f"worker:{action.worker_id}",
        detail={"action_id": action.id, "ledger_key": reversal, "reason": reason},
    )
    return await store.update_action(tx, action.id, ledger_status="reversed")


async def book_unbooked(stores: Stores, *, batch: int = 100) -> int:
    """Book the money of actions recorded before the ledger existed (each in its own
    transaction; an overturned one is void); how many were settled."""
    done = 0
    while True:
        ids = await store.unbooked(stores.pool, batch)
        for action_id in ids:
            async with stores.pool.acquire() as conn, conn.transaction():
                found = await store.action(conn, action_id, lock=True)
                if found is None or found.ledger_status != "unbooked":
                    continue
                if found.status == "overturned":
                    await store.update_action(conn, action_id, ledger_status="void")
                else:
                    await book(conn, found)
                done += 1
        if len(ids) < batch:
            return done


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
            action = await store.insert_action(
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
            given.append(await book(conn, action))
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
        action = await store.insert_action(
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
        return await book(conn, action)


async def sees(stores: Stores, viewer: Viewer, worker_id: int) -> bool:
    """True if the viewer may see the worker: the worker themself, or a caller whose
    scope reaches them (``workforce.service.visible_worker``: admins and dispatchers
    every worker, a city's grant its cities' workers)."""
    try:
        await workforce_service.visible_worker(stores, viewer, worker_id)
    except WorkerNotFound:
        return False
    return True


async def visible_action(stores: Stores, viewer: Viewer, action_id: int) -> Action:
    """The action if it is the viewer's own or its worker is within the viewer's scope."""
    found = await store.action(stores.pool, action_id)
    if found is None or not (
        found.worker_id == viewer.user_id or await sees(stores, viewer, found.worker_id)
    ):
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
    """Uphold or overturn an appealed action, with a reason; overturning lifts it and
    reverses its money (a fine's entry is reversed; what was recovered is paid back)."""
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
        if not uphold:  # the wallet's lock before the audit chain's, as when booking
            updated = await _reverse(conn, updated, reason, caller.user_id)
        await audit_store.append(  # a ruling: the tamper-evident chain too
            conn,
            actor_id=caller.user_id,
            action=f"discipline.appeal.{status}",
            subject=f"worker:{found.worker_id}",
            detail={"action_id": action_id, "kind": found.kind, "reason": reason},
            at=now,
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

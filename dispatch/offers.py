"""Offers: an order proposed to a worker, with an expiry.

Direct mode offers one worker at a time; grab mode (抢单) offers the top candidates at
once and the first to accept wins, the others are withdrawn. An accept is the order's
``assign`` transition, so the row lock and the worker lock guarantee that an order is
never accepted twice and a worker never holds two jobs. A reject or a timeout puts the
order back to dispatching without that worker for ``cooldown_s`` (an exclusion with an
end, ``until``): with few workers the order comes back to them after the cooldown rather
than sticking until a dispatcher forces it. After ``max_attempts`` rounds without a taker
the order fails and the customer is told.

Crew mode (an order needing ``crew_size`` > 1 workers, docs/dispatch.md#crews) offers the
order to the whole crew the engine picked, each member their own offer with the same
expiry. Each accept is kept (the order's row lock serialises the crew's answers); the
accept that completes the crew assigns the order to all of them at once, the lead the
member with the earliest ETA. A member who declines or lets the offer time out is kept
away for the cooldown and only they are replaced: the others' offers, accepted or
pending, stay, and the engine's next tick offers the missing seat(s) to another worker
who arrives within the crew window of the members kept (:func:`short_crews`,
:func:`add_to_crew`). If nobody fits, or the round has used ``max_attempts``, the round
ends (:func:`release_round`: every other offer withdrawn) and the next tick forms a new
crew.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg

from dispatch import changes, service, store
from dispatch.candidates import unqualified
from dispatch.errors import DispatchError, OrderNotFound
from dispatch.lifecycle import Action, IllegalTransition, Status, next_status
from dispatch.models import Offer, Order
from dispatch.publisher import Publisher
from dispatch.service import Caller
from doorstep.db import Conn, Tx
from doorstep.errors import Conflict
from doorstep.stores import Stores

_OFFER = (
    "id, order_id, worker_id, mode, status, created_at, expires_at, answered_at, reason, "
    "eta_s, distance_m, after_order_id"
)
SYSTEM = Caller("system", None)
log = logging.getLogger("doorstep.dispatch.offers")


class OfferGone(Conflict, DispatchError):
    """The offer was already answered, withdrawn, or has expired."""

    code = "offer_gone"


class NotQualified(Conflict, DispatchError):
    """The worker no longer qualifies for the job (an exam, a certificate): the offer is
    withdrawn."""

    code = "not_qualified"


@dataclass(frozen=True, slots=True)
class OfferParams:
    """How offers behave (section ``[offers]``)."""

    ttl_s: int = 30
    max_attempts: int = 5
    grab_candidates: int = 5
    mode: str = "direct"
    cooldown_s: int = 180  # a decline or a timeout keeps the worker away from the order this long

    def __post_init__(self) -> None:
        if self.ttl_s < 5 or self.max_attempts < 1 or self.grab_candidates < 1:
            raise ValueError("offers: ttl_s >= 5, max_attempts >= 1, grab_candidates >= 1")
        if self.cooldown_s < 0:
            raise ValueError("offers: cooldown_s >= 0")
        if self.mode not in ("direct", "grab"):
            raise ValueError("offers.mode must be 'direct' or 'grab'")


def _offer(r: asyncpg.Record) -> Offer:
    return Offer(**dict(r))


async def get(db: Conn, offer_id: int, *, lock: bool = False) -> Offer | None:
    """One offer."""
    row = await db.fetchrow(
        f"SELECT {_OFFER} FROM offers WHERE id = $1{' FOR UPDATE' if lock else ''}", offer_id
    )
    return _offer(row) if row else None


async def for_worker(db: Conn, worker_id: int, *, pending_only: bool) -> list[Offer]:
    """A worker's offers, newest first."""
    rows = await db.fetch(
        f"SELECT {_OFFER} FROM offers WHERE worker_id = $1 AND ($2 = false OR status = 'pending') "
        "ORDER BY id DESC LIMIT 50",
        worker_id,
        pending_only,
    )
    return [_offer(r) for r in rows]


ACTIVE_EXCLUSION = "(until IS NULL OR until > $2)"
"""SQL: an exclusion in force at ``$2`` (for good, or its cooldown not over)."""


async def excluded(db: Conn, order_id: int, now: datetime) -> frozenset[int]:
    """Workers who must not be offered this order now."""
    rows = await db.fetch(
        f"SELECT worker_id FROM order_exclusions WHERE order_id = $1 AND {ACTIVE_EXCLUSION}",
        order_id,
        now,
    )
    return frozenset(r["worker_id"] for r in rows)


async def excluded_many(
    db: Conn, order_ids: Sequence[int], now: datetime
) -> dict[int, frozenset[int]]:
    """:func:`excluded` for many orders in one query (an order without any: absent)."""
    rows = await db.fetch(
        "SELECT order_id, worker_id FROM order_exclusions WHERE order_id = ANY($1) AND "
        f"{ACTIVE_EXCLUSION}",
        list(order_ids),
        now,
    )
    out: dict[int, set[int]] = {}
    for r in rows:
        out.setdefault(r["order_id"], set()).add(r["worker_id"])
    return {order_id: frozenset(workers) for order_id, workers in out.items()}


async def exclude(
    db: Tx,
    order_id: int,
    worker_id: int,
    *,
    reason: str,
    actor: str,
    actor_id: int | None,
    until: datetime | None = None,
) -> None:
    """Keep this worker away from this order: until ``until``, or for good (None). A
    cooldown never shortens an exclusion for good; a later one extends it."""
    await db.execute(
        "INSERT INTO order_exclusions (order_id, worker_id, reason, actor, actor_id, until) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, worker_id) DO UPDATE SET "
        "reason = EXCLUDED.reason, actor = EXCLUDED.actor, actor_id = EXCLUDED.actor_id, "
        "at = now(), until = CASE WHEN order_exclusions.until IS NULL OR EXCLUDED.until IS NULL "
        "THEN NULL ELSE greatest(order_exclusions.until, EXCLUDED.until) END",
        order_id,
        worker_id,
        reason,
        actor,
        actor_id,
        until,
    )


def offer_message(offer: Offer, order: Order, service_name: str) -> dict[str, Any]:
    """What the worker's app shows: the job without the exact address (revealed on accept)."""
    return {
        "type": "offer",
        "offer_id": offer.id,
        "order_id": order.id,
        "mode": offer.mode,
        "expires_at_ms": int(offer.expires_at.timestamp() * 1000),
        "service_code": order.service_code,
        "service_name": service_name,
        "kind": order.kind,
        "price_minor": order.price_minor,
        "duration_min": order.duration_min,
        "window_start": order.window_start.isoformat() if order.window_start else None,
        "window_end": order.window_end.isoformat() if order.window_end else None,
        "lat": round(order.lat, 3),
        "lng": round(order.lng, 3),  # ~100 m: the area, not the door
        "eta_s": offer.eta_s,
        "distance_m": offer.distance_m,
        "crew_size": order.crew_size,  # > 1: offered to a crew, assigned when all accept
        # A chained offer: the job follows this one of theirs (set off when it ends);
        # ``eta_s`` counts the time left of it.
        "after_order_id": offer.after_order_id,
    }


async def make_offers(
    stores: Stores,
    tracking: Publisher,
    order: Order,
    picks: Sequence[tuple[int, float | None, float | None]],
    *,
    mode: str,
    params: OfferParams,
    now: datetime,
    after: Mapping[int, int] | None = None,
) -> list[Offer]:
    """Offer ``order`` to the picked workers (worker, eta_s, distance_m) and push the offers.

    ``after``: workers still on a job (worker → that order), for chained offers
    (docs/dispatch.md#chained-orders): the offer names the job, and accepting it makes
    this order their next one.

    Workers who do not qualify (``workforce.gating``: a skill's exam not passed, a
    certificate unverified or expired) are dropped here whatever picked them: the
    engine's candidates judge the same facts, this is the last gate before a worker's
    phone (direct and grab offers alike)."""
    blocked = await unqualified(stores, order, [w for w, _, _ in picks], now=now)
    if blocked:
        log.warning("order %s: not offered to unqualified workers %s", order.id, blocked)
        picks = [p for p in picks if p[0] not in blocked]
        if not picks or mode == "crew":  # a crew short of a member is not offered
            return []
    expires = now + timedelta(seconds=params.ttl_s)
    async with stores.pool.acquire() as conn, conn.transaction():
        current = await store.get(conn, order.id, lock=True)
        if current is None or current.status not in ("confirmed", "dispatching"):
            return []
        if current.status == "confirmed":
            current = await _step(conn, current, "dispatch", "engine picked it up", now)
        made = []
        for worker_id, eta, distance in picks:
            row = await conn.fetchrow(
                "INSERT INTO offers (order_id, worker_id, mode, expires_at, eta_s, distance_m, "
                f"after_order_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_OFFER}",
                order.id,
                worker_id,
                mode,
                expires,
                eta,
                distance,
                (after or {}).get(worker_id),
            )
            assert row is not None
            made.append(_offer(row))
        current = await _step(
            conn,
            current,
            "offer",
            f"{mode} offer to {len(made)} worker(s)",
            now,
            attempts=current.dispatch_attempts + 1,
        )
    name = await stores.pool.fetchval(
        "SELECT name_zh FROM services WHERE code = $1", order.service_code
    )
    for offer in made:
        await tracking.send_to_worker(
            offer.worker_id, offer_message(offer, current, str(name or ""))
        )
    if made:  # dispatchers see who holds an offer (the customer's socket does not)
        await tracking.publish_feed(
            current.city_id,
            {
                "type": "offers",
                "order_id": current.id,
                "worker_ids": [o.worker_id for o in made],
                "expires_at_ms": int(expires.timestamp() * 1000),
            },
        )
    return made


async def _step(
    conn: Tx, order: Order, action: str, reason: str, now: datetime, **extra: Any
) -> Order:
    """A system transition inside the caller's transaction."""
    to = next_status(cast(Status, order.status), cast(Action, action), "system")
    fields: dict[str, Any] = {"status": to}
    if "attempts" in extra:
        fields["dispatch_attempts"] = extra["attempts"]
    updated = await store.update(conn, order.id, order.version, fields)
    assert updated is not None
    await changes.record(
        conn, order, updated, action=action, actor="system", actor_id=None, reason=reason, at=now
    )
    return updated


async def accept(stores: Stores, tracking: Publisher, offer_id: int, worker_id: int) -> Order:
    """The worker takes the job; in grab mode the other offers are withdrawn. A worker who
    stopped qualifying since the offer (a certificate expired, say) is refused."""
    now = datetime.now(UTC)
    pending = await get(stores.pool, offer_id)
    if pending is not None and pending.worker_id == worker_id and pending.status == "pending":
        order_now = await store.get(stores.pool, pending.order_id)
        blocked = await unqualified(stores, order_now, [worker_id], now=now) if order_now else {}
        if blocked:
            async with stores.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE offers SET status = 'withdrawn', answered_at = $2, reason = $3 "
                    "WHERE id = $1 AND status = 'pending'",
                    offer_id,
                    now,
                    f"not qualified: {blocked[worker_id]}",
                )
                await exclude(
                    conn,
                    pending.order_id,
                    worker_id,
                    reason=f"not qualified: {blocked[worker_id]}",
                    actor="system",
                    actor_id=None,
                )
            await back_to_dispatch(
                stores, tracking, pending.order_id, "the worker does not qualify"
            )
            raise NotQualified(
                f"you may not take this job now: {blocked[worker_id]}", field="offer_id"
            )
    if pending is not None and pending.mode == "crew":
        return await _accept_crew(stores, tracking, pending, worker_id, now)
    async with stores.pool.acquire() as conn, conn.transaction():
        offer = await _answerable(conn, offer_id, worker_id, now)
        await conn.execute(
            "UPDATE offers SET status = 'accepted', answered_at = $2 WHERE id = $1", offer_id, now
        )
    try:
        chained = offer.after_order_id
        order = await service.act(
            stores,
            tracking,
            offer.order_id,
            "assign",
            Caller("worker", worker_id),
            reason=f"accepted offer {offer_id}"
            + (f" (chained: next after order {chained})" if chained else ""),
            via_offer=True,
            after_order_id=chained,
            data={"after_order_id": chained} if chained else None,
        )
    except Exception as e:  # someone else won, the worker got busy, or the store failed
        await stores.pool.execute(
            "UPDATE offers SET status = 'withdrawn', reason = $2 WHERE id = $1",
            offer_id,
            f"too late: {getattr(e, 'message', e)}",
        )
        await back_to_dispatch(stores, tracking, offer.order_id, "the accept did not go through")
        if isinstance(e, IllegalTransition | Conflict):
            raise OfferGone(
                f"the job is no longer available: {e.message}", field="offer_id"
            ) from None
        raise
    await withdraw(stores, tracking, order.id, keep=offer_id, reason="taken by another worker")
    return order


async def _answerable(conn: Tx, offer_id: int, worker_id: int, now: datetime) -> Offer:
    """The worker's offer, locked, if it is still open."""
    offer = await get(conn, offer_id, lock=True)
    if offer is None or offer.worker_id != worker_id:
        raise OrderNotFound(f"no offer {offer_id} for you", field="offer_id")
    if offer.status != "pending" or offer.expires_at <= now:
        raise OfferGone(
            f"this offer is {offer.status if offer.status != 'pending' else 'expired'}",
            field="offer_id",
        )
    return offer


async def _accept_crew(
    stores: Stores, tracking: Publisher, pending: Offer, worker_id: int, now: datetime
) -> Order:
    """A crew member accepts: kept; the last accept of the round assigns the whole crew,
    the lead first (earliest ETA, then lowest id). Until then the order stays offered."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, pending.order_id, lock=True)  # the crew's answers in turn
        offer = await _answerable(conn, pending.id, worker_id, now)
        await conn.execute(
            "UPDATE offers SET status = 'accepted', answered_at = $2 WHERE id = $1", offer.id, now
        )
        rows = await conn.fetch(
            "SELECT worker_id, status FROM offers WHERE order_id = $1 AND mode = 'crew' "
            "AND status IN ('pending', 'accepted') ORDER BY eta_s NULLS LAST, worker_id",
            offer.order_id,
        )
    assert order is not None
    crew = [r["worker_id"] for r in rows if r["status"] == "accepted"]
    if len(crew) < order.crew_size or len(crew) < len(rows):
        await tracking.publish_feed(
            order.city_id,
            {"type": "crew_accepted", "order_id": order.id, "worker_ids": crew},
        )
        return order  # still offered: waiting for the rest of the crew
    try:
        return await service.act(
            stores,
            tracking,
            order.id,
            "assign",
            Caller("worker", worker_id),
            reason=f"the crew accepted: workers {', '.join(map(str, crew))}",
            via_offer=True,
            crew=crew,
        )
    except Exception as e:  # a member got busy meanwhile, or the order moved on
        await release_round(stores, tracking, order.id, f"the crew could not be assigned: {e}")
        await back_to_dispatch(stores, tracking, order.id, "the crew could not be assigned")
        if isinstance(e, IllegalTransition | Conflict | DispatchError):
            raise OfferGone(
                f"the job is no longer available: {getattr(e, 'message', e)}", field="offer_id"
            ) from None
        raise


async def release_round(stores: Stores, tracking: Publisher, order_id: int, reason: str) -> int:
    """End a crew order's round of offers: every offer still pending or accepted (the
    order not assigned) is withdrawn and its worker told; returns how many."""
    rows = await stores.pool.fetch(
        "UPDATE offers f SET status = 'withdrawn', reason = $2, answered_at = now() "
        "FROM orders o WHERE o.id = f.order_id AND f.order_id = $1 AND f.mode = 'crew' "
        "AND (f.status = 'pending' OR (f.status = 'accepted' AND o.status = 'offered')) "
        "RETURNING f.id, f.worker_id",
        order_id,
        reason,
    )
    for r in rows:
        await tracking.send_to_worker(
            r["worker_id"],
            {
                "type": "offer_withdrawn",
                "offer_id": r["id"],
                "order_id": order_id,
                "reason": reason,
            },
        )
    return len(rows)


async def short_crews(db: Conn, city_id: str) -> dict[int, dict[int, float]]:
    """The city's crew orders on offer with a seat open (a member declined or timed out):
    order id → the members kept (pending or accepted offers) → their ETA at the offer."""
    rows = await db.fetch(
        "SELECT o.id, f.worker_id, f.eta_s FROM orders o JOIN offers f ON f.order_id = o.id "
        "AND f.mode = 'crew' AND f.status IN ('pending', 'accepted') WHERE o.city_id = $1 "
        "AND o.status = 'offered' AND o.crew_size > (SELECT count(*) FROM offers g WHERE "
        "g.order_id = o.id AND g.mode = 'crew' AND g.status IN ('pending', 'accepted')) "
        "ORDER BY o.id, f.worker_id",
        city_id,
    )
    out: dict[int, dict[int, float]] = {}
    for r in rows:
        out.setdefault(r["id"], {})[r["worker_id"]] = float(r["eta_s"] or 0.0)
    return out


async def add_to_crew(
    stores: Stores,
    tracking: Publisher,
    order: Order,
    picks: Sequence[tuple[int, float | None, float | None]],
    *,
    params: OfferParams,
    now: datetime,
) -> list[Offer]:
    """Offer the open seat(s) of a crew order still on offer to ``picks`` (worker, eta_s,
    distance_m), keeping the members' offers; each replacement counts as a round towards
    ``max_attempts``. Returns the offers made ([] if the order moved on, a pick does not
    qualify, or the rounds are used up: the caller then ends the round)."""
    if await unqualified(stores, order, [w for w, _, _ in picks], now=now):
        return []
    expires = now + timedelta(seconds=params.ttl_s)
    async with stores.pool.acquire() as conn, conn.transaction():
        current = await store.get(conn, order.id, lock=True)
        if current is None or current.status != "offered":
            return []
        if current.dispatch_attempts >= params.max_attempts:
            return []
        made = []
        for worker_id, eta, distance in picks:
            row = await conn.fetchrow(
                f"INSERT INTO offers (order_id, worker_id, mode, expires_at, eta_s, distance_m) "
                f"VALUES ($1, $2, 'crew', $3, $4, $5) RETURNING {_OFFER}",
                order.id,
                worker_id,
                expires,
                eta,
                distance,
            )
            assert row is not None
            made.append(_offer(row))
        updated = await store.update(
            conn,
            order.id,
            current.version,
            {"dispatch_attempts": current.dispatch_attempts + 1},
        )
        assert updated is not None
    name = await stores.pool.fetchval(
        "SELECT name_zh FROM services WHERE code = $1", order.service_code
    )
    for offer in made:
        await tracking.send_to_worker(
            offer.worker_id, offer_message(offer, updated, str(name or ""))
        )
    await tracking.publish_feed(
        order.city_id,
        {
            "type": "offers",
            "order_id": order.id,
            "worker_ids": [o.worker_id for o in made],
            "expires_at_ms": int(expires.timestamp() * 1000),
        },
    )
    return made


async def reject(
    stores: Stores,
    tracking: Publisher,
    offer_id: int,
    worker_id: int,
    reason: str,
    *,
    cooldown_s: int,
) -> None:
    """The worker declines; the order goes back to dispatching without them for
    ``cooldown_s``."""
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        offer = await get(conn, offer_id, lock=True)
        if offer is None or offer.worker_id != worker_id:
            raise OrderNotFound(f"no offer {offer_id} for you", field="offer_id")
        if offer.status != "pending":
            raise OfferGone(f"this offer is {offer.status}", field="offer_id")
        await conn.execute(
            "UPDATE offers SET status = 'rejected', answered_at = $2, reason = $3 WHERE id = $1",
            offer_id,
            now,
            reason,
        )
        await exclude(
            conn,
            offer.order_id,
            worker_id,
            reason=f"rejected: {reason}",
            actor="worker",
            actor_id=worker_id,
            until=now + timedelta(seconds=cooldown_s),
        )
    # A crew keeps its other members: the engine replaces this one (or re-forms the crew).
    await back_to_dispatch(
        stores, tracking, offer.order_id, f"worker {worker_id} rejected: {reason}"
    )


async def back_to_dispatch(stores: Stores, tracking: Publisher, order_id: int, reason: str) -> None:
    """If no offer of the order is still pending, return it to dispatching (or fail it).
    A crew order whose round still has members who accepted is left to the engine, which
    replaces the missing ones or ends the round (:func:`short_crews`)."""
    pending = await stores.pool.fetchval(
        "SELECT count(*) FROM offers WHERE order_id = $1 AND status = 'pending'", order_id
    )
    order = await store.get(stores.pool, order_id)
    if pending or order is None or order.status != "offered":
        return
    if order.crew_size > 1:
        kept = await stores.pool.fetchval(
            "SELECT count(*) FROM offers WHERE order_id = $1 AND mode = 'crew' "
            "AND status = 'accepted'",
            order_id,
        )
        if kept:
            return
        await release_round(stores, tracking, order_id, f"crew not formed: {reason}")
    with contextlib.suppress(IllegalTransition, Conflict):
        await service.act(stores, tracking, order_id, "decline", SYSTEM, reason=reason)


async def withdraw(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    *,
    reason: str,
    keep: int | None = None,
    worker_id: int | None = None,
) -> int:
    """Withdraw the order's pending offers (all but ``keep``; or only ``worker_id``'s) and
    tell each worker; returns how many."""
    rows = await stores.pool.fetch(
        "UPDATE offers SET status = 'withdrawn', reason = $2, answered_at = now() "
        "WHERE order_id = $1 AND status = 'pending' AND ($3::bigint IS NULL OR id <> $3) "
        "AND ($4::bigint IS NULL OR worker_id = $4) RETURNING id, worker_id",
        order_id,
        reason,
        keep,
        worker_id,
    )
    for r in rows:
        await tracking.send_to_worker(
            r["worker_id"],
            {
                "type": "offer_withdrawn",
                "offer_id": r["id"],
                "order_id": order_id,
                "reason": reason,
            },
        )
    return len(rows)


async def expire_due(
    stores: Stores, tracking: Publisher, city_id: str, now: datetime, *, cooldown_s: int
) -> int:
    """Time out pending offers past their expiry (the worker kept away from the order for
    ``cooldown_s``); returns how many."""
    rows = await stores.pool.fetch(
        "UPDATE offers o SET status = 'expired', answered_at = $2 FROM orders r "
        "WHERE o.order_id = r.id AND r.city_id = $1 AND o.status = 'pending' AND o.expires_at <= $2 "
        "RETURNING o.id, o.order_id, o.worker_id",
        city_id,
        now,
    )
    for r in rows:
        async with stores.pool.acquire() as conn, conn.transaction():
            await exclude(
                conn,
                r["order_id"],
                r["worker_id"],
                reason="offer timed out",
                actor="system",
                actor_id=None,
                until=now + timedelta(seconds=cooldown_s),
            )
        await tracking.send_to_worker(
            r["worker_id"],
            {
                "type": "offer_withdrawn",
                "offer_id": r["id"],
                "order_id": r["order_id"],
                "reason": "expired",
            },
        )
    for order_id in {r["order_id"] for r in rows}:
        await back_to_dispatch(stores, tracking, order_id, "offer timed out")
    return len(rows)

"""Dispatcher overrides: assign, unassign, pin, exclude, pause a city's auto-dispatch;
for a crew order, assign a whole crew or put another worker in one member's seat.

Every override is audited (who, what, why, before, after) in ``overrides`` and pushed
live: to the city's dispatcher feed, and through the order's own transitions to the
customer's and the worker's sockets. An assignment the matcher would call infeasible
answers 409 with the warnings unless the dispatcher says ``force``; a crew's assignment
applies the same checks to every member, and the engine's crew window to the crew (its
members arriving within ``[matching] crew_window_s`` of each other, ``dispatch.crew_window``),
as a warning ``force`` overrides too (docs/dispatch.md#crews).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from audit import store as audit_store
from dispatch import changes, crew_window, crews, offers, service, start_codes, store
from dispatch.candidates import assignment_warnings
from dispatch.errors import DispatchError, InvalidOrder, OrderNotFound, StaleVersion, WorkerBusy
from dispatch.models import Order, Override
from dispatch.publisher import Publisher
from dispatch.service import Caller
from doorstep.db import Tx
from doorstep.errors import Conflict
from doorstep.stores import STORE_ERRORS, Stores
from matching.params import MatchParams
from workforce import store as workforce_store

log = logging.getLogger("doorstep.dispatch.overrides")


class InfeasibleAssignment(Conflict, DispatchError):
    """The worker does not fit the job; say ``force`` to assign anyway."""

    code = "infeasible_assignment"


def _snapshot(order: Order | None) -> dict[str, Any]:
    if order is None:
        return {}
    out: dict[str, Any] = {
        "status": order.status,
        "worker_id": order.worker_id,
        "pinned": order.pinned,
        "version": order.version,
    }
    if order.crew_size > 1:  # a crew order: its members, the lead first
        out["crew"] = list(order.crew)
    return out


async def _audit(
    conn: Tx,
    *,
    actor_id: int,
    action: str,
    city_id: str | None,
    order_id: int | None,
    worker_id: int | None,
    reason: str,
    forced: bool = False,
    warnings: list[str] | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Override:
    row = await conn.fetchrow(
        "INSERT INTO overrides (actor_id, action, city_id, order_id, worker_id, reason, forced, "
        "warnings, before, after) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING id, at, actor_id, "
        "action, city_id, order_id, worker_id, reason, forced, warnings, before, after",
        actor_id,
        action,
        city_id,
        order_id,
        worker_id,
        reason,
        forced,
        warnings or [],
        before or {},
        after or {},
    )
    assert row is not None
    override = Override(**dict(row))
    await audit_store.append(  # the tamper-evident chain (audit/), same transaction
        conn,
        actor_id=actor_id,
        action=f"override.{action}",
        subject=f"order:{order_id}" if order_id is not None else f"city:{city_id}",
        detail={
            "override_id": override.id,
            "worker_id": worker_id,
            "reason": reason,
            "forced": forced,
            "before": orjson.loads(orjson.dumps(before or {})),
            "after": orjson.loads(orjson.dumps(after or {})),
        },
        at=override.at,
    )
    return override


async def _announce(tracking: Publisher, override: Override) -> None:
    """Tell the city's dispatchers, after the commit. The override is committed and
    audited whatever happens here: a Redis outage costs the live line (the console
    reloads the audit), never turns the answer into an error (issue 14, item 5)."""
    if override.city_id is None:
        return
    payload = orjson.loads(orjson.dumps(override))
    try:
        await tracking.publish_feed(override.city_id, {"type": "override", **payload})
    except STORE_ERRORS as e:
        log.warning("override %s committed; its feed line was not sent: %s", override.id, e)


async def assign(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    worker_id: int,
    *,
    actor_id: int,
    reason: str,
    force: bool,
    match: MatchParams,
) -> tuple[Order, Override]:
    """Give the order to ``worker_id`` (taking it from another worker if needed); the
    matcher's objections, judged with the server's ``match`` params, need ``force``."""
    order = await store.get(stores.pool, order_id)
    if order is None:
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    if order.crew_size > 1:
        raise InvalidOrder(
            f"order {order_id} needs a crew of {order.crew_size} different workers: assign "
            "them together with worker_ids, or replace one member",
            field="worker_ids",
        )
    worker = await workforce_store.worker(stores.pool, worker_id, detail=False)
    if worker is None:
        raise InvalidOrder(f"no worker {worker_id}", field="worker_id")
    if worker.city_id != order.city_id:
        raise InvalidOrder(
            f"worker {worker_id} works in {worker.city_id}, not {order.city_id}", field="worker_id"
        )
    warnings = await assignment_warnings(stores, order, worker_id, datetime.now(UTC), match)
    if warnings and not force:
        raise InfeasibleAssignment(
            "; ".join(warnings) + " — send force: true to assign anyway", field="worker_id"
        )
    return await _hand_over(
        stores, tracking, order, [worker_id], actor_id=actor_id, reason=reason, warnings=warnings
    )


async def _hand_over(
    stores: Stores,
    tracking: Publisher,
    order: Order,
    to: Sequence[int],
    *,
    actor_id: int,
    reason: str,
    warnings: list[str],
) -> tuple[Order, Override]:
    """Give the checked order to ``to`` — its worker, or a crew order's whole crew, the
    lead first — as :func:`assign` and :func:`assign_crew` do: end its round of offers
    (a crew's accepted offers too), take it from the worker or crew holding it, assign it,
    then audit the override and tell the city's dispatchers."""
    is_crew = order.crew_size > 1
    what = "the crew" if is_crew else "the job"
    before = _snapshot(order)
    caller = Caller("dispatcher", actor_id)
    if order.status == "offered":
        if is_crew:  # the crew's round ends: pending and accepted offers
            await offers.release_round(stores, tracking, order.id, f"a dispatcher assigned {what}")
        await _withdraw_pending(stores, tracking, order.id, f"a dispatcher assigned {what}")
        order = await store.get(stores.pool, order.id) or order
    held_by = list(order.crew) if is_crew else [order.worker_id]
    # Every step checks the version it read: a concurrent change is a 409, never a silent
    # reassignment.
    if order.status in ("assigned", "en_route") and held_by != list(to):
        order = await service.act(
            stores,
            tracking,
            order.id,
            "unassign",
            caller,
            reason=f"reassigning the crew: {reason}" if is_crew else f"reassigning: {reason}",
            expected_version=order.version,
        )
    data: dict[str, Any] = {"override": True, "forced": bool(warnings)}
    if is_crew:
        data["crew"] = list(to)
    updated = await service.act(
        stores,
        tracking,
        order.id,
        "assign",
        caller,
        worker_id=None if is_crew else to[0],
        crew=list(to) if is_crew else (),
        reason=reason,
        expected_version=order.version,
        data=data,
    )
    async with stores.pool.acquire() as conn:
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="assign_crew" if is_crew else "assign",
            city_id=updated.city_id,
            order_id=order.id,
            worker_id=to[0],
            reason=reason,
            forced=bool(warnings),
            warnings=warnings,
            before=before,
            after=_snapshot(updated),
        )
    await _announce(tracking, audit)
    return updated, audit


async def _crew_checked(stores: Stores, order: Order, worker_ids: Sequence[int]) -> list[int]:
    """The crew named for a crew order, checked: the order needs a crew, exactly
    ``crew_size`` different workers, each known and of the order's city."""
    crew = list(worker_ids)
    if order.crew_size == 1:
        raise InvalidOrder(
            f"order {order.id} needs one worker, not a crew: assign it with worker_id",
            field="worker_ids",
        )
    if len(crew) != order.crew_size:
        raise InvalidOrder(
            f"order {order.id} needs a crew of {order.crew_size} different workers, "
            f"not {len(crew)}",
            field="worker_ids",
        )
    for i, w in enumerate(crew):
        if w in crew[:i]:
            raise InvalidOrder(
                f"worker {w} is named twice (also worker_ids[{crew.index(w)}]); "
                f"the crew needs {order.crew_size} different workers",
                field=f"worker_ids[{i}]",
            )
    for i, w in enumerate(crew):
        await _member_checked(stores, order, w, f"worker_ids[{i}]")
    return crew


async def _member_checked(stores: Stores, order: Order, worker_id: int, field: str) -> None:
    """The worker exists, works in the order's city and holds no other active job."""
    worker = await workforce_store.worker(stores.pool, worker_id, detail=False)
    if worker is None:
        raise InvalidOrder(f"no worker {worker_id}", field=field)
    if worker.city_id != order.city_id:
        raise InvalidOrder(
            f"worker {worker_id} works in {worker.city_id}, not {order.city_id}", field=field
        )
    busy = await service.busy_with(stores.pool, worker_id, order.id)
    if busy is not None:  # checked again under the worker's lock when assigning
        raise WorkerBusy(f"worker {worker_id} already holds order {busy}", field=field)


async def _crew_warnings(
    stores: Stores,
    order: Order,
    crew: Sequence[int],
    fields: Sequence[str],
    now: datetime,
    match: MatchParams,
) -> tuple[list[str], str | None]:
    """Why the matcher would not pick each member (prefixed with the worker), and the field
    of the first member it objects to."""
    warnings: list[str] = []
    first: str | None = None
    for w, field in zip(crew, fields, strict=True):
        found = await assignment_warnings(stores, order, w, now, match)
        if found and first is None:
            first = field
        warnings += [f"worker {w}: {why}" for why in found]
    return warnings, first


async def assign_crew(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    worker_ids: Sequence[int],
    *,
    actor_id: int,
    reason: str,
    force: bool,
    match: MatchParams,
) -> tuple[Order, Override]:
    """Give a crew order to ``worker_ids``, the first the lead (taking it from the crew
    holding it, or ending its round of offers): every member is checked as a single
    assignment's worker, and the crew against the engine's rule that its members arrive
    within ``match.crew_window_s`` of each other (``dispatch.crew_window``); the matcher's
    objections to any member, or to the crew's window, are a 409 unless ``force``."""
    order = await store.get(stores.pool, order_id)
    if order is None:
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    crew = await _crew_checked(stores, order, worker_ids)
    fields = [f"worker_ids[{i}]" for i in range(len(crew))]
    warnings, first = await _crew_warnings(stores, order, crew, fields, datetime.now(UTC), match)
    apart = await crew_window.window_warning(stores, tracking, order, crew, match.crew_window_s)
    if apart is not None:
        warnings.append(apart)
    if warnings and not force:
        raise InfeasibleAssignment(
            "; ".join(warnings) + " — send force: true to assign anyway",
            field=first or "worker_ids",
        )
    return await _hand_over(
        stores, tracking, order, crew, actor_id=actor_id, reason=reason, warnings=warnings
    )


async def replace_member(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    out_worker_id: int,
    in_worker_id: int,
    *,
    actor_id: int,
    reason: str,
    force: bool,
    match: MatchParams,
) -> tuple[Order, Override]:
    """Put ``in_worker_id`` in ``out_worker_id``'s seat of the crew holding the order
    (before it starts), in one change: the other members keep their seats and arrivals,
    the order keeps its status; the one leaving is kept away from it. The newcomer is
    checked as a single assignment's worker, and the crew it makes against the crew
    window (members on site count as there now); 409 with the warnings unless ``force``."""
    order = await store.get(stores.pool, order_id)
    if order is None:
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    if order.crew_size == 1:
        raise InvalidOrder(
            f"order {order_id} needs one worker, not a crew: reassign it with worker_id",
            field="out_worker_id",
        )
    if order.status not in ("assigned", "en_route", "arrived") or not order.crew:
        raise InvalidOrder(
            f"order {order_id} is {order.status}: a member is replaced in a crew holding "
            "the order before the service starts (assigned, en_route or arrived)",
            field="status",
        )
    if out_worker_id not in order.crew:
        raise InvalidOrder(
            f"worker {out_worker_id} is not in the crew of order {order_id} "
            f"({', '.join(map(str, order.crew))})",
            field="out_worker_id",
        )
    if in_worker_id in order.crew:
        raise InvalidOrder(f"worker {in_worker_id} is in the crew already", field="in_worker_id")
    await _member_checked(stores, order, in_worker_id, "in_worker_id")
    now = datetime.now(UTC)
    warnings, first = await _crew_warnings(
        stores, order, [in_worker_id], ["in_worker_id"], now, match
    )
    after = [in_worker_id if w == out_worker_id else w for w in order.crew]
    here = await crews.arrivals(stores.pool, order_id)
    apart = await crew_window.window_warning(
        stores, tracking, order, after, match.crew_window_s, on_site=here
    )
    if apart is not None:
        warnings.append(apart)
    if warnings and not force:
        raise InfeasibleAssignment(
            "; ".join(warnings) + " — send force: true to assign anyway",
            field=first or "in_worker_id",
        )
    why = f"crew member {out_worker_id} replaced by {in_worker_id}: {reason}"
    async with stores.pool.acquire() as conn, conn.transaction():
        locked = await store.get(conn, order_id, lock=True)
        if locked is None or locked.version != order.version:
            raise StaleVersion(
                "the order changed while this override ran; read it again", field="version"
            )
        await service.assignable(conn, locked, in_worker_id, "in_worker_id")
        seat = await crews.swap(conn, order_id, out_worker_id, in_worker_id, now)
        assert seat is not None  # the crew was read under the row lock
        lead = in_worker_id if seat == 0 else locked.worker_id
        updated = await store.update(conn, order_id, locked.version, {"worker_id": lead})
        assert updated is not None
        await changes.record(
            conn,
            locked,
            updated,
            action="crew_change",
            actor="dispatcher",
            actor_id=actor_id,
            reason=why,
            at=now,
            data={
                "override": True,
                "forced": bool(warnings),
                "out": out_worker_id,
                "in": in_worker_id,
                "seat": seat,
            },
        )
        await offers.exclude(
            conn,
            order_id,
            out_worker_id,
            reason=f"replaced in the crew: {reason}",
            actor="dispatcher",
            actor_id=actor_id,
        )
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="replace_member",
            city_id=updated.city_id,
            order_id=order_id,
            worker_id=in_worker_id,
            reason=why,
            forced=bool(warnings),
            warnings=warnings,
            before=_snapshot(locked),
            after=_snapshot(updated),
        )
    await _announce(tracking, audit)
    return updated, audit


async def _withdraw_pending(
    stores: Stores, tracking: Publisher, order_id: int, reason: str
) -> None:
    await offers.withdraw(stores, tracking, order_id, reason=reason)
    order = await store.get(stores.pool, order_id)
    if order is not None and order.status == "offered":
        await service.act(stores, tracking, order_id, "decline", offers.SYSTEM, reason=reason)


async def unassign(
    stores: Stores, tracking: Publisher, order_id: int, *, actor_id: int, reason: str
) -> tuple[Order, Override]:
    """Take the job from its worker; it is dispatched again (the worker excluded)."""
    before = await store.get(stores.pool, order_id)
    if before is None:
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    updated = await service.act(
        stores,
        tracking,
        order_id,
        "unassign",
        Caller("dispatcher", actor_id),
        reason=reason,
        expected_version=before.version,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        if before.worker_id is not None:
            await offers.exclude(
                conn,
                order_id,
                before.worker_id,
                reason=f"unassigned: {reason}",
                actor="dispatcher",
                actor_id=actor_id,
            )
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="unassign",
            city_id=updated.city_id,
            order_id=order_id,
            worker_id=before.worker_id,
            reason=reason,
            before=_snapshot(before),
            after=_snapshot(updated),
        )
    await _announce(tracking, audit)
    return updated, audit


async def pin(
    stores: Stores, tracking: Publisher, order_id: int, *, pinned: bool, actor_id: int, reason: str
) -> tuple[Order, Override]:
    """Pin (the engine never moves it) or unpin an order."""
    async with stores.pool.acquire() as conn, conn.transaction():
        before = await store.get(conn, order_id, lock=True)
        if before is None:
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        updated = await store.update(conn, order_id, before.version, {"pinned": pinned})
        assert updated is not None
        await store.add_event(
            conn,
            order_id,
            action="pin" if pinned else "unpin",
            from_status=before.status,
            to_status=before.status,
            actor="dispatcher",
            actor_id=actor_id,
            reason=reason,
        )
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="pin" if pinned else "unpin",
            city_id=before.city_id,
            order_id=order_id,
            worker_id=before.worker_id,
            reason=reason,
            before=_snapshot(before),
            after=_snapshot(updated),
        )
    await _announce(tracking, audit)
    return updated, audit


async def unlock_start(
    stores: Stores, order_id: int, *, actor_id: int, reason: str
) -> tuple[Order, Override]:
    """Unlock a start locked by wrong start codes (the count starts again); audited.

    No feed message of its own: the ``alert.resolved`` event tells the dispatchers."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None:
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        if not await start_codes.clear(conn, order, now=datetime.now(UTC), by=actor_id):
            raise InvalidOrder(f"the start of order {order_id} is not locked", field="order_id")
        await store.add_event(
            conn,
            order_id,
            action="unlock_start",
            from_status=order.status,
            to_status=order.status,
            actor="dispatcher",
            actor_id=actor_id,
            reason=reason,
        )
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="unlock_start",
            city_id=order.city_id,
            order_id=order_id,
            worker_id=order.worker_id,
            reason=reason,
        )
    return order, audit


async def exclude(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    worker_id: int,
    *,
    actor_id: int,
    reason: str,
) -> Override:
    """Never give this order to this worker; take it from them if they hold or are offered it."""
    order = await store.get(stores.pool, order_id)
    if order is None:
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    if await workforce_store.worker(stores.pool, worker_id, detail=False) is None:
        raise InvalidOrder(f"no worker {worker_id}", field="worker_id")
    before = _snapshot(order)
    async with stores.pool.acquire() as conn, conn.transaction():
        await offers.exclude(
            conn, order_id, worker_id, reason=reason, actor="dispatcher", actor_id=actor_id
        )
    if order.worker_id == worker_id and order.status in ("assigned", "en_route"):
        order = await service.act(
            stores,
            tracking,
            order_id,
            "unassign",
            Caller("dispatcher", actor_id),
            reason=f"excluded: {reason}",
            expected_version=order.version,
        )
    withdrawn = await offers.withdraw(
        stores, tracking, order_id, reason="excluded by a dispatcher", worker_id=worker_id
    )
    if withdrawn:
        await offers.back_to_dispatch(stores, tracking, order_id, "the offered worker was excluded")
        order = await store.get(stores.pool, order_id) or order
    async with stores.pool.acquire() as conn:
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="exclude",
            city_id=order.city_id,
            order_id=order_id,
            worker_id=worker_id,
            reason=reason,
            before=before,
            after=_snapshot(order),
        )
    await _announce(tracking, audit)
    return audit


async def lock_city(conn: Tx, city_id: str) -> bool | None:
    """Whether dispatch is paused in the city (None: no such city), under the city's row
    lock until the transaction ends. FOR NO KEY UPDATE: nearly everything in a city
    references its row (orders, day plans, workers, overrides); FOR UPDATE would make every
    booking in the city wait for a pause, and a pause wait for every booking under way: a
    deadlock as soon as the pause waits for a lock one of them holds (the day plan's, as
    the orders' reschedule did: docs/architecture.md "Row locks")."""
    was = await conn.fetchval(
        "SELECT dispatch_paused FROM cities WHERE id = $1 FOR NO KEY UPDATE", city_id
    )
    return None if was is None else bool(was)


async def pause_city(
    stores: Stores, tracking: Publisher, city_id: str, *, paused: bool, actor_id: int, reason: str
) -> Override:
    """Stop (or resume) automatic dispatch in a city; manual assignment still works."""
    async with stores.pool.acquire() as conn, conn.transaction():
        was = await lock_city(conn, city_id)
        if was is None:
            raise OrderNotFound(f"no city {city_id!r}", field="city_id")
        await conn.execute("UPDATE cities SET dispatch_paused = $2 WHERE id = $1", city_id, paused)
        audit = await _audit(
            conn,
            actor_id=actor_id,
            action="pause" if paused else "resume",
            city_id=city_id,
            order_id=None,
            worker_id=None,
            reason=reason,
            before={"dispatch_paused": was},
            after={"dispatch_paused": paused},
        )
    await _announce(tracking, audit)
    return audit


async def history(
    stores: Stores,
    *,
    city_id: str | None,
    order_id: int | None,
    limit: int,
    city_ids: list[str] | None = None,
) -> list[Override]:
    """Overrides, newest first (with ``city_ids``: only those cities')."""
    rows = await stores.pool.fetch(
        "SELECT id, at, actor_id, action, city_id, order_id, worker_id, reason, forced, warnings, "
        "before, after FROM overrides WHERE ($1::text IS NULL OR city_id = $1) "
        "AND ($2::bigint IS NULL OR order_id = $2) AND ($4::text[] IS NULL OR city_id = ANY($4)) "
        "ORDER BY id DESC LIMIT $3",
        city_id,
        order_id,
        limit,
        city_ids,
    )
    return [Override(**dict(r)) for r in rows]

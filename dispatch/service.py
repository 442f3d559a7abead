"""Orders: booking and every change of status, with the I/O around the pure lifecycle.

A change runs in one transaction that locks the order row, checks the lifecycle table
and the caller's right to the order, bumps the version and records the event. Only
after the commit are watchers told (order channel) and tracking asked to refresh the
worker's job, so nobody hears of a change the database does not hold.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import asyncpg

from accounts import store as accounts_store
from accounts.errors import InvalidToken
from accounts.rules import mask_phone, normalize_phone
from audit import store as audit_store
from catalog import city_prices
from catalog import service as catalog_service
from catalog.areas import city_at
from catalog.models import Service
from dispatch import alerts, changes, crews, start_codes, store
from dispatch.booking import (
    BookingParams,
    canonical_request,
    check_window,
    keyed_fingerprint,
    new_start_code,
    same_request,
)
from dispatch.errors import (
    CrewNotHere,
    CurrentJobFirst,
    IdempotencyKeyReused,
    InvalidOrder,
    OrderNotFound,
    StaleVersion,
    WorkerBusy,
)
from dispatch.lifecycle import (
    TRANSITIONS,
    WITH_WORKER,
    Action,
    Actor,
    IllegalTransition,
    Status,
    cancellation_fee,
    next_status,
)
from dispatch.models import Order
from dispatch.publisher import Publisher
from dispatch.start_guard import StartGuardParams
from doorstep.db import Conn, Tx
from doorstep.errors import Forbidden
from doorstep.stores import Stores
from files import service as files_service
from geo.coords import Crs, to_wgs84, validate_lat_lng
from privacy.crypto import blind
from tracking import positions
from tracking.jobs import JobInfo, estimate, start_job
from workforce import store as workforce_store

log = logging.getLogger("doorstep.dispatch")
WORKER_ACTIONS: frozenset[Action] = frozenset({"depart", "arrive", "start", "complete", "decline"})
START_GUARD = StartGuardParams()
# Before the service starts, the customer may replace a start code (a locked start).
CODE_REISSUABLE = frozenset(
    {"confirmed", "dispatching", "offered", "assigned", "en_route", "arrived"}
)
ENDS_ALERTS = frozenset({"completed", "cancelled", "failed"})


# Called inside a booking's transaction with the new order; raising refuses the booking.
Reserve = Callable[[Tx, Order], Awaitable[None]]
# Called inside a booking's transaction with the new order: True if it must wait for its
# payment (待支付) instead of being confirmed at once (payments.service.Payments.hold).
Hold = Callable[[Tx, Order], Awaitable[bool]]
# Called before an instant booking is stored (city, service, lat, lng, now); raising
# refuses it (dispatch/instant_gate.py: nobody can serve it now).
Gate = Callable[[str, Service, float, float, datetime], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts: a role the lifecycle knows, and the user (None for the system)."""

    role: Actor
    user_id: int | None
    # staff limited by a grant (issue 18): only these cities' orders and these merchants'
    # (None: everywhere)
    cities: frozenset[str] | None = None
    merchants: frozenset[int] = frozenset()

    def reaches(self, order: Order) -> bool:
        """True if a staff caller's scope covers the order."""
        if self.cities is None:
            return True
        return order.city_id in self.cities or (
            order.merchant_id is not None and order.merchant_id in self.merchants
        )


def _now() -> datetime:
    return datetime.now(UTC)


async def book(
    stores: Stores,
    tracking: Publisher,
    *,
    customer_id: int,
    service_code: str,
    address_id: int | None,
    lat: float | None,
    lng: float | None,
    crs: Crs,
    detail: str,
    contact_phone: str,
    window_start: datetime | None,
    window_end: datetime | None,
    notes: str,
    idempotency_key: str | None,
    now: datetime,
    params: BookingParams,
    reserve: Reserve | None = None,
    series_id: int | None = None,
    hold: Hold | None = None,
    gate: Gate | None = None,
) -> tuple[Order, bool]:
    """Create a confirmed order; returns it and whether it is new (False: idempotent replay).

    ``reserve`` runs inside the booking's transaction with the confirmed order: the day
    plans fit a scheduled booking into a worker's plan there, or refuse it (and with it
    the booking).
    """
    canonical = canonical_request(
        {
            "service_code": service_code,
            "address_id": address_id,
            "lat": lat,
            "lng": lng,
            "crs": crs,
            "address_detail": detail,
            "contact_phone": contact_phone,
            "window_start": window_start,
            "window_end": window_end,
            "notes": notes,
            "series_id": series_id,
        }
    )
    fingerprint = keyed_fingerprint(blind("idempotency", canonical.decode()))
    if idempotency_key is not None:
        replay = await _replay(
            stores, customer_id, idempotency_key, service_code, canonical, fingerprint
        )
        if replay is not None:
            return replay, False
    service = await catalog_service.get_service(stores.pool, service_code)
    if not service.active:
        raise InvalidOrder(f"service {service_code!r} is not offered now", field="service_code")
    kind = "instant" if window_start is None else "scheduled"
    if kind == "instant" and not service.instant:
        raise InvalidOrder(
            "this service is booked ahead only: give window_start and window_end",
            field="window_start",
        )
    if kind == "scheduled" and not service.scheduled:
        raise InvalidOrder(
            "this service is booked for now only: leave out the window", field="window_start"
        )
    if kind == "scheduled":
        if window_end is None:
            raise InvalidOrder("a scheduled booking needs window_end", field="window_end")
        check_window(window_start, window_end, now=now, params=params)  # type: ignore[arg-type]
    elif window_end is not None:
        raise InvalidOrder("window_end needs window_start", field="window_end")
    if address_id is not None:
        address = await accounts_store.address_by_id(stores.pool, address_id)
        if address is None or address.user_id != customer_id:
            raise InvalidOrder(f"no address {address_id} of yours", field="address_id")
        lat, lng = address.lat, address.lng
        detail = detail or address.detail
        contact_phone = contact_phone or address.contact_phone
    elif lat is None or lng is None:
        raise InvalidOrder("give address_id, or lat and lng", field="address_id")
    else:
        validate_lat_lng(lat, lng)
        lat, lng = to_wgs84(lat, lng, crs)
    city_id = await city_at(stores.pool, lat, lng)
    if city_id is None:
        raise InvalidOrder(
            "this address is outside every service area",
            field="address_id" if address_id is not None else "lat",
        )
    if kind == "instant" and gate is not None:
        await gate(city_id, service, lat, lng, now)
    if contact_phone:
        contact_phone = normalize_phone(contact_phone, "contact_phone")
    else:
        user = await accounts_store.user_by_id(stores.pool, customer_id)
        contact_phone = user.phone if user else ""
    try:
        async with stores.pool.acquire() as conn, conn.transaction():
            order = await store.insert(
                conn,
                city_id=city_id,
                customer_id=customer_id,
                service_code=service.code,
                kind=kind,
                lat=lat,
                lng=lng,
                address_id=address_id,
                address_detail=detail.strip(),
                contact_phone=contact_phone,
                window_start=window_start,
                window_end=window_end,
                duration_min=service.duration_min,
                crew_size=service.crew_size,
                price_minor=await city_prices.price_in(
                    conn, city_id, service.code, service.price_minor
                ),
                currency=service.currency,
                notes=notes.strip(),
                start_code=new_start_code(),
                idempotency_key=idempotency_key,
                idempotency_fingerprint=fingerprint if idempotency_key is not None else None,
                series_id=series_id,
            )
            # The insert's foreign key check waited for any erasure holding the customer's
            # row (privacy.pipl.request_deletion locks it FOR UPDATE): read the status it
            # left, so an order is never booked for an account frozen meanwhile.
            status = await conn.fetchval("SELECT status FROM users WHERE id = $1", customer_id)
            if status != "active":
                raise InvalidToken("token was issued before the account was frozen or closed")
            booked_at = order.created_at
            await changes.record(
                conn,
                None,
                order,
                action="book",
                actor="customer",
                actor_id=customer_id,
                reason="",
                at=booked_at,
            )
            # A prepaid service waits for its payment; otherwise the system confirms at once.
            waits = hold is not None and await hold(conn, order)
            confirmed = await store.update(
                conn,
                order.id,
                order.version,
                {"status": "awaiting_payment" if waits else "confirmed"},
            )
            assert confirmed is not None
            await changes.record(
                conn,
                order,
                confirmed,
                action="request_payment" if waits else "confirm",
                actor="system",
                actor_id=None,
                reason="awaiting payment" if waits else "no payment required",
                at=booked_at,
            )
            if reserve is not None:
                await reserve(conn, confirmed)
    except asyncpg.UniqueViolationError:  # the same Idempotency-Key, at the same moment
        if idempotency_key is None:
            raise
        replay = await _replay(
            stores, customer_id, idempotency_key, service_code, canonical, fingerprint
        )
        if replay is None:
            raise
        return replay, False
    # Watchers hear of it from the order.booked/confirmed events (tracking.order_push).
    return confirmed, True


async def _replay(
    stores: Stores,
    customer_id: int,
    key: str,
    service_code: str,
    canonical: bytes,
    fingerprint: str,
) -> Order | None:
    """The order booked earlier with this key if the request is the same one; a key
    reused for another request is refused (422), as payment APIs do."""
    found = await store.by_idempotency_key(stores.pool, customer_id, key)
    if found is None:
        return None
    existing, stored = found
    same = (
        same_request(stored, canonical, fingerprint)
        if stored is not None
        else existing.service_code == service_code
    )
    if not same:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; "
            "use a new key for a new booking",
            field="idempotency-key",
        )
    return existing


async def visible(stores: Stores, caller: Caller, order_id: int) -> Order:
    """The order if the caller may see it: its customer, its worker, or staff."""
    order = await store.get(stores.pool, order_id)
    if order is None or not may_see(caller, order):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    return order


def may_see(caller: Caller, order: Order) -> bool:
    """Staff see every order; a customer their own; a worker the ones assigned to them."""
    if caller.role in ("dispatcher", "admin", "system"):
        return caller.reaches(order)
    if caller.role == "customer":
        return order.customer_id == caller.user_id
    return caller.role == "worker" and order.holds(caller.user_id)


REVEAL_GRACE = timedelta(minutes=30)


def reveals_contact(order: Order, caller: Caller, now: datetime) -> bool:
    """A worker sees the exact address and phone from assignment until 30 minutes after
    completion (to find the door again, or call about a forgotten item)."""
    if caller.role != "worker" or not order.holds(caller.user_id):
        return False
    if order.status in WITH_WORKER:
        return True
    return (
        order.status == "completed"
        and order.completed_at is not None
        and now - order.completed_at <= REVEAL_GRACE
    )


def view(order: Order, caller: Caller, now: datetime | None = None) -> Order:
    """What the caller may read of the order.

    Workers never see the start code (the customer hands it over on site) nor the
    customer's phone number (masked: they call through the temporary AXB number of
    ``GET /v1/orders/{id}/contact``, docs/privacy.md), and see the exact address detail
    only within :func:`reveals_contact`.
    """
    if caller.role != "worker":
        return order
    holding = reveals_contact(order, caller, now or _now())
    if not holding:  # the area (~100 m), not the door
        order = replace(order, lat=round(order.lat, 3), lng=round(order.lng, 3), notes="")
    return replace(
        order,
        start_code=None,
        address_detail=order.address_detail if holding else "",
        contact_phone=mask_phone(order.contact_phone),
    )


async def busy_with(db: Conn, worker_id: int, order_id: int) -> int | None:
    """The active job other than ``order_id`` the worker holds (alone or in a crew), if any."""
    busy = await db.fetchval(
        "SELECT id FROM orders WHERE (worker_id = $1 OR id IN (SELECT order_id FROM order_crew "
        "WHERE worker_id = $1 AND released_at IS NULL)) AND id <> $2 "
        "AND status IN ('assigned', 'en_route', 'arrived', 'in_service') LIMIT 1",
        worker_id,
        order_id,
    )
    return int(busy) if busy is not None else None


async def other_jobs(db: Conn, worker_id: int, order_id: int) -> list[tuple[int, str, int]]:
    """The active jobs other than ``order_id`` the worker holds (alone or in a crew):
    (order id, status, crew size), by id."""
    rows = await db.fetch(
        "SELECT id, status, crew_size FROM orders WHERE (worker_id = $1 OR id IN (SELECT "
        "order_id FROM order_crew WHERE worker_id = $1 AND released_at IS NULL)) AND id <> $2 "
        "AND status IN ('assigned', 'en_route', 'arrived', 'in_service') ORDER BY id",
        worker_id,
        order_id,
    )
    return [(int(r["id"]), str(r["status"]), int(r["crew_size"])) for r in rows]


CHAINABLE_FROM: Final = frozenset({"arrived", "in_service"})
"""A chained job may follow a job in these statuses (the worker is at its address)."""


async def _lock_worker(
    conn: Tx,
    worker_id: int,
    order_id: int,
    field: str = "worker_id",
    after_order_id: int | None = None,
) -> None:
    """Serialise assignments to one worker, then refuse if they hold another active job.

    ``after_order_id`` (a chained offer's accept, docs/dispatch.md#chained-orders): the
    worker may hold that one job, on site (arrived or in service, alone): this order
    becomes their next. Not when they hold anything else, e.g. a chained job already."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('doorstep-worker'), $1::int)", worker_id % 2**31
    )
    busy = await busy_with(conn, worker_id, order_id)
    if busy is None:
        return
    if after_order_id is not None:
        others = await other_jobs(conn, worker_id, order_id)
        if [o for o, _, _ in others] == [after_order_id]:
            _, status, crew_size = others[0]
            if status in CHAINABLE_FROM and crew_size == 1:
                return
        else:
            held = ", ".join(str(o) for o, _, _ in others if o != after_order_id)
            raise WorkerBusy(
                f"worker {worker_id} already holds order {held} besides order {after_order_id}",
                field=field,
            )
    raise WorkerBusy(f"worker {worker_id} already holds order {busy}", field=field)


async def act(
    stores: Stores,
    tracking: Publisher,
    order_id: int,
    action: Action,
    caller: Caller,
    *,
    reason: str = "",
    expected_version: int | None = None,
    worker_id: int | None = None,
    start_code: str | None = None,
    at: datetime | None = None,
    data: dict[str, Any] | None = None,
    via_offer: bool = False,
    window: tuple[datetime, datetime] | None = None,
    reserve: Reserve | None = None,
    photos: tuple[int, ...] = (),
    crew: Sequence[int] = (),
    after_order_id: int | None = None,
) -> Order:
    """Take ``action`` on the order as ``caller``; the whole change or nothing.

    ``after_order_id``: a chained offer's accept (docs/dispatch.md#chained-orders): the
    worker may still be on that order; this one is their next. A job held while another
    of the worker's is on site cannot be set off or arrived at (:class:`CurrentJobFirst`).

    ``crew``: to assign a crew order (``crew_size`` > 1), its workers, the lead first
    (docs/dispatch.md#crews). A crew member's ``depart`` or ``arrive`` after the order
    already moved past it is kept as theirs (an arrival) and changes nothing else; the
    start waits for the whole crew.

    ``photos``: on completion, the caller's ``job_photo`` uploads, attached to the order
    (``order:<id>``) in the same transaction, and listed in the history entry's data.

    ``via_offer``: a worker accepting an offer (they cannot see the order before).
    ``reserve``: for a reschedule, fits the order's new window into the day plans inside
    the same transaction (or refuses the move), as for a booking.
    """
    now = at or _now()
    if action == "start":
        await _guard_start(stores, order_id, caller, start_code or "", now)
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None or not (may_see(caller, order) or via_offer):
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        if expected_version is not None and expected_version != order.version:
            raise StaleVersion(
                f"the order is at version {order.version}, not {expected_version}; read it again",
                field="version",
            )
        status = cast(Status, order.status)
        if (
            caller.role == "worker"
            and action in WORKER_ACTIONS | {"unassign"}
            and not order.holds(caller.user_id)
        ):
            raise Forbidden("only the worker holding this job may do that")
        member = _crew_member(order, action, caller, data)
        if member is not None:
            if action == "arrive":
                await crews.arrived(conn, order_id, member, now)
            if (status, action) not in TRANSITIONS:  # the crew moved on already
                return order
        to = next_status(status, action, caller.role)
        fields: dict[str, Any] = {"status": to}
        joining: list[int] = []
        if action == "assign":
            target = worker_id if caller.role != "worker" else caller.user_id
            joining = _crew_of(order, crew, target)
            target = joining[0] if joining else target
            if target is None:
                raise InvalidOrder("name the worker to assign", field="worker_id")
            for i, one in enumerate(joining or [target]):
                await assignable(
                    conn,
                    order,
                    one,
                    f"worker_ids[{i}]" if joining else "worker_id",
                    None if joining else after_order_id,
                )
            fields["worker_id"] = target
        elif action == "reschedule":
            if order.kind != "scheduled" or window is None:
                raise InvalidOrder(
                    "only a scheduled order can be moved to another window", field="window_start"
                )
            check_window(window[0], window[1], now=now, params=BookingParams())
            fields.update(worker_id=None, window_start=window[0], window_end=window[1])
        elif action == "unassign" or (action == "decline" and order.worker_id):
            fields["worker_id"] = None
        if action in ("depart", "arrive") and order.crew_size == 1 and order.worker_id:
            await _current_first(conn, order.worker_id, order.id)
        if action == "depart":
            fields["en_route_at"] = now
            fields["eta_predicted_s"] = await _predict(stores, tracking, order)
        elif action == "arrive":
            fields["arrived_at"] = now
        elif action == "complete":
            fields["completed_at"] = now
            for file_id in photos:
                await files_service.attach(
                    conn,
                    file_id=file_id,
                    owner_id=caller.user_id or 0,
                    purpose="job_photo",
                    ref=f"order:{order_id}",
                    now=int(now.timestamp()),
                )
            if photos:
                data = {**(data or {}), "photos": list(photos)}
        elif action == "start":
            if start_code is None or start_code.strip() != order.start_code:
                # The code changed between the guard and here (reissued): counted there.
                raise InvalidOrder(
                    "the start code does not match; ask the customer for it", field="start_code"
                )
            if order.crew and caller.role == "worker":
                await _whole_crew_here(conn, order)
        elif action == "cancel":
            window_s = int(order.window_start.timestamp()) if order.window_start else None
            fee, why = cancellation_fee(
                status,
                by=caller.role,
                price_minor=order.price_minor,
                now_s=int(now.timestamp()),
                window_start_s=window_s,
            )
            fields["cancel_fee_minor"] = fee
            reason = f"{reason} ({why})" if reason else why
        withdrawn: list[Any] = []
        if order.status == "offered" and action != "assign":
            withdrawn = await conn.fetch(
                "UPDATE offers SET status = 'withdrawn', reason = $2, answered_at = now() "
                "WHERE order_id = $1 AND status = 'pending' RETURNING id, worker_id",
                order_id,
                f"order {action}",
            )
        if joining:
            await crews.join(conn, order_id, joining, now)
        elif order.crew and fields.get("worker_id", order.worker_id) is None:
            await crews.release(conn, order_id, now)
        updated = await store.update(conn, order_id, order.version, fields)
        if updated is None:
            raise StaleVersion(
                "the order changed while this action ran; try again", field="version"
            )
        await changes.record(
            conn,
            order,
            updated,
            action=action,
            actor=caller.role,
            actor_id=caller.user_id,
            reason=reason.strip(),
            at=now,
            data=data,
            withdrawn=[(w["id"], w["worker_id"]) for w in withdrawn],
            eta_predicted_s=await conn.fetchval(
                "SELECT eta_predicted_s FROM orders WHERE id = $1", order_id
            )
            if action == "arrive"
            else None,
        )
        if action == "reschedule" and reserve is not None:
            await reserve(conn, updated)
        if to in ENDS_ALERTS:
            await alerts.resolve(conn, order_id, version=updated.version, at=now, by=caller.user_id)
    # Everything that follows the change (the live pushes, the workers' jobs, the day
    # plans, the ETA statistics) reacts to its event, after the commit, even when Redis
    # is down now: a committed action is never reported as failed.
    return updated


def _crew_member(
    order: Order, action: Action, caller: Caller, data: dict[str, Any] | None
) -> int | None:
    """The crew member whose own ``depart``/``arrive`` this is (a worker of the crew, or the
    arrival geofence naming one); None when it is not a crew member's own step."""
    if not order.crew or action not in ("depart", "arrive"):
        return None
    if caller.role == "worker":
        return caller.user_id
    named = (data or {}).get("worker_id") if caller.role == "system" else None
    return int(named) if isinstance(named, int) and named in order.crew else None


def _crew_of(order: Order, crew: Sequence[int], target: int | None) -> list[int]:
    """The workers to assign a crew order to, checked (a one-worker order: empty)."""
    if order.crew_size == 1:
        if crew:
            raise InvalidOrder("this order needs one worker, not a crew", field="worker_ids")
        return []
    workers = list(crew) or ([target] if target is not None else [])
    if len(set(workers)) != len(workers) or len(workers) != order.crew_size:
        raise InvalidOrder(
            f"this order needs a crew of {order.crew_size} different workers, "
            f"not {len(set(workers))}",
            field="worker_ids",
        )
    return workers


async def _current_first(conn: Tx, worker_id: int, order_id: int) -> None:
    """Refuse to set off for (or arrive at) a chained job while the worker's current job
    is still on site."""
    for other, status, _ in await other_jobs(conn, worker_id, order_id):
        if status in CHAINABLE_FROM:
            raise CurrentJobFirst(
                f"finish order {other} first: this job is your next one, after it",
                field="status",
            )


async def assignable(
    conn: Tx,
    order: Order,
    target: int,
    field: str = "worker_id",
    after_order_id: int | None = None,
) -> None:
    """The worker exists, works in the order's city and holds no other job (locked until
    the caller's transaction ends) — or only ``after_order_id``, on site, for a chained
    accept; errors name ``field``."""
    worker = await workforce_store.worker(conn, target, detail=False)
    if worker is None:
        raise InvalidOrder(f"no worker {target}", field=field)
    if worker.city_id != order.city_id:
        raise InvalidOrder(
            f"worker {target} works in {worker.city_id}, not {order.city_id}",
            field=field,
        )
    await _lock_worker(conn, target, order.id, field, after_order_id)


async def _whole_crew_here(conn: Tx, order: Order) -> None:
    """A crew job starts only when every member has arrived (docs/dispatch.md#crews)."""
    away = crews.missing(order.crew, await crews.arrivals(conn, order.id))
    if away:
        raise CrewNotHere(
            f"the crew is not all here: worker(s) {', '.join(map(str, away))} have not "
            "arrived; each marks their own arrival (or the geofence does)",
            field="crew",
        )


async def transition_locked(
    conn: Tx,
    order: Order,
    action: Action,
    caller: Caller,
    *,
    reason: str,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> Order:
    """Take ``action`` on an order whose row lock the caller holds, in the caller's
    transaction (payments: a verified payment confirms an order waiting for it; an unpaid
    order closes). Only for orders without a worker or offers (awaiting payment)."""
    to = next_status(cast(Status, order.status), action, caller.role)
    fields: dict[str, Any] = {"status": to}
    if action == "cancel":
        fields["cancel_fee_minor"] = 0
    # The update, its history row and its event in one statement (a round trip fewer on
    # a payment's capture): the event is built from the order as the update leaves it
    # (the row is locked, so only ``fields`` and the version change).
    updated = await changes.update_recorded(
        conn,
        order,
        fields,
        action=action,
        actor=caller.role,
        actor_id=caller.user_id,
        reason=reason,
        at=at,
        data=data,
    )
    if updated is None:
        raise StaleVersion("the order changed while this action ran; try again", field="version")
    if to in ENDS_ALERTS:
        await alerts.resolve(conn, order.id, version=updated.version, at=at, by=caller.user_id)
    return updated


async def _guard_start(
    stores: Stores, order_id: int, caller: Caller, code: str, now: datetime
) -> None:
    """Count the start code against the limits (dispatch/start_guard.py) in a transaction
    of its own, so a wrong code stays counted when the start is refused."""
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None or not may_see(caller, order):
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        if caller.role == "worker" and not order.holds(caller.user_id):
            raise Forbidden("only the worker holding this job may do that")
        next_status(cast(Status, order.status), "start", caller.role)
        failure = await start_codes.attempt(
            conn, order, caller.user_id, code, now=now, params=START_GUARD
        )
    if failure is not None:
        raise failure


async def reissue_start_code(stores: Stores, order_id: int, caller: Caller) -> Order:
    """The customer replaces the order's start code (the old one stops working, a locked
    start is unlocked) until the service starts."""
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None or caller.role != "customer" or not may_see(caller, order):
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        if order.status not in CODE_REISSUABLE:
            raise IllegalTransition(cast(Status, order.status), "reissue_start_code")
        assert caller.user_id is not None
        return await start_codes.reissue(conn, order, now=now, customer_id=caller.user_id)


async def _predict(stores: Stores, tracking: Publisher, order: Order) -> float | None:
    """The ETA from the worker's last live position to the order, for learning later."""
    if order.worker_id is None:
        return None
    at = await positions.read_position(stores.redis, stores.keys, order.city_id, order.worker_id)
    if at is None:
        return None
    job = start_job(
        JobInfo(order.id, order.city_id, order.lat, order.lng, "en_route"),
        await tracking.eta.graph_for(order.city_id),
    )
    return float(
        estimate(
            job,
            at.lat,
            at.lng,
            tracking.eta.stats_for(order.city_id, int(_now().timestamp() * 1000)),
            tracking.eta_params,
        )["base_s"]
    )


async def job_of(stores: Stores, worker_id: int) -> JobInfo | None:
    """The job a worker holds, for tracking."""
    order = await store.active_for_worker(stores.pool, worker_id)
    if order is None:
        return None
    status = order.status
    if (
        order.crew
        and status == "arrived"
        and worker_id not in await crews.arrivals(stores.pool, order.id)
    ):
        status = "en_route"  # a crew-mate still on the way keeps their ETA and geofence
    return JobInfo(
        order.id,
        order.city_id,
        order.lat,
        order.lng,
        status,
        order.window_start_ms,
        round(order.arrived_at.timestamp() * 1000) if order.arrived_at is not None else None,
        order.duration_min * 60,
    )


async def arrived_by_geofence(
    stores: Stores, tracking: Publisher, order_id: int, worker_id: int, ts_ms: int
) -> None:
    """The arrival geofence fired: mark the order arrived (if it still waits for that)."""
    order = await store.get(stores.pool, order_id)
    if order is None or not order.holds(worker_id):
        return
    if order.status not in ("assigned", "en_route") and not (
        order.crew and order.status in ("arrived", "in_service")  # a crew-mate's own arrival
    ):
        return
    with contextlib.suppress(IllegalTransition, StaleVersion):  # someone marked it first
        await act(
            stores,
            tracking,
            order_id,
            "arrive",
            Caller("system", None),
            reason="arrival geofence",
            expected_version=order.version,
            at=datetime.fromtimestamp(ts_ms / 1000, UTC),
            data={"source": "geofence", "worker_id": worker_id},
        )


async def audit_reveal(stores: Stores, order: Order, caller: Caller) -> None:
    """Record that a worker was shown the customer's address and phone."""
    if reveals_contact(order, caller, _now()):
        async with stores.pool.acquire() as conn, conn.transaction():
            reveal_id = await conn.fetchval(
                "INSERT INTO address_reveals (order_id, worker_id, what) "
                "VALUES ($1, $2, 'address,phone') RETURNING id",
                order.id,
                caller.user_id,
            )
            await audit_store.append(
                conn,
                actor_id=caller.user_id,
                action="reveal.contact",
                subject=f"order:{order.id}",
                detail={"reveal_id": reveal_id, "what": "address,phone"},
            )

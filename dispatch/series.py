"""Recurring bookings: create a weekly series, read it with its conflicts, cancel it.

Creating a series first surveys every occurrence against that day's plan (who could
take it, at what added travel), picks the worker who can take the most of them
(:func:`dispatch.recurrence.pick_worker`), then books each occurrence as an ordinary
scheduled order fitted into its day plan — with that worker when they fit, else with
whoever does. Each occurrence that could not be booked, or not with the series' worker,
is recorded with the date, a code and the reason. Reading a series recomputes the
conflicts against the current plans (a re-plan may have moved an occurrence).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from accounts import store as accounts_store
from catalog import service as catalog_service
from catalog.areas import city_at
from dispatch import plan_inputs, plan_store, service, store
from dispatch.booking import BookingParams
from dispatch.dayplan import DayJob, refusal, required_skills
from dispatch.errors import DispatchError, InvalidOrder, OrderNotFound
from dispatch.lifecycle import BEFORE_SERVICE, WITH_WORKER
from dispatch.plans import DayPlans, Reservation, SlotUnavailable
from dispatch.publisher import Publisher
from dispatch.recurrence import check_series, occurrence_dates, pick_worker
from dispatch.service import Caller
from doorstep.errors import Conflict
from doorstep.stores import Stores
from geo.coords import Crs, to_wgs84, validate_lat_lng


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One date of a series: its order (None if it could not be booked) and any conflict."""

    date: date
    order_id: int | None
    status: str | None
    window_start: datetime
    window_end: datetime
    planned_worker_id: int | None  # who holds it, or whom the current day plan gives it to
    conflict: (
        str | None
    )  # not_booked codes (fully_booked, not_working_then, …), other_worker, dropped
    reason: str


@dataclass(frozen=True, slots=True)
class Series:
    """A weekly recurring booking and its occurrences."""

    id: int
    city_id: str
    customer_id: int
    service_code: str
    weekdays: list[int]
    start_min: int
    window_min: int
    first_date: date
    weeks: int
    preferred_worker_id: int | None
    status: str
    created_at: datetime
    occurrences: list[Occurrence]


async def create(
    stores: Stores,
    tracking: Publisher,
    plans: DayPlans,
    *,
    customer_id: int,
    service_code: str,
    address_id: int | None,
    lat: float | None,
    lng: float | None,
    crs: Crs,
    detail: str,
    contact_phone: str,
    notes: str,
    weekdays: list[int],
    start_min: int,
    window_min: int,
    first_date: date,
    weeks: int,
    now: datetime,
    params: BookingParams,
) -> Series:
    """Book a weekly series; occurrences that cannot be kept are reported, not fatal."""
    svc = await catalog_service.get_service(stores.pool, service_code)
    if not svc.active or not svc.scheduled:
        raise InvalidOrder(f"service {service_code!r} cannot be booked ahead", field="service_code")
    if address_id is not None:
        address = await accounts_store.address_by_id(stores.pool, address_id)
        if address is None or address.user_id != customer_id:
            raise InvalidOrder(f"no address {address_id} of yours", field="address_id")
        lat, lng = address.lat, address.lng
    elif lat is None or lng is None:
        raise InvalidOrder("give address_id, or lat and lng", field="address_id")
    else:
        validate_lat_lng(lat, lng)
        lat, lng = to_wgs84(lat, lng, crs)
        crs = "wgs84"
    city_id = await city_at(stores.pool, lat, lng)
    if city_id is None:
        raise InvalidOrder(
            "this address is outside every service area",
            field="address_id" if address_id is not None else "lat",
        )
    zone = await plan_inputs.zone_of(stores.pool, city_id)
    check_series(
        weekdays=weekdays,
        window_min=window_min,
        first_date=first_date,
        weeks=weeks,
        today=now.astimezone(zone).date(),
        params=params,
    )
    skills = required_skills(svc.required_skills, svc.required_certificates)
    dates = occurrence_dates(first_date, weekdays, weeks)

    def window(day: date) -> tuple[datetime, datetime]:
        start = plan_inputs.midnight(day, zone) + timedelta(minutes=start_min)
        return start, start + timedelta(minutes=window_min)

    # Survey: who could take each occurrence, at what added travel.
    surveyed = []
    for day in dates:
        ws, we = window(day)
        epoch = int(plan_inputs.midnight(day, zone).timestamp())
        job = DayJob(
            0,
            lat,
            lng,
            svc.duration_min * 60,
            (int(ws.timestamp()) - epoch, int(we.timestamp()) - epoch),
            skills,
        )
        inputs, options = await plans.survey(city_id, day, job, now)
        cheapest: dict[int, int] = {}
        for o in options:
            cheapest.setdefault(int(o.worker_id), o.added_travel_s)
        surveyed.append((day, inputs, job, cheapest))
    preferred = pick_worker([c for _, _, _, c in surveyed])
    series_id = await stores.pool.fetchval(
        "INSERT INTO booking_series (city_id, customer_id, service_code, address_id, lat, lng, "
        "weekdays, start_min, window_min, first_date, weeks, preferred_worker_id) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING id",
        city_id,
        customer_id,
        service_code,
        address_id,
        lat,
        lng,
        weekdays,
        start_min,
        window_min,
        first_date,
        weeks,
        preferred,
    )
    for day, inputs, job, _ in surveyed:
        ws, we = window(day)
        reservation = Reservation(prefer_worker_id=preferred)
        order_id: int | None = None
        conflict: str | None = None
        reason = ""
        try:
            order, _ = await service.book(
                stores,
                tracking,
                customer_id=customer_id,
                service_code=service_code,
                address_id=address_id,
                lat=lat if address_id is None else None,
                lng=lng if address_id is None else None,
                crs=crs,
                detail=detail,
                contact_phone=contact_phone,
                window_start=ws,
                window_end=we,
                notes=notes,
                idempotency_key=None,
                now=now,
                params=params,
                reserve=plans.reserver(reservation),
                series_id=series_id,
            )
            order_id = order.id
            await plans.after_booking(order, reservation)
            if preferred is not None and reservation.worker_id not in (None, preferred):
                why = refusal(inputs, job, worker_id=preferred)
                conflict = "other_worker"
                reason = f"{why.message}; planned with worker {reservation.worker_id} instead"
        except SlotUnavailable as e:
            conflict = reservation.refusal.code if reservation.refusal else "slot_unavailable"
            reason = e.message
        except InvalidOrder as e:  # e.g. the first occurrence is too soon to book
            conflict = "invalid_window"
            reason = f"{e.field}: {e.message}"
        await stores.pool.execute(
            "INSERT INTO series_occurrences (series_id, on_date, order_id, conflict, reason) "
            "VALUES ($1,$2,$3,$4,$5)",
            series_id,
            day,
            order_id,
            conflict,
            reason,
        )
    return await read(stores, series_id, Caller("customer", customer_id))


async def read(stores: Stores, series_id: int, caller: Caller) -> Series:
    """The series with each occurrence's current order status, planned worker and conflict."""
    row = await stores.pool.fetchrow(
        "SELECT id, city_id, customer_id, service_code, weekdays, start_min, window_min, "
        "first_date, weeks, preferred_worker_id, status, created_at FROM booking_series "
        "WHERE id = $1",
        series_id,
    )
    if (
        row is None
        or (caller.role == "customer" and row["customer_id"] != caller.user_id)
        or (caller.cities is not None and row["city_id"] not in caller.cities)
    ):
        raise OrderNotFound(f"no series {series_id}", field="series_id")
    zone = await plan_inputs.zone_of(stores.pool, row["city_id"])
    occ = await stores.pool.fetch(
        "SELECT on_date, order_id, conflict, reason FROM series_occurrences WHERE series_id = $1 "
        "ORDER BY on_date",
        series_id,
    )
    orders = await store.by_ids(
        stores.pool, [r["order_id"] for r in occ if r["order_id"] is not None]
    )
    plans: dict[date, Any] = {}
    out = []
    preferred = row["preferred_worker_id"]
    for r in occ:
        day: date = r["on_date"]
        start = plan_inputs.midnight(day, zone) + timedelta(minutes=row["start_min"])
        end = start + timedelta(minutes=row["window_min"])
        order = orders.get(r["order_id"]) if r["order_id"] is not None else None
        conflict, reason, planned = r["conflict"], r["reason"], None
        if order is not None:
            if day not in plans:
                plans[day] = await plan_store.latest(stores.pool, row["city_id"], day)
            plan = plans[day]
            if order.status in WITH_WORKER or order.status == "completed":
                planned = order.worker_id
            elif plan is not None:
                planned = plan.worker_of(order.id)
            if order.status in ("cancelled", "failed"):
                conflict, reason = order.status, f"the order is {order.status}"
            elif planned is None and order.status not in WITH_WORKER:
                dropped = next(
                    (d for d in (plan.dropped if plan else []) if d["order_id"] == order.id),
                    None,
                )
                conflict = "dropped" if dropped else "unplanned"
                reason = (
                    f"the day plan could not fit it: {dropped['reason']}"
                    if dropped
                    else "not in the day plan yet"
                )
            elif preferred is not None and planned != preferred:
                conflict = "other_worker"
                reason = reason or f"worker {preferred} could not be kept; worker {planned} instead"
            else:
                conflict, reason = None, ""
        out.append(
            Occurrence(
                date=day,
                order_id=order.id if order else None,
                status=order.status if order else None,
                window_start=start,
                window_end=end,
                planned_worker_id=planned,
                conflict=conflict,
                reason=reason,
            )
        )
    return Series(
        id=row["id"],
        city_id=row["city_id"],
        customer_id=row["customer_id"],
        service_code=row["service_code"],
        weekdays=list(row["weekdays"]),
        start_min=row["start_min"],
        window_min=row["window_min"],
        first_date=row["first_date"],
        weeks=row["weeks"],
        preferred_worker_id=preferred,
        status=row["status"],
        created_at=row["created_at"],
        occurrences=out,
    )


async def cancel(
    stores: Stores, tracking: Publisher, series_id: int, caller: Caller, *, reason: str
) -> Series:
    """Cancel the series and every occurrence not yet under way (fees as for any order)."""
    current = await read(stores, series_id, caller)
    await stores.pool.execute(
        "UPDATE booking_series SET status = 'cancelled' WHERE id = $1", series_id
    )
    for occ in current.occurrences:
        if occ.order_id is None or occ.status not in BEFORE_SERVICE:
            continue
        if occ.status in ("en_route", "arrived"):
            continue  # under way: cancel that one by itself if you must (fees apply)
        with contextlib.suppress(Conflict, DispatchError):
            await service.act(
                stores,
                tracking,
                occ.order_id,
                "cancel",
                caller,
                reason=reason or f"series {series_id} cancelled",
            )
    return await read(stores, series_id, caller)

"""Booking, reading and acting on orders; share links for live tracking."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from starlette.responses import Response

from api.bodies import Input
from api.routes.reviews import ReviewIn
from api.routes.reviews import params as review_params
from api.routing import PUBLIC, Ctx, QueryParam, Router, encode
from catalog import service as catalog_service
from dispatch import (
    alerts,
    crews,
    offers,
    overrides,
    ratings,
    service,
    share_links,
    store,
    time_left,
)
from dispatch.alerts import Alert
from dispatch.booking import BookingParams
from dispatch.crews import CrewMember
from dispatch.engine import Engine
from dispatch.instant_gate import InstantGate
from dispatch.lifecycle import STATUSES, Action
from dispatch.models import (
    Offer,
    Order,
    OrderEvent,
    Override,
    Rating,
    Review,
    ShareLink,
    WorkerCard,
)
from dispatch.plans import DayPlans, Reservation
from dispatch.service import Caller
from doorstep.errors import InvalidInput
from tracking.service import Tracking

router = Router("orders")
PARTIES = frozenset({"customer", "worker", "dispatcher", "admin"})
CUSTOMER = frozenset({"customer"})
STAFF = frozenset({"dispatcher", "admin"})
HOLDER = frozenset({"worker", "dispatcher", "admin"})
SHARE_TTL_S = 24 * 3600

Reason = Annotated[str, msgspec.Meta(max_length=500)]


class BookIn(Input):
    """A booking: a saved address (``address_id``) or a point (``lat``/``lng``); a window for
    a scheduled booking, none for an instant one."""

    service_code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    address_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    lat: float | None = None
    lng: float | None = None
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    address_detail: Annotated[str, msgspec.Meta(max_length=200)] = ""
    contact_phone: Annotated[str, msgspec.Meta(max_length=20)] = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    notes: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    # 服务保险: take the service's insurance option (its premium joins the price breakdown)
    insured: bool = False


class ReasonIn(Input):
    """Why (kept in the order's history)."""

    reason: Reason = ""
    version: int | None = None


class CompleteIn(Input):
    """The job is done: a note, and the worker's photos of it (``job_photo`` uploads of
    their own, attached to the order in the same transaction; at most 9)."""

    reason: Reason = ""
    version: int | None = None
    photos: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]], msgspec.Meta(max_length=9)
    ] = msgspec.field(default_factory=list)


OverrideReason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
WorkerId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class AssignIn(Input):
    """A dispatcher assigns a worker; ``force`` overrides the matcher's objections."""

    worker_id: WorkerId
    reason: OverrideReason
    force: bool = False


class AssignCrewIn(Input):
    """A dispatcher assigns a crew order to ``crew_size`` different workers, the lead first;
    ``force`` overrides the matcher's objections to any of them."""

    worker_ids: Annotated[list[WorkerId], msgspec.Meta(min_length=1, max_length=8)]
    reason: OverrideReason
    force: bool = False


class ReplaceMemberIn(Input):
    """A dispatcher puts ``in_worker_id`` in ``out_worker_id``'s seat of an order's crew."""

    out_worker_id: WorkerId
    in_worker_id: WorkerId
    reason: OverrideReason
    force: bool = False


class OverrideIn(Input):
    """Why (required for every override; kept in the audit)."""

    reason: OverrideReason


class PinIn(Input):
    """Pin or unpin."""

    pinned: bool
    reason: OverrideReason


class ExcludeIn(Input):
    """Keep a worker away from this order."""

    worker_id: WorkerId
    reason: OverrideReason


class PauseIn(Input):
    """Pause or resume automatic dispatch."""

    paused: bool
    reason: OverrideReason


@dataclass(frozen=True, slots=True)
class OverrideResult:
    """The order after an override, and the audit entry."""

    order: Order
    override: Override


class RejectIn(Input):
    """Why the worker declines (shown to dispatchers)."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


RatingIn = ReviewIn  # stars 1–5 and text; dimensions, tags, photos optional (reviews.py)


class RescheduleIn(Input):
    """A new window for a scheduled order."""

    window_start: datetime
    window_end: datetime
    reason: Reason = ""
    version: int | None = None


class StartIn(Input):
    """The code the customer gives the worker on site (核销码)."""

    start_code: Annotated[str, msgspec.Meta(min_length=1, max_length=12)]


class TimeLeftIn(Input):
    """The worker's estimate on site: about ``minutes_left`` minutes until the job is done."""

    minutes_left: Annotated[int, msgspec.Meta(ge=time_left.MIN_MINUTES, le=time_left.MAX_MINUTES)]


def _caller(ctx: Ctx) -> Caller:
    """Staff (platform-wide, or limited to a grant's cities and merchants), else the
    customer or the worker the route lets in."""
    scope = ctx.scope
    if scope is not None:
        if scope.platform:
            return Caller("admin" if "admin" in ctx.user.roles else "dispatcher", ctx.user.user_id)
        return Caller("dispatcher", ctx.user.user_id, scope.cities, scope.merchants)
    for role in ("worker", "customer"):
        if role in ctx.user.roles:
            return Caller(role, ctx.user.user_id)
    raise AssertionError("route roles admit only the roles above")


async def _reach(ctx: Ctx) -> None:
    """404 unless the path's order is within the caller's scope (staff overrides)."""
    await service.visible(ctx.stores, _caller(ctx), ctx.path_int("order_id"))


def _tracking(ctx: Ctx) -> Tracking:
    tracking: Tracking = ctx.request.app.state.tracking
    return tracking


def _engine(ctx: Ctx) -> Engine:
    engine: Engine = ctx.request.app.state.engine
    return engine


@router.post(
    "/v1/orders",
    errors={
        404: "no such service",
        409: "the Idempotency-Key was used for another booking, or the slot is taken, or (instant) nobody can serve it now: nobody_can_serve with the rule and the next bookable windows",
        422: "a booking rule: the service bookable so, the window (future, past the lead time, within the horizon, long enough), the place inside a service area",
    },
    perm="orders.book",
    roles=CUSTOMER,
    body=BookIn,
    returns=Order,
    status=201,
    summary="Book a service now (instant) or in a window (scheduled: 409 slot_unavailable if nobody can come then); Idempotency-Key honoured",
)
async def book(ctx: Ctx, body: BookIn) -> Response:
    key = ctx.request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 100:
        raise InvalidInput("must be 1–100 characters", field="idempotency-key")
    plans: DayPlans = ctx.request.app.state.plans
    reservation = Reservation()
    order, created = await service.book(
        ctx.stores,
        _tracking(ctx),
        customer_id=ctx.user.user_id,
        service_code=body.service_code,
        address_id=body.address_id,
        lat=body.lat,
        lng=body.lng,
        crs=body.crs,
        detail=body.address_detail,
        contact_phone=body.contact_phone,
        window_start=body.window_start,
        window_end=body.window_end,
        notes=body.notes,
        idempotency_key=key,
        now=datetime.now(UTC),
        params=BookingParams(),
        reserve=plans.reserver(reservation),
        hold=ctx.request.app.state.aftersales.booking_hold(ctx.request.app.state.payments.hold)
        if body.insured
        else ctx.request.app.state.payments.hold,
        gate=InstantGate(plans, ctx.request.app.state.engine.match.instant_sla_s),
    )
    if created:
        await plans.after_booking(order, reservation)
    return Response(
        encode(order), status_code=201 if created else 200, media_type="application/json"
    )


@router.get(
    "/v1/orders",
    perm="orders.read",
    roles=PARTIES,
    returns=list[Order],
    query=(
        QueryParam("status", str, "only orders in this status", choices=tuple(STATUSES)),
        QueryParam("city_id", str, "staff: only this city", max_length=40),
        QueryParam(
            "before_id", int, "keyset cursor: the last id of the previous page", ge=1, le=2**62
        ),
        QueryParam("limit", int, "page size 1–200 (default 50)", ge=1, le=200),
    ),
    summary="Orders, newest first: a customer's own, a worker's jobs, all for staff",
)
async def list_orders(ctx: Ctx) -> list[Order]:
    caller = _caller(ctx)
    staff = caller.role in ("dispatcher", "admin")
    city_id = ctx.query_str("city_id") if staff else None
    if city_id is not None:
        ctx.in_city(city_id)
    orders = await store.list_for(
        ctx.stores.pool,
        customer_id=caller.user_id if caller.role == "customer" else None,
        worker_id=caller.user_id if caller.role == "worker" else None,
        city_ids=None if caller.cities is None else sorted(caller.cities),
        merchant_ids=sorted(caller.merchants),
        city_id=city_id,
        status=ctx.query_str("status", choices=frozenset(STATUSES)),
        before_id=ctx.query_int("before_id", 2**62, ge=1, le=2**62),
        limit=ctx.query_int("limit", 50, ge=1, le=200),
    )
    for o in orders:
        await service.audit_reveal(ctx.stores, o, caller)
    return [service.view(o, caller) for o in orders]


@router.get(
    "/v1/orders/{order_id}",
    perm="orders.read",
    roles=PARTIES,
    returns=Order,
    summary="One order: its customer, its worker (address only while on the job), staff",
)
async def get_order(ctx: Ctx) -> Order:
    caller = _caller(ctx)
    order = await service.visible(ctx.stores, caller, ctx.path_int("order_id"))
    await service.audit_reveal(ctx.stores, order, caller)
    return service.view(order, caller)


@router.get(
    "/v1/orders/{order_id}/crew",
    perm="orders.read",
    roles=PARTIES,
    returns=list[CrewMember],
    summary="A crew order's workers (lead first; surname + 师傅) and who has arrived",
)
async def order_crew(ctx: Ctx) -> list[CrewMember]:
    order = await service.visible(ctx.stores, _caller(ctx), ctx.path_int("order_id"))
    return await crews.members(ctx.stores.pool, order.id)


@router.get(
    "/v1/orders/{order_id}/events",
    perm="orders.read",
    roles=PARTIES,
    returns=list[OrderEvent],
    summary="An order's history: every status change with who, when and why",
)
async def order_events(ctx: Ctx) -> list[OrderEvent]:
    order = await service.visible(ctx.stores, _caller(ctx), ctx.path_int("order_id"))
    return await store.events(ctx.stores.pool, order.id)


async def _act(ctx: Ctx, action: Action, **kw: Any) -> Order:
    caller = _caller(ctx)
    order = await service.act(
        ctx.stores, _tracking(ctx), ctx.path_int("order_id"), action, caller, **kw
    )
    await service.audit_reveal(ctx.stores, order, caller)
    return service.view(order, caller)


@router.post(
    "/v1/orders/{order_id}/cancel",
    errors={409: "the order's status does not allow this"},
    perm="orders.cancel",
    roles=frozenset({"customer", "dispatcher", "admin"}),
    body=ReasonIn,
    returns=Order,
    summary="Cancel (fees by state: see the order's history)",
)
async def cancel(ctx: Ctx, body: ReasonIn) -> Order:
    return await _act(ctx, "cancel", reason=body.reason, expected_version=body.version)


@router.post(
    "/v1/orders/{order_id}/assign",
    errors={
        409: "the order's status does not allow this",
        422: "the worker cannot take this order (unknown, other city, busy, lacks a skill)",
    },
    perm="orders.override",
    roles=STAFF,
    body=AssignIn,
    returns=OverrideResult,
    summary="Assign (or reassign) a worker; 409 with warnings if infeasible unless force",
)
async def assign(ctx: Ctx, body: AssignIn) -> OverrideResult:
    await _reach(ctx)
    order, audit = await overrides.assign(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("order_id"),
        body.worker_id,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
        force=body.force,
        match=_engine(ctx).match,
    )
    return OverrideResult(order, audit)


@router.post(
    "/v1/orders/{order_id}/crew/assign",
    errors={
        409: "the order's status does not allow this, a member is busy, or (without force) the matcher objects to a member, or the crew would not arrive within [matching] crew_window_s of each other: the warnings",
        422: "not a crew order, not crew_size different workers, or a member unknown or of another city (the field names which: worker_ids[i])",
    },
    perm="orders.override",
    roles=STAFF,
    body=AssignCrewIn,
    returns=OverrideResult,
    summary="Assign (or reassign) a crew order to a whole crew, the lead first; 409 with warnings if infeasible unless force",
)
async def assign_crew(ctx: Ctx, body: AssignCrewIn) -> OverrideResult:
    await _reach(ctx)
    order, audit = await overrides.assign_crew(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("order_id"),
        body.worker_ids,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
        force=body.force,
        match=_engine(ctx).match,
    )
    return OverrideResult(order, audit)


@router.post(
    "/v1/orders/{order_id}/crew/replace",
    errors={
        409: "the newcomer is busy, the order changed meanwhile, or (without force) the matcher objects to the newcomer, or the crew would not arrive within [matching] crew_window_s of each other: the warnings",
        422: "not a crew order, not held by its crew before the start, the one leaving not in the crew, the newcomer in it already, unknown or of another city",
    },
    perm="orders.override",
    roles=STAFF,
    body=ReplaceMemberIn,
    returns=OverrideResult,
    summary="Put another worker in one member's seat of the crew holding an order (before the start)",
)
async def replace_member(ctx: Ctx, body: ReplaceMemberIn) -> OverrideResult:
    await _reach(ctx)
    order, audit = await overrides.replace_member(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("order_id"),
        body.out_worker_id,
        body.in_worker_id,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
        force=body.force,
        match=_engine(ctx).match,
    )
    return OverrideResult(order, audit)


@router.post(
    "/v1/orders/{order_id}/unassign",
    errors={409: "the order's status does not allow this"},
    perm="orders.override",
    roles=STAFF,
    body=OverrideIn,
    returns=OverrideResult,
    summary="Take the job from its worker (excluded from it) and dispatch it again",
)
async def unassign(ctx: Ctx, body: OverrideIn) -> OverrideResult:
    await _reach(ctx)
    order, audit = await overrides.unassign(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("order_id"),
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
    )
    return OverrideResult(order, audit)


@router.post(
    "/v1/orders/{order_id}/pin",
    errors={409: "the order's status does not allow this"},
    perm="orders.override",
    roles=STAFF,
    body=PinIn,
    returns=OverrideResult,
    summary="Pin an order (the engine never moves it) or unpin it",
)
async def pin(ctx: Ctx, body: PinIn) -> OverrideResult:
    await _reach(ctx)
    order, audit = await overrides.pin(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("order_id"),
        pinned=body.pinned,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
    )
    return OverrideResult(order, audit)


@router.post(
    "/v1/orders/{order_id}/exclude",
    errors={
        409: "the order's status does not allow this",
        422: "the worker is unknown or not of the order's city",
    },
    perm="orders.override",
    roles=STAFF,
    body=ExcludeIn,
    returns=Override,
    summary="Never give this order to a worker (taken from them if they hold it)",
)
async def exclude(ctx: Ctx, body: ExcludeIn) -> Override:
    await _reach(ctx)
    return await overrides.exclude(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("order_id"),
        body.worker_id,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
    )


@router.put(
    "/v1/cities/{city_id}/dispatch",
    perm="dispatch.pause",
    roles=STAFF,
    body=PauseIn,
    returns=Override,
    summary="Pause or resume automatic dispatch in a city",
)
async def pause_city(ctx: Ctx, body: PauseIn) -> Override:
    return await overrides.pause_city(
        ctx.stores,
        _tracking(ctx),
        ctx.in_city(ctx.path_str("city_id")),
        paused=body.paused,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip(),
    )


@router.get(
    "/v1/overrides",
    perm="orders.audit",
    roles=STAFF,
    returns=list[Override],
    query=(
        QueryParam("city_id", str, "only this city", max_length=40),
        QueryParam("order_id", int, "only this order", ge=1, le=2**62),
        QueryParam("limit", int, "1–500 (default 100)", ge=1, le=500),
    ),
    summary="The audit of dispatcher overrides, newest first",
)
async def list_overrides(ctx: Ctx) -> list[Override]:
    raw = ctx.request.query_params.get("order_id")
    order_id = ctx.query_int("order_id", 1, ge=1, le=2**62) if raw is not None else None
    city_id = ctx.query_str("city_id")
    return await overrides.history(
        ctx.stores,
        city_id=None if city_id is None else ctx.in_city(city_id),
        order_id=order_id,
        limit=ctx.query_int("limit", 100, ge=1, le=500),
        city_ids=None if ctx.scope is None else ctx.scope.city_list,
    )


@router.post(
    "/v1/orders/{order_id}/depart",
    errors={409: "the order's status does not allow this"},
    perm="orders.work",
    roles=HOLDER,
    body=ReasonIn,
    returns=Order,
    summary="The worker sets off (en route)",
)
async def depart(ctx: Ctx, body: ReasonIn) -> Order:
    return await _act(ctx, "depart", reason=body.reason, expected_version=body.version)


@router.post(
    "/v1/orders/{order_id}/arrive",
    errors={409: "the order's status does not allow this"},
    perm="orders.work",
    roles=HOLDER,
    body=ReasonIn,
    returns=Order,
    summary="The worker is at the door (also set by the arrival geofence)",
)
async def arrive(ctx: Ctx, body: ReasonIn) -> Order:
    return await _act(ctx, "arrive", reason=body.reason or "by hand", expected_version=body.version)


@router.post(
    "/v1/orders/{order_id}/start",
    errors={
        409: "the order's status does not allow this",
        422: "the start code is wrong",
        429: "too many wrong start codes; Retry-After says when",
    },
    perm="orders.work",
    roles=HOLDER,
    body=StartIn,
    returns=Order,
    summary="Start the service with the customer's start code (核销码)",
)
async def start(ctx: Ctx, body: StartIn) -> Order:
    return await _act(ctx, "start", start_code=body.start_code)


@router.post(
    "/v1/orders/{order_id}/time-left",
    errors={
        404: "no such order of yours (a worker), or outside your scope (staff, who may enter the worker's estimate for them)",
        409: "not_on_site: the order is not arrived or in service",
        422: "minutes_left out of 1–600, or a crew job (one member does not estimate its end)",
    },
    perm="orders.work",
    roles=HOLDER,
    body=TimeLeftIn,
    returns=Order,
    summary="On site: about N minutes left (预计还需N分钟); sets expected_end_at, which chained offers count from",
)
async def report_time_left(ctx: Ctx, body: TimeLeftIn) -> Order:
    caller = _caller(ctx)
    order = await time_left.report(
        ctx.stores,
        ctx.path_int("order_id"),
        caller,
        body.minutes_left,
        datetime.now(UTC),
        tracking=_tracking(ctx),
    )
    return service.view(order, caller)


@router.post(
    "/v1/orders/{order_id}/start/unlock",
    perm="orders.override",
    roles=STAFF,
    body=OverrideIn,
    returns=OverrideResult,
    summary="Unlock a start locked by wrong start codes (the count starts again); audited",
)
async def unlock_start(ctx: Ctx, body: OverrideIn) -> OverrideResult:
    await _reach(ctx)
    order, audit = await overrides.unlock_start(
        ctx.stores, ctx.path_int("order_id"), actor_id=ctx.user.user_id, reason=body.reason.strip()
    )
    return OverrideResult(service.view(order, _caller(ctx)), audit)


@router.post(
    "/v1/orders/{order_id}/start-code",
    perm="orders.customer",
    roles=CUSTOMER,
    returns=Order,
    summary="Replace the start code before the service starts (unlocks a locked start)",
)
async def new_start_code(ctx: Ctx) -> Order:
    return await service.reissue_start_code(ctx.stores, ctx.path_int("order_id"), _caller(ctx))


@router.get(
    "/v1/alerts",
    perm="alerts.read",
    roles=STAFF,
    returns=list[Alert],
    query=(QueryParam("city_id", str, "the city", required=True),),
    summary="A city's open dispatcher alerts (a locked start, an order overdue on site), oldest first",
)
async def list_alerts(ctx: Ctx) -> list[Alert]:
    city_id = ctx.query_str("city_id")
    if not city_id:
        raise InvalidInput("this query parameter is required", field="city_id")
    ctx.in_city(city_id)
    return await alerts.open_in(ctx.stores.pool, city_id)


@router.post(
    "/v1/alerts/{alert_id}/resolve",
    perm="alerts.resolve",
    roles=STAFF,
    returns=Alert,
    summary="Dismiss an open alert (the feed hears it resolved)",
)
async def resolve_alert(ctx: Ctx) -> Alert:
    return await alerts.dismiss(
        ctx.stores.pool,
        ctx.path_int("alert_id"),
        by=ctx.user.user_id,
        cities=None if ctx.scope is None else ctx.scope.city_list,
    )


@router.post(
    "/v1/orders/{order_id}/complete",
    errors={
        409: "the order's status does not allow this, or a photo is attached elsewhere",
        404: "no such order, or a photo that is not your job_photo upload",
    },
    perm="orders.work",
    roles=HOLDER,
    body=CompleteIn,
    returns=Order,
    summary="The service is done (with the worker's photos of it)",
)
async def complete(ctx: Ctx, body: CompleteIn) -> Order:
    if len(set(body.photos)) != len(body.photos):
        raise InvalidInput("a photo is listed twice", field="photos")
    return await _act(
        ctx,
        "complete",
        reason=body.reason,
        expected_version=body.version,
        photos=tuple(body.photos),
    )


@router.post(
    "/v1/orders/{order_id}/reschedule",
    errors={
        409: "the order's status does not allow this, or `version` is stale",
        422: "the new window breaks a booking rule (future, lead time, horizon, length)",
    },
    perm="orders.reschedule",
    roles=frozenset({"customer", "dispatcher", "admin"}),
    body=RescheduleIn,
    returns=Order,
    summary="Move a scheduled order to another window (its worker is released); 409 if nobody can come then",
)
async def reschedule(ctx: Ctx, body: RescheduleIn) -> Order:
    plans: DayPlans = ctx.request.app.state.plans
    reservation = Reservation()
    order = await _act(
        ctx,
        "reschedule",
        window=(body.window_start, body.window_end),
        reason=body.reason,
        expected_version=body.version,
        reserve=plans.reserver(reservation),
    )
    await plans.after_booking(order, reservation)
    return order


@router.post(
    "/v1/orders/{order_id}/share",
    errors={409: "the order's status does not allow this"},
    perm="orders.customer",
    roles=CUSTOMER,
    returns=ShareLink,
    status=201,
    summary="A link anyone can use to watch this order live for 24 hours (or until the job ends); 409 share_ended once it has",
)
async def share(ctx: Ctx) -> ShareLink:
    order = await service.visible(ctx.stores, _caller(ctx), ctx.path_int("order_id"))
    token, iat = await share_links.issue(
        ctx.stores, order, now=int(time.time()), ttl_s=SHARE_TTL_S, key=ctx.policy.key
    )
    page = f"/track/{order.id}?share={token}"
    return ShareLink(
        token=token,
        expires_at=datetime.fromtimestamp(iat + SHARE_TTL_S, UTC),
        path=f"/v1/ws/orders/{order.id}?share={token}",
        page_path=page,
        page_url=str(ctx.request.base_url).rstrip("/") + page,
    )


@router.delete(
    "/v1/orders/{order_id}/share",
    perm="orders.customer",
    roles=CUSTOMER,
    summary="Revoke every share link of this order issued so far (their watchers are closed)",
)
async def revoke_share(ctx: Ctx) -> None:
    await share_links.revoke(
        ctx.stores, ctx.path_int("order_id"), ctx.user.user_id, now=int(time.time())
    )


@router.get(
    "/v1/me/offers",
    perm="offers.respond",
    roles=frozenset({"worker"}),
    returns=list[Offer],
    query=(
        QueryParam(
            "pending", bool, "true (default): only offers still open; false: all, newest first"
        ),
    ),
    summary="The worker's offers, newest first",
)
async def my_offers(ctx: Ctx) -> list[Offer]:
    pending = ctx.query_str("pending", choices=frozenset({"true", "false"})) != "false"
    return await offers.for_worker(ctx.stores.pool, ctx.user.user_id, pending_only=pending)


@router.post(
    "/v1/offers/{offer_id}/accept",
    errors={409: "the offer is no longer open"},
    perm="offers.respond",
    roles=frozenset({"worker"}),
    returns=Order,
    summary="Take the offered job (first accept wins in grab mode)",
)
async def accept_offer(ctx: Ctx) -> Order:
    order = await offers.accept(
        ctx.stores, _tracking(ctx), ctx.path_int("offer_id"), ctx.user.user_id
    )
    caller = _caller(ctx)
    await service.audit_reveal(ctx.stores, order, caller)
    return service.view(order, caller)


@router.post(
    "/v1/offers/{offer_id}/reject",
    errors={409: "the offer is no longer open"},
    perm="offers.respond",
    roles=frozenset({"worker"}),
    body=RejectIn,
    summary="Decline the offered job, with a reason; it goes to someone else",
)
async def reject_offer(ctx: Ctx, body: RejectIn) -> None:
    await offers.reject(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("offer_id"),
        ctx.user.user_id,
        body.reason.strip(),
        cooldown_s=ctx.request.app.state.engine.offer.cooldown_s,
    )


@router.post(
    "/v1/orders/{order_id}/rating",
    errors={
        409: "the order is not completed, or is rated already (`already_rated`)",
        422: "a score out of 1–5, an unknown tag, a photo not yours or not an image",
    },
    perm="orders.customer",
    roles=CUSTOMER,
    body=RatingIn,
    returns=Rating,
    status=201,
    summary="Review a completed job once: stars, dimensions, text, tags, photos",
)
async def rate_order(ctx: Ctx, body: RatingIn) -> Rating:
    return await ratings.rate(
        ctx.stores,
        ctx.path_int("order_id"),
        ctx.user.user_id,
        body.stars,
        body.text,
        review=body.review(),
        params=review_params(ctx),
        now=ctx.now,
    )


@router.get(
    "/v1/services/{service_code}/reviews",
    roles=PUBLIC,
    returns=list[Review],
    query=(QueryParam("limit", int, "1..100, default 20"),),
    summary="A service's newest visible reviews (reviewer masked; aggregates: …/reviews/summary)",
)
async def service_reviews(ctx: Ctx) -> list[Review]:
    code = ctx.path_str("service_code")
    await catalog_service.get_service(ctx.stores.pool, code)  # 404 for an unknown service
    return await ratings.reviews(
        ctx.stores.pool, service_code=code, limit=ctx.query_int("limit", 20, ge=1, le=100)
    )


@router.get(
    "/v1/workers/{worker_id}/card",
    roles=PUBLIC,
    returns=WorkerCard,
    summary="A worker's public profile: surname + 师傅, photo, years, badges, ratings, reviews",
)
async def worker_card(ctx: Ctx) -> WorkerCard:
    return await ratings.worker_card(
        ctx.stores.pool, ctx.path_int("worker_id"), now=ctx.now, params=review_params(ctx)
    )


@router.get(
    "/v1/orders/{order_id}/decisions",
    perm="orders.inspect",
    roles=STAFF,
    returns=list[dict[str, Any]],
    summary="Why the engine chose whom: every candidate with each score term",
)
async def order_decisions(ctx: Ctx) -> list[dict[str, Any]]:
    await _reach(ctx)
    rows = await ctx.stores.pool.fetch(
        "SELECT id, at, policy, worker_id, decision FROM dispatch_decisions WHERE order_id = $1 "
        "ORDER BY id DESC LIMIT 20",
        ctx.path_int("order_id"),
    )
    return [dict(r) for r in rows]


@router.get(
    "/v1/orders/{order_id}/candidates",
    perm="orders.inspect",
    roles=STAFF,
    returns=dict[str, Any],
    summary="Score the order's current candidates now, without deciding (a dispatcher's preview)",
)
async def order_candidates(ctx: Ctx) -> dict[str, Any]:
    order = await service.visible(ctx.stores, _caller(ctx), ctx.path_int("order_id"))
    engine: Engine = ctx.request.app.state.engine
    now = datetime.now(UTC)
    decision = await engine.preview(order, now)
    return {
        "order_id": order.id,
        "at": now,
        "policy": decision.policy,
        "worker_id": decision.worker_id,
        "decision": orjson.loads(decision.to_json()),
    }

"""Day plans, bookable slots and recurring bookings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from accounts import store as accounts_store
from api.bodies import Input
from api.params import latitude, longitude
from api.routing import Ctx, QueryParam, Router
from catalog import service as catalog_service
from catalog.areas import city_at
from dispatch import plan_inputs, plan_store, series
from dispatch.booking import BookingParams
from dispatch.dayplan import required_skills
from dispatch.errors import InvalidOrder
from dispatch.plan_views import CityPlan, WorkerPlan, city_plan, worker_plan
from dispatch.plans import DayPlans, Slots
from dispatch.service import Caller
from doorstep import dates
from doorstep.errors import InvalidInput
from geo.coords import to_wgs84, validate_lat_lng
from tracking.service import Tracking
from workforce import service as workforce_service
from workforce.errors import WorkerNotFound

router = Router("plans")
STAFF = frozenset({"dispatcher", "admin"})
SEES_WORKER = frozenset({"admin", "dispatcher", "merchant", "worker"})
BOOKS = frozenset({"customer", "dispatcher", "admin"})
DATE = QueryParam(
    "date", str, "the local date, YYYY-MM-DD (default: today in the city)", fmt="date"
)


class ReplanIn(Input):
    """Plan a city's day again from scratch (jobs under way stay first)."""

    date: date
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class SeriesIn(Input):
    """A weekly recurring booking: a service at one address on some weekdays (0 = Monday)
    at one local time (``start_min`` after midnight, a window of ``window_min``), for
    ``weeks`` weeks from ``first_date``."""

    service_code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    weekdays: Annotated[list[int], msgspec.Meta(min_length=1, max_length=7)]
    start_min: Annotated[int, msgspec.Meta(ge=0, le=1439)]
    window_min: Annotated[int, msgspec.Meta(ge=15, le=720)]
    first_date: date
    weeks: Annotated[int, msgspec.Meta(ge=1, le=52)]
    address_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    lat: float | None = None
    lng: float | None = None
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    address_detail: Annotated[str, msgspec.Meta(max_length=200)] = ""
    contact_phone: Annotated[str, msgspec.Meta(max_length=20)] = ""
    notes: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class CancelSeriesIn(Input):
    """Why (kept in each cancelled order's history)."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


def _plans(ctx: Ctx) -> DayPlans:
    plans: DayPlans = ctx.request.app.state.plans
    return plans


def _tracking(ctx: Ctx) -> Tracking:
    tracking: Tracking = ctx.request.app.state.tracking
    return tracking


def _caller(ctx: Ctx) -> Caller:
    scope = ctx.scope
    if scope is not None and (scope.platform or scope.cities):
        if scope.platform:
            return Caller("admin" if "admin" in ctx.user.roles else "dispatcher", ctx.user.user_id)
        return Caller("dispatcher", ctx.user.user_id, scope.cities, scope.merchants)
    for role in ("worker", "customer"):
        if role in ctx.user.roles:
            return Caller(role, ctx.user.user_id)
    return Caller("worker", ctx.user.user_id)  # a merchant reads as a worker would


async def _day(ctx: Ctx, city_id: str) -> date:
    raw = ctx.request.query_params.get("date")
    if raw is None:
        zone = await plan_inputs.zone_of(ctx.stores.pool, city_id)
        return datetime.now(zone).date()
    return dates.parse_date(raw, "date")


@router.get(
    "/v1/slots",
    errors={
        404: "no such service",
        422: "a booking rule: the service bookable ahead, the date from today to the horizon, the place inside a service area, a saved address of yours",
    },
    perm="slots.read",
    roles=BOOKS,
    returns=Slots,
    query=(
        QueryParam("service_code", str, "the service to book", required=True, max_length=40),
        QueryParam("date", str, "the local date, YYYY-MM-DD", required=True, fmt="date"),
        QueryParam("address_id", int, "a saved address (or give lat and lng)", ge=1, le=2**62),
        latitude("latitude (with lng)"),
        longitude("longitude (with lat)"),
        QueryParam("crs", str, "wgs84 (default) or gcj02", choices=("wgs84", "gcj02")),
    ),
    summary="Arrival windows in which a qualified worker (a crew service: a whole crew) can come (staff also see who, at what cost)",
)
async def slots(ctx: Ctx) -> Slots:
    q = ctx.request.query_params
    code = q.get("service_code")
    if not code:
        raise InvalidInput("this query parameter is required", field="service_code")
    if q.get("date") is None:
        raise InvalidInput("this query parameter is required", field="date")
    svc = await catalog_service.get_service(ctx.stores.pool, code)
    if not svc.active or not svc.scheduled:
        raise InvalidOrder(f"service {code!r} cannot be booked ahead", field="service_code")
    staff = ctx.scope is not None
    if q.get("address_id") is not None:
        address_id = ctx.query_int("address_id", 1, ge=1, le=2**62)
        address = await accounts_store.address_by_id(ctx.stores.pool, address_id)
        if address is None or not (staff or address.user_id == ctx.user.user_id):
            raise InvalidOrder(f"no address {address_id} of yours", field="address_id")
        lat, lng = address.lat, address.lng
    else:
        lat, lng = _float(ctx, "lat"), _float(ctx, "lng")
        validate_lat_lng(lat, lng)
        crs = ctx.query_str("crs", choices=frozenset({"wgs84", "gcj02"})) or "wgs84"
        lat, lng = to_wgs84(lat, lng, crs)  # type: ignore[arg-type]
    city_id = await city_at(ctx.stores.pool, lat, lng)
    if city_id is None:
        raise InvalidOrder("this address is outside every service area", field="lat")
    ctx.in_city(city_id, "lat")
    day = await _day(ctx, city_id)
    now = datetime.now(UTC)
    params = BookingParams()
    today = now.astimezone(await plan_inputs.zone_of(ctx.stores.pool, city_id)).date()
    if not today <= day <= today + timedelta(days=params.horizon_days):
        raise InvalidInput(f"must be from today to {params.horizon_days} days ahead", field="date")
    return await _plans(ctx).slots(
        city_id=city_id,
        service_code=svc.code,
        skills=required_skills(svc.required_skills, svc.required_certificates),
        duration_min=svc.duration_min,
        lat=lat,
        lng=lng,
        day=day,
        now=now,
        earliest=now + timedelta(minutes=params.min_lead_min),
        staff=staff,
        crew_size=svc.crew_size,
    )


def _float(ctx: Ctx, name: str) -> float:
    raw = ctx.request.query_params.get(name)
    if raw is None:
        raise InvalidInput("give address_id, or lat and lng", field=name)
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput("must be a number", field=name) from None


async def _worker_plan(ctx: Ctx, worker_id: int) -> WorkerPlan:
    worker = await workforce_service.visible_worker(ctx.stores, ctx.viewer, worker_id)
    day = await _day(ctx, worker.city_id)
    plan = await plan_store.latest(ctx.stores.pool, worker.city_id, day, worker_id=worker_id)
    return await worker_plan(
        ctx.stores, plan, worker_id, viewer=_caller(ctx), city_id=worker.city_id, day=day
    )


@router.get(
    "/v1/me/plan",
    perm="plans.own",
    roles=frozenset({"worker"}),
    returns=WorkerPlan,
    query=(DATE,),
    summary="My day in order, with expected arrival times (also pushed as `plan` on the socket)",
)
async def my_plan(ctx: Ctx) -> WorkerPlan:
    try:
        return await _worker_plan(ctx, ctx.user.user_id)
    except WorkerNotFound:
        raise WorkerNotFound("you have no worker profile", field="authorization") from None


@router.get(
    "/v1/workers/{worker_id}/plan",
    perm="plans.read",
    roles=SEES_WORKER,
    returns=WorkerPlan,
    query=(DATE,),
    summary="A worker's day plan: staff, the worker's merchant, the worker themself",
)
async def a_worker_plan(ctx: Ctx) -> WorkerPlan:
    return await _worker_plan(ctx, ctx.path_int("worker_id"))


@router.get(
    "/v1/cities/{city_id}/plans",
    perm="plans.read",
    roles=STAFF,
    returns=CityPlan,
    query=(DATE,),
    summary="Every worker's route of a city's day, and the jobs that fit nowhere",
)
async def city_plans(ctx: Ctx) -> CityPlan:
    city_id = ctx.in_city(ctx.path_str("city_id"))
    day = await _day(ctx, city_id)
    plan = await plan_store.latest(ctx.stores.pool, city_id, day)
    return await city_plan(ctx.stores, plan, city_id=city_id, day=day, viewer=_caller(ctx))


@router.post(
    "/v1/cities/{city_id}/plans/replan",
    errors={422: "the date is out of the range a plan can be made for"},
    perm="plans.replan",
    roles=STAFF,
    body=ReplanIn,
    returns=CityPlan,
    summary="Plan a city's day again now (jobs under way stay first); returns the new plan",
)
async def replan(ctx: Ctx, body: ReplanIn) -> CityPlan:
    city_id = ctx.in_city(ctx.path_str("city_id"))
    today = datetime.now(await plan_inputs.zone_of(ctx.stores.pool, city_id)).date()
    # A day long past has nothing left to plan; one beyond the horizon has no bookings.
    dates.check_days_ahead(body.date, "date", today=today, ahead_days=BookingParams().horizon_days)
    stored = await _plans(ctx).replan(
        city_id, body.date, reason=body.reason.strip(), actor_id=ctx.user.user_id
    )
    return await city_plan(ctx.stores, stored, city_id=city_id, day=body.date, viewer=_caller(ctx))


@router.post(
    "/v1/series",
    errors={
        404: "no such service",
        422: "a booking rule: the service bookable ahead, the dates within range, the place inside a service area, a saved address of yours",
    },
    perm="series.book",
    roles=frozenset({"customer"}),
    body=SeriesIn,
    returns=series.Series,
    status=201,
    summary="Book a weekly recurring service; each date that cannot be kept is reported",
)
async def create_series(ctx: Ctx, body: SeriesIn) -> series.Series:
    return await series.create(
        ctx.stores,
        _tracking(ctx),
        _plans(ctx),
        customer_id=ctx.user.user_id,
        service_code=body.service_code,
        address_id=body.address_id,
        lat=body.lat,
        lng=body.lng,
        crs=body.crs,
        detail=body.address_detail,
        contact_phone=body.contact_phone,
        notes=body.notes,
        weekdays=body.weekdays,
        start_min=body.start_min,
        window_min=body.window_min,
        first_date=body.first_date,
        weeks=body.weeks,
        now=datetime.now(UTC),
        params=BookingParams(),
    )


@router.get(
    "/v1/series/{series_id}",
    perm="series.read",
    roles=BOOKS,
    returns=series.Series,
    summary="A recurring booking: each date's order, planned worker and conflict, if any",
)
async def get_series(ctx: Ctx) -> series.Series:
    return await series.read(ctx.stores, ctx.path_int("series_id"), _caller(ctx))


@router.post(
    "/v1/series/{series_id}/cancel",
    errors={409: "the series is cancelled already"},
    perm="series.cancel",
    roles=BOOKS,
    body=CancelSeriesIn,
    returns=series.Series,
    summary="Cancel a recurring booking and its dates not yet under way",
)
async def cancel_series(ctx: Ctx, body: CancelSeriesIn) -> series.Series:
    return await series.cancel(
        ctx.stores,
        _tracking(ctx),
        ctx.path_int("series_id"),
        _caller(ctx),
        reason=body.reason.strip(),
    )

"""Workers, their certificates and availability; merchant teams."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

import msgspec

from api.bodies import Input
from api.routing import Ctx, QueryParam, Router
from doorstep.errors import InvalidInput
from workforce import service, store
from workforce.errors import WorkerNotFound
from workforce.models import Certificate, DayException, Team, Window, Worker

router = Router("workforce")
ADMIN = frozenset({"admin"})
STAFF_OR_MERCHANT = frozenset({"admin", "dispatcher", "merchant"})
SEES_WORKER = frozenset({"admin", "dispatcher", "merchant", "worker"})
MANAGES_WORKER = frozenset({"admin", "merchant", "worker"})

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Skills = Annotated[list[Code], msgspec.Meta(max_length=20)]
Crs = Literal["wgs84", "gcj02"]


class HomeIn(Input):
    """Where the worker starts the day."""

    lat: float
    lng: float
    crs: Crs = "wgs84"


class WorkerIn(Input):
    """An account with the worker role and its profile (admin)."""

    phone: Annotated[str, msgspec.Meta(min_length=11, max_length=20)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    skills: Skills
    home: HomeIn
    team_id: Id | None = None


class WorkerPatchIn(Input):
    """The profile fields to change; absent ones stay."""

    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    skills: Skills | msgspec.UnsetType = msgspec.UNSET
    home: HomeIn | msgspec.UnsetType = msgspec.UNSET
    team_id: Id | msgspec.UnsetType | None = msgspec.UNSET


class WindowIn(Input):
    """A weekly window: weekday 0 = Monday; minutes from local midnight."""

    weekday: Annotated[int, msgspec.Meta(ge=0, le=6)]
    start_min: Annotated[int, msgspec.Meta(ge=0, le=1439)]
    end_min: Annotated[int, msgspec.Meta(ge=1, le=1440)]


class AvailabilityIn(Input):
    """The whole weekly pattern (replaces the old one)."""

    windows: Annotated[list[WindowIn], msgspec.Meta(max_length=50)]


class ExceptionIn(Input):
    """A day off (``available: false``) or other hours on one date."""

    available: bool
    start_min: Annotated[int, msgspec.Meta(ge=0, le=1439)] | None = None
    end_min: Annotated[int, msgspec.Meta(ge=1, le=1440)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class CertificateIn(Input):
    """A certificate to register; staff verify it before it counts."""

    kind: Code
    number: Annotated[str, msgspec.Meta(min_length=3, max_length=64)]
    issued_on: date
    expires_on: date


class CertificateStatusIn(Input):
    """Staff's verdict on a certificate."""

    status: Literal["verified", "rejected", "pending"]


class TeamIn(Input):
    """A merchant's team."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    merchant_id: Id


@router.post(
    "/v1/workers",
    roles=ADMIN,
    body=WorkerIn,
    returns=Worker,
    status=201,
    summary="Create a worker account and profile (admin)",
)
async def create_worker(ctx: Ctx, body: WorkerIn) -> Worker:
    lat, lng = service.home(body.home.lat, body.home.lng, body.home.crs)
    return await service.create_worker(
        ctx.stores,
        phone=body.phone,
        name=body.name,
        password=body.password,
        city_id=body.city_id,
        skills=body.skills,
        home_lat=lat,
        home_lng=lng,
        team_id=body.team_id,
    )


@router.get(
    "/v1/workers",
    roles=STAFF_OR_MERCHANT,
    returns=list[Worker],
    query=(
        QueryParam("city_id", str, "only this city"),
        QueryParam("team_id", int, "only this team"),
        QueryParam("skill", str, "only workers with this skill"),
        QueryParam("after_id", int, "keyset cursor"),
        QueryParam("limit", int, "page size 1–500 (default 100)"),
    ),
    summary="Workers: staff see all, a merchant only their teams'",
)
async def list_workers(ctx: Ctx) -> list[Worker]:
    raw_team = ctx.request.query_params.get("team_id")
    team_id = ctx.query_int("team_id", 0, ge=1, le=2**62) if raw_team is not None else None
    return await service.list_workers(
        ctx.stores,
        ctx.user,
        city_id=ctx.query_str("city_id"),
        team_id=team_id,
        skill=ctx.query_str("skill"),
        after_id=ctx.query_int("after_id", 0, ge=0, le=2**62),
        limit=ctx.query_int("limit", 100, ge=1, le=500),
    )


@router.get(
    "/v1/workers/{worker_id}",
    roles=SEES_WORKER,
    returns=Worker,
    summary="One worker with certificates and availability",
)
async def get_worker(ctx: Ctx) -> Worker:
    return await service.visible_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))


@router.patch(
    "/v1/workers/{worker_id}",
    roles=ADMIN,
    body=WorkerPatchIn,
    returns=Worker,
    summary="Change a worker's city, skills, home or team (admin)",
)
async def patch_worker(ctx: Ctx, body: WorkerPatchIn) -> Worker:
    fields: dict[str, Any] = {}
    if body.city_id is not msgspec.UNSET:
        fields["city_id"] = body.city_id
    if body.skills is not msgspec.UNSET:
        fields["skills"] = body.skills
    if body.team_id is not msgspec.UNSET:
        fields["team_id"] = body.team_id
    if body.home is not msgspec.UNSET:
        fields["home_lat"], fields["home_lng"] = service.home(
            body.home.lat, body.home.lng, body.home.crs
        )
    return await service.update_profile(ctx.stores, ctx.path_int("worker_id"), fields)


@router.put(
    "/v1/workers/{worker_id}/availability",
    roles=MANAGES_WORKER,
    body=AvailabilityIn,
    returns=Worker,
    summary="Replace the weekly availability (the worker, their merchant, admin)",
)
async def put_availability(ctx: Ctx, body: AvailabilityIn) -> Worker:
    worker = await service.managed_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))
    windows = [Window(w.weekday, w.start_min, w.end_min) for w in body.windows]
    return await service.set_availability(ctx.stores, worker.user_id, windows)


@router.put(
    "/v1/workers/{worker_id}/availability/exceptions/{on_date}",
    roles=MANAGES_WORKER,
    body=ExceptionIn,
    returns=Worker,
    summary="Set a day off or other hours on one date (YYYY-MM-DD)",
)
async def put_exception(ctx: Ctx, body: ExceptionIn) -> Worker:
    worker = await service.managed_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))
    on_date = _date(ctx)
    exc = DayException(on_date, body.available, body.start_min, body.end_min, body.reason.strip())
    return await service.set_exception(ctx.stores, worker.user_id, exc)


@router.delete(
    "/v1/workers/{worker_id}/availability/exceptions/{on_date}",
    roles=MANAGES_WORKER,
    summary="Remove the exception on one date",
)
async def delete_exception(ctx: Ctx) -> None:
    worker = await service.managed_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))
    on_date = _date(ctx)
    if not await store.delete_exception(ctx.stores.pool, worker.user_id, on_date):
        raise WorkerNotFound(f"no exception on {on_date}", field="on_date")


def _date(ctx: Ctx) -> date:
    raw = ctx.path_str("on_date")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("must be a date as YYYY-MM-DD", field="on_date") from None


@router.post(
    "/v1/workers/{worker_id}/certificates",
    roles=MANAGES_WORKER,
    body=CertificateIn,
    returns=Certificate,
    status=201,
    summary="Register a certificate for review",
)
async def add_certificate(ctx: Ctx, body: CertificateIn) -> Certificate:
    worker = await service.managed_worker(ctx.stores, ctx.user, ctx.path_int("worker_id"))
    return await service.add_certificate(
        ctx.stores,
        worker.user_id,
        kind=body.kind,
        number=body.number,
        issued_on=body.issued_on,
        expires_on=body.expires_on,
    )


@router.put(
    "/v1/workers/{worker_id}/certificates/{certificate_id}/status",
    roles=ADMIN,
    body=CertificateStatusIn,
    returns=Certificate,
    summary="Verify or reject a certificate (admin)",
)
async def set_certificate_status(ctx: Ctx, body: CertificateStatusIn) -> Certificate:
    cert = await store.set_certificate_status(
        ctx.stores.pool, ctx.path_int("worker_id"), ctx.path_int("certificate_id"), body.status
    )
    if cert is None:
        raise WorkerNotFound("no such certificate for this worker", field="certificate_id")
    return cert


@router.post(
    "/v1/teams",
    roles=ADMIN,
    body=TeamIn,
    returns=Team,
    status=201,
    summary="Create a merchant team (admin)",
)
async def create_team(ctx: Ctx, body: TeamIn) -> Team:
    return await service.create_team(
        ctx.stores, name=body.name, city_id=body.city_id, merchant_id=body.merchant_id
    )


@router.get(
    "/v1/teams",
    roles=STAFF_OR_MERCHANT,
    returns=list[Team],
    summary="Teams: staff see all, a merchant their own",
)
async def list_teams(ctx: Ctx) -> list[Team]:
    staff = ctx.has_role("admin", "dispatcher")
    return await store.teams(ctx.stores.pool, merchant_id=None if staff else ctx.user.user_id)


@router.get("/v1/teams/{team_id}", roles=STAFF_OR_MERCHANT, returns=Team, summary="One team")
async def get_team(ctx: Ctx) -> Team:
    return await service.visible_team(ctx.stores, ctx.user, ctx.path_int("team_id"))

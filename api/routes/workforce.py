"""Workers, their certificates and availability; merchant teams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from api.bodies import Input
from api.routes.accounts import PASSWORD_RULES, NewPassword, Phone
from api.routing import Ctx, QueryParam, Router
from doorstep import dates
from onboarding import certificates
from workforce import service, store
from workforce.errors import WorkerNotFound
from workforce.models import Certificate, DayException, Team, Window, Worker

router = Router("workforce")
CERTIFIED_SINCE = date(1950, 1, 1)  # a licence may be decades old, not centuries
ADMIN = frozenset({"admin"})
STAFF_OR_MERCHANT = frozenset({"admin", "dispatcher", "merchant"})
SEES_WORKER = frozenset({"admin", "dispatcher", "merchant", "worker"})
MANAGES_WORKER = frozenset({"admin", "merchant", "worker"})
REVIEWS_CERTIFICATES = frozenset({"admin", "reviewer"})

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

    phone: Phone
    password: NewPassword
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
    """Staff's verdict on a certificate; rejecting or asking to re-verify says why."""

    status: Literal["verified", "rejected", "pending", "reverify"]
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class RenewalIn(Input):
    """A renewed certificate: the new scan (an upload with purpose certificate), number
    and dates."""

    number: Annotated[str, msgspec.Meta(min_length=3, max_length=64)]
    issued_on: date
    expires_on: date
    file_id: Id


@dataclass(frozen=True, slots=True)
class CertificateStep:
    """One change of a certificate's state."""

    at: datetime
    actor_id: int | None
    status: str
    reason: str


class TeamIn(Input):
    """A merchant's team."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    merchant_id: Id


@router.post(
    "/v1/workers",
    perm="workers.create",
    roles=ADMIN,
    body=WorkerIn,
    returns=Worker,
    status=201,
    errors={409: "the phone already has an account", 422: PASSWORD_RULES},
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
    perm="workers.read",
    roles=STAFF_OR_MERCHANT,
    returns=list[Worker],
    query=(
        QueryParam("city_id", str, "only this city", max_length=40),
        QueryParam("team_id", int, "only this team", ge=1, le=2**62),
        QueryParam("skill", str, "only workers with this skill", max_length=40),
        QueryParam("after_id", int, "keyset cursor", ge=0, le=2**62),
        QueryParam("limit", int, "page size 1–500 (default 100)", ge=1, le=500),
    ),
    summary="Workers: staff see all, a merchant only their teams'",
)
async def list_workers(ctx: Ctx) -> list[Worker]:
    city_id = ctx.query_str("city_id")
    if city_id is not None and ctx.staff:
        ctx.in_city(city_id)
    raw_team = ctx.request.query_params.get("team_id")
    team_id = ctx.query_int("team_id", 0, ge=1, le=2**62) if raw_team is not None else None
    return await service.list_workers(
        ctx.stores,
        ctx.viewer,
        city_id=ctx.query_str("city_id"),
        team_id=team_id,
        skill=ctx.query_str("skill"),
        after_id=ctx.query_int("after_id", 0, ge=0, le=2**62),
        limit=ctx.query_int("limit", 100, ge=1, le=500),
    )


@router.get(
    "/v1/workers/{worker_id}",
    perm="workers.read",
    roles=SEES_WORKER,
    returns=Worker,
    summary="One worker with certificates and availability",
)
async def get_worker(ctx: Ctx) -> Worker:
    return await service.visible_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))


@router.patch(
    "/v1/workers/{worker_id}",
    errors={422: "an unknown city, team or skill"},
    perm="workers.edit",
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
    errors={422: "a window ends before it starts, or windows overlap"},
    perm="workers.schedule",
    roles=MANAGES_WORKER,
    body=AvailabilityIn,
    returns=Worker,
    summary="Replace the weekly availability (the worker, their merchant, admin)",
)
async def put_availability(ctx: Ctx, body: AvailabilityIn) -> Worker:
    worker = await service.managed_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    windows = [Window(w.weekday, w.start_min, w.end_min) for w in body.windows]
    return await service.set_availability(ctx.stores, worker.user_id, windows)


@router.put(
    "/v1/workers/{worker_id}/availability/exceptions/{on_date}",
    errors={422: "a window ends before it starts, or the date is out of range"},
    perm="workers.schedule",
    roles=MANAGES_WORKER,
    body=ExceptionIn,
    returns=Worker,
    summary="Set a day off or other hours on one date (YYYY-MM-DD)",
)
async def put_exception(ctx: Ctx, body: ExceptionIn) -> Worker:
    worker = await service.managed_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    on_date = _date(ctx)
    exc = DayException(on_date, body.available, body.start_min, body.end_min, body.reason.strip())
    return await service.set_exception(ctx.stores, worker.user_id, exc)


@router.delete(
    "/v1/workers/{worker_id}/availability/exceptions/{on_date}",
    perm="workers.schedule",
    roles=MANAGES_WORKER,
    summary="Remove the exception on one date",
)
async def delete_exception(ctx: Ctx) -> None:
    worker = await service.managed_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    on_date = _date(ctx)
    if not await store.delete_exception(ctx.stores.pool, worker.user_id, on_date):
        raise WorkerNotFound(f"no exception on {on_date}", field="on_date")


def _date(ctx: Ctx) -> date:
    return dates.parse_date(ctx.path_str("on_date"), "on_date")


@router.post(
    "/v1/workers/{worker_id}/certificates",
    errors={422: "an unknown certificate kind, or dates out of order"},
    perm="workers.certificates",
    roles=MANAGES_WORKER,
    body=CertificateIn,
    returns=Certificate,
    status=201,
    summary="Register a certificate for review",
)
async def add_certificate(ctx: Ctx, body: CertificateIn) -> Certificate:
    worker = await service.managed_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    return await service.add_certificate(
        ctx.stores,
        worker.user_id,
        kind=body.kind,
        number=body.number,
        issued_on=dates.check_date(body.issued_on, "issued_on", earliest=CERTIFIED_SINCE),
        expires_on=dates.check_date(body.expires_on, "expires_on"),
    )


@router.put(
    "/v1/workers/{worker_id}/certificates/{certificate_id}/status",
    perm="workers.review",
    roles=REVIEWS_CERTIFICATES,
    body=CertificateStatusIn,
    returns=Certificate,
    errors={422: "rejected or reverify without a reason"},
    summary="Verify, reject or ask to re-verify a certificate, with a reason (admin, reviewer)",
)
async def set_certificate_status(ctx: Ctx, body: CertificateStatusIn) -> Certificate:
    worker = await service.visible_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    return await certificates.set_status(
        ctx.stores,
        ctx.user,
        worker.user_id,
        ctx.path_int("certificate_id"),
        body.status,
        body.reason,
    )


@router.post(
    "/v1/workers/{worker_id}/certificates/{certificate_id}/renewal",
    perm="workers.certificates",
    roles=MANAGES_WORKER,
    body=RenewalIn,
    returns=Certificate,
    status=201,
    errors={
        409: "the certificate was rejected, or the new number is registered already",
        422: "dates out of order or not past the current expiry; the scan of the wrong type or size",
    },
    summary="Renew a certificate: a new scan, number and dates, pending until verified",
)
async def renew_certificate(ctx: Ctx, body: RenewalIn) -> Certificate:
    worker = await service.managed_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    return await certificates.renew(
        ctx.stores,
        ctx.user,
        worker.user_id,
        ctx.path_int("certificate_id"),
        number=body.number,
        issued_on=dates.check_date(body.issued_on, "issued_on", earliest=CERTIFIED_SINCE),
        expires_on=dates.check_date(body.expires_on, "expires_on"),
        file_id=body.file_id,
    )


@router.get(
    "/v1/workers/{worker_id}/certificates/{certificate_id}/steps",
    perm="workers.read",
    roles=SEES_WORKER,
    returns=list[CertificateStep],
    summary="A certificate's states with their reasons, oldest first",
)
async def certificate_steps(ctx: Ctx) -> list[CertificateStep]:
    worker = await service.visible_worker(ctx.stores, ctx.viewer, ctx.path_int("worker_id"))
    rows = await certificates.steps(ctx.stores, worker.user_id, ctx.path_int("certificate_id"))
    return [CertificateStep(**r) for r in rows]  # type: ignore[arg-type]


@router.post(
    "/v1/teams",
    errors={422: "the merchant is not a merchant, or the city is unknown"},
    perm="teams.create",
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
    perm="teams.read",
    roles=STAFF_OR_MERCHANT,
    returns=list[Team],
    summary="Teams: staff see all, a merchant their own",
)
async def list_teams(ctx: Ctx) -> list[Team]:
    scope = ctx.scope
    found = await store.teams(ctx.stores.pool, merchant_id=None)
    if scope is None:
        return []
    return [t for t in found if scope.has_city(t.city_id) or scope.has_merchant(t.merchant_id)]


@router.get(
    "/v1/teams/{team_id}",
    perm="teams.read",
    roles=STAFF_OR_MERCHANT,
    returns=Team,
    summary="One team",
)
async def get_team(ctx: Ctx) -> Team:
    return await service.visible_team(ctx.stores, ctx.viewer, ctx.path_int("team_id"))

"""Safety: SOS from the apps, the dispatchers' safety alerts, emergency contacts, the
emergency contacts' live link (docs/safety.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec
from starlette.responses import Response

from api.bodies import Input
from api.routes.pages import _page
from api.routing import ANY_ROLE, PUBLIC, STAFF, Ctx, QueryParam, Router
from audit import store as audit_store
from audit.chain import Entry
from dispatch.reveals import Reveal, list_reveals
from doorstep.errors import InvalidInput
from safety import rules
from safety import store as safety_store
from safety.errors import AlertNotFound
from safety.service import LiveView, SafetyDesk
from safety.store import Contact, SafetyAlert

router = Router("safety")
RAISERS = frozenset({"worker", "customer"})


class SosIn(Input):
    """An SOS: the order it concerns (required from a customer; a worker's defaults to
    the job they hold), where the phone is if it knows (else the live position or the
    order's address), and a note."""

    order_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    lat: float | None = None
    lng: float | None = None
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


@dataclass(frozen=True, slots=True)
class SosOut:
    """The alert the SOS opened (or repeated: a flood is one alert, never dropped)."""

    alert_id: int
    repeat: bool
    repeats: int
    contacts_told: int
    acknowledged: bool


class ResolveIn(Input):
    """What was done (kept with the alert)."""

    resolution: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ContactIn(Input):
    """One emergency contact."""

    name: Annotated[str, msgspec.Meta(max_length=40)]
    phone: Annotated[str, msgspec.Meta(max_length=20)]


class ContactsIn(Input):
    """The whole list (at most three), replacing the old one."""

    contacts: Annotated[list[ContactIn], msgspec.Meta(max_length=rules.MAX_CONTACTS)]


def _desk(ctx: Ctx) -> SafetyDesk:
    desk: SafetyDesk = ctx.request.app.state.safety
    return desk


@router.post(
    "/v1/sos",
    perm="safety.write",
    roles=RAISERS,
    body=SosIn,
    returns=SosOut,
    errors={404: "the order is not the caller's (`order_not_found`)"},
    summary="Raise an SOS (the worker's app, the customer's order page): never rate-limited; "
    "a repeat counts on the open alert",
)
async def raise_sos(ctx: Ctx, body: SosIn) -> SosOut:
    rules.check_position(body.lat, body.lng)
    result = await _desk(ctx).sos(
        ctx.user.user_id,
        ctx.user.roles,
        order_id=body.order_id,
        lat=body.lat,
        lng=body.lng,
        note=body.note.strip(),
        source="customer_app" if "worker" not in ctx.user.roles else "worker_app",
    )
    a = result.alert
    return SosOut(
        a.id, result.repeat, a.repeats, result.contacts_told, a.acknowledged_at is not None
    )


@router.get(
    "/v1/safety/alerts",
    perm="safety.alerts",
    roles=STAFF,
    returns=list[SafetyAlert],
    query=(QueryParam("city_id", str, "the city", required=True, max_length=40),),
    summary="A city's open safety alerts (SOS first, then trail anomalies, oldest first)",
)
async def list_alerts(ctx: Ctx) -> list[SafetyAlert]:
    city_id = ctx.query_str("city_id")
    if not city_id:
        raise InvalidInput("this query parameter is required", field="city_id")
    return await _desk(ctx).open_alerts(ctx.in_city(city_id))


async def _alert_in_scope(ctx: Ctx) -> int:
    """The alert's id if the caller's scope reaches its city (another city's: 404)."""
    alert_id = ctx.path_int("alert_id")
    found = await safety_store.get(ctx.stores.pool, alert_id)
    if found is not None and not ctx.reaches(found.city_id):
        raise AlertNotFound(f"no safety alert {alert_id}", field="alert_id")
    return alert_id


@router.post(
    "/v1/safety/alerts/{alert_id}/ack",
    perm="safety.alerts.handle",
    roles=STAFF,
    returns=SafetyAlert,
    errors={409: "already acknowledged or resolved (`already_handled`)"},
    summary="Acknowledge a safety alert (dispatchers and admins): its escalation stops",
)
async def acknowledge(ctx: Ctx) -> SafetyAlert:
    return await _desk(ctx).acknowledge(await _alert_in_scope(ctx), by=ctx.user.user_id)


@router.post(
    "/v1/safety/alerts/{alert_id}/resolve",
    perm="safety.alerts.handle",
    roles=STAFF,
    body=ResolveIn,
    returns=SafetyAlert,
    errors={409: "already resolved (`already_handled`)"},
    summary="Resolve a safety alert with what was done",
)
async def resolve(ctx: Ctx, body: ResolveIn) -> SafetyAlert:
    return await _desk(ctx).resolve(
        await _alert_in_scope(ctx), by=ctx.user.user_id, resolution=body.resolution.strip()
    )


@router.get(
    "/v1/safety/alerts/{alert_id}/live",
    roles=PUBLIC,
    returns=LiveView,
    query=(QueryParam("t", str, "the live link's token (SMS)", required=True, max_length=4096),),
    errors={401: "the link is invalid or expired (`invalid_sos_link`)"},
    summary="What an emergency contact's live link shows: the person's last position and trail",
)
async def live(ctx: Ctx) -> LiveView:
    alert_id = ctx.path_int("alert_id")
    token = ctx.query_str("t") or ""
    rules.verify_link(token, alert_id=alert_id, now=ctx.now, key=ctx.policy.key)
    return await _desk(ctx).live_view(alert_id)


@router.get(
    "/v1/me/emergency-contacts",
    perm="safety.read",
    roles=ANY_ROLE,
    returns=list[Contact],
    summary="The caller's emergency contacts (told by SMS, with a live link, on an SOS)",
)
async def get_contacts(ctx: Ctx) -> list[Contact]:
    return await _desk(ctx).contacts(ctx.user.user_id)


@router.put(
    "/v1/me/emergency-contacts",
    perm="safety.write",
    roles=ANY_ROLE,
    body=ContactsIn,
    returns=list[Contact],
    summary="Replace the caller's emergency contacts (at most three mainland mobiles)",
)
async def put_contacts(ctx: Ctx, body: ContactsIn) -> list[Contact]:
    return await _desk(ctx).save_contacts(
        ctx.user.user_id, [(c.name, c.phone) for c in body.contacts]
    )


@router.get(
    "/sos/{alert_id}",
    roles=PUBLIC,
    returns=str,
    media_type="text/html",
    query=(
        QueryParam("t", str, "the live link's token", max_length=4096),
        QueryParam("lang", str, "zh (default) or en", choices=("zh", "en")),
    ),
    summary="The emergency contact's live page (the SMS's link)",
)
async def sos_page(ctx: Ctx) -> Response:
    ctx.path_int("alert_id")
    return _page("sos.html")


ADMIN = frozenset({"admin"})


@router.get(
    "/v1/admin/reveals",
    perm="safety.read",
    roles=ADMIN,
    returns=list[Reveal],
    query=(
        QueryParam("order_id", int, "only this order", ge=1, le=2**63 - 1),
        QueryParam("worker_id", int, "only this worker", ge=1, le=2**63 - 1),
        QueryParam("before_id", int, "page: reveals older than this id", ge=1, le=2**63 - 1),
        QueryParam("limit", int, "at most this many (default 100)", ge=1, le=500),
    ),
    summary="Address reveals (which worker was shown a customer's address and phone), newest first",
)
async def reveals(ctx: Ctx) -> list[Reveal]:
    def opt(name: str) -> int | None:
        raw = ctx.request.query_params.get(name)
        return ctx.query_int(name, 0, ge=1, le=2**63 - 1) if raw is not None else None

    return await list_reveals(
        ctx.stores.pool,
        order_id=opt("order_id"),
        worker_id=opt("worker_id"),
        before_id=opt("before_id"),
        limit=ctx.query_int("limit", 100, ge=1, le=500),
    )


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The audit chain's verification (``doorstep audit verify`` as a route)."""

    ok: bool
    checked: int
    last_seq: int
    last_hash: str
    problem: str | None
    seq: int | None
    message: str | None


@router.get(
    "/v1/admin/audit",
    perm="safety.read",
    roles=ADMIN,
    returns=list[Entry],
    query=(
        QueryParam("subject", str, "e.g. order:42, user:7", required=True, max_length=80),
        QueryParam("limit", int, "at most this many (default 100)", ge=1, le=500),
    ),
    summary="A subject's audit entries (overrides, reveals, freezes, …), newest first",
)
async def audit_entries(ctx: Ctx) -> list[Entry]:
    subject = ctx.query_str("subject") or ""
    if not subject:
        raise InvalidInput("this query parameter is required", field="subject")
    return await audit_store.of_subject(
        ctx.stores.pool, subject, limit=ctx.query_int("limit", 100, ge=1, le=500)
    )


@router.get(
    "/v1/admin/audit/verify",
    perm="safety.read",
    roles=ADMIN,
    returns=AuditCheck,
    summary="Verify the audit log's hash chain; names the first entry changed or deleted",
)
async def audit_verify(ctx: Ctx) -> AuditCheck:
    report = await audit_store.check(ctx.stores.pool)
    f = report.finding
    return AuditCheck(
        report.ok,
        report.checked,
        report.last_seq,
        report.last_hash,
        f.problem if f else None,
        f.seq if f else None,
        f.message if f else None,
    )

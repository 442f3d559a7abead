"""After-sales: tickets, the customer-service queue, evidence, outcomes, disputes and
their ruling, insurance claims, spot checks. Thin: aftersales/ decides. docs/aftersales.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from aftersales import rules
from aftersales.models import (
    Evidence,
    Insurance,
    Question,
    Sampled,
    SpotCheck,
    Ticket,
    TicketDetail,
)
from aftersales.rules import Resolution
from aftersales.service import Aftersales, Who
from api.bodies import Input
from api.routing import PUBLIC, Ctx, QueryParam, Router
from catalog import service as catalog_service

router = Router("aftersales")
CUSTOMER = frozenset({"customer"})
PARTIES = frozenset({"customer", "worker", "dispatcher", "admin"})
SIDES = frozenset({"customer", "worker"})
STAFF = frozenset({"dispatcher", "admin"})
ADMIN = frozenset({"admin"})
READ, WRITE = "aftersales.read", "aftersales.write"

FileId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Photos = Annotated[list[FileId], msgspec.Meta(max_length=20)]
Fen = Annotated[int, msgspec.Meta(ge=1, le=10**10)]
Text = Annotated[str, msgspec.Meta(max_length=4000)]


class OpenIn(Input):
    """A ticket: its kind (redo, refund, compensation, damage, complaint), what happened,
    what the customer asks (fen, optional), photos (``aftersales_evidence`` uploads)."""

    kind: Annotated[str, msgspec.Meta(max_length=20)] = ""
    description: Text = ""
    asked_fen: Fen | None = None
    photos: Photos = msgspec.field(default_factory=list)


class MessageIn(Input):
    """A message on a ticket, with photos."""

    body: Text = ""
    photos: Photos = msgspec.field(default_factory=list)


class StatementIn(Input):
    """A party's statement in a dispute, with photos (once per side)."""

    text: Text = ""
    photos: Photos = msgspec.field(default_factory=list)


class ResolveIn(Input):
    """The outcomes: a refund (never more than paid), compensation (ledger), a redo (same
    or another worker), the worker at fault (a complaint on their quality) and a warning."""

    refund_fen: Fen | None = None
    compensation_fen: Fen | None = None
    redo: Literal["same", "other"] | None = None
    worker_at_fault: bool = False
    warning: bool = False
    note: Annotated[str, msgspec.Meta(max_length=1000)] = ""

    def resolution(self) -> Resolution:
        """The pure rules' shape."""
        return Resolution(
            self.refund_fen,
            self.compensation_fen,
            self.redo,
            self.worker_at_fault,
            self.warning,
            self.note,
        )


class RulingIn(ResolveIn):
    """An admin's ruling on a dispute: for whom, why, and the outcomes (none for the worker)."""

    in_favour: Annotated[str, msgspec.Meta(max_length=20)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ReasonIn(Input):
    """Why."""

    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class AssessIn(Input):
    """The damage as assessed (fen, at most the order's coverage)."""

    assessed_fen: Fen
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class DecideIn(Input):
    """Pay the assessed claim, or reject it with a reason."""

    pay: bool
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class SpotIn(Input):
    """A call-back's result: the customer reached (then every answer), a note."""

    reached: bool = True
    answers: dict[str, Any] = msgspec.field(default_factory=dict)
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class SampleIn(Input):
    """A spot-check run now for the last whole period; ``seed`` to reproduce a sample."""

    seed: Annotated[int, msgspec.Meta(ge=0, le=2**62)] | None = None


class InsuranceIn(Input):
    """A service's insurance option: premium and coverage (fen), offered or not."""

    premium_fen: Fen
    coverage_fen: Fen
    active: bool = True


class Escalated(msgspec.Struct):
    """How many tickets went up a level."""

    escalated: int


def desk(ctx: Ctx) -> Aftersales:
    """The app's after-sales desk."""
    found: Aftersales = ctx.request.app.state.aftersales
    return found


def who(ctx: Ctx) -> Who:
    """Staff (platform-wide, or a grant's cities and merchants), else the customer or the
    worker the route lets in."""
    scope = ctx.scope
    admin = "admin" in ctx.user.roles
    if scope is not None:
        cities = None if scope.platform else scope.cities
        return Who(ctx.user.user_id, "staff", cities, scope.merchants, admin=admin)
    if "customer" in ctx.user.roles:
        return Who(ctx.user.user_id, "customer")
    return Who(ctx.user.user_id, "worker")


def now(ctx: Ctx) -> datetime:
    """The request's time."""
    return datetime.fromtimestamp(ctx.now, UTC)


@router.post(
    "/v1/orders/{order_id}/aftersales",
    perm=WRITE,
    roles=CUSTOMER,
    body=OpenIn,
    returns=TicketDetail,
    status=201,
    errors={
        404: "not your order",
        409: "an open ticket of this kind exists (`ticket_state`)",
        422: "outside the after-sales window or not completed (`outside_window`); an unknown kind; evidence not an image of yours",
    },
    summary="Open an after-sales ticket on a completed order within the window (holds its settlement)",
)
async def open_ticket(ctx: Ctx, body: OpenIn) -> TicketDetail:
    return await desk(ctx).open(
        who(ctx),
        ctx.path_int("order_id"),
        kind=body.kind,
        description=body.description,
        asked_fen=body.asked_fen,
        photos=body.photos,
        now=now(ctx),
    )


@router.get(
    "/v1/orders/{order_id}/aftersales",
    perm=READ,
    roles=PARTIES,
    returns=list[Ticket],
    summary="An order's after-sales tickets (its customer, its worker, staff)",
)
async def order_tickets(ctx: Ctx) -> list[Ticket]:
    return await desk(ctx).of_order(who(ctx), ctx.path_int("order_id"), now(ctx))


@router.get(
    "/v1/me/aftersales",
    perm=READ,
    roles=SIDES,
    returns=list[Ticket],
    query=(QueryParam("limit", int, "at most this many, 1–200 (default 50)", ge=1, le=200),),
    summary="My after-sales tickets (a customer's, or those on a worker's jobs), newest first",
)
async def my_tickets(ctx: Ctx) -> list[Ticket]:
    return await desk(ctx).mine(who(ctx), now(ctx), ctx.query_int("limit", 50, ge=1, le=200))


@router.get(
    "/v1/aftersales/queue",
    perm=READ,
    roles=STAFF,
    returns=list[Ticket],
    query=(
        QueryParam(
            "status",
            str,
            "open (default: open, in_progress and disputed), or one status",
            choices=("open", "in_progress", "disputed", "resolved", "rejected", "withdrawn"),
        ),
        QueryParam("limit", int, "at most this many, 1–500 (default 100)", ge=1, le=500),
    ),
    summary="Customer service's queue with SLA timers, the nearest deadline first",
)
async def queue(ctx: Ctx) -> list[Ticket]:
    status = ctx.query_str("status")
    statuses = rules.OPEN if status is None else (status,)
    return await desk(ctx).queue(
        who(ctx), statuses, now(ctx), ctx.query_int("limit", 100, ge=1, le=500)
    )


@router.get(
    "/v1/aftersales/tickets/{ticket_id}",
    perm=READ,
    roles=PARTIES,
    returns=TicketDetail,
    summary="A ticket: notes, outcomes, ruling, claim, timers (its customer, its worker, staff)",
)
async def ticket(ctx: Ctx) -> TicketDetail:
    return await desk(ctx).detail(who(ctx), ctx.path_int("ticket_id"), now(ctx))


@router.get(
    "/v1/aftersales/tickets/{ticket_id}/evidence",
    perm=READ,
    roles=STAFF,
    returns=Evidence,
    summary="A ticket's evidence: photos, the order's timeline, the worker's trail of the job",
)
async def evidence(ctx: Ctx) -> Evidence:
    return await desk(ctx).evidence(who(ctx), ctx.path_int("ticket_id"))


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/messages",
    perm=WRITE,
    roles=PARTIES,
    body=MessageIn,
    returns=TicketDetail,
    status=201,
    errors={409: "the ticket is closed", 422: "a blank message; a photo not an image of yours"},
    summary="A message on a ticket (staff's first one is the first response)",
)
async def message(ctx: Ctx, body: MessageIn) -> TicketDetail:
    return await desk(ctx).message(
        who(ctx), ctx.path_int("ticket_id"), body.body, body.photos, now(ctx)
    )


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/statements",
    perm=WRITE,
    roles=SIDES,
    body=StatementIn,
    returns=TicketDetail,
    status=201,
    errors={
        409: "this side stated already, or the ticket is closed",
        422: "a blank statement; a photo not an image of yours",
    },
    summary="The customer's or the worker's statement: the ticket becomes a dispute",
)
async def statement(ctx: Ctx, body: StatementIn) -> TicketDetail:
    return await desk(ctx).statement(
        who(ctx), ctx.path_int("ticket_id"), body.text, body.photos, now(ctx)
    )


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/resolve",
    perm=WRITE,
    roles=STAFF,
    body=ResolveIn,
    returns=TicketDetail,
    errors={
        409: "closed, or disputed (an admin rules it)",
        422: "a refund above what was paid (`refund_fen`), compensation above the cap",
    },
    summary="Resolve a ticket: refund, compensation, redo, the worker's quality (one transaction, audited)",
)
async def resolve(ctx: Ctx, body: ResolveIn) -> TicketDetail:
    return await desk(ctx).resolve(who(ctx), ctx.path_int("ticket_id"), body.resolution(), now(ctx))


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/reject",
    perm=WRITE,
    roles=STAFF,
    body=ReasonIn,
    returns=TicketDetail,
    errors={409: "closed, or disputed", 422: "no reason"},
    summary="Turn a ticket down with a reason (audited)",
)
async def reject(ctx: Ctx, body: ReasonIn) -> TicketDetail:
    return await desk(ctx).reject(who(ctx), ctx.path_int("ticket_id"), body.reason, now(ctx))


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/withdraw",
    perm=WRITE,
    roles=CUSTOMER,
    returns=TicketDetail,
    errors={409: "closed or disputed"},
    summary="The customer withdraws their ticket",
)
async def withdraw(ctx: Ctx) -> TicketDetail:
    return await desk(ctx).withdraw(who(ctx), ctx.path_int("ticket_id"), now(ctx))


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/ruling",
    perm=WRITE,
    roles=ADMIN,
    body=RulingIn,
    returns=TicketDetail,
    errors={
        409: "ruled already (`already_ruled`), or not disputed",
        422: "in_favour not customer/worker/split; outcomes for the worker; no reason",
    },
    summary="An admin rules a dispute, once: outcomes and the ruling in one audited transaction",
)
async def ruling(ctx: Ctx, body: RulingIn) -> TicketDetail:
    return await desk(ctx).rule(
        who(ctx),
        ctx.path_int("ticket_id"),
        body.in_favour,
        body.reason,
        body.resolution(),
        now(ctx),
    )


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/claim/assess",
    perm=WRITE,
    roles=STAFF,
    body=AssessIn,
    returns=TicketDetail,
    errors={409: "the claim is not waiting for assessment", 422: "above the coverage"},
    summary="Assess an insurance claim's damage (up to the order's coverage)",
)
async def assess(ctx: Ctx, body: AssessIn) -> TicketDetail:
    return await desk(ctx).assess_claim(
        who(ctx), ctx.path_int("ticket_id"), body.assessed_fen, body.note, now(ctx)
    )


@router.post(
    "/v1/aftersales/tickets/{ticket_id}/claim/decide",
    perm=WRITE,
    roles=ADMIN,
    body=DecideIn,
    returns=TicketDetail,
    errors={409: "not assessed, or decided already", 422: "a rejection without a reason"},
    summary="Pay an assessed claim from the insurance fund (ledger), or reject it with a reason",
)
async def decide(ctx: Ctx, body: DecideIn) -> TicketDetail:
    return await desk(ctx).decide_claim(
        who(ctx), ctx.path_int("ticket_id"), body.pay, body.reason, now(ctx)
    )


@router.post(
    "/v1/aftersales/escalations/run",
    perm=WRITE,
    roles=ADMIN,
    returns=Escalated,
    summary="Run the SLA escalation now (the job runs it every minute)",
)
async def run_escalations(ctx: Ctx) -> Escalated:
    return Escalated(await desk(ctx).escalate_due(now(ctx)))


@router.get(
    "/v1/aftersales/questionnaire",
    perm=READ,
    roles=STAFF,
    returns=list[Question],
    summary="The spot-check call-back questionnaire",
)
async def questionnaire(ctx: Ctx) -> list[Question]:
    return [Question(key=q.key, zh=q.zh, en=q.en, kind=q.kind) for q in rules.QUESTIONNAIRE]


@router.get(
    "/v1/aftersales/spot-checks",
    perm=READ,
    roles=STAFF,
    returns=list[SpotCheck],
    query=(
        QueryParam(
            "status",
            str,
            "pending, done or unreachable",
            choices=("pending", "done", "unreachable"),
        ),
        QueryParam("limit", int, "at most this many, 1–500 (default 100)", ge=1, le=500),
    ),
    summary="Spot-check call-back tasks, oldest first",
)
async def spot_checks(ctx: Ctx) -> list[SpotCheck]:
    return await desk(ctx).spot_checks(
        who(ctx), ctx.query_str("status"), ctx.query_int("limit", 100, ge=1, le=500)
    )


@router.post(
    "/v1/aftersales/spot-checks/run",
    perm=WRITE,
    roles=ADMIN,
    body=SampleIn,
    returns=Sampled,
    summary="Sample the last whole period's completed orders now (the job runs daily; seeded)",
)
async def run_spot_checks(ctx: Ctx, body: SampleIn) -> Sampled:
    return await desk(ctx).sample_spot_checks(now(ctx), seed=body.seed)


@router.post(
    "/v1/aftersales/spot-checks/{spot_id}",
    perm=WRITE,
    roles=STAFF,
    body=SpotIn,
    returns=SpotCheck,
    errors={409: "done already", 422: "an answer missing or of the wrong kind"},
    summary="Record a call-back: the answers' verdict feeds the worker's quality score",
)
async def record_spot_check(ctx: Ctx, body: SpotIn) -> SpotCheck:
    return await desk(ctx).record_spot_check(
        who(ctx),
        ctx.path_int("spot_id"),
        reached=body.reached,
        answers=body.answers,
        note=body.note,
        now=now(ctx),
    )


@router.put(
    "/v1/admin/services/{service_code}/insurance",
    perm=WRITE,
    roles=ADMIN,
    body=InsuranceIn,
    returns=Insurance,
    errors={422: "an unknown service; a premium not below the coverage"},
    summary="A service's insurance option (服务保险): premium and coverage in fen",
)
async def set_insurance(ctx: Ctx, body: InsuranceIn) -> Insurance:
    return await desk(ctx).set_insurance(
        ctx.path_str("service_code"),
        body.premium_fen,
        body.coverage_fen,
        body.active,
        ctx.user.user_id,
    )


@router.get(
    "/v1/services/{service_code}/insurance",
    roles=PUBLIC,
    returns=Insurance,
    summary="A service's insurance option (active false, amounts 0: it offers none); 404 for an unknown service",
)
async def get_insurance(ctx: Ctx) -> Insurance:
    code = ctx.path_str("service_code")
    await catalog_service.get_service(ctx.stores.pool, code)
    found = await desk(ctx).insurance(code)
    if found is None or not found.active:  # what the booking page asks of every service
        return Insurance(service_code=code, premium_fen=0, coverage_fen=0, active=False)
    return found

"""Worker onboarding (applications, documents, review), training and exams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import msgspec

from accounts.models import Registration
from api.bodies import Input
from api.routes.accounts import Phone
from api.routing import PUBLIC, Ctx, QueryParam, Router
from files.blobs import local_store
from notifications.service import Notifier
from onboarding import purposes, service, training
from onboarding.errors import InvalidOnboardingInput
from onboarding.exams import ExamRules
from onboarding.models import (
    Application,
    Attempt,
    Course,
    Document,
    Exam,
    Practical,
    QueueItem,
)
from onboarding.provider import BackgroundChecker, IdentityVerifier
from onboarding.rules import DocumentKind
from permissions.rules import NOWHERE, Scope
from workforce import store as workforce_store
from workforce.service import home

router = Router("onboarding")
purposes.register()  # reviewers may read the ID cards and certificates of applications
APPLICANT = frozenset({"worker"})
REVIEWERS = frozenset({"admin", "reviewer"})
ADMIN = frozenset({"admin"})
LEARNERS = frozenset({"worker", "admin", "reviewer"})

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Reason = Annotated[str, msgspec.Meta(max_length=500)]
# Sizes keep a body with one item more than allowed under the 64 KiB body limit, so an
# over-long list is refused as a 422 naming it, not as a 413.
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Choice = Annotated[int, msgspec.Meta(ge=0, le=5)]


class SignUpIn(Input):
    """A phone to apply with, and the name to greet the applicant by."""

    phone: Phone
    name: Name


class HomeIn(Input):
    """Where the applicant would start the day."""

    lat: float
    lng: float
    crs: Literal["wgs84", "gcj02"] = "wgs84"


class ProfileIn(Input):
    """The application's profile; absent fields stay."""

    real_name: Name | msgspec.UnsetType = msgspec.UNSET
    id_number: Annotated[str, msgspec.Meta(max_length=32)] | msgspec.UnsetType = msgspec.UNSET
    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    skills: Annotated[list[Code], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    home: HomeIn | msgspec.UnsetType = msgspec.UNSET


class DocumentIn(Input):
    """A document: an upload of the kind's purpose (id_card or certificate) and, for
    certificates, their kind, number and dates."""

    kind: DocumentKind
    file_id: Id
    certificate_kind: Code | None = None
    number: Annotated[str, msgspec.Meta(max_length=64)] = ""
    issued_on: date | None = None
    expires_on: date | None = None


class VerdictIn(Input):
    """A reviewer's verdict on a document; a rejection says why."""

    verdict: Literal["approve", "reject"]
    reason: Reason = ""


class DecisionIn(Input):
    """A reviewer's decision on an application; reject and request_changes say why."""

    decision: Literal["approve", "reject", "request_changes"]
    reason: Reason = ""


class MaterialIn(Input):
    """One item of a course: a title and its text or link."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    body: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    url: Annotated[str, msgspec.Meta(max_length=300)] = ""


class CourseIn(Input):
    """A course of a skill."""

    skill: Code
    title_zh: Name
    title_en: Name
    materials: Annotated[list[MaterialIn], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )


class ChoiceIn(Input):
    """A choice's texts."""

    zh: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    en: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class QuestionIn(Input):
    """A question of the bank; ``answer`` holds the right choices' indexes."""

    kind: Literal["single", "multiple", "true_false"]
    text_zh: Text
    text_en: Text
    choices: Annotated[list[ChoiceIn], msgspec.Meta(min_length=2, max_length=6)]
    answer: Annotated[list[Choice], msgspec.Meta(min_length=1, max_length=6)]
    points: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class ExamIn(Input):
    """A skill's exam and its question bank (replaces the old one)."""

    skill: Code
    title_zh: Name
    title_en: Name
    question_count: Annotated[int, msgspec.Meta(ge=1, le=200)]
    time_limit_s: Annotated[int, msgspec.Meta(ge=60, le=14400)]
    pass_percent: Annotated[int, msgspec.Meta(ge=1, le=100)]
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)]
    questions: Annotated[list[QuestionIn], msgspec.Meta(min_length=1, max_length=25)]


class QuestionsIn(Input):
    """More questions for an exam's bank (a bank grows 25 at a time)."""

    questions: Annotated[list[QuestionIn], msgspec.Meta(min_length=1, max_length=25)]


class AnswerIn(Input):
    """The answer to one question: the indexes of the choices as shown."""

    question_id: Id
    choices: Annotated[list[Choice], msgspec.Meta(max_length=6)]


class AnswersIn(Input):
    """An attempt's answers (unanswered questions count as wrong)."""

    answers: Annotated[list[AnswerIn], msgspec.Meta(max_length=200)]


class PracticalIn(Input):
    """An assessor's record of a practical assessment."""

    user_id: Id
    skill: Code
    passed: bool
    score: Annotated[int, msgspec.Meta(ge=0, le=100)]
    notes: Annotated[str, msgspec.Meta(max_length=2000)] = ""


def _verifier(ctx: Ctx) -> IdentityVerifier:
    verifier: IdentityVerifier = ctx.request.app.state.verifier
    return verifier


def _background(ctx: Ctx) -> BackgroundChecker:
    checker: BackgroundChecker = ctx.request.app.state.verifier
    return checker


def _now(ctx: Ctx) -> datetime:
    return datetime.fromtimestamp(ctx.now, UTC)


@router.post(
    "/v1/onboarding/sign-up",
    roles=PUBLIC,
    body=SignUpIn,
    returns=Registration,
    status=202,
    errors={
        422: "a name with control or invisible characters",
        429: "more codes asked for this phone or network than the limits allow",
    },
    summary="Apply to work: an applicant's account for a new phone, and a login code by SMS "
    "(the answer does not say whether the phone had an account)",
)
async def sign_up(ctx: Ctx, body: SignUpIn) -> Registration:
    notifier: Notifier = ctx.request.app.state.notifier
    phone = await service.sign_up(
        ctx.stores,
        notifier,
        phone=body.phone,
        name=body.name,
        signing_key=ctx.policy.key,
        now=ctx.now,
        client=ctx.client,
    )
    return Registration(
        phone=phone,
        status="accepted",
        message="a login code is on its way if this phone may apply; log in with it "
        "(POST /v1/auth/sms-login)",
    )


@dataclass(frozen=True, slots=True)
class Standing:
    """Whether the caller is still applying (no worker profile yet), and how far."""

    applicant: bool
    status: str | None  # the application's status; None before one is started


@router.get(
    "/v1/onboarding/standing",
    perm="onboarding.read",
    roles=APPLICANT,
    returns=Standing,
    summary="Whether the caller is an applicant or a worker (the worker's app asks first)",
)
async def standing(ctx: Ctx) -> Standing:
    applicant, status = await service.standing(ctx.stores, ctx.user.user_id)
    return Standing(applicant, status)


@router.get(
    "/v1/onboarding/application",
    perm="onboarding.read",
    roles=APPLICANT,
    returns=Application,
    errors={409: "the caller is a worker already"},
    summary="The caller's application (a new draft the first time)",
)
async def my_application(ctx: Ctx) -> Application:
    return await service.my_application(ctx.stores, ctx.user)


@router.patch(
    "/v1/onboarding/application",
    perm="onboarding.write",
    roles=APPLICANT,
    body=ProfileIn,
    returns=Application,
    errors={
        409: "the application is not editable, or another holds this ID number",
        422: "an ID number against GB 11643, an unknown city or skill",
    },
    summary="Fill in the application's profile (name, ID number, city, skills, home)",
)
async def patch_application(ctx: Ctx, body: ProfileIn) -> Application:
    fields: dict[str, object] = {}
    for name in ("real_name", "id_number", "city_id", "skills"):
        value = getattr(body, name)
        if value is not msgspec.UNSET:
            fields[name] = value
    if body.home is not msgspec.UNSET:
        fields["home"] = home(body.home.lat, body.home.lng, body.home.crs)
    return await service.update_profile(ctx.stores, ctx.user, fields, today=_now(ctx).date())


@router.post(
    "/v1/onboarding/application/documents",
    perm="onboarding.write",
    roles=APPLICANT,
    body=DocumentIn,
    returns=Application,
    status=201,
    errors={
        409: "the application is not editable, or the upload is attached elsewhere",
        422: "the upload is of the wrong purpose, type, size or pixels for the kind; a "
        "certificate without kind or dates",
    },
    summary="Add or replace a document (upload it first: POST /v1/files?purpose=…)",
)
async def add_document(ctx: Ctx, body: DocumentIn) -> Application:
    return await service.add_document(
        ctx.stores,
        ctx.user,
        kind=body.kind,
        file_id=body.file_id,
        certificate_kind=body.certificate_kind,
        number=body.number,
        issued_on=body.issued_on,
        expires_on=body.expires_on,
    )


@router.post(
    "/v1/onboarding/application/submit",
    perm="onboarding.write",
    roles=APPLICANT,
    returns=Application,
    errors={
        409: "the application is not a draft nor sent back",
        422: "the profile or the documents are incomplete",
    },
    summary="Submit (or resubmit) for review; identity and background checks run",
)
async def submit(ctx: Ctx) -> Application:
    return await service.submit(
        ctx.stores,
        ctx.user,
        verifier=_verifier(ctx),
        background=_background(ctx),
        blobs=local_store(ctx.settings.data_dir),
    )


@router.get(
    "/v1/onboarding/applications",
    perm="onboarding.review",
    roles=REVIEWERS,
    returns=list[QueueItem],
    query=(
        QueryParam(
            "status",
            str,
            "submitted (default), changes_requested, approved, rejected or draft",
            choices=("submitted", "changes_requested", "approved", "rejected", "draft"),
        ),
        QueryParam("after_id", int, "keyset cursor", ge=0, le=2**62),
        QueryParam("limit", int, "page size 1–200 (default 50)", ge=1, le=200),
    ),
    summary="The reviewers' queue",
)
async def queue(ctx: Ctx) -> list[QueueItem]:
    status = ctx.query_str(
        "status",
        choices=frozenset({"draft", "submitted", "changes_requested", "approved", "rejected"}),
    )
    return await service.queue(
        ctx.stores,
        status=status or "submitted",
        after_id=ctx.query_int("after_id", 0, ge=0, le=2**62),
        limit=ctx.query_int("limit", 50, ge=1, le=200),
        scope=_scope(ctx),
    )


def _scope(ctx: Ctx) -> Scope:
    """Where a reviewer acts: everywhere (admins, reviewers), or a grant's cities."""
    return ctx.scope if ctx.scope is not None else NOWHERE


@router.get(
    "/v1/onboarding/applications/{application_id}",
    perm="onboarding.review",
    roles=REVIEWERS,
    returns=Application,
    summary="One application with its documents and audit trail",
)
async def get_application(ctx: Ctx) -> Application:
    return await service.for_reviewer(ctx.stores, ctx.path_int("application_id"), _scope(ctx))


@router.put(
    "/v1/onboarding/applications/{application_id}/documents/{document_id}/verdict",
    perm="onboarding.review",
    roles=REVIEWERS,
    body=VerdictIn,
    returns=Document,
    errors={409: "the application is not submitted", 422: "a rejection without a reason"},
    summary="Approve or reject one document, with a reason",
)
async def document_verdict(ctx: Ctx, body: VerdictIn) -> Document:
    await service.for_reviewer(ctx.stores, ctx.path_int("application_id"), _scope(ctx))
    return await service.review_document(
        ctx.stores,
        ctx.user,
        ctx.path_int("application_id"),
        ctx.path_int("document_id"),
        verdict=body.verdict,
        reason=body.reason,
    )


@router.post(
    "/v1/onboarding/applications/{application_id}/checks",
    perm="onboarding.review",
    roles=REVIEWERS,
    returns=Application,
    summary="Run the identity and background checks again (after a provider was away)",
)
async def recheck(ctx: Ctx) -> Application:
    app_id = ctx.path_int("application_id")
    await service.for_reviewer(ctx.stores, app_id, _scope(ctx))
    await service.run_checks(
        ctx.stores,
        app_id,
        verifier=_verifier(ctx),
        background=_background(ctx),
        blobs=local_store(ctx.settings.data_dir),
        actor_id=ctx.user.user_id,
    )
    return await service.for_reviewer(ctx.stores, app_id)


@router.post(
    "/v1/onboarding/applications/{application_id}/decision",
    perm="onboarding.review",
    roles=REVIEWERS,
    body=DecisionIn,
    returns=Application,
    errors={
        409: "not submitted; or approving with documents not approved, identity not "
        "verified or background not clear",
        422: "a rejection or request for changes without a reason",
    },
    summary="Approve (the applicant becomes a worker), reject, or send back for changes",
)
async def decide(ctx: Ctx, body: DecisionIn) -> Application:
    await service.for_reviewer(ctx.stores, ctx.path_int("application_id"), _scope(ctx))
    return await service.decide(
        ctx.stores,
        ctx.user,
        ctx.path_int("application_id"),
        decision=body.decision,
        reason=body.reason,
    )


@router.post(
    "/v1/training/courses",
    perm="onboarding.write",
    roles=ADMIN,
    body=CourseIn,
    returns=Course,
    status=201,
    errors={422: "an unknown skill"},
    summary="Add a course of a skill (admin)",
)
async def add_course(ctx: Ctx, body: CourseIn) -> Course:
    return await training.add_course(
        ctx.stores,
        skill=body.skill,
        title_zh=body.title_zh,
        title_en=body.title_en,
        materials=[msgspec.structs.asdict(m) for m in body.materials],
    )


@router.get(
    "/v1/training/courses",
    perm="onboarding.read",
    roles=LEARNERS,
    returns=list[Course],
    summary="Courses: a worker's skills' (staff: all)",
)
async def courses(ctx: Ctx) -> list[Course]:
    return await training.list_courses(
        ctx.stores, ctx.user, staff=ctx.has_role("admin", "reviewer")
    )


@router.put(
    "/v1/training/exams",
    perm="onboarding.write",
    roles=ADMIN,
    body=ExamIn,
    returns=Exam,
    errors={
        422: "an unknown skill; a question whose kind, choices and answer disagree; a "
        "bank smaller than question_count"
    },
    summary="Create or replace a skill's exam and question bank (admin)",
)
async def put_exam(ctx: Ctx, body: ExamIn) -> Exam:
    return await training.put_exam(
        ctx.stores,
        skill=body.skill,
        title_zh=body.title_zh,
        title_en=body.title_en,
        rules=ExamRules(
            body.question_count, body.time_limit_s, body.pass_percent, body.max_attempts
        ),
        questions=[training.question_from(msgspec.to_builtins(q)) for q in body.questions],
    )


@router.post(
    "/v1/training/exams/{exam_id}/questions",
    perm="onboarding.write",
    roles=ADMIN,
    body=QuestionsIn,
    returns=Exam,
    errors={422: "a question whose kind, choices and answer disagree"},
    summary="Add questions to an exam's bank (admin)",
)
async def add_questions(ctx: Ctx, body: QuestionsIn) -> Exam:
    return await training.add_questions(
        ctx.stores,
        ctx.path_int("exam_id"),
        [training.question_from(msgspec.to_builtins(q)) for q in body.questions],
    )


@router.get(
    "/v1/training/exams",
    perm="onboarding.read",
    roles=LEARNERS,
    returns=list[Exam],
    summary="Exams: a worker's skills' with attempts used and passed (staff: all)",
)
async def exams(ctx: Ctx) -> list[Exam]:
    return await training.list_exams(ctx.stores, ctx.user, staff=ctx.has_role("admin", "reviewer"))


@router.post(
    "/v1/training/exams/{exam_id}/attempts",
    perm="onboarding.write",
    roles=APPLICANT,
    returns=Attempt,
    status=201,
    errors={409: "every attempt is used, or the exam is passed already"},
    summary="Start a timed attempt with randomised questions (or get the open one)",
)
async def start_attempt(ctx: Ctx) -> Attempt:
    return await training.start(ctx.stores, ctx.user, ctx.path_int("exam_id"), now=_now(ctx))


@router.get(
    "/v1/training/attempts/{attempt_id}",
    perm="onboarding.read",
    roles=APPLICANT,
    returns=Attempt,
    summary="One of the caller's attempts",
)
async def get_attempt(ctx: Ctx) -> Attempt:
    return await training.get_attempt(ctx.stores, ctx.user, ctx.path_int("attempt_id"))


@router.post(
    "/v1/training/attempts/{attempt_id}/answers",
    perm="onboarding.write",
    roles=APPLICANT,
    body=AnswersIn,
    returns=Attempt,
    errors={
        409: "the attempt was submitted already",
        422: "answered after the time limit (exam_time_up), or an answer that is not a choice",
    },
    summary="Hand in the answers; graded at once",
)
async def answer(ctx: Ctx, body: AnswersIn) -> Attempt:
    answers: dict[int, list[int]] = {}
    for i, a in enumerate(body.answers):
        if a.question_id in answers:
            raise InvalidOnboardingInput(
                f"question {a.question_id} is answered twice", field=f"answers[{i}].question_id"
            )
        answers[a.question_id] = list(a.choices)
    return await training.submit(
        ctx.stores, ctx.user, ctx.path_int("attempt_id"), answers, now=_now(ctx)
    )


@router.post(
    "/v1/training/practicals",
    perm="onboarding.assess",
    roles=REVIEWERS,
    body=PracticalIn,
    returns=Practical,
    status=201,
    errors={
        404: "no such person, or not a worker of the caller's cities (user_id)",
        422: "an unknown skill",
    },
    summary="Record a practical assessment (assessor: admin, reviewer, a city's grant)",
)
async def practical(ctx: Ctx, body: PracticalIn) -> Practical:
    return await training.record_practical(
        ctx.stores,
        ctx.user,
        ctx.viewer,
        user_id=body.user_id,
        skill=body.skill,
        passed=body.passed,
        score=body.score,
        notes=body.notes,
    )


@router.get(
    "/v1/training/practicals",
    perm="onboarding.assess",
    roles=REVIEWERS,
    returns=list[Practical],
    query=(QueryParam("user_id", int, "whose assessments", required=True, ge=1, le=2**62),),
    errors={404: "no such person, or not a worker of the caller's cities (user_id)"},
    summary="A person's practical assessments, newest first",
)
async def practicals(ctx: Ctx) -> list[Practical]:
    if ctx.request.query_params.get("user_id") is None:
        raise InvalidOnboardingInput("say whose assessments: user_id", field="user_id")
    return await training.practicals(
        ctx.stores, ctx.viewer, ctx.query_int("user_id", 0, ge=1, le=2**62)
    )


class SkillCertificatesIn(Input):
    """The certificate kinds a skill needs before it is dispatchable (replaces the old)."""

    skill: Code
    certificate_kinds: Annotated[list[Code], msgspec.Meta(max_length=10)]


@dataclass(frozen=True, slots=True)
class SkillCertificates:
    """A skill and the certificate kinds it needs."""

    skill: str
    certificate_kinds: list[str]


@router.get(
    "/v1/training/skill-certificates",
    perm="onboarding.read",
    roles=LEARNERS,
    returns=list[SkillCertificates],
    summary="Which certificates each skill needs before it is dispatchable",
)
async def skill_certificates(ctx: Ctx) -> list[SkillCertificates]:
    found = await workforce_store.skill_certificate_rules(ctx.stores.pool)
    return [SkillCertificates(s, sorted(k)) for s, k in sorted(found.items())]


@router.put(
    "/v1/training/skill-certificates",
    perm="onboarding.write",
    roles=ADMIN,
    body=SkillCertificatesIn,
    returns=SkillCertificates,
    errors={422: "an unknown skill or certificate kind"},
    summary="Set the certificates a skill needs (admin)",
)
async def put_skill_certificates(ctx: Ctx, body: SkillCertificatesIn) -> SkillCertificates:
    kinds = await training.set_skill_certificates(ctx.stores, body.skill, body.certificate_kinds)
    return SkillCertificates(body.skill, kinds)

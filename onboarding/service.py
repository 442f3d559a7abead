"""Onboarding operations: the applicant's application and documents, identity and
background checks, the reviewers' queue and decisions, and approval into the workforce.

Who may do what: the applicant (a user holding the worker role, with no worker profile
yet) edits and submits their own application; reviewers and admins see the queue,
judge documents and decide. Every step is kept in ``application_steps``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from accounts import service as accounts
from accounts import sms_login
from accounts import store as accounts_store
from accounts.rules import check_name, normalize_phone
from accounts.service import Client
from accounts.tokens import Claims
from doorstep.stores import Stores
from files import service as files_service
from files import store as files_store
from files.blobs import BlobStore
from onboarding import idcard, rules, store
from onboarding.errors import (
    ApplicationNotFound,
    ApplicationState,
    DuplicateIdentity,
    InvalidOnboardingInput,
    WrongDocument,
)
from onboarding.models import Application, Document, QueueItem
from onboarding.provider import BackgroundChecker, IdentityVerifier, ProviderUnavailable
from permissions.rules import PLATFORM, Scope
from workforce import service as workforce
from workforce import store as workforce_store

log = logging.getLogger("doorstep.onboarding")
REVIEWERS = frozenset({"admin", "reviewer"})


def _now() -> datetime:
    return datetime.now(UTC)


async def sign_up(
    stores: Stores,
    sms: sms_login.SmsQueue,
    *,
    phone: str,
    name: str,
    signing_key: str,
    now: int,
    client: Client,
) -> str:
    """Give a phone without an account an applicant's account (the worker role, no
    profile), then send it a login code. The answer is the same whether or not the phone
    had an account; an existing account is not changed."""
    phone = normalize_phone(phone)
    name = check_name(name)
    if await accounts_store.credentials_by_phone(stores.pool, phone) is None:
        # A password nobody knows: the applicant signs in by SMS code.
        try:
            await accounts.create_user(
                stores,
                phone=phone,
                name=name,
                password=secrets.token_urlsafe(24),
                roles=["worker"],
            )
        except Exception as e:  # a concurrent sign-up of the same phone
            if getattr(e, "kind", None) != "conflict":
                raise
    return await sms_login.request_code(
        stores, sms, phone=phone, signing_key=signing_key, now=now, client=client
    )


async def _full(stores: Stores, app: Application, *, with_steps: bool) -> Application:
    docs = await store.documents(stores.pool, app.id)
    skill_rules = await workforce_store.skill_certificate_rules(stores.pool)
    current = [(d.kind, d.certificate_kind) for d in docs if d.status != "replaced"]
    missing = rules.missing_documents(current, app.skills, skill_rules)
    steps = await store.steps(stores.pool, app.id) if with_steps else ()
    return replace(app, documents=docs, missing=tuple(missing), steps=steps)


async def standing(stores: Stores, user_id: int) -> tuple[bool, str | None]:
    """(applicant, the application's status): a user with a worker profile is no applicant."""
    if await workforce_store.worker(stores.pool, user_id, detail=False) is not None:
        return False, None
    found = await store.application(stores.pool, user_id=user_id)
    return True, found.status if found else None


async def my_application(stores: Stores, caller: Claims) -> Application:
    """The caller's application (a new draft the first time)."""
    found = await store.application(stores.pool, user_id=caller.user_id)
    if found is None:
        if await workforce_store.worker(stores.pool, caller.user_id, detail=False) is not None:
            raise ApplicationState("you are a worker already", field="user_id")
        now = _now()
        async with stores.pool.acquire() as conn, conn.transaction():
            await store.create(conn, caller.user_id, now)
            created = await store.application(conn, user_id=caller.user_id)
            assert created is not None
            await store.add_step(conn, created.id, step="created", actor_id=caller.user_id, now=now)
        found = created
    return await _full(stores, found, with_steps=True)


async def update_profile(
    stores: Stores, caller: Claims, fields: dict[str, Any], *, today: date
) -> Application:
    """Change the applicant's profile: name, ID number, city, skills, home."""
    app = await my_application(stores, caller)
    rules.check_editable(app.status)
    changes: dict[str, Any] = {}
    if "real_name" in fields:
        changes["real_name"] = check_name(fields["real_name"], "real_name")
    if "id_number" in fields:
        parsed = idcard.parse_id_number(fields["id_number"], today=today)
        if await store.id_number_taken(stores.pool, parsed.number, app.id):
            raise DuplicateIdentity(
                "another application holds this identity number", field="id_number"
            )
        changes["id_number"] = parsed.number
        changes["birth_date"] = parsed.birth_date
    if "city_id" in fields:
        changes["city_id"] = await workforce.check_city(stores, fields["city_id"])
    if "skills" in fields:
        changes["skills"] = await workforce.check_skills(stores, fields["skills"])
    if "home" in fields:
        changes["home_lat"], changes["home_lng"] = fields["home"]
    if {"real_name", "id_number"} & set(changes):  # a new identity must be checked again
        changes["identity_status"] = "unchecked"
        changes["background_status"] = "unchecked"
    if not changes:  # nothing to change: no write, no step
        return app
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        locked = await store.application(conn, app_id=app.id, lock=True)  # as add_document
        rules.check_editable(locked.status if locked is not None else app.status)
        await store.update(conn, app.id, changes, now)
        await store.add_step(
            conn,
            app.id,
            step="profile",
            actor_id=caller.user_id,
            now=now,
            detail={"fields": sorted(changes)},
        )
    return await my_application(stores, caller)


async def add_document(
    stores: Stores,
    caller: Claims,
    *,
    kind: rules.DocumentKind,
    file_id: int,
    certificate_kind: str | None,
    number: str,
    issued_on: date | None,
    expires_on: date | None,
) -> Application:
    """Add (or replace) a document: the caller's own upload of the kind's purpose, type,
    bytes and pixels; a skill certificate names its kind and dates."""
    app = await my_application(stores, caller)
    rules.check_editable(app.status)
    rule = rules.DOCUMENT_RULES[kind]
    if rule.needs_certificate_kind:
        kinds = {k.code for k in await _certificate_kinds(stores)}
        if certificate_kind not in kinds:
            raise InvalidOnboardingInput(
                f"name the certificate kind: one of {', '.join(sorted(kinds))}",
                field="certificate_kind",
            )
    elif certificate_kind is not None:
        raise InvalidOnboardingInput(
            f"a {kind} document has no certificate kind", field="certificate_kind"
        )
    if kind == "health":
        certificate_kind = rules.HEALTH_KIND
    if rule.needs_dates:
        if issued_on is None or expires_on is None:
            raise InvalidOnboardingInput(
                f"a {kind} document needs issued_on and expires_on",
                field="issued_on" if issued_on is None else "expires_on",
            )
        if expires_on <= issued_on:
            raise InvalidOnboardingInput("must be after issued_on", field="expires_on")
        if expires_on <= _now().date():
            raise InvalidOnboardingInput(
                f"the certificate expired on {expires_on}", field="expires_on"
            )
        if len(number.strip()) < 3:
            raise InvalidOnboardingInput(
                "the certificate's number: at least 3 characters", field="number"
            )
    file = await files_store.file_by_id(stores.pool, file_id)
    if file is None or file.owner_id != caller.user_id:
        raise WrongDocument(f"no upload {file_id} of yours", field="file_id")
    rules.check_document_file(
        kind,
        purpose=file.purpose,
        media_type=file.media_type,
        size_bytes=file.size_bytes,
        width=file.width,
        height=file.height,
    )
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        # Under the application's lock, as a reviewer's decision takes it: a document is
        # never added to an application decided (or submitted) since the check above.
        locked = await store.application(conn, app_id=app.id, lock=True)
        rules.check_editable(locked.status if locked is not None else app.status)
        await files_service.attach(
            conn,
            file_id=file_id,
            owner_id=caller.user_id,
            purpose=file.purpose,
            ref=f"application:{app.id}",
            now=int(now.timestamp()),
        )
        doc = await store.insert_document(
            conn,
            app.id,
            kind=kind,
            certificate_kind=certificate_kind,
            number=number.strip(),
            issued_on=issued_on,
            expires_on=expires_on,
            file_id=file_id,
            now=now,
        )
        await store.add_step(
            conn,
            app.id,
            step="document",
            actor_id=caller.user_id,
            now=now,
            document_id=doc.id,
            detail={"kind": kind, "certificate_kind": certificate_kind},
        )
    return await my_application(stores, caller)


async def _certificate_kinds(stores: Stores) -> list[Any]:
    from catalog import store as catalog_store

    return list(await catalog_store.certificate_kinds(stores.pool))


def _profile_missing(app: Application) -> list[str]:
    out = []
    if not app.real_name:
        out.append("real_name")
    if not app.id_number:
        out.append("id_number")
    if not app.city_id:
        out.append("city_id")
    if not app.skills:
        out.append("skills")
    if app.home_lat is None:
        out.append("home")
    return out


async def submit(
    stores: Stores,
    caller: Claims,
    *,
    verifier: IdentityVerifier,
    background: BackgroundChecker,
    blobs: BlobStore,
) -> Application:
    """Submit (or resubmit) for review; the identity and background checks run now."""
    app = await my_application(stores, caller)
    rules.check_submittable(
        app.status, profile_missing=_profile_missing(app), documents_missing=list(app.missing)
    )
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.update(
            conn, app.id, {"status": "submitted", "submitted_at": now, "reason": ""}, now
        )
        await store.add_step(
            conn,
            app.id,
            step="resubmitted" if app.status == "changes_requested" else "submitted",
            actor_id=caller.user_id,
            now=now,
        )
    await run_checks(
        stores, app.id, verifier=verifier, background=background, blobs=blobs, actor_id=None
    )
    return await my_application(stores, caller)


async def run_checks(
    stores: Stores,
    app_id: int,
    *,
    verifier: IdentityVerifier,
    background: BackgroundChecker,
    blobs: BlobStore,
    actor_id: int | None,
) -> None:
    """Ask the providers (identity with the face photo, background) and record what they
    said; a provider that does not answer leaves the check ``unavailable``."""
    app = await store.application(stores.pool, app_id=app_id)
    if app is None or not app.id_number:
        return
    docs = await store.documents(stores.pool, app_id)
    face = next((d for d in docs if d.kind == "face" and d.status != "replaced"), None)
    changes: dict[str, Any] = {}
    if app.identity_status != "verified" and face is not None:
        file = await files_store.file_by_id(stores.pool, face.file_id)
        try:
            assert file is not None
            photo = await blobs.get(file.sha256)
            result = await verifier.verify(
                name=app.real_name, id_number=app.id_number, face_jpeg=photo
            )
            changes["identity_status"] = "verified" if result.matched else "mismatch"
            changes["identity_detail"] = (
                f"{result.code} {result.description} (sim {result.similarity:.1f}, "
                f"request {result.request_id})"
            )
        except ProviderUnavailable as e:
            changes["identity_status"] = "unavailable"
            changes["identity_detail"] = f"the provider did not answer: {e}"
    if app.background_status not in ("clear", "record"):
        try:
            bg = await background.check(name=app.real_name, id_number=app.id_number)
            changes["background_status"] = "clear" if bg.clear else "record"
            changes["background_detail"] = f"{bg.code} {bg.description} (request {bg.request_id})"
        except ProviderUnavailable as e:
            changes["background_status"] = "unavailable"
            changes["background_detail"] = f"the provider did not answer: {e}"
    if not changes:
        return
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.update(conn, app_id, changes, now)
        await store.add_step(
            conn, app_id, step="checks", actor_id=actor_id, now=now, detail=changes
        )


async def queue(
    stores: Stores,
    *,
    status: str,
    after_id: int,
    limit: int,
    scope: Scope = PLATFORM,
) -> list[QueueItem]:
    """The reviewers' queue (a city-scoped reviewer's: their cities' applications)."""
    return await store.queue(
        stores.pool, status=status, after_id=after_id, limit=limit, city_ids=scope.city_list
    )


async def for_reviewer(stores: Stores, app_id: int, scope: Scope = PLATFORM) -> Application:
    """One application with documents and its audit trail (404 for an application
    outside the reviewer's cities, or with no city yet for a city-scoped reviewer)."""
    app = await store.application(stores.pool, app_id=app_id)
    if app is None or not scope.has_city(app.city_id):
        raise ApplicationNotFound(f"no application {app_id}", field="application_id")
    return await _full(stores, app, with_steps=True)


async def review_document(
    stores: Stores,
    caller: Claims,
    app_id: int,
    doc_id: int,
    *,
    verdict: str,
    reason: str,
) -> Document:
    """Approve or reject one current document of a submitted application."""
    reason = rules.check_reason(reason, required=verdict == "reject")
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        app = await store.application(conn, app_id=app_id, lock=True)
        if app is None:
            raise ApplicationNotFound(f"no application {app_id}", field="application_id")
        if app.status != "submitted":
            raise ApplicationState(
                f"the application is {app.status}; documents are judged while submitted",
                field="status",
            )
        status = "approved" if verdict == "approve" else "rejected"
        doc = await store.review_document(conn, app_id, doc_id, status, reason, caller.user_id, now)
        if doc is None:
            raise ApplicationNotFound(
                f"no current document {doc_id} in application {app_id}", field="document_id"
            )
        await store.add_step(
            conn,
            app_id,
            step=f"document_{status}",
            actor_id=caller.user_id,
            now=now,
            document_id=doc_id,
            reason=reason,
        )
    return doc


async def decide(
    stores: Stores, caller: Claims, app_id: int, *, decision: rules.Decision, reason: str
) -> Application:
    """Approve (the applicant becomes a worker), reject, or send back for changes."""
    reason = rules.check_reason(reason, required=decision != "approve")
    now = _now()
    async with stores.pool.acquire() as conn, conn.transaction():
        app = await store.application(conn, app_id=app_id, lock=True)
        if app is None:
            raise ApplicationNotFound(f"no application {app_id}", field="application_id")
        docs = [d for d in await store.documents(conn, app_id) if d.status != "replaced"]
        to = rules.next_status(
            app.status,
            decision,
            documents={d.id: d.status for d in docs},
            identity_status=app.identity_status,
            background_status=app.background_status,
        )
        await store.update(
            conn,
            app_id,
            {"status": to, "reason": reason, "decided_at": now, "decided_by": caller.user_id},
            now,
        )
        await store.add_step(conn, app_id, step=to, actor_id=caller.user_id, now=now, reason=reason)
        if to == "approved":
            await _into_workforce(conn, app, docs, caller.user_id)
    return await for_reviewer(stores, app_id)


async def _into_workforce(conn: Any, app: Application, docs: list[Document], actor_id: int) -> None:
    """The approved applicant's worker profile (exams required) and verified certificates."""
    assert app.city_id is not None
    assert app.home_lat is not None
    assert app.home_lng is not None
    await workforce_store.upsert_worker(
        conn,
        user_id=app.user_id,
        city_id=app.city_id,
        skills=app.skills,
        home_lat=app.home_lat,
        home_lng=app.home_lng,
        team_id=None,
    )
    await conn.execute("UPDATE workers SET exams_required = true WHERE user_id = $1", app.user_id)
    for d in docs:
        if d.certificate_kind is None or d.issued_on is None or d.expires_on is None:
            continue
        cert_id = await conn.fetchval(
            "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on, "
            "status, reason, file_id, reviewed_by, reviewed_at) "
            "VALUES ($1,$2,$3,$4,$5,'verified',$6,$7,$8,now()) "
            "ON CONFLICT (kind, number) DO NOTHING RETURNING id",
            app.user_id,
            d.certificate_kind,
            d.number,
            d.issued_on,
            d.expires_on,
            f"verified with application {app.id}",
            d.file_id,
            actor_id,
        )
        if cert_id is not None:
            await conn.execute(
                "INSERT INTO certificate_steps (certificate_id, at, actor_id, status, reason) "
                "VALUES ($1, now(), $2, 'verified', $3)",
                cert_id,
                actor_id,
                f"document {d.id} of application {app.id}",
            )

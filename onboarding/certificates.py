"""Certificates after onboarding: states with reasons, re-verification, expiry reminders.

The pure rule :func:`due_reminder` says which reminder (30 or 7 days before expiry) is
due; :func:`remind_expiring` (the daily job) writes ``certificate.expiring`` events for
them, once per certificate, threshold and expiry date (``certificate_reminders``); the
notifications consumer turns them into an inbox item and an SMS (docs/notifications.md).
A certificate that expires stops counting at once (the matcher and the offers compare
its last valid day with the job's), as before.

Re-verification: staff set a certificate to ``reverify`` with a reason (it stops
counting); the worker sends a renewal (a new scan, number and dates), which is a new
certificate, ``pending`` until staff verify it. The old one keeps counting until it
expires or is set aside, so a renewal in time leaves no gap.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from accounts.tokens import Claims
from doorstep.stores import Stores
from events import store as events_store
from events.types import CertificateExpiring, aggregate_key
from files import service as files_service
from files import store as files_store
from onboarding import rules as app_rules
from onboarding.errors import CertificateState, InvalidOnboardingInput, WrongDocument
from workforce import store as workforce_store
from workforce.errors import WorkerNotFound
from workforce.models import Certificate

REMINDER_DAYS = (30, 7)
STATUSES = ("pending", "verified", "rejected", "reverify")


def due_reminder(expires_on: date, today: date, sent: set[int]) -> int | None:
    """The reminder due today (the most urgent threshold reached and not yet sent), or
    None. Thresholds already passed without a reminder are not sent late."""
    left = (expires_on - today).days
    if left < 0:
        return None
    reached = [d for d in REMINDER_DAYS if left <= d]
    if not reached:
        return None
    most_urgent = min(reached)
    return None if most_urgent in sent else most_urgent


def check_status_change(status: str, reason: str) -> str:
    """A reason is required to reject or ask for re-verification."""
    if status not in STATUSES:
        raise InvalidOnboardingInput(f"must be one of {', '.join(STATUSES)}", field="status")
    return app_rules.check_reason(reason, required=status in ("rejected", "reverify"))


async def remind_expiring(stores: Stores, today: date) -> int:
    """Write the due reminders' events; how many."""
    rows = await stores.pool.fetch(
        "SELECT c.id, c.worker_id, c.kind, c.expires_on, k.name_zh, k.name_en, "
        "coalesce((SELECT array_agg(r.days_before) FROM certificate_reminders r "
        "WHERE r.certificate_id = c.id AND r.expires_on = c.expires_on), '{}') AS sent "
        "FROM worker_certificates c JOIN certificate_kinds k ON k.code = c.kind "
        "WHERE c.status = 'verified' AND c.expires_on BETWEEN $1 AND $1 + 30 "
        "AND NOT EXISTS (SELECT 1 FROM worker_certificates n WHERE n.worker_id = c.worker_id "
        "AND n.kind = c.kind AND n.status = 'verified' AND n.expires_on > c.expires_on)",
        today,
    )
    made = 0
    now = datetime.now(UTC)
    for r in rows:
        days = due_reminder(r["expires_on"], today, set(r["sent"]))
        if days is None:
            continue
        async with stores.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO certificate_reminders (certificate_id, days_before, expires_on, "
                "sent_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                r["id"],
                days,
                r["expires_on"],
                now,
            )
            if not fresh:
                continue
            await events_store.append(
                conn,
                "certificate.expiring",
                aggregate_key("certificate", r["id"]),
                CertificateExpiring(
                    certificate_id=r["id"],
                    worker_id=r["worker_id"],
                    kind=r["kind"],
                    name_zh=r["name_zh"],
                    name_en=r["name_en"],
                    expires_on=r["expires_on"],
                    days_before=days,
                ),
            )
            made += 1
    return made


async def set_status(
    stores: Stores, caller: Claims, worker_id: int, cert_id: int, status: str, reason: str
) -> Certificate:
    """Staff's verdict with its reason, audited."""
    reason = check_status_change(status, reason)
    cert = await workforce_store.set_certificate_status(
        stores.pool, worker_id, cert_id, status, reason=reason, actor_id=caller.user_id
    )
    if cert is None:
        raise WorkerNotFound("no such certificate for this worker", field="certificate_id")
    return cert


async def renew(
    stores: Stores,
    caller: Claims,
    worker_id: int,
    cert_id: int,
    *,
    number: str,
    issued_on: date,
    expires_on: date,
    file_id: int,
) -> Certificate:
    """A renewal of a certificate: a new one of the same kind with its scan, pending."""
    old = next(
        (c for c in await workforce_store.certificates(stores.pool, worker_id) if c.id == cert_id),
        None,
    )
    if old is None:
        raise WorkerNotFound("no such certificate for this worker", field="certificate_id")
    if old.status == "rejected":
        raise CertificateState(
            "a rejected certificate is not renewed; register a new one", field="certificate_id"
        )
    if expires_on <= issued_on:
        raise InvalidOnboardingInput("must be after issued_on", field="expires_on")
    if expires_on <= old.expires_on:
        raise InvalidOnboardingInput(
            f"a renewal must run past the current expiry {old.expires_on}", field="expires_on"
        )
    number = number.strip()
    if len(number) < 3:
        raise InvalidOnboardingInput("must be at least 3 characters", field="number")
    file = await files_store.file_by_id(stores.pool, file_id)
    if file is None or file.owner_id != caller.user_id:
        raise WrongDocument(f"no upload {file_id} of yours", field="file_id")
    app_rules.check_document_file(
        "skill_certificate",
        purpose=file.purpose,
        media_type=file.media_type,
        size_bytes=file.size_bytes,
        width=file.width,
        height=file.height,
    )
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        await files_service.attach(
            conn,
            file_id=file_id,
            owner_id=caller.user_id,
            purpose=file.purpose,
            ref=f"certificate:{cert_id}:renewal",
            now=int(now.timestamp()),
        )
        new_id = await conn.fetchval(
            "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on, "
            "status, reason, file_id) VALUES ($1,$2,$3,$4,$5,'pending',$6,$7) "
            "ON CONFLICT (kind, number) DO NOTHING RETURNING id",
            worker_id,
            old.kind,
            number,
            issued_on,
            expires_on,
            f"renewal of certificate {cert_id}",
            file_id,
        )
        if new_id is None:
            raise CertificateState(
                f"a {old.kind} certificate numbered {number!r} is registered already",
                field="number",
            )
        await conn.executemany(
            "INSERT INTO certificate_steps (certificate_id, at, actor_id, status, reason) "
            "VALUES ($1, $2, $3, $4, $5)",
            [
                (new_id, now, caller.user_id, "pending", f"renewal of certificate {cert_id}"),
                (cert_id, now, caller.user_id, old.status, f"renewed by certificate {new_id}"),
            ],
        )
    found = next(
        c for c in await workforce_store.certificates(stores.pool, worker_id) if c.id == new_id
    )
    return found


async def steps(stores: Stores, worker_id: int, cert_id: int) -> list[dict[str, object]]:
    """A certificate's audit trail, oldest first."""
    rows = await stores.pool.fetch(
        "SELECT s.at, s.actor_id, s.status, s.reason FROM certificate_steps s "
        "JOIN worker_certificates c ON c.id = s.certificate_id "
        "WHERE s.certificate_id = $1 AND c.worker_id = $2 ORDER BY s.id",
        cert_id,
        worker_id,
    )
    return [dict(r) for r in rows]

"""Which of a worker's skills may be dispatched, without I/O.

A skill is dispatchable when the worker holds it, has passed its exam (workers who
came through onboarding, ``exams_required``; those an admin created or the demo
seeded count as having passed) and holds every certificate the skill needs
(``skill_certificates``) verified and unexpired. The engine's candidates carry the
same facts (``matching.model.Candidate.untrained`` and the job's certificate needs);
the offers check them once more with :func:`why_unqualified` before an offer is made
or accepted, so an offer never reaches a worker who lacks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Qualification:
    """What gating knows of one worker."""

    worker_id: int
    skills: frozenset[str]
    exams_required: bool
    passed: frozenset[str]  # skills whose exam is passed
    certificates: Mapping[str, date]  # kind → last valid day, verified ones only
    blocked: str | None = None  # "suspended until …" or "dismissed" (quality/discipline)


def untrained(q: Qualification) -> frozenset[str]:
    """The worker's skills whose exam is still to pass."""
    return q.skills - q.passed if q.exams_required else frozenset()


def certificates_needed(
    skills: Iterable[str], rules: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """The certificate kinds the given skills need."""
    out: set[str] = set()
    for s in skills:
        out |= rules.get(s, frozenset())
    return frozenset(out)


def why_unqualified(
    q: Qualification,
    required_skills: Iterable[str],
    required_certificates: Iterable[str],
    rules: Mapping[str, frozenset[str]],
    on: date,
) -> str | None:
    """Why the worker may not serve a job needing these skills and certificates on ``on``
    (the job's last day), or None. Reasons read as the matcher's (``kind: details``)."""
    if q.blocked:
        return f"not available: {q.blocked}"
    skills = frozenset(required_skills)
    missing = skills - q.skills
    if missing:
        return f"missing skill: {', '.join(repr(s) for s in sorted(missing))}"
    exam = skills & untrained(q)
    if exam:
        return f"exam not passed: {', '.join(repr(s) for s in sorted(exam))}"
    needed = frozenset(required_certificates) | certificates_needed(skills, rules)
    for kind in sorted(needed):
        expires_on = q.certificates.get(kind)
        if expires_on is None:
            return f"no verified certificate: {kind!r}"
        if expires_on < on:
            return f"certificate expired: {kind!r} valid to {expires_on}, job may run on {on}"
    return None


def blocked_by(
    actions: Iterable[tuple[str, str, datetime, datetime | None]], now: datetime
) -> str | None:
    """Whether discipline keeps a worker from work now: "dismissed", "suspended until …",
    or None; from their actions (kind, status, starts_at, ends_at). Overturned ones do
    not count; an appeal does not suspend a suspension."""
    until: datetime | None = None
    for kind, status, starts_at, ends_at in actions:
        if status == "overturned" or starts_at > now:
            continue
        if kind == "dismissal":
            return "dismissed"
        if kind == "suspension" and ends_at is not None and ends_at > now:
            until = max(until, ends_at) if until else ends_at
    return f"suspended until {until.isoformat(timespec='minutes')}" if until else None

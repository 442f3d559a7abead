"""The shapes the onboarding package hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    """An uploaded document of an application and the reviewer's verdict on it."""

    id: int
    kind: str
    certificate_kind: str | None
    number: str
    issued_on: date | None
    expires_on: date | None
    file_id: int
    status: str  # pending, approved, rejected, replaced
    reason: str
    created_at: datetime
    reviewed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Step:
    """One audited step of an application."""

    id: int
    at: datetime
    actor_id: int | None
    step: str
    document_id: int | None
    reason: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Application:
    """A person's application to work on the platform, with its documents (current ones
    first) and, for reviewers and the applicant, its audit trail."""

    id: int
    user_id: int
    phone: str
    status: str
    city_id: str | None
    real_name: str
    id_number: str | None
    birth_date: date | None
    skills: tuple[str, ...]
    home_lat: float | None
    home_lng: float | None
    reason: str
    identity_status: str
    identity_detail: str
    background_status: str
    background_detail: str
    submitted_at: datetime | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime
    documents: tuple[Document, ...] = ()
    missing: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A line of the reviewers' queue."""

    id: int
    user_id: int
    real_name: str
    id_number_masked: str
    city_id: str | None
    skills: tuple[str, ...]
    status: str
    identity_status: str
    background_status: str
    documents_pending: int
    submitted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Course:
    """Training material for a skill."""

    id: int
    skill: str
    title_zh: str
    title_en: str
    materials: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Exam:
    """A skill's exam and, for the caller, where they stand."""

    id: int
    skill: str
    title_zh: str
    title_en: str
    question_count: int
    time_limit_s: int
    pass_percent: int
    max_attempts: int
    bank_size: int
    attempts_used: int = 0
    passed: bool = False


@dataclass(frozen=True, slots=True)
class ShownChoice:
    """A choice as shown: its index in this attempt and the texts."""

    index: int
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class AttemptQuestion:
    """A question of an attempt, without its answer."""

    id: int
    kind: str
    text_zh: str
    text_en: str
    choices: tuple[ShownChoice, ...]


@dataclass(frozen=True, slots=True)
class Attempt:
    """An exam attempt: its questions while open, its grade once submitted."""

    id: int
    exam_id: int
    skill: str
    started_at: datetime
    deadline_at: datetime
    submitted_at: datetime | None
    score: int | None
    max_score: int | None
    percent: int | None
    passed: bool | None
    questions: tuple[AttemptQuestion, ...] = ()


@dataclass(frozen=True, slots=True)
class Practical:
    """A practical assessment recorded by an assessor."""

    id: int
    user_id: int
    skill: str
    assessor_id: int
    passed: bool
    score: int
    notes: str
    at: datetime

"""The rules of an application, without I/O: which documents it needs, what each
document may be, and which step is legal in which state.

States: ``draft`` (the applicant fills it in) → ``submitted`` (in the reviewers' queue)
→ ``approved`` (the applicant becomes a worker) or ``rejected`` (final), or
``changes_requested`` (back to the applicant, who fixes and resubmits). Every step is
kept in ``application_steps`` with its actor and reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from onboarding.errors import ApplicationState, InvalidOnboardingInput, WrongDocument

Status = Literal["draft", "submitted", "changes_requested", "approved", "rejected"]
DocumentKind = Literal[
    "id_front", "id_back", "face", "health", "skill_certificate", "no_criminal_record"
]
DOCUMENT_KINDS: tuple[DocumentKind, ...] = get_args(DocumentKind)
Decision = Literal["approve", "reject", "request_changes"]

MB = 1024 * 1024
IMAGES = frozenset({"image/jpeg", "image/png", "image/webp"})
DOCUMENTS = IMAGES | {"application/pdf"}


@dataclass(frozen=True, slots=True)
class DocumentRule:
    """What a document of one kind may be: the upload purpose, types, bytes, pixels."""

    purpose: str
    media_types: frozenset[str]
    max_bytes: int
    min_edge_px: int  # the shorter edge of an image, so that the print is legible
    needs_certificate_kind: bool = False
    needs_dates: bool = False


DOCUMENT_RULES: dict[DocumentKind, DocumentRule] = {
    "id_front": DocumentRule("id_card", IMAGES, 5 * MB, 300),
    "id_back": DocumentRule("id_card", IMAGES, 5 * MB, 300),
    "face": DocumentRule("id_card", IMAGES, 5 * MB, 200),
    "health": DocumentRule("certificate", DOCUMENTS, 8 * MB, 300, needs_dates=True),
    "skill_certificate": DocumentRule(
        "certificate", DOCUMENTS, 8 * MB, 300, needs_certificate_kind=True, needs_dates=True
    ),
    "no_criminal_record": DocumentRule("certificate", DOCUMENTS, 8 * MB, 300),
}
ALWAYS_REQUIRED: tuple[DocumentKind, ...] = (
    "id_front",
    "id_back",
    "face",
    "health",
    "no_criminal_record",
)
HEALTH_KIND = "health"  # the certificate kind a health document registers as


def check_document_file(
    kind: DocumentKind,
    *,
    purpose: str,
    media_type: str,
    size_bytes: int,
    width: int | None,
    height: int | None,
    field: str = "file_id",
) -> None:
    """The uploaded file fits the document kind: purpose, type, bytes, pixels."""
    rule = DOCUMENT_RULES[kind]
    if purpose != rule.purpose:
        raise WrongDocument(
            f"a {kind} document is uploaded with purpose {rule.purpose!r}, not {purpose!r}",
            field=field,
        )
    if media_type not in rule.media_types:
        raise WrongDocument(
            f"a {kind} document must be one of {', '.join(sorted(rule.media_types))}; "
            f"the file is {media_type}",
            field=field,
        )
    if size_bytes > rule.max_bytes:
        raise WrongDocument(
            f"a {kind} document is at most {rule.max_bytes} bytes; the file has {size_bytes}",
            field=field,
        )
    if width is not None and height is not None and min(width, height) < rule.min_edge_px:
        raise WrongDocument(
            f"a {kind} image needs a shorter edge of at least {rule.min_edge_px} px to be "
            f"legible; the file is {width}×{height}",
            field=field,
        )


def required_documents(
    skills: Iterable[str], rules: Mapping[str, frozenset[str]]
) -> list[tuple[DocumentKind, str | None]]:
    """(kind, certificate kind) of every document an application with these skills needs."""
    out: list[tuple[DocumentKind, str | None]] = [(k, None) for k in ALWAYS_REQUIRED]
    kinds = sorted({c for s in skills for c in rules.get(s, frozenset())} - {HEALTH_KIND})
    out.extend(("skill_certificate", c) for c in kinds)
    return out


def missing_documents(
    have: Iterable[tuple[str, str | None]],
    skills: Iterable[str],
    rules: Mapping[str, frozenset[str]],
) -> list[str]:
    """The required documents not uploaded (``kind`` or ``skill_certificate:<kind>``)."""
    present = {(k, c if k == "skill_certificate" else None) for k, c in have}
    return [
        k if c is None else f"{k}:{c}"
        for k, c in required_documents(skills, rules)
        if (k, c) not in present
    ]


def check_editable(status: str) -> None:
    """The applicant may change the application only in draft or when asked to."""
    if status not in ("draft", "changes_requested"):
        raise ApplicationState(
            f"the application is {status}; it can be changed only as a draft or when "
            "changes are requested",
            field="status",
        )


def check_submittable(
    status: str,
    *,
    profile_missing: list[str],
    documents_missing: list[str],
) -> None:
    """A draft (or a changed one) with a full profile and every required document."""
    check_editable(status)
    if profile_missing:
        raise InvalidOnboardingInput(
            f"fill in {', '.join(profile_missing)} before submitting", field=profile_missing[0]
        )
    if documents_missing:
        raise InvalidOnboardingInput(
            f"upload {', '.join(documents_missing)} before submitting", field="documents"
        )


def check_reason(reason: str, required: bool, field: str = "reason") -> str:
    """A reason: trimmed, at most 500 characters, required to reject or send back."""
    text = reason.strip()
    if required and not text:
        raise InvalidOnboardingInput("say why: a reason is required for this", field=field)
    if len(text) > 500:
        raise InvalidOnboardingInput("must be at most 500 characters", field=field)
    return text


def next_status(
    status: str,
    decision: Decision,
    *,
    documents: Mapping[int, str],
    identity_status: str,
    background_status: str,
) -> Status:
    """The reviewer's decision on a submitted application. Approving needs every document
    approved, the identity verified and the background clear."""
    if status != "submitted":
        raise ApplicationState(
            f"the application is {status}; only a submitted one is decided", field="status"
        )
    if decision == "reject":
        return "rejected"
    if decision == "request_changes":
        return "changes_requested"
    pending = sorted(d for d, s in documents.items() if s != "approved")
    if pending:
        raise ApplicationState(
            f"document(s) {', '.join(map(str, pending))} are not approved", field="documents"
        )
    if identity_status != "verified":
        raise ApplicationState(
            f"the identity check is {identity_status}, not verified", field="identity_status"
        )
    if background_status != "clear":
        raise ApplicationState(
            f"the background check is {background_status}, not clear", field="background_status"
        )
    return "approved"

"""PostgreSQL access for applications, documents, steps, courses, exams and attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from doorstep.db import Conn, Tx
from onboarding.exams import Question
from onboarding.idcard import mask_id_number
from onboarding.models import Application, Course, Document, Practical, QueueItem, Step
from privacy.crypto import blind, reveal, seal

_APP = (
    "a.id, a.user_id, u.phone, a.status, a.city_id, a.real_name, a.id_number, a.birth_date, "
    "a.skills, a.home_lat, a.home_lng, a.reason, a.identity_status, a.identity_detail, "
    "a.background_status, a.background_detail, a.submitted_at, a.decided_at, a.created_at, "
    "a.updated_at"
)
_DOC = (
    "id, kind, certificate_kind, number, issued_on, expires_on, file_id, status, reason, "
    "created_at, reviewed_at"
)
_EDITABLE = {
    "city_id",
    "real_name",
    "id_number",
    "birth_date",
    "skills",
    "home_lat",
    "home_lng",
    "status",
    "reason",
    "identity_status",
    "identity_detail",
    "background_status",
    "background_detail",
    "submitted_at",
    "decided_at",
    "decided_by",
}


def _id_number(sealed: str | None) -> str | None:
    return None if sealed is None else reveal("applications.id_number", sealed)


def _app(r: asyncpg.Record) -> Application:
    fields = dict(r)
    fields["skills"] = tuple(fields["skills"])
    fields["phone"] = reveal("users.phone", fields["phone"])
    fields["id_number"] = _id_number(fields["id_number"])
    return Application(**fields)


async def application(
    db: Conn, *, app_id: int | None = None, user_id: int | None = None, lock: bool = False
) -> Application | None:
    """One application by id or by its applicant, without documents."""
    row = await db.fetchrow(
        f"SELECT {_APP} FROM applications a JOIN users u ON u.id = a.user_id "
        "WHERE ($1::bigint IS NULL OR a.id = $1) AND ($2::bigint IS NULL OR a.user_id = $2)"
        f"{' FOR NO KEY UPDATE OF a' if lock else ''}",  # documents, steps reference it
        app_id,
        user_id,
    )
    return _app(row) if row else None


async def create(db: Conn, user_id: int, now: datetime) -> None:
    """A draft for the user (nothing if they have one)."""
    await db.execute(
        "INSERT INTO applications (user_id, created_at, updated_at) VALUES ($1, $2, $2) "
        "ON CONFLICT (user_id) DO NOTHING",
        user_id,
        now,
    )


async def update(db: Tx, app_id: int, fields: dict[str, Any], now: datetime) -> None:
    """Set some columns of an application."""
    assert set(fields) <= _EDITABLE, set(fields) - _EDITABLE
    if "id_number" in fields:  # encrypted, found and kept unique by its blind index
        number = fields["id_number"]
        fields = {
            **fields,
            "id_number_bidx": None if number is None else blind("id_number", number),
        }
        fields["id_number"] = None if number is None else seal("applications.id_number", number)
    names = list(fields)
    sets = "".join(f"{n} = ${i + 3}, " for i, n in enumerate(names))  # none: only the time
    await db.execute(
        f"UPDATE applications SET {sets}updated_at = $2 WHERE id = $1",
        app_id,
        now,
        *[list(v) if isinstance(v, tuple) else v for v in fields.values()],
    )


async def id_number_taken(db: Conn, id_number: str, app_id: int) -> bool:
    """True if another application holds this number."""
    return bool(
        await db.fetchval(
            "SELECT 1 FROM applications WHERE id_number_bidx = $1 AND id <> $2",
            blind("id_number", id_number),
            app_id,
        )
    )


async def documents(db: Conn, app_id: int) -> tuple[Document, ...]:
    """An application's documents, current ones first, newest first."""
    rows = await db.fetch(
        f"SELECT {_DOC} FROM application_documents WHERE application_id = $1 "
        "ORDER BY status = 'replaced', id DESC",
        app_id,
    )
    return tuple(Document(**dict(r)) for r in rows)


async def insert_document(
    db: Tx,
    app_id: int,
    *,
    kind: str,
    certificate_kind: str | None,
    number: str,
    issued_on: Any,
    expires_on: Any,
    file_id: int,
    now: datetime,
) -> Document:
    """A new current document; the one it replaces (same kind and certificate kind) is
    marked replaced."""
    await db.execute(
        "UPDATE application_documents SET status = 'replaced' WHERE application_id = $1 "
        "AND kind = $2 AND certificate_kind IS NOT DISTINCT FROM $3 AND status <> 'replaced'",
        app_id,
        kind,
        certificate_kind,
    )
    row = await db.fetchrow(
        "INSERT INTO application_documents (application_id, kind, certificate_kind, number, "
        "issued_on, expires_on, file_id, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
        f"RETURNING {_DOC}",
        app_id,
        kind,
        certificate_kind,
        number,
        issued_on,
        expires_on,
        file_id,
        now,
    )
    assert row is not None
    return Document(**dict(row))


async def review_document(
    db: Tx, app_id: int, doc_id: int, status: str, reason: str, actor_id: int, now: datetime
) -> Document | None:
    """Set a current document's verdict."""
    row = await db.fetchrow(
        "UPDATE application_documents SET status = $3, reason = $4, reviewed_by = $5, "
        "reviewed_at = $6 WHERE id = $2 AND application_id = $1 AND status <> 'replaced' "
        f"RETURNING {_DOC}",
        app_id,
        doc_id,
        status,
        reason,
        actor_id,
        now,
    )
    return Document(**dict(row)) if row else None


async def add_step(
    db: Conn,
    app_id: int,
    *,
    step: str,
    actor_id: int | None,
    now: datetime,
    reason: str = "",
    document_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Keep one step of the audit trail."""
    await db.execute(
        "INSERT INTO application_steps (application_id, at, actor_id, step, document_id, "
        "reason, detail) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        app_id,
        now,
        actor_id,
        step,
        document_id,
        reason,
        orjson.dumps(detail or {}).decode(),
    )


async def steps(db: Conn, app_id: int) -> tuple[Step, ...]:
    """The audit trail, oldest first."""
    rows = await db.fetch(
        "SELECT id, at, actor_id, step, document_id, reason, detail FROM application_steps "
        "WHERE application_id = $1 ORDER BY id",
        app_id,
    )
    return tuple(Step(**{**dict(r), "detail": orjson.loads(r["detail"])}) for r in rows)


async def queue(
    db: Conn, *, status: str, after_id: int, limit: int, city_ids: list[str] | None = None
) -> list[QueueItem]:
    """Applications in ``status``, oldest submission first (keyset by id); ``city_ids``:
    only those cities' (a city-scoped reviewer)."""
    rows = await db.fetch(
        "SELECT a.id, a.user_id, a.real_name, a.id_number, a.city_id, a.skills, a.status, "
        "a.identity_status, a.background_status, a.submitted_at, "
        "(SELECT count(*) FROM application_documents d WHERE d.application_id = a.id "
        "AND d.status = 'pending') AS documents_pending "
        "FROM applications a WHERE a.status = $1 AND a.id > $2 "
        "AND ($4::text[] IS NULL OR a.city_id = ANY($4)) ORDER BY a.id LIMIT $3",
        status,
        after_id,
        limit,
        city_ids,
    )
    return [
        QueueItem(
            id=r["id"],
            user_id=r["user_id"],
            real_name=r["real_name"],
            id_number_masked=mask_id_number(_id_number(r["id_number"]) or ""),
            city_id=r["city_id"],
            skills=tuple(r["skills"]),
            status=r["status"],
            identity_status=r["identity_status"],
            background_status=r["background_status"],
            documents_pending=int(r["documents_pending"]),
            submitted_at=r["submitted_at"],
        )
        for r in rows
    ]


# --- Training ---------------------------------------------------------------------------


async def insert_course(
    db: Conn,
    *,
    skill: str,
    title_zh: str,
    title_en: str,
    materials: list[dict[str, str]],
    now: datetime,
) -> Course:
    """A course for a skill."""
    row = await db.fetchrow(
        "INSERT INTO courses (skill, title_zh, title_en, materials, created_at) "
        "VALUES ($1,$2,$3,$4,$5) RETURNING id, skill, title_zh, title_en, materials",
        skill,
        title_zh,
        title_en,
        orjson.dumps(materials).decode(),
        now,
    )
    assert row is not None
    return Course(**{**dict(row), "materials": orjson.loads(row["materials"])})


async def courses(db: Conn, skills: list[str] | None) -> list[Course]:
    """Courses, of these skills only if given."""
    rows = await db.fetch(
        "SELECT id, skill, title_zh, title_en, materials FROM courses "
        "WHERE ($1::text[] IS NULL OR skill = ANY($1)) ORDER BY skill, id",
        skills,
    )
    return [Course(**{**dict(r), "materials": orjson.loads(r["materials"])}) for r in rows]


async def upsert_exam(
    db: Tx,
    *,
    skill: str,
    title_zh: str,
    title_en: str,
    question_count: int,
    time_limit_s: int,
    pass_percent: int,
    max_attempts: int,
    questions: list[Question],
    now: datetime,
) -> int:
    """The skill's exam with its bank (a bank given again replaces the old one)."""
    exam_id: int = await db.fetchval(
        "INSERT INTO exams (skill, title_zh, title_en, question_count, time_limit_s, "
        "pass_percent, max_attempts, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
        "ON CONFLICT (skill) DO UPDATE SET title_zh = EXCLUDED.title_zh, "
        "title_en = EXCLUDED.title_en, question_count = EXCLUDED.question_count, "
        "time_limit_s = EXCLUDED.time_limit_s, pass_percent = EXCLUDED.pass_percent, "
        "max_attempts = EXCLUDED.max_attempts RETURNING id",
        skill,
        title_zh,
        title_en,
        question_count,
        time_limit_s,
        pass_percent,
        max_attempts,
        now,
    )
    if questions:
        used = await db.fetchval(
            "SELECT count(*) FROM exam_attempts WHERE exam_id = $1 AND submitted_at IS NULL",
            exam_id,
        )
        if not used:
            await db.execute("DELETE FROM exam_questions WHERE exam_id = $1", exam_id)
        await add_questions(db, exam_id, questions)
    return exam_id


async def add_questions(db: Tx, exam_id: int, questions: list[Question]) -> None:
    """Questions added to an exam's bank."""
    await db.executemany(
        "INSERT INTO exam_questions (exam_id, kind, text_zh, text_en, choices, answer, points) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7)",
        [
            (
                exam_id,
                q.kind,
                q.text_zh,
                q.text_en,
                orjson.dumps([list(c) for c in q.choices]).decode(),
                list(q.answer),
                q.points,
            )
            for q in questions
        ],
    )


_EXAM = (
    "e.id, e.skill, e.title_zh, e.title_en, e.question_count, e.time_limit_s, e.pass_percent, "
    "e.max_attempts, (SELECT count(*) FROM exam_questions q WHERE q.exam_id = e.id) AS bank_size"
)


async def exams(db: Conn, skills: list[str] | None) -> list[asyncpg.Record]:
    """Exams (of these skills only if given)."""
    return await db.fetch(
        f"SELECT {_EXAM} FROM exams e WHERE ($1::text[] IS NULL OR e.skill = ANY($1)) "
        "ORDER BY e.skill",
        skills,
    )


async def exam(db: Conn, exam_id: int) -> asyncpg.Record | None:
    """One exam."""
    return await db.fetchrow(f"SELECT {_EXAM} FROM exams e WHERE e.id = $1", exam_id)


def _question(r: asyncpg.Record) -> Question:
    return Question(
        id=r["id"],
        kind=r["kind"],
        text_zh=r["text_zh"],
        text_en=r["text_en"],
        choices=tuple((c[0], c[1]) for c in orjson.loads(r["choices"])),
        answer=tuple(r["answer"]),
        points=r["points"],
    )


async def questions(db: Conn, exam_id: int, ids: list[int] | None = None) -> list[Question]:
    """The bank (or these questions of it, in the order given)."""
    rows = await db.fetch(
        "SELECT id, kind, text_zh, text_en, choices, answer, points FROM exam_questions "
        "WHERE exam_id = $1 AND ($2::bigint[] IS NULL OR id = ANY($2)) ORDER BY id",
        exam_id,
        ids,
    )
    found = {r["id"]: _question(r) for r in rows}
    return [found[i] for i in ids if i in found] if ids is not None else list(found.values())


async def attempts_used(db: Conn, exam_id: int, user_id: int) -> int:
    """How many attempts the user started."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM exam_attempts WHERE exam_id = $1 AND user_id = $2",
            exam_id,
            user_id,
        )
    )


async def passed_skills(db: Conn, user_id: int) -> set[str]:
    """Skills whose exam the user passed."""
    rows = await db.fetch("SELECT skill FROM skill_qualifications WHERE user_id = $1", user_id)
    return {r["skill"] for r in rows}


_ATTEMPT = (
    "t.id, t.exam_id, e.skill, t.user_id, t.seed, t.question_ids, t.started_at, t.deadline_at, "
    "t.submitted_at, t.score, t.max_score, t.passed"
)


async def attempt(db: Conn, attempt_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """One attempt with its exam's skill."""
    return await db.fetchrow(
        f"SELECT {_ATTEMPT} FROM exam_attempts t JOIN exams e ON e.id = t.exam_id "
        f"WHERE t.id = $1{' FOR NO KEY UPDATE OF t' if lock else ''}",
        attempt_id,
    )


async def open_attempt(db: Conn, exam_id: int, user_id: int) -> asyncpg.Record | None:
    """The user's unsubmitted attempt of this exam, if any."""
    return await db.fetchrow(
        f"SELECT {_ATTEMPT} FROM exam_attempts t JOIN exams e ON e.id = t.exam_id "
        "WHERE t.exam_id = $1 AND t.user_id = $2 AND t.submitted_at IS NULL "
        "ORDER BY t.id DESC LIMIT 1",
        exam_id,
        user_id,
    )


async def insert_attempt(
    db: Tx,
    *,
    exam_id: int,
    user_id: int,
    seed: int,
    question_ids: list[int],
    started_at: datetime,
    deadline_at: datetime,
) -> int:
    """A started attempt."""
    return int(
        await db.fetchval(
            "INSERT INTO exam_attempts (exam_id, user_id, seed, question_ids, started_at, "
            "deadline_at) VALUES ($1,$2,$3,$4,$5,$6) RETURNING id",
            exam_id,
            user_id,
            seed,
            question_ids,
            started_at,
            deadline_at,
        )
    )


async def finish_attempt(
    db: Tx,
    attempt_id: int,
    *,
    answers: dict[int, list[int]],
    score: int,
    max_score: int,
    passed: bool,
    now: datetime,
) -> None:
    """Record the graded answers."""
    await db.execute(
        "UPDATE exam_attempts SET submitted_at = $2, answers = $3, score = $4, max_score = $5, "
        "passed = $6 WHERE id = $1",
        attempt_id,
        now,
        orjson.dumps({str(k): v for k, v in answers.items()}).decode(),
        score,
        max_score,
        passed,
    )


async def qualify(db: Tx, user_id: int, skill: str, attempt_id: int | None, now: datetime) -> None:
    """The skill's exam is passed (the first pass counts)."""
    await db.execute(
        "INSERT INTO skill_qualifications (user_id, skill, attempt_id, qualified_at) "
        "VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
        user_id,
        skill,
        attempt_id,
        now,
    )


async def insert_practical(
    db: Conn,
    *,
    user_id: int,
    skill: str,
    assessor_id: int,
    passed: bool,
    score: int,
    notes: str,
    now: datetime,
) -> Practical:
    """A practical assessment."""
    row = await db.fetchrow(
        "INSERT INTO practical_assessments (user_id, skill, assessor_id, passed, score, notes, at) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id, user_id, skill, assessor_id, passed, "
        "score, notes, at",
        user_id,
        skill,
        assessor_id,
        passed,
        score,
        notes,
        now,
    )
    assert row is not None
    return Practical(**dict(row))


async def practicals(db: Conn, user_id: int) -> list[Practical]:
    """A person's practical assessments, newest first."""
    rows = await db.fetch(
        "SELECT id, user_id, skill, assessor_id, passed, score, notes, at "
        "FROM practical_assessments WHERE user_id = $1 ORDER BY id DESC",
        user_id,
    )
    return [Practical(**dict(r)) for r in rows]

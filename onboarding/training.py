"""Training and exams: courses, question banks, timed attempts, grading, practical
assessments. The rules are :mod:`onboarding.exams`; this module does the I/O.

Who: admins write courses and exams; a worker (or applicant) sees the courses and
exams of their skills and takes attempts; an assessor (admin or reviewer) records
practical assessments. Passing a skill's exam writes ``skill_qualifications``, which
``workforce.gating`` reads.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg

from accounts.tokens import Claims
from doorstep.stores import Stores
from onboarding import exams, store
from onboarding.errors import AssesseeNotFound, ExamNotFound, ExamState, InvalidOnboardingInput
from onboarding.exams import ExamRules, Question
from onboarding.models import (
    Attempt,
    AttemptQuestion,
    Course,
    Exam,
    Practical,
    ShownChoice,
)
from permissions.rules import Viewer
from workforce import service as workforce
from workforce import store as workforce_store


def _rules(r: asyncpg.Record) -> ExamRules:
    return ExamRules(r["question_count"], r["time_limit_s"], r["pass_percent"], r["max_attempts"])


async def my_skills(stores: Stores, user_id: int) -> list[str]:
    """The skills a person holds (worker profile) or claims (application)."""
    worker = await workforce_store.worker(stores.pool, user_id, detail=False)
    if worker is not None:
        return list(worker.skills)
    skills = await stores.pool.fetchval(
        "SELECT skills FROM applications WHERE user_id = $1", user_id
    )
    return list(skills or [])


async def add_course(
    stores: Stores, *, skill: str, title_zh: str, title_en: str, materials: list[dict[str, str]]
) -> Course:
    """A course for a known skill."""
    await workforce.check_skills(stores, [skill], "skill")
    return await store.insert_course(
        stores.pool,
        skill=skill,
        title_zh=title_zh,
        title_en=title_en,
        materials=materials,
        now=datetime.now(UTC),
    )


async def put_exam(
    stores: Stores,
    *,
    skill: str,
    title_zh: str,
    title_en: str,
    rules: ExamRules,
    questions: list[Question],
) -> Exam:
    """Create or replace a skill's exam and its bank."""
    await workforce.check_skills(stores, [skill], "skill")
    checked = [exams.check_question(q, f"questions[{i}]") for i, q in enumerate(questions)]
    exams.check_rules(rules, len(checked))
    async with stores.pool.acquire() as conn, conn.transaction():
        exam_id = await store.upsert_exam(
            conn,
            skill=skill,
            title_zh=title_zh,
            title_en=title_en,
            question_count=rules.question_count,
            time_limit_s=rules.time_limit_s,
            pass_percent=rules.pass_percent,
            max_attempts=rules.max_attempts,
            questions=checked,
            now=datetime.now(UTC),
        )
    row = await store.exam(stores.pool, exam_id)
    assert row is not None
    return Exam(**dict(row))


async def add_questions(stores: Stores, exam_id: int, questions: list[Question]) -> Exam:
    """Grow an exam's bank."""
    checked = [exams.check_question(q, f"questions[{i}]") for i, q in enumerate(questions)]
    if await store.exam(stores.pool, exam_id) is None:
        raise ExamNotFound(f"no exam {exam_id}", field="exam_id")
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.add_questions(conn, exam_id, checked)
    row = await store.exam(stores.pool, exam_id)
    assert row is not None
    return Exam(**dict(row))


async def list_exams(stores: Stores, caller: Claims, *, staff: bool) -> list[Exam]:
    """Staff: every exam. Others: their skills' exams with attempts used and passed."""
    if staff:
        return [Exam(**dict(r)) for r in await store.exams(stores.pool, None)]
    skills = await my_skills(stores, caller.user_id)
    passed = await store.passed_skills(stores.pool, caller.user_id)
    out = []
    for r in await store.exams(stores.pool, skills):
        used = await store.attempts_used(stores.pool, r["id"], caller.user_id)
        out.append(Exam(**dict(r), attempts_used=used, passed=r["skill"] in passed))
    return out


async def list_courses(stores: Stores, caller: Claims, *, staff: bool) -> list[Course]:
    """Staff: every course. Others: their skills' courses."""
    return await store.courses(
        stores.pool, None if staff else await my_skills(stores, caller.user_id)
    )


def _shown_attempt(r: asyncpg.Record, questions: list[Question] | None) -> Attempt:
    shown: tuple[AttemptQuestion, ...] = ()
    if questions is not None:
        shown = tuple(
            AttemptQuestion(
                id=s.id,
                kind=s.kind,
                text_zh=s.text_zh,
                text_en=s.text_en,
                choices=tuple(ShownChoice(i, zh, en) for i, (zh, en) in enumerate(s.choices)),
            )
            for s in (exams.shown(q, r["seed"]) for q in questions)
        )
    score, max_score = r["score"], r["max_score"]
    return Attempt(
        id=r["id"],
        exam_id=r["exam_id"],
        skill=r["skill"],
        started_at=r["started_at"],
        deadline_at=r["deadline_at"],
        submitted_at=r["submitted_at"],
        score=score,
        max_score=max_score,
        percent=(100 * score) // max_score if score is not None and max_score else None,
        passed=r["passed"],
        questions=shown,
    )


async def start(stores: Stores, caller: Claims, exam_id: int, *, now: datetime) -> Attempt:
    """A new timed attempt with randomised questions (or the open one, as it was)."""
    row = await store.exam(stores.pool, exam_id)
    if row is None or row["skill"] not in await my_skills(stores, caller.user_id):
        raise ExamNotFound(f"no exam {exam_id} for your skills", field="exam_id")
    rules = _rules(row)
    if row["skill"] in await store.passed_skills(stores.pool, caller.user_id):
        raise ExamState("you passed this exam already", field="exam_id")
    async with stores.pool.acquire() as conn, conn.transaction():
        # one start at a time per person and exam
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('exam'), hashtext($1))",
            f"{exam_id}:{caller.user_id}",
        )
        open_one = await store.open_attempt(conn, exam_id, caller.user_id)
        if open_one is not None and now <= open_one["deadline_at"]:
            attempt_id = open_one["id"]
        else:
            exams.check_attempts(await store.attempts_used(conn, exam_id, caller.user_id), rules)
            seed = secrets.randbelow(2**62)
            bank = await store.questions(conn, exam_id)
            ids = exams.draw(bank, rules.question_count, seed)
            attempt_id = await store.insert_attempt(
                conn,
                exam_id=exam_id,
                user_id=caller.user_id,
                seed=seed,
                question_ids=list(ids),
                started_at=now,
                deadline_at=exams.deadline(now, rules),
            )
    r = await store.attempt(stores.pool, attempt_id)
    assert r is not None
    return _shown_attempt(r, await store.questions(stores.pool, exam_id, list(r["question_ids"])))


async def get_attempt(stores: Stores, caller: Claims, attempt_id: int) -> Attempt:
    """The caller's attempt (questions while open)."""
    r = await store.attempt(stores.pool, attempt_id)
    if r is None or r["user_id"] != caller.user_id:
        raise ExamNotFound(f"no attempt {attempt_id} of yours", field="attempt_id")
    qs = None
    if r["submitted_at"] is None:
        qs = await store.questions(stores.pool, r["exam_id"], list(r["question_ids"]))
    return _shown_attempt(r, qs)


async def submit(
    stores: Stores,
    caller: Claims,
    attempt_id: int,
    answers: dict[int, list[int]],
    *,
    now: datetime,
) -> Attempt:
    """Grade the answers; refused after the time limit (``exam_time_up``). A pass makes
    the skill's exam passed for the person."""
    async with stores.pool.acquire() as conn, conn.transaction():
        r = await store.attempt(conn, attempt_id, lock=True)
        if r is None or r["user_id"] != caller.user_id:
            raise ExamNotFound(f"no attempt {attempt_id} of yours", field="attempt_id")
        if r["submitted_at"] is not None:
            raise ExamState("this attempt was submitted already", field="attempt_id")
        exams.check_in_time(r["deadline_at"], now)
        row = await store.exam(conn, r["exam_id"])
        assert row is not None
        questions = await store.questions(conn, r["exam_id"], list(r["question_ids"]))
        grade = exams.grade(questions, answers, r["seed"], _rules(row))
        await store.finish_attempt(
            conn,
            attempt_id,
            answers=answers,
            score=grade.score,
            max_score=grade.max_score,
            passed=grade.passed,
            now=now,
        )
        if grade.passed:
            await store.qualify(conn, caller.user_id, r["skill"], attempt_id, now)
    done = await store.attempt(stores.pool, attempt_id)
    assert done is not None
    return _shown_attempt(done, None)


async def assessable(stores: Stores, viewer: Viewer, user_id: int) -> None:
    """The person ``user_id`` if the caller may assess them: a platform-wide caller
    (admins, reviewers, a platform grant) anyone with an account; a city's grant the
    workers of its cities (an applicant belongs to no city yet). Otherwise
    :class:`AssesseeNotFound` (404 on ``user_id``), the same as for nobody."""
    scope = viewer.scope
    if scope is not None and scope.platform:
        found = await stores.pool.fetchval("SELECT 1 FROM users WHERE id = $1", user_id)
    elif scope is not None and scope.cities:
        found = await stores.pool.fetchval(
            "SELECT 1 FROM workers WHERE user_id = $1 AND city_id = ANY($2)",
            user_id,
            sorted(scope.cities),
        )
    else:
        found = None
    if found is None:
        raise AssesseeNotFound(f"no person {user_id} you may assess", field="user_id")


async def record_practical(
    stores: Stores,
    caller: Claims,
    viewer: Viewer,
    *,
    user_id: int,
    skill: str,
    passed: bool,
    score: int,
    notes: str,
) -> Practical:
    """An assessor's record of a practical assessment of a person they may assess."""
    await assessable(stores, viewer, user_id)
    await workforce.check_skills(stores, [skill], "skill")
    return await store.insert_practical(
        stores.pool,
        user_id=user_id,
        skill=skill,
        assessor_id=caller.user_id,
        passed=passed,
        score=score,
        notes=notes.strip(),
        now=datetime.now(UTC),
    )


def question_from(data: dict[str, Any]) -> Question:
    """A question from its request fields."""
    return Question(
        id=0,
        kind=data["kind"],
        text_zh=data["text_zh"],
        text_en=data["text_en"],
        choices=tuple((c["zh"], c["en"]) for c in data["choices"]),
        answer=tuple(data["answer"]),
        points=data.get("points", 1),
    )


async def practicals(stores: Stores, viewer: Viewer, user_id: int) -> list[Practical]:
    """A person's practical assessments (a person the caller may assess)."""
    await assessable(stores, viewer, user_id)
    return await store.practicals(stores.pool, user_id)


async def set_skill_certificates(stores: Stores, skill: str, kinds: list[str]) -> list[str]:
    """Replace the certificate kinds a skill needs; the kinds, sorted."""
    from catalog import store as catalog_store

    await workforce.check_skills(stores, [skill], "skill")
    known = {k.code for k in await catalog_store.certificate_kinds(stores.pool)}
    for i, k in enumerate(kinds):
        if k not in known:
            raise InvalidOnboardingInput(
                f"unknown certificate kind {k!r}", field=f"certificate_kinds[{i}]"
            )
    chosen = sorted(set(kinds))
    async with stores.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM skill_certificates WHERE skill = $1", skill)
        await conn.executemany(
            "INSERT INTO skill_certificates (skill, certificate_kind) VALUES ($1, $2)",
            [(skill, k) for k in chosen],
        )
    return chosen

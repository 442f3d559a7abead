"""The rules of exams, without I/O: drawing an attempt's questions, grading, time limits
and the attempts limit. ``now`` and ``seed`` come in as arguments.

A question is ``single`` (one right choice), ``multiple`` (the exact set of right
choices, no partial credit) or ``true_false`` (choices 0 = true, 1 = false). An
attempt draws ``question_count`` questions from the bank with a seeded shuffle and
shuffles each question's choices too; the answers come back as indexes into the
choices *as shown*, and grading maps them back. An answer sent after the deadline is
refused (``exam_time_up``), not graded; a grace of a few seconds covers the network.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from onboarding.errors import ExamAttemptsUsed, ExamTimeUp, InvalidOnboardingInput

QuestionKind = Literal["single", "multiple", "true_false"]
GRACE_S = 5  # network delay forgiven after the deadline


@dataclass(frozen=True, slots=True)
class Question:
    """A question of the bank: ``answer`` holds the indexes of the right choices."""

    id: int
    kind: QuestionKind
    text_zh: str
    text_en: str
    choices: tuple[tuple[str, str], ...]  # (zh, en) per choice
    answer: tuple[int, ...]
    points: int = 1


@dataclass(frozen=True, slots=True)
class ExamRules:
    """An exam's numbers."""

    question_count: int
    time_limit_s: int
    pass_percent: int
    max_attempts: int


@dataclass(frozen=True, slots=True)
class ShownQuestion:
    """A question as the candidate sees it: choices in the attempt's order, no answer."""

    id: int
    kind: QuestionKind
    text_zh: str
    text_en: str
    choices: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Grade:
    """An attempt's result."""

    score: int
    max_score: int
    percent: int
    passed: bool
    wrong: tuple[int, ...]  # question ids answered wrongly or not at all


def check_question(q: Question, field: str = "question") -> Question:
    """A question whose kind, choices and answer agree."""
    if q.kind == "true_false":
        if len(q.choices) != 2:
            raise InvalidOnboardingInput(
                "a true_false question has exactly 2 choices (true, false)",
                field=f"{field}.choices",
            )
    elif not 2 <= len(q.choices) <= 8:
        raise InvalidOnboardingInput("must have 2 to 8 choices", field=f"{field}.choices")
    if not q.answer or len(set(q.answer)) != len(q.answer):
        raise InvalidOnboardingInput("must name distinct right choices", field=f"{field}.answer")
    if any(not 0 <= a < len(q.choices) for a in q.answer):
        raise InvalidOnboardingInput(
            f"each right choice is an index 0..{len(q.choices) - 1}", field=f"{field}.answer"
        )
    if q.kind in ("single", "true_false") and len(q.answer) != 1:
        raise InvalidOnboardingInput(
            f"a {q.kind} question has exactly one right choice", field=f"{field}.answer"
        )
    return q


def check_rules(rules: ExamRules, bank_size: int) -> None:
    """An exam whose bank holds enough questions for one attempt."""
    if rules.question_count > bank_size:
        raise InvalidOnboardingInput(
            f"the bank holds {bank_size} question(s), fewer than {rules.question_count}",
            field="question_count",
        )


def _choice_order(seed: int, question_id: int, n: int) -> list[int]:
    """The shown position → the bank's choice index (true/false keeps its order)."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + question_id).shuffle(order)
    return order


def draw(bank: Sequence[Question], count: int, seed: int) -> tuple[int, ...]:
    """The ids of an attempt's questions: ``count`` of the bank in a seeded order."""
    if count > len(bank):
        raise InvalidOnboardingInput(
            f"the bank holds {len(bank)} question(s), fewer than {count}", field="question_count"
        )
    ids = sorted(q.id for q in bank)
    return tuple(random.Random(seed).sample(ids, count))


def shown(question: Question, seed: int) -> ShownQuestion:
    """The question with its choices in the attempt's order."""
    if question.kind == "true_false":
        return ShownQuestion(
            question.id, question.kind, question.text_zh, question.text_en, question.choices
        )
    order = _choice_order(seed, question.id, len(question.choices))
    return ShownQuestion(
        question.id,
        question.kind,
        question.text_zh,
        question.text_en,
        tuple(question.choices[i] for i in order),
    )


def deadline(started_at: datetime, rules: ExamRules) -> datetime:
    """When the attempt's time is up."""
    return started_at + timedelta(seconds=rules.time_limit_s)


def check_in_time(deadline_at: datetime, now: datetime, field: str = "answers") -> None:
    """Refuse answers sent after the deadline (plus :data:`GRACE_S`), naming the rule."""
    if now > deadline_at + timedelta(seconds=GRACE_S):
        late = int((now - deadline_at).total_seconds())
        raise ExamTimeUp(
            f"the time limit ended at {deadline_at.isoformat()}; answers sent {late} s late "
            "are not graded",
            field=field,
        )


def check_attempts(used: int, rules: ExamRules) -> None:
    """Refuse a new attempt once ``max_attempts`` are used."""
    if used >= rules.max_attempts:
        raise ExamAttemptsUsed(
            f"all {rules.max_attempts} attempt(s) of this exam are used", field="exam_id"
        )


def grade(
    questions: Sequence[Question],
    answers: Mapping[int, Sequence[int]],
    seed: int,
    rules: ExamRules,
) -> Grade:
    """Score ``answers`` (question id → indexes of the choices as shown) for the attempt's
    questions; an answer to a question not in the attempt is refused."""
    by_id = {q.id: q for q in questions}
    for qid, picked in answers.items():
        q = by_id.get(qid)
        if q is None:
            raise InvalidOnboardingInput(
                f"question {qid} is not in this attempt", field=f"answers.{qid}"
            )
        if any(not 0 <= p < len(q.choices) for p in picked) or len(set(picked)) != len(picked):
            raise InvalidOnboardingInput(
                f"each answer is a distinct choice index 0..{len(q.choices) - 1}",
                field=f"answers.{qid}",
            )
        if q.kind != "multiple" and len(picked) > 1:
            raise InvalidOnboardingInput(
                f"a {q.kind} question takes one choice", field=f"answers.{qid}"
            )
    score = 0
    wrong = []
    for q in questions:
        picked = answers.get(q.id, ())
        if q.kind == "true_false":
            chosen = set(picked)
        else:
            order = _choice_order(seed, q.id, len(q.choices))
            chosen = {order[p] for p in picked}
        if chosen == set(q.answer):
            score += q.points
        else:
            wrong.append(q.id)
    max_score = sum(q.points for q in questions)
    percent = (100 * score) // max_score if max_score else 0
    return Grade(score, max_score, percent, percent >= rules.pass_percent, tuple(wrong))

"""Onboarding's pure rules: GB 11643 identity numbers, exams (draw, grade, time, attempts),
documents and application steps, dispatch gating, the provider's signatures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from doorstep.errors import DoorstepError
from matching.feasibility import why_not
from matching.model import Candidate, Job
from matching.params import MatchParams
from onboarding import exams, idcard, rules, signing
from onboarding.errors import ExamAttemptsUsed, ExamTimeUp, InvalidIdNumber, WrongDocument
from onboarding.exams import ExamRules, Question
from workforce.gating import Qualification, untrained, why_unqualified

TODAY = date(2026, 12, 6)


def test_the_standards_example_number_is_valid_and_read() -> None:
    """GB 11643's example 11010519491231002X passes: check X, born 1949-12-31, female, Beijing."""
    n = idcard.parse_id_number("11010519491231002x", today=TODAY)
    assert (n.number, n.birth_date, n.sex, n.region) == (
        "11010519491231002X",
        date(1949, 12, 31),
        "female",
        "1101",
    )
    assert n.region_name == "北京市"


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("110105194912310021", "wrong check character '1': ISO 7064 MOD 11-2 gives 'X'"),
        ("11010519491231002", "must be 18 characters"),
        ("1101051949123100AX", "first 17 characters must be digits"),
        (
            "44030419900230012" + idcard.check_character("44030419900230012"),
            "birth date",
        ),
        (idcard.make_id_number("440304", date(2030, 1, 1), 12), "in the future"),
        (idcard.make_id_number("990304", date(1990, 1, 1), 12), "no province 99"),
        (idcard.make_id_number("449904", date(1990, 1, 1), 12), "no prefecture 4499"),
    ],
)
def test_a_bad_id_number_is_refused_naming_the_rule(raw: str, rule: str) -> None:
    """Each rule of the standard refuses with the field and the rule in the message."""
    with pytest.raises(InvalidIdNumber) as info:
        idcard.parse_id_number(raw, today=TODAY)
    assert info.value.field == "id_number"
    assert rule in info.value.message


def test_made_numbers_round_trip_and_mask() -> None:
    """A number made for Shenzhen Futian parses back with its sex; the mask keeps 4+4."""
    n = idcard.make_id_number("440304", date(1988, 8, 8), 13)
    parsed = idcard.parse_id_number(n, today=TODAY)
    assert parsed.region_name == "广东省深圳市"
    assert parsed.sex == "male"
    assert idcard.mask_id_number(n) == n[:4] + "*" * 10 + n[-4:]


def _bank() -> list[Question]:
    out = []
    for i in range(1, 11):
        out.append(
            Question(
                i,
                "single",
                f"单选{i}",
                f"single {i}",
                (("甲", "a"), ("乙", "b"), ("丙", "c")),
                (i % 3,),
            )
        )
    out.append(
        Question(
            11,
            "multiple",
            "多选",
            "multi",
            (("甲", "a"), ("乙", "b"), ("丙", "c"), ("丁", "d")),
            (0, 2),
        )
    )
    out.append(Question(12, "true_false", "判断", "tf", (("对", "true"), ("错", "false")), (1,)))
    return out


RULES = ExamRules(question_count=6, time_limit_s=600, pass_percent=80, max_attempts=2)


def _right_answers(qs: list[Question], seed: int) -> dict[int, list[int]]:
    """The shown indexes of the right choices (what a perfect candidate sends)."""
    out = {}
    for q in qs:
        shown = exams.shown(q, seed)
        out[q.id] = [i for i, c in enumerate(shown.choices) if q.choices.index(c) in q.answer]
    return out


def test_a_draw_is_seeded_and_a_perfect_paper_passes() -> None:
    """The same seed draws the same questions in the same order; other seeds differ; all right → 100 %."""
    bank = _bank()
    a, b = exams.draw(bank, 6, 42), exams.draw(bank, 6, 42)
    assert a == b
    assert len(set(a)) == 6
    assert any(exams.draw(bank, 6, s) != a for s in range(1, 6))
    qs = [q for i in a for q in bank if q.id == i]
    grade = exams.grade(qs, _right_answers(qs, 42), 42, RULES)
    assert (grade.percent, grade.passed, grade.wrong) == (100, True, ())


def test_grading_maps_shown_choices_back_and_multiple_needs_the_exact_set() -> None:
    """A multiple-choice question with one of two right choices is wrong; blank is wrong; below the mark fails."""
    bank = _bank()
    qs = [bank[10], bank[11], bank[0]]
    right = _right_answers(qs, 7)
    partial = {11: right[11][:1], 12: right[12]}
    grade = exams.grade(qs, partial, 7, RULES)
    assert grade.score == 1
    assert set(grade.wrong) == {11, 1}
    assert not grade.passed


def test_answers_that_are_not_choices_are_refused() -> None:
    """An index out of range, two choices on a single question, or a foreign question name the field."""
    bank = _bank()
    with pytest.raises(DoorstepError) as info:
        exams.grade(bank[:1], {1: [5]}, 1, RULES)
    assert info.value.field == "answers.1"
    with pytest.raises(DoorstepError):
        exams.grade(bank[:1], {1: [0, 1]}, 1, RULES)
    with pytest.raises(DoorstepError) as info:
        exams.grade(bank[:1], {99: [0]}, 1, RULES)
    assert info.value.field == "answers.99"


def test_time_limit_and_attempts_limit() -> None:
    """An answer past the deadline (beyond the grace) is exam_time_up; the attempts run out."""
    start = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    deadline = exams.deadline(start, RULES)
    exams.check_in_time(deadline, deadline + timedelta(seconds=exams.GRACE_S))
    with pytest.raises(ExamTimeUp) as info:
        exams.check_in_time(deadline, deadline + timedelta(seconds=exams.GRACE_S + 1))
    assert info.value.field == "answers"
    assert "time limit" in info.value.message
    exams.check_attempts(1, RULES)
    with pytest.raises(ExamAttemptsUsed):
        exams.check_attempts(2, RULES)


def test_questions_whose_kind_and_answer_disagree_are_refused() -> None:
    """A single with two answers, a true/false with three choices, an answer out of range."""
    bad = [
        Question(1, "single", "x", "x", (("a", "a"), ("b", "b")), (0, 1)),
        Question(1, "true_false", "x", "x", (("a", "a"), ("b", "b"), ("c", "c")), (0,)),
        Question(1, "multiple", "x", "x", (("a", "a"), ("b", "b")), (2,)),
    ]
    for q in bad:
        with pytest.raises(DoorstepError):
            exams.check_question(q)


def test_document_files_are_checked_for_purpose_type_size_and_pixels() -> None:
    """A face photo that is a PDF, too big, too small, or uploaded as a certificate is wrong_document."""
    ok = {
        "purpose": "id_card",
        "media_type": "image/jpeg",
        "size_bytes": 1000,
        "width": 800,
        "height": 600,
    }
    rules.check_document_file("face", **ok)  # type: ignore[arg-type]
    changes: list[tuple[dict[str, Any], str]] = [
        ({"media_type": "application/pdf"}, "must be one of"),
        ({"size_bytes": 6 * rules.MB}, "at most"),
        ({"width": 60, "height": 30}, "shorter edge"),
        ({"purpose": "certificate"}, "purpose 'id_card'"),
    ]
    for change, words in changes:
        with pytest.raises(WrongDocument) as info:
            rules.check_document_file("face", **{**ok, **change})
        assert info.value.field == "file_id"
        assert words in info.value.message


def test_required_documents_follow_the_skills() -> None:
    """Every application needs ID both sides, face, health, no-record; a skill adds its certificates."""
    skill_rules = {"electrical": frozenset({"electrician"}), "cooking": frozenset({"health"})}
    missing = rules.missing_documents([("id_front", None)], ["electrical", "cooking"], skill_rules)
    assert missing == [
        "id_back",
        "face",
        "health",
        "no_criminal_record",
        "skill_certificate:electrician",
    ]


def test_approval_needs_every_document_identity_and_background() -> None:
    """Approve only with documents approved, identity verified, background clear; others go anywhere from submitted."""
    ok = {"documents": {1: "approved"}, "identity_status": "verified", "background_status": "clear"}
    assert rules.next_status("submitted", "approve", **ok) == "approved"  # type: ignore[arg-type]
    for change in (
        {"documents": {1: "pending"}},
        {"identity_status": "mismatch"},
        {"background_status": "record"},
    ):
        with pytest.raises(DoorstepError):
            rules.next_status("submitted", "approve", **{**ok, **change})  # type: ignore[arg-type]
    assert rules.next_status("submitted", "request_changes", **ok) == "changes_requested"  # type: ignore[arg-type]
    with pytest.raises(DoorstepError):
        rules.next_status("draft", "reject", **ok)  # type: ignore[arg-type]


def _cand(**kw: object) -> Candidate:
    return Candidate(1, 22.5, 114.0, 1.0, available=((0, 10**10),), **kw)  # type: ignore[arg-type]


def test_the_matcher_refuses_a_skill_whose_exam_is_not_passed() -> None:
    """why_not says 'exam not passed' for an untrained required skill, nothing for an untrained other one."""
    job = Job(1, 22.5, 114.0, 1000, 2000, 3600, 9, required_skills=frozenset({"cleaning"}))
    params = MatchParams()
    assert (
        why_not(
            job,
            _cand(skills=frozenset({"cleaning"}), untrained=frozenset({"cleaning"})),
            1000,
            params,
        )
        == "exam not passed: 'cleaning'"
    )
    assert (
        why_not(
            job,
            _cand(skills=frozenset({"cleaning", "cooking"}), untrained=frozenset({"cooking"})),
            1000,
            params,
        )
        is None
    )


def test_gating_exams_and_certificates() -> None:
    """A skill is dispatchable only with its exam passed (for onboarded workers) and its certificates verified to the job's day."""
    skill_rules = {"electrical": frozenset({"electrician"})}
    q = Qualification(
        1, frozenset({"electrical"}), True, frozenset(), {"electrician": date(2027, 1, 1)}
    )
    assert untrained(q) == {"electrical"}
    assert (
        why_unqualified(q, ["electrical"], [], skill_rules, TODAY)
        == "exam not passed: 'electrical'"
    )
    passed = Qualification(1, frozenset({"electrical"}), True, frozenset({"electrical"}), {})
    assert (
        why_unqualified(passed, ["electrical"], [], skill_rules, TODAY)
        == "no verified certificate: 'electrician'"
    )
    expired = Qualification(
        1,
        frozenset({"electrical"}),
        True,
        frozenset({"electrical"}),
        {"electrician": date(2026, 12, 1)},
    )
    assert "certificate expired" in (
        why_unqualified(expired, ["electrical"], [], skill_rules, TODAY) or ""
    )
    legacy = Qualification(
        1, frozenset({"electrical"}), False, frozenset(), {"electrician": date(2027, 1, 1)}
    )
    assert why_unqualified(legacy, ["electrical"], [], skill_rules, TODAY) is None


def test_tc3_signature_is_stable_and_the_header_parses_back() -> None:
    """The same request signs the same; a changed body signs differently; the header carries id, scope and signature."""
    kw = {
        "secret_key": "k",
        "service": "faceid",
        "host": "h:1",
        "body": b"{}",
        "timestamp": 1_700_000_000,
    }
    sig = signing.signature(**kw)  # type: ignore[arg-type]
    assert sig == signing.signature(**kw)  # type: ignore[arg-type]
    assert sig != signing.signature(**{**kw, "body": b"{ }"})  # type: ignore[arg-type]
    header = signing.authorization(secret_id="AKID", **kw)  # type: ignore[arg-type]
    parsed = signing.parse_authorization(header)
    assert parsed["secret_id"] == "AKID"
    assert parsed["scope"] == "2023-11-14/faceid/tc3_request"
    assert parsed["signature"] == sig

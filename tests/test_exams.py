"""Training and exams over the API: courses per skill, a question bank, timed attempts
with randomised questions graded at once, the pass mark, the attempts limit, an answer
after the time limit refused, practical assessments; passing makes the skill's exam
passed for dispatch."""

from __future__ import annotations

from typing import Any

import httpx

from doorstep.stores import Stores
from tests.helpers import Account, MakeUser
from tests.onboarding_setup import make_trade, sign_up

BANK: list[dict[str, Any]] = [
    {
        "kind": "single",
        "text_zh": "断电作业前首先应当？",
        "text_en": "Before working on a circuit, first?",
        "choices": [
            {"zh": "验电", "en": "Test for voltage"},
            {"zh": "直接操作", "en": "Just start"},
            {"zh": "洒水降温", "en": "Spray water"},
        ],
        "answer": [0],
    },
    {
        "kind": "multiple",
        "text_zh": "以下哪些是绝缘工具？",
        "text_en": "Which are insulated tools?",
        "choices": [
            {"zh": "绝缘手套", "en": "Insulated gloves"},
            {"zh": "铁丝", "en": "Iron wire"},
            {"zh": "绝缘螺丝刀", "en": "Insulated screwdriver"},
            {"zh": "湿毛巾", "en": "Wet towel"},
        ],
        "answer": [0, 2],
    },
    {
        "kind": "true_false",
        "text_zh": "可以带电更换插座。",
        "text_en": "A socket may be replaced live.",
        "choices": [{"zh": "对", "en": "True"}, {"zh": "错", "en": "False"}],
        "answer": [1],
    },
    {
        "kind": "single",
        "text_zh": "漏电保护器的作用是？",
        "text_en": "What does an RCD do?",
        "choices": [
            {"zh": "防止触电", "en": "Prevent electric shock"},
            {"zh": "省电", "en": "Save power"},
        ],
        "answer": [0],
    },
]
RIGHT: dict[str, set[str]] = {
    str(q["text_en"]): {c["en"] for i, c in enumerate(q["choices"]) if i in q["answer"]}
    for q in BANK
}


def _answers(attempt: dict[str, Any], *, right: bool) -> list[dict[str, Any]]:
    """Answers by the shown choices' texts: all right, or all wrong."""
    out = []
    for q in attempt["questions"]:
        good = RIGHT[q["text_en"]]
        picked = [c["index"] for c in q["choices"] if (c["en"] in good) == right]
        out.append(
            {"question_id": q["id"], "choices": picked[:1] if q["kind"] != "multiple" else picked}
        )
    return out


async def test_courses_exams_attempts_time_limit_and_pass(
    client: httpx.AsyncClient, admin: Account, stores: Stores, make_user: MakeUser
) -> None:
    """An applicant sees the courses and exam of the claimed skill; fails, runs out of time, runs out of attempts, gets one more and passes; the skill's exam is then passed."""
    trade = await make_trade(client, admin, stores)
    r = await client.post(
        "/v1/training/courses",
        headers=admin.auth,
        json={
            "skill": trade.skill,
            "title_zh": "低压电工安全",
            "title_en": "Low-voltage safety",
            "materials": [{"title": "第一课 验电", "body": "先验电，后操作。"}],
        },
    )
    assert r.status_code == 201, r.text
    exam_body = {
        "skill": trade.skill,
        "title_zh": "电工上岗考试",
        "title_en": "Electrician exam",
        "question_count": 3,
        "time_limit_s": 600,
        "pass_percent": 100,
        "max_attempts": 2,
        "questions": BANK,
    }
    r = await client.put(
        "/v1/training/exams", headers=admin.auth, json={**exam_body, "question_count": 9}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "question_count")
    bad = {**BANK[0], "answer": [0, 1]}
    r = await client.put(
        "/v1/training/exams", headers=admin.auth, json={**exam_body, "questions": [bad, *BANK]}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "questions[0].answer")
    r = await client.put("/v1/training/exams", headers=admin.auth, json=exam_body)
    assert r.status_code == 200, r.text
    exam = r.json()
    assert exam["bank_size"] == 4
    r = await client.post(
        f"/v1/training/exams/{exam['id']}/questions", headers=admin.auth, json={"questions": [bad]}
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "questions[0].answer")
    r = await client.post(
        f"/v1/training/exams/{exam['id']}/questions",
        headers=admin.auth,
        json={"questions": [{**BANK[0], "text_en": "Before work, first? (2)"}]},
    )
    assert r.json()["bank_size"] == 5
    RIGHT["Before work, first? (2)"] = RIGHT[BANK[0]["text_en"]]

    who = await sign_up(client, stores, name="赵师傅")
    await client.patch(
        "/v1/onboarding/application", headers=who.auth, json={"skills": [trade.skill]}
    )
    courses = (await client.get("/v1/training/courses", headers=who.auth)).json()
    assert [c["title_en"] for c in courses] == ["Low-voltage safety"]
    mine = (await client.get("/v1/training/exams", headers=who.auth)).json()
    assert [(e["id"], e["attempts_used"], e["passed"]) for e in mine] == [(exam["id"], 0, False)]

    r = await client.post(f"/v1/training/exams/{exam['id']}/attempts", headers=who.auth)
    assert r.status_code == 201, r.text
    first = r.json()
    assert len(first["questions"]) == 3
    assert "answer" not in first["questions"][0]
    again = (
        await client.post(f"/v1/training/exams/{exam['id']}/attempts", headers=who.auth)
    ).json()
    assert again["id"] == first["id"]  # the open attempt, not a new one
    r = await client.post(
        f"/v1/training/attempts/{first['id']}/answers",
        headers=who.auth,
        json={"answers": _answers(first, right=False)},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["passed"], r.json()["score"]) == (False, 0)
    r = await client.post(
        f"/v1/training/attempts/{first['id']}/answers", headers=who.auth, json={"answers": []}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "exam_state")

    second = (
        await client.post(f"/v1/training/exams/{exam['id']}/attempts", headers=who.auth)
    ).json()
    await stores.pool.execute(
        "UPDATE exam_attempts SET started_at = started_at - interval '20 minutes', "
        "deadline_at = deadline_at - interval '20 minutes' WHERE id = $1",
        second["id"],
    )
    r = await client.post(
        f"/v1/training/attempts/{second['id']}/answers",
        headers=who.auth,
        json={"answers": _answers(second, right=True)},
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("exam_time_up", "answers")
    assert "time limit" in error["message"]
    r = await client.post(f"/v1/training/exams/{exam['id']}/attempts", headers=who.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "exam_attempts_used")

    r = await client.put(
        "/v1/training/exams", headers=admin.auth, json={**exam_body, "max_attempts": 3}
    )
    assert r.status_code == 200
    third = (
        await client.post(f"/v1/training/exams/{exam['id']}/attempts", headers=who.auth)
    ).json()
    r = await client.post(
        f"/v1/training/attempts/{third['id']}/answers",
        headers=who.auth,
        json={"answers": _answers(third, right=True)},
    )
    assert (r.json()["passed"], r.json()["percent"]) == (True, 100)
    assert (
        await stores.pool.fetchval(
            "SELECT attempt_id FROM skill_qualifications WHERE user_id = $1 AND skill = $2",
            who.id,
            trade.skill,
        )
        == third["id"]
    )
    mine = (await client.get("/v1/training/exams", headers=who.auth)).json()
    assert (mine[0]["attempts_used"], mine[0]["passed"]) == (3, True)
    r = await client.post(f"/v1/training/exams/{exam['id']}/attempts", headers=who.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "exam_state")

    r = await client.post(
        "/v1/training/practicals",
        headers=admin.auth,
        json={
            "user_id": who.id,
            "skill": trade.skill,
            "passed": True,
            "score": 88,
            "notes": "接线规范",
        },
    )
    assert r.status_code == 201, r.text
    assert (r.json()["assessor_id"], r.json()["score"]) == (admin.id, 88)
    r = await client.post(
        "/v1/training/practicals",
        headers=who.auth,
        json={"user_id": who.id, "skill": trade.skill, "passed": True, "score": 100},
    )
    assert r.status_code == 403

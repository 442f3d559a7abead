"""The demo city's onboarding: training content (a course and an exam for a few skills,
the certificates each skill needs) and applicants waiting for review, with their ID
card photos and certificate scans drawn here (Pillow), so the back office's review
queue has something to look at. The generator is pure (``seed`` in, data out); the
writer is :func:`write`.

Applicants' identity numbers are well-formed (GB 11643) and made up; their checks are
recorded as the sandbox provider answers them.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import orjson
from PIL import Image, ImageDraw

from doorstep.stores import Stores
from files.blobs import BlobStore
from files.intake import prepare
from files.purposes import get as purpose
from onboarding import exams as exam_rules
from onboarding import store as onboarding_store
from onboarding.exams import ExamRules, Question
from onboarding.idcard import make_id_number
from privacy import crypto

APPLICANT_PHONES = ("13900000101", "13900000102", "13900000103")
_NAMES = ("陈晓梅", "刘建国", "黄丽娟")
_SKILLS = (("cleaning", "deep_cleaning"), ("electrical",), ("elderly_care", "cooking"))
# The certificates a skill needs before it is dispatchable (the seeded workers hold the
# same ones, possibly expired: seeding.futian._SKILL_CERTS).
SKILL_CERTIFICATES: dict[str, tuple[str, ...]] = {
    "deep_cleaning": ("housekeeping",),
    "electrical": ("electrician",),
    "maternity_care": ("maternity_nurse", "health"),
    "elderly_care": ("elderly_caregiver", "health"),
    "childcare": ("health",),
    "cooking": ("health",),
}


def _tf(qid: int, zh: str, en: str, true: bool) -> Question:
    return Question(
        qid, "true_false", zh, en, (("对", "True"), ("错", "False")), (0 if true else 1,)
    )


def _single(qid: int, zh: str, en: str, choices: list[tuple[str, str]], right: int) -> Question:
    return Question(qid, "single", zh, en, tuple(choices), (right,))


EXAMS: dict[str, tuple[str, str, list[Question]]] = {
    "cleaning": (
        "保洁上岗考试",
        "Cleaning exam",
        [
            _single(
                1,
                "擦拭顺序应当是？",
                "Wipe in which order?",
                [
                    ("从上到下、从里到外", "Top down, inside out"),
                    ("从下到上", "Bottom up"),
                    ("随意", "Any"),
                ],
                0,
            ),
            _tf(2, "84消毒液可以和洁厕灵混用。", "Bleach may be mixed with toilet acid.", False),
            _tf(
                3,
                "厨房和卫生间的抹布应分开使用。",
                "Kitchen and bathroom cloths are kept apart.",
                True,
            ),
            Question(
                4,
                "multiple",
                "上门前应确认哪些事项？",
                "Confirm what before a visit?",
                (
                    ("服务时间", "Time"),
                    ("地址", "Address"),
                    ("客户的工资", "Customer's salary"),
                    ("特殊要求", "Special requests"),
                ),
                (0, 1, 3),
            ),
            _single(
                5,
                "打碎客户物品应当？",
                "You broke a customer's item:",
                [("如实告知并报备", "Tell them and report"), ("藏起来", "Hide it")],
                0,
            ),
        ],
    ),
    "electrical": (
        "电工上岗考试",
        "Electrician exam",
        [
            _single(
                1,
                "断电作业前首先应当？",
                "Before working on a circuit, first?",
                [("验电", "Test for voltage"), ("直接操作", "Just start")],
                0,
            ),
            _tf(2, "可以带电更换插座。", "A socket may be replaced live.", False),
            Question(
                3,
                "multiple",
                "以下哪些是绝缘工具？",
                "Which are insulated tools?",
                (
                    ("绝缘手套", "Insulated gloves"),
                    ("铁丝", "Iron wire"),
                    ("绝缘螺丝刀", "Insulated screwdriver"),
                ),
                (0, 2),
            ),
            _single(
                4,
                "漏电保护器的作用是？",
                "What does an RCD do?",
                [("防止触电", "Prevent shock"), ("省电", "Save power")],
                0,
            ),
        ],
    ),
}
RULES = ExamRules(question_count=4, time_limit_s=900, pass_percent=75, max_attempts=3)


@dataclass(frozen=True, slots=True)
class ApplicantSeed:
    """One applicant waiting for review."""

    phone: str
    name: str
    id_number: str
    skills: tuple[str, ...]
    home: tuple[float, float]


def build(seed: int, homes: list[tuple[float, float]]) -> list[ApplicantSeed]:
    """The demo's applicants (pure)."""
    rng = random.Random(seed * 31 + 18)
    out = []
    for i, (phone, name, skills) in enumerate(zip(APPLICANT_PHONES, _NAMES, _SKILLS, strict=True)):
        born = date(1975 + rng.randrange(20), 1 + rng.randrange(12), 1 + rng.randrange(28))
        out.append(
            ApplicantSeed(
                phone, name, make_id_number("440304", born, 100 + i), skills, homes[i % len(homes)]
            )
        )
    return out


def _card(text: str, size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    """A plain picture standing for a scan (ASCII text: no font files needed)."""
    im = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(im)
    draw.rectangle((12, 12, size[0] - 12, size[1] - 12), outline=(40, 40, 40), width=3)
    draw.text((30, 30), text, fill=(20, 20, 20))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()


async def _file(
    stores: Stores, blobs: BlobStore, owner: int, purpose_name: str, data: bytes, now: datetime
) -> int:
    prepared = prepare(data, purpose(purpose_name))
    await blobs.put(prepared.sha256, prepared.data)
    async with stores.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO file_blobs (sha256, size_bytes, media_type, created_at) VALUES ($1,$2,$3,$4) "
            "ON CONFLICT DO NOTHING",
            prepared.sha256,
            len(prepared.data),
            prepared.media_type,
            now,
        )
        return int(
            await conn.fetchval(
                "INSERT INTO files (owner_id, purpose, sha256, media_type, size_bytes, width, height, "
                "created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
                owner,
                purpose_name,
                prepared.sha256,
                prepared.media_type,
                len(prepared.data),
                prepared.width,
                prepared.height,
                now,
            )
        )


async def write_training(stores: Stores) -> None:
    """The skills' certificate needs, and a course and an exam for a few skills."""
    now = datetime.now(UTC)
    known = {r["code"] for r in await stores.pool.fetch("SELECT code FROM skills")}
    async with stores.pool.acquire() as conn, conn.transaction():
        for skill, kinds in SKILL_CERTIFICATES.items():
            if skill in known:
                await conn.executemany(
                    "INSERT INTO skill_certificates (skill, certificate_kind) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    [(skill, k) for k in kinds],
                )
        for skill, (title_zh, title_en, bank) in EXAMS.items():
            if skill not in known:
                continue
            for q in bank:
                exam_rules.check_question(q)
            await onboarding_store.upsert_exam(
                conn,
                skill=skill,
                title_zh=title_zh,
                title_en=title_en,
                question_count=RULES.question_count,
                time_limit_s=RULES.time_limit_s,
                pass_percent=RULES.pass_percent,
                max_attempts=RULES.max_attempts,
                questions=bank,
                now=now,
            )
            if not await conn.fetchval("SELECT 1 FROM courses WHERE skill = $1", skill):
                await conn.execute(
                    "INSERT INTO courses (skill, title_zh, title_en, materials, created_at) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    skill,
                    title_zh.replace("考试", "培训"),
                    title_en.replace("exam", "training"),
                    orjson.dumps(
                        [
                            {"title": q.text_zh, "body": "；".join(c[0] for c in q.choices)}
                            for q in bank
                        ]
                    ).decode(),
                    now,
                )


async def write(
    stores: Stores,
    blobs: BlobStore | None,
    applicants: list[ApplicantSeed],
    city_id: str,
    password_hash: str,
) -> int:
    """The applicants with submitted applications (documents when ``blobs`` is given);
    an applicant seeded before is left as it is. How many are new."""
    now = datetime.now(UTC)
    made = 0
    for a in applicants:
        async with stores.pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
                "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (phone_bidx) DO NOTHING RETURNING id",
                crypto.seal("users.phone", a.phone),
                crypto.blind("phone", a.phone),
                a.name,
                password_hash,
                ["worker"],
            )
            if user_id is None:
                continue
            app_id = await conn.fetchval(
                "INSERT INTO applications (user_id, city_id, real_name, id_number, birth_date, "
                "skills, home_lat, home_lng, status, identity_status, identity_detail, "
                "background_status, background_detail, submitted_at, created_at, updated_at, "
                "id_number_bidx) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'submitted','verified',$9,'clear',$10,$11,$11,$11,"
                "$12) RETURNING id",
                user_id,
                city_id,
                a.name,
                crypto.seal("applications.id_number", a.id_number),
                date(int(a.id_number[6:10]), int(a.id_number[10:12]), int(a.id_number[12:14])),
                list(a.skills),
                a.home[0],
                a.home[1],
                "Success 成功 (seeded: sandbox answer)",
                "Clear 无违法犯罪记录 (seeded: sandbox answer)",
                now - timedelta(hours=2),
                crypto.blind("id_number", a.id_number),
            )
            for step in ("created", "profile", "submitted", "checks"):
                await onboarding_store.add_step(conn, app_id, step=step, actor_id=user_id, now=now)
        made += 1
        if blobs is None:
            continue
        docs: list[tuple[str, str | None, str, bytes]] = [
            (
                "id_front",
                None,
                "id_card",
                _card(f"ID FRONT {a.id_number}", (856, 540), (214, 228, 240)),
            ),
            ("id_back", None, "id_card", _card("ID BACK", (856, 540), (214, 228, 240))),
            ("face", None, "id_card", _card("FACE", (480, 640), (235, 220, 205))),
            (
                "health",
                "health",
                "certificate",
                _card("HEALTH CERTIFICATE", (800, 600), (240, 240, 220)),
            ),
            (
                "no_criminal_record",
                None,
                "certificate",
                _card("NO CRIMINAL RECORD", (800, 600), (240, 230, 230)),
            ),
        ]
        kinds = sorted({k for s in a.skills for k in SKILL_CERTIFICATES.get(s, ())} - {"health"})
        docs += [
            (
                "skill_certificate",
                k,
                "certificate",
                _card(f"CERTIFICATE {k}", (800, 600), (225, 240, 225)),
            )
            for k in kinds
        ]
        for i, (kind, cert_kind, purpose_name, data) in enumerate(docs):
            file_id = await _file(stores, blobs, user_id, purpose_name, data, now)
            dated = cert_kind is not None
            async with stores.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE files SET attached_to = $2, attached_at = $3 WHERE id = $1",
                    file_id,
                    f"application:{app_id}",
                    now,
                )
                await onboarding_store.insert_document(
                    conn,
                    app_id,
                    kind=kind,
                    certificate_kind=cert_kind,
                    number=f"{(cert_kind or kind)[:2].upper()}{a.phone[-4:]}{i}" if dated else "",
                    issued_on=date(2025, 6, 1) if dated else None,
                    expires_on=date(2030, 6, 1) if dated else None,
                    file_id=file_id,
                    now=now,
                )
    return made

"""Shared set-up for the onboarding tests: a skill that needs a certificate, a service
that needs the skill, an applicant signed up by SMS code, uploads."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from doorstep.stores import Stores
from onboarding.idcard import make_id_number
from tests.files_samples import jpeg, pdf
from tests.helpers import Account, from_network, new_phone


@dataclass(frozen=True)
class Trade:
    """A skill, the certificate kind it needs, and an instant service needing the skill."""

    skill: str
    certificate: str
    service: str


async def make_trade(client: httpx.AsyncClient, admin: Account, stores: Stores) -> Trade:
    """A new skill + certificate kind (linked in skill_certificates) and a service."""
    tag = secrets.token_hex(3)
    skill, cert, cat, svc = f"sk_{tag}", f"ck_{tag}", f"oc_{tag}", f"os_{tag}"
    for path, body in [
        ("/v1/skills", {"code": skill, "name_zh": "电工", "name_en": "Electrics"}),
        (
            "/v1/certificate-kinds",
            {"code": cert, "name_zh": "电工证", "name_en": "Electrician", "validity_years": 6},
        ),
        ("/v1/categories", {"code": cat, "name_zh": "水电", "name_en": "Utilities"}),
        (
            "/v1/services",
            {
                "code": svc,
                "category": cat,
                "name_zh": "电路检修",
                "name_en": "Wiring repair",
                "price_minor": 12000,
                "duration_min": 60,
                "instant": True,
                "scheduled": True,
                "required_skills": [skill],
            },
        ),
    ]:
        r = await client.post(path, headers=admin.auth, json=body)
        assert r.status_code == 201, r.text
    r = await client.put(
        "/v1/training/skill-certificates",
        headers=admin.auth,
        json={"skill": skill, "certificate_kinds": [cert]},
    )
    assert r.status_code == 200, r.text
    return Trade(skill, cert, svc)


async def sms_code(stores: Stores, phone: str) -> str:
    """The newest login code the sandbox SMS gateway took for ``phone``."""
    deadline = time.monotonic() + 30
    while True:
        code = await stores.pool.fetchval(
            "SELECT params->>'code' FROM sms_sandbox_outbox WHERE phone = $1 "
            "AND template_code LIKE 'DS_LOGIN_CODE_%' ORDER BY received_at DESC LIMIT 1",
            phone,
        )
        if code is not None:
            return str(code)
        assert time.monotonic() < deadline, "no code reached the sandbox"
        await asyncio.sleep(0.05)


async def sign_up(client: httpx.AsyncClient, stores: Stores, name: str = "王秀英") -> Account:
    """A new applicant: sign-up, the SMS code, login by code."""
    phone = new_phone()
    r = await client.post(
        "/v1/onboarding/sign-up", json={"phone": phone, "name": name}, headers=from_network()
    )
    assert r.status_code == 202, r.text
    code = await sms_code(stores, phone)
    r = await client.post(
        "/v1/auth/sms-login", json={"phone": phone, "code": code}, headers=from_network()
    )
    assert r.status_code == 200, r.text
    me = (
        await client.get("/v1/me", headers={"authorization": f"Bearer {r.json()['access_token']}"})
    ).json()
    return Account(
        me["id"], phone, tuple(me["roles"]), r.json()["access_token"], r.json()["refresh_token"]
    )


async def upload(client: httpx.AsyncClient, who: Account, data: bytes, purpose: str) -> int:
    """An upload's file id."""
    r = await client.post(f"/v1/files?purpose={purpose}", content=data, headers=who.auth)
    assert r.status_code in (200, 201), r.text
    return int(r.json()["id"])


_seq = iter(range(100, 999))


async def fill_in(
    client: httpx.AsyncClient,
    who: Account,
    *,
    city: str,
    trade: Trade,
    name: str = "王秀英",
) -> dict[str, Any]:
    """A complete application: profile and every required document."""
    number = make_id_number("440304", date(1985, 3, 14), next(_seq))
    r = await client.patch(
        "/v1/onboarding/application",
        headers=who.auth,
        json={
            "real_name": name,
            "id_number": number,
            "city_id": city,
            "skills": [trade.skill],
            "home": {"lat": 22.53, "lng": 114.01},
        },
    )
    assert r.status_code == 200, r.text
    for kind in ("id_front", "id_back", "face"):
        fid = await upload(client, who, jpeg(640, 400 + len(kind), gps=False), "id_card")
        r = await client.post(
            "/v1/onboarding/application/documents",
            headers=who.auth,
            json={"kind": kind, "file_id": fid},
        )
        assert r.status_code == 201, r.text
    docs: list[dict[str, Any]] = [
        {"kind": "health", "number": f"JK{secrets.token_hex(4)}"},
        {"kind": "no_criminal_record"},
        {
            "kind": "skill_certificate",
            "certificate_kind": trade.certificate,
            "number": f"DG{secrets.token_hex(4)}",
        },
    ]
    for d in docs:
        fid = await upload(client, who, pdf(), "certificate")
        body = {**d, "file_id": fid}
        if d["kind"] != "no_criminal_record":
            body |= {"issued_on": "2025-01-01", "expires_on": "2030-01-01"}
        r = await client.post("/v1/onboarding/application/documents", headers=who.auth, json=body)
        assert r.status_code == 201, r.text
    application: dict[str, Any] = r.json()
    assert application["missing"] == [], application["missing"]
    return application

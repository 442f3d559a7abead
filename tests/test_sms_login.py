"""Login by a one-time SMS code: sent through the sandbox gateway, limited per phone and
network in PostgreSQL, single use, expiring, and open while password login is slowed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from accounts import sms_login
from accounts.errors import BadSmsCode
from doorstep.stores import Stores
from privacy.crypto import blind
from tests.helpers import Account, MakeUser, from_network, new_phone


async def _code(stores: Stores, phone: str, *, after: int = 0) -> str:
    """The newest login code the sandbox gateway "sent" to ``phone`` (waits for the job)."""
    deadline = time.monotonic() + 30
    while True:
        row = await stores.pool.fetchrow(
            "SELECT params->>'code' AS code, (SELECT count(*) FROM sms_sandbox_outbox o2 "
            "WHERE o2.phone = $1 AND o2.template_code LIKE 'DS_LOGIN_CODE_%') AS n "
            "FROM sms_sandbox_outbox WHERE phone = $1 AND template_code LIKE 'DS_LOGIN_CODE_%' "
            "ORDER BY received_at DESC LIMIT 1",
            phone,
        )
        if row is not None and row["n"] > after:
            return str(row["code"])
        assert time.monotonic() < deadline, "no code reached the sandbox"
        await asyncio.sleep(0.05)


async def _ask(
    client: httpx.AsyncClient, phone: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/auth/sms-code", json={"phone": phone}, headers=headers or from_network()
    )


async def _login(client: httpx.AsyncClient, phone: str, code: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/sms-login", json={"phone": phone, "code": code}, headers=from_network()
    )


def _error(r: httpx.Response) -> tuple[int, str, Any]:
    e = r.json()["error"]
    return r.status_code, e["code"], e["field"]


async def test_a_code_logs_in_once(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores
) -> None:
    """The code the sandbox received logs the phone's owner in; the same code again is a 409 replay, and a wrong one a 4xx naming the code."""
    user = await make_user("customer")
    r = await _ask(client, user.phone)
    assert r.status_code == 202, r.text
    code = await _code(stores, user.phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert _error(await _login(client, user.phone, wrong)) == (422, "bad_sms_code", "code")
    r = await _login(client, user.phone, code)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user.id
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["id"] == user.id
    assert _error(await _login(client, user.phone, code)) == (409, "sms_code_used", "code")


async def test_an_expired_code_and_too_many_wrong_tries_are_refused(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, live_app: tuple[str, Any]
) -> None:
    """A code past its five minutes is refused as expired; after five wrong tries even the right code is refused until a new one is asked for."""
    user = await make_user("customer")
    assert (await _ask(client, user.phone)).status_code == 202
    code = await _code(stores, user.phone)
    app = live_app[1]
    with pytest.raises(BadSmsCode, match="expired") as info:
        await sms_login.login_with_code(
            stores,
            app.state.policy,
            phone=user.phone,
            code=code,
            signing_key=app.state.policy.key,
            now=int(time.time()) + 301,
        )
    assert info.value.field == "code"
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert _error(await _login(client, user.phone, wrong))[1] == "bad_sms_code"
    r = await _login(client, user.phone, code)
    assert _error(r) == (429, "too_many_attempts", "code")


async def test_codes_are_limited_per_phone_and_unknown_phones_get_none(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores
) -> None:
    """A second code within the minute is a 429 with Retry-After (counted in PostgreSQL); a phone without an account gets the same 202 and no SMS."""
    user = await make_user("customer")
    assert (await _ask(client, user.phone)).status_code == 202
    r = await _ask(client, user.phone)
    assert _error(r) == (429, "too_many_attempts", "phone")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    hits = await stores.pool.fetchval(
        "SELECT hits FROM rate_windows WHERE bucket = 'sms-code-hour' AND key = $1",
        blind("phone", user.phone).hex(),  # the phone's blind index, not the phone
    )
    assert hits == 1  # the refused one rolled back with its refusal
    nobody = new_phone()
    r = await _ask(client, nobody)
    assert r.status_code == 202
    assert r.json()["phone"] == nobody
    await _code(stores, user.phone)  # the user's code went out; by then the stranger's would have
    assert (
        await stores.pool.fetchval(
            "SELECT count(*) FROM sms_messages WHERE phone_bidx = $1", blind("phone", nobody)
        )
        == 0
    )
    assert (
        await stores.pool.fetchval(
            "SELECT count(*) FROM sms_codes WHERE phone = $1", blind("phone", nobody).hex()
        )
        == 0
    )


async def test_a_network_may_ask_codes_for_few_phones(client: httpx.AsyncClient) -> None:
    """One client network gets at most 20 codes an hour, whatever phones it names."""
    network = from_network()
    answers = [(await _ask(client, new_phone(), network)).status_code for _ in range(21)]
    assert answers == [202] * 20 + [429]


async def test_bad_input_is_refused_by_field(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A malformed phone or code, or a code for a phone that was sent none, is a 4xx naming the field."""
    user = await make_user("customer")
    assert _error(await _ask(client, "12345"))[2] == "phone"
    assert _error(await _login(client, user.phone, "12ab56")) == (422, "bad_sms_code", "code")
    assert _error(await _login(client, user.phone, "123456")) == (422, "bad_sms_code", "code")


async def test_the_owner_gets_in_by_code_while_password_login_is_slowed(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores
) -> None:
    """After enough wrong passwords the password login answers 429, and the owner still logs in with an SMS code."""
    user: Account = await make_user("customer")
    network = from_network()
    statuses = []
    for _ in range(12):
        r = await client.post(
            "/v1/auth/login",
            json={"phone": user.phone, "password": "wrong-password-1"},
            headers=network,
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429
    assert (await _ask(client, user.phone, network)).status_code == 202
    r = await client.post(
        "/v1/auth/sms-login",
        json={"phone": user.phone, "code": await _code(stores, user.phone)},
        headers=network,
    )
    assert r.status_code == 200, r.text

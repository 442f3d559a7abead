"""Practical assessments are city-scoped: a city's operator or reviewer sees and records
them for the workers of their cities only; others are 404 (issue 18 §2, §6)."""

from __future__ import annotations

import httpx
import pytest

from doorstep.stores import Stores
from tests.access import grant, login, new_city
from tests.helpers import Account, MakeUser
from tests.onboarding_setup import make_trade
from workforce import store as workforce_store


async def _worker_in(stores: Stores, make_user: MakeUser, city: str) -> Account:
    worker = await make_user("worker")
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=worker.id,
        city_id=city,
        skills=(),
        home_lat=30.0,
        home_lng=104.0,
        team_id=None,
    )
    return worker


@pytest.mark.parametrize("template", ["city_operator", "reviewer"])
async def test_a_citys_assessor_reaches_only_the_workers_of_their_cities(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    template: str,
) -> None:
    """Granted in city A: records and reads a city-A worker's assessments; a city-B worker, an applicant who is no worker yet and nobody are 404 on user_id, and nothing is stored; an admin reaches all."""
    trade = await make_trade(client, admin, stores)
    city_a, city_b = await new_city(stores, "pa"), await new_city(stores, "pb")
    mine = await _worker_in(stores, make_user, city_a)
    theirs = await _worker_in(stores, make_user, city_b)
    applicant = await make_user("customer")
    assessor = await make_user("customer")
    await grant(client, admin, assessor, template, f"city:{city_a}")
    assessor = await login(client, assessor)

    def body(user_id: int) -> dict[str, object]:
        return {"user_id": user_id, "skill": trade.skill, "passed": True, "score": 90}

    r = await client.post("/v1/training/practicals", headers=assessor.auth, json=body(mine.id))
    assert r.status_code == 201, r.text
    assert r.json()["assessor_id"] == assessor.id
    r = await client.get(f"/v1/training/practicals?user_id={mine.id}", headers=assessor.auth)
    assert r.status_code == 200, r.text
    assert [p["user_id"] for p in r.json()] == [mine.id]

    for other in (theirs.id, applicant.id, 2**40):
        r = await client.post("/v1/training/practicals", headers=assessor.auth, json=body(other))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["field"] == "user_id"
        r = await client.get(f"/v1/training/practicals?user_id={other}", headers=assessor.auth)
        assert r.status_code == 404, r.text
    stored = await stores.pool.fetchval(
        "SELECT count(*) FROM practical_assessments WHERE user_id = ANY($1)",
        [theirs.id, applicant.id],
    )
    assert stored == 0

    for who in (theirs.id, applicant.id):  # an admin acts platform-wide
        r = await client.post("/v1/training/practicals", headers=admin.auth, json=body(who))
        assert r.status_code == 201, r.text
    r = await client.get("/v1/training/practicals?user_id=1099511627776", headers=admin.auth)
    assert r.status_code == 404


async def test_a_merchant_grant_cannot_assess(
    client: httpx.AsyncClient, make_user: MakeUser, admin: Account
) -> None:
    """A merchant's staff hold no onboarding.assess: 403 at the gate."""
    staff = await make_user("customer")
    merchant = await make_user("merchant")
    await grant(client, admin, staff, "merchant_admin", f"merchant:{merchant.id}")
    staff = await login(client, staff)
    r = await client.get(f"/v1/training/practicals?user_id={staff.id}", headers=staff.auth)
    assert r.status_code == 403
    assert "onboarding.assess" in r.text

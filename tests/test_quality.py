"""Quality and discipline: the score from ratings, complaints, lateness, dropped jobs and
spot checks; rewards and penalties from it, or by hand; a suspension keeps the worker
from every offer until an appeal overturns it; rankings; every step audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from dispatch import offers
from dispatch import store as dispatch_store
from dispatch.offers import OfferParams
from doorstep.stores import Stores
from quality.rules import Facts, QualityParams, proposals, score
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker

P = QualityParams()


def test_a_new_worker_scores_on_the_prior_and_facts_pull_it_down() -> None:
    """No facts: the prior rating and full reliability; complaints, lateness and drops cost points; a passed spot check earns a little."""
    fresh = score(Facts(), P)
    assert (fresh.score, fresh.rating) == (94, 4.5)
    worse = score(Facts(jobs=10, complaints=2, late=5, scheduled=10, dropped=0), P)
    assert worse.score == round(43.75 + 50 - 20 - 15)
    assert worse.late_rate == 0.5
    stars = score(Facts(jobs=20, stars_sum=100, ratings=20), P)
    assert stars.rating > 4.8
    assert score(Facts(spot_passed=1, complaints=1), P).reliability == 42.0


def test_the_rules_reward_the_best_and_penalise_by_severity() -> None:
    """≥ 90 over 10 jobs: badge, bonus, priority; below 60 a warning, 50 a fine, 40 a suspension, 20 (or a third suspension) dismissal."""
    best = score(Facts(jobs=12, stars_sum=60, ratings=12), P)
    assert [p.kind for p in proposals(best, P, suspensions_before=0)] == [
        "badge",
        "bonus",
        "priority",
    ]
    by_complaints = {n: score(Facts(complaints=n), P) for n in (4, 5, 6)}
    assert [p.kind for p in proposals(by_complaints[4], P, suspensions_before=0)] == ["warning"]
    assert [p.kind for p in proposals(by_complaints[5], P, suspensions_before=0)] == ["fine"]
    assert proposals(by_complaints[5], P, suspensions_before=0)[0].amount_fen == P.fine_fen
    worst = score(Facts(complaints=6, stars_sum=5, ratings=5), P)
    assert [p.kind for p in proposals(worst, P, suspensions_before=0)] == ["suspension"]
    assert [p.kind for p in proposals(worst, P, suspensions_before=2)] == ["dismissal"]


async def test_complaints_evaluate_to_a_fine_and_a_suspension_stops_offers_until_overturned(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    admin: Account,
    instant_service: str,
) -> None:
    """Five complaints and a failed spot check: evaluation fines (booked in the ledger); a suspension by hand keeps offers away; the worker appeals, the admin overturns, offers come again; all audited."""
    w = await make_worker(stores, client, engine_city.id)
    dispatcher = await make_user("dispatcher")
    for i in range(5):
        r = await client.post(
            "/v1/quality/events",
            headers=dispatcher.auth,
            json={"worker_id": w.id, "kind": "complaint", "note": f"顾客投诉 {i}"},
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/quality/events",
        headers=dispatcher.auth,
        json={"worker_id": w.id, "kind": "spot_check"},
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "passed")
    r = await client.get(f"/v1/quality/workers/{w.id}", headers=w.auth)
    assert r.json()["score"] == 44
    r = await client.post(f"/v1/quality/workers/{w.id}/evaluate", headers=admin.auth)
    assert r.status_code == 200, r.text
    (fine,) = r.json()["actions"]
    assert (fine["kind"], fine["amount_fen"], fine["ledger_status"]) == ("fine", 5000, "booked")
    again = (await client.post(f"/v1/quality/workers/{w.id}/evaluate", headers=admin.auth)).json()
    assert again["actions"] == []  # not fined twice in 30 days

    r = await client.post(
        "/v1/discipline/actions",
        headers=admin.auth,
        json={"worker_id": w.id, "kind": "suspension", "reason": "多次投诉", "days": 0},
    )
    assert r.status_code == 422
    r = await client.post(
        "/v1/discipline/actions",
        headers=admin.auth,
        json={"worker_id": w.id, "kind": "suspension", "reason": "多次投诉，停单七天", "days": 7},
    )
    assert r.status_code == 201, r.text
    suspension = r.json()
    order = await book_here(client, await make_user("customer"), instant_service, engine_city.here)
    current = await dispatch_store.get(stores.pool, order["id"])
    assert current is not None
    tracking = live_app[1].state.tracking
    made = await offers.make_offers(
        stores,
        tracking,
        current,
        [(w.id, 60.0, 100.0)],
        mode="grab",
        params=OfferParams(mode="grab"),
        now=datetime.now(UTC),
    )
    assert made == []
    r = await client.post(
        f"/v1/discipline/actions/{suspension['id']}/appeal",
        headers=w.auth,
        json={"text": "投诉已与顾客和解"},
    )
    assert r.json()["status"] == "appealed"
    r = await client.post(
        f"/v1/discipline/actions/{suspension['id']}/appeal", headers=w.auth, json={"text": "再申诉"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "appeal_state")
    r = await client.post(
        f"/v1/discipline/actions/{suspension['id']}/decision",
        headers=admin.auth,
        json={"decision": "overturn", "reason": "核实后撤销"},
    )
    assert r.json()["status"] == "overturned"
    made = await offers.make_offers(
        stores,
        tracking,
        current,
        [(w.id, 60.0, 100.0)],
        mode="grab",
        params=OfferParams(mode="grab"),
        now=datetime.now(UTC),
    )
    assert [o.worker_id for o in made] == [w.id]
    steps = (
        await client.get(f"/v1/discipline/actions/{suspension['id']}/steps", headers=w.auth)
    ).json()
    assert [s["step"] for s in steps] == ["given", "appealed", "overturned"]
    mine = (await client.get("/v1/discipline/actions", headers=w.auth)).json()
    assert {a["kind"] for a in mine} == {"fine", "suspension"}
    other = await make_worker(stores, client, engine_city.id)
    r = await client.get(f"/v1/discipline/actions?worker_id={w.id}", headers=other.auth)
    assert r.status_code == 404
    ranks = (
        await client.get(f"/v1/quality/rankings?city_id={engine_city.id}", headers=dispatcher.auth)
    ).json()
    assert [x["worker_id"] for x in ranks][-1] == w.id
    assert ranks[0]["rank"] == 1

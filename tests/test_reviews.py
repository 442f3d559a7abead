"""Reviews on real stores through the API: dimensions, tags, photos, the edit window, the
worker's reply, moderation, aggregates per service and the worker's public card."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from dispatch import ratings
from dispatch.review_rules import EditWindowClosed, ReviewInput
from doorstep.stores import Stores
from tests import files_samples as s
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker


async def completed(
    client: httpx.AsyncClient,
    stores: Stores,
    customer: Account,
    worker: Account,
    service: str,
    city: EngineCity,
) -> int:
    """An instant order booked through the API, then marked done by ``worker`` (the job
    itself is covered by test_full_flow)."""
    order = await book_here(client, customer, service, city.here)
    await stores.pool.execute(
        "UPDATE orders SET status = 'completed', worker_id = $2 WHERE id = $1",
        order["id"],
        worker.id,
    )
    return int(order["id"])


async def photo(client: httpx.AsyncClient, who: Account, purpose: str = "review_photo") -> int:
    """An uploaded file of ``who``'s (a JPEG, or a PDF for a certificate)."""
    data, kind = (
        (s.pdf(), "application/pdf") if purpose == "certificate" else (s.jpeg(), "image/jpeg")
    )
    r = await client.post(
        f"/v1/files?purpose={purpose}", content=data, headers=who.auth | {"content-type": kind}
    )
    assert r.status_code in (200, 201), r.text
    return int(r.json()["id"])


@pytest.fixture
async def job(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    instant_service: str,
    engine_city: EngineCity,
) -> dict[str, Any]:
    """A customer, a worker and a completed order between them."""
    customer = await make_user("customer")
    worker = await make_worker(stores, client, engine_city.id)
    order_id = await completed(client, stores, customer, worker, instant_service, engine_city)
    return {"customer": customer, "worker": worker, "order_id": order_id, "city": engine_city}


async def _sums(stores: Stores, worker_id: int) -> tuple[int, int]:
    row = await stores.pool.fetchrow(
        "SELECT rating_sum, rating_count FROM workers WHERE user_id = $1", worker_id
    )
    assert row is not None
    return int(row["rating_sum"]), int(row["rating_count"])


async def test_a_full_review_is_stored_and_read_back(
    client: httpx.AsyncClient, stores: Stores, admin: Account, job: dict[str, Any]
) -> None:
    """Stars, dimensions, text, tags and a photo are stored; the photo is attached; the parties read it back; others see the photo until the review is hidden."""
    customer, worker, oid = job["customer"], job["worker"], job["order_id"]
    pic = await photo(client, customer)
    body = {
        "stars": 5,
        "quality": 5,
        "attitude": 4,
        "punctuality": 5,
        "text": " 很专业 ",
        "tags": ["专业", "准时"],
        "photos": [pic],
    }
    r = await client.post(f"/v1/orders/{oid}/rating", headers=customer.auth, json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["stars"], got["quality"], got["attitude"], got["punctuality"]) == (5, 5, 4, 5)
    assert (got["text"], got["tags"], got["photos"]) == ("很专业", ["专业", "准时"], [pic])
    assert got["editable_until"] is not None
    attached = await stores.pool.fetchval("SELECT attached_to FROM files WHERE id = $1", pic)
    assert attached == f"review:{oid}"
    assert await _sums(stores, worker.id) == (5, 1)
    for who in (customer, worker):
        r = await client.get(f"/v1/orders/{oid}/rating", headers=who.auth)
        assert r.status_code == 200
        assert r.json()["tags"] == ["专业", "准时"]
    # Others signed in may read the photo while it is on a visible review; not once hidden.
    r = await client.get(f"/v1/files/{pic}", headers=worker.auth)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/ratings/{oid}/hide", headers=admin.auth, json={"reason": "测试隐藏"}
    )
    assert r.status_code == 200, r.text
    assert (await client.get(f"/v1/files/{pic}", headers=worker.auth)).status_code == 404
    assert (await client.get(f"/v1/files/{pic}", headers=customer.auth)).status_code == 200


async def test_the_older_stars_only_form_still_works(
    client: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    """{stars, text} alone is a review with no dimensions, tags or photos."""
    r = await client.post(
        f"/v1/orders/{job['order_id']}/rating",
        headers=job["customer"].auth,
        json={"stars": 3, "text": "还行"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["quality"], r.json()["tags"], r.json()["photos"]) == (None, [], [])


async def test_bad_reviews_name_the_field_and_rule(
    client: httpx.AsyncClient, make_user: MakeUser, job: dict[str, Any]
) -> None:
    """Someone else's order 404, unknown tag 422, score out of range 422, a photo not the author's or not an image 422, a second review 409."""
    customer, oid = job["customer"], job["order_id"]
    stranger = await make_user("customer")
    url = f"/v1/orders/{oid}/rating"
    r = await client.post(url, headers=stranger.auth, json={"stars": 5})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "order_id")
    r = await client.post(url, headers=customer.auth, json={"stars": 5, "tags": ["准时", "神"]})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "tags[1]")
    assert "unknown tag" in r.json()["error"]["message"]
    r = await client.post(url, headers=customer.auth, json={"stars": 5, "quality": 7})
    assert r.status_code == 422
    assert "quality" in r.text
    theirs = await photo(client, stranger)
    r = await client.post(url, headers=customer.auth, json={"stars": 5, "photos": [theirs]})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "photos[0]")
    pdf = await photo(client, customer, "certificate")
    r = await client.post(url, headers=customer.auth, json={"stars": 5, "photos": [pdf]})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "photos[0]")
    assert "must be an image" in r.json()["error"]["message"]
    r = await client.post(url, headers=customer.auth, json={"stars": 4})
    assert r.status_code == 201
    r = await client.post(url, headers=customer.auth, json={"stars": 5})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_rated")


async def test_an_edit_moves_the_workers_sum_and_the_window_closes(
    client: httpx.AsyncClient, stores: Stores, job: dict[str, Any]
) -> None:
    """PUT replaces the review and moves rating_sum by the difference; after the window it is a 409 naming the rule."""
    customer, worker, oid = job["customer"], job["worker"], job["order_id"]
    url = f"/v1/orders/{oid}/rating"
    first = await photo(client, customer)
    r = await client.post(url, headers=customer.auth, json={"stars": 2, "photos": [first]})
    assert r.status_code == 201
    assert await _sums(stores, worker.id) == (2, 1)
    second = await photo(client, customer)
    r = await client.put(
        url,
        headers=customer.auth,
        json={"stars": 4, "punctuality": 3, "tags": ["迟到"], "photos": [second]},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["stars"], r.json()["edited_at"] is not None) == (4, True)
    assert await _sums(stores, worker.id) == (4, 1)
    kept = dict(
        await stores.pool.fetch(
            "SELECT id, attached_to FROM files WHERE id = ANY($1)", [first, second]
        )
    )
    assert kept == {first: None, second: f"review:{oid}"}
    sent = await stores.pool.fetchval("SELECT created_at FROM ratings WHERE order_id = $1", oid)
    late = (sent + timedelta(hours=24, seconds=1)).timestamp()
    with pytest.raises(EditWindowClosed):
        await ratings.edit(stores, oid, customer.id, ReviewInput(5), now=late)
    assert await _sums(stores, worker.id) == (4, 1)
    r = await client.put(url, headers=job["worker"].auth, json={"stars": 1})
    assert r.status_code == 403  # workers do not edit reviews


async def test_the_worker_replies_once_and_only_the_orders_worker(
    client: httpx.AsyncClient, stores: Stores, job: dict[str, Any]
) -> None:
    """The order's worker replies once (409 the second time); another worker gets 404; the reply shows on the card; the author can no longer edit."""
    customer, worker, oid = job["customer"], job["worker"], job["order_id"]
    await client.post(f"/v1/orders/{oid}/rating", headers=customer.auth, json={"stars": 5})
    other = await make_worker(stores, client, job["city"].id)
    url = f"/v1/orders/{oid}/rating/reply"
    r = await client.post(url, headers=other.auth, json={"text": "谢谢"})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "order_id")
    r = await client.post(url, headers=customer.auth, json={"text": "谢谢"})
    assert r.status_code == 403
    r = await client.post(url, headers=worker.auth, json={"text": " 谢谢您的好评 "})
    assert r.status_code == 201, r.text
    assert r.json()["reply"] == "谢谢您的好评"
    r = await client.post(url, headers=worker.auth, json={"text": "再谢"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_replied")
    card = (await client.get(f"/v1/workers/{worker.id}/card")).json()
    assert card["reviews"][0]["reply"] == "谢谢您的好评"
    r = await client.put(f"/v1/orders/{oid}/rating", headers=customer.auth, json={"stars": 1})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "edit_window_closed")


async def test_hidden_reviews_count_nowhere(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
    job: dict[str, Any],
) -> None:
    """An admin hides a review with a reason: out of the service list, the summary, the card and the worker's sums; others may not hide."""
    customer, worker, city = job["customer"], job["worker"], job["city"]
    second = await completed(client, stores, customer, worker, instant_service, city)
    for oid, stars, text in ((job["order_id"], 5, "很好"), (second, 1, "骂人的话")):
        r = await client.post(
            f"/v1/orders/{oid}/rating",
            headers=customer.auth,
            json={"stars": stars, "text": text, "quality": stars, "tags": ["准时"]},
        )
        assert r.status_code == 201
    assert await _sums(stores, worker.id) == (6, 2)
    hide = f"/v1/ratings/{second}/hide"
    for who in (customer, worker):
        assert (
            await client.post(hide, headers=who.auth, json={"reason": "辱骂"})
        ).status_code == 403
    r = await client.post(hide, headers=admin.auth, json={"reason": " "})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "reason")
    r = await client.post(hide, headers=admin.auth, json={"reason": "含辱骂内容"})
    assert r.status_code == 200, r.text
    assert (r.json()["hidden"], r.json()["hidden_reason"]) == (True, "含辱骂内容")
    r = await client.post(hide, headers=admin.auth, json={"reason": "含辱骂内容"})
    assert r.status_code == 409
    assert await _sums(stores, worker.id) == (5, 1)
    card = (await client.get(f"/v1/workers/{worker.id}/card")).json()
    assert (card["rating"], card["rating_count"]) == (5.0, 1)
    assert [rv["text"] for rv in card["reviews"]] == ["很好"]
    assert card["dimensions"]["quality"] == 5.0
    assert card["tags"] == {"准时": 1}
    listed = (await client.get(f"/v1/services/{instant_service}/reviews?limit=100")).json()
    assert "骂人的话" not in [rv["text"] for rv in listed]
    # The author still sees their hidden review, with the reason.
    r = await client.get(f"/v1/orders/{second}/rating", headers=customer.auth)
    assert r.json()["hidden_reason"] == "含辱骂内容"


async def test_service_summary_aggregates_visible_reviews(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    make_user: MakeUser,
    engine_city: EngineCity,
) -> None:
    """A fresh service's summary: count, average, per-dimension averages and tag counts; unknown service 404."""
    code = f"rv_{secrets.token_hex(4)}"
    cats = (await client.get("/v1/categories")).json()
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": code,
            "category": cats[0]["code"],
            "name_zh": "评价测试",
            "name_en": "Review test",
            "price_minor": 10_000,
            "duration_min": 60,
            "instant": True,
            "scheduled": False,
        },
    )
    assert r.status_code == 201, r.text
    empty = (await client.get(f"/v1/services/{code}/reviews/summary")).json()
    assert (empty["count"], empty["average"]) == (0, None)
    customer = await make_user("customer")
    worker = await make_worker(stores, client, engine_city.id)
    for body in (
        {"stars": 5, "quality": 5, "attitude": 5, "tags": ["准时", "专业"]},
        {"stars": 4, "quality": 4, "tags": ["准时"]},
        {"stars": 3, "punctuality": 2, "tags": ["迟到"]},
    ):
        oid = await completed(client, stores, customer, worker, code, engine_city)
        r = await client.post(f"/v1/orders/{oid}/rating", headers=customer.auth, json=body)
        assert r.status_code == 201, r.text
    got = (await client.get(f"/v1/services/{code}/reviews/summary")).json()
    assert (got["count"], got["average"]) == (3, 4.0)
    assert got["dimensions"] == {"quality": 4.5, "attitude": 5.0, "punctuality": 2.0}
    assert got["tags"] == {"准时": 2, "专业": 1, "迟到": 1}
    r = await client.get("/v1/services/no_such_service/reviews/summary")
    assert r.status_code == 404


async def test_the_card_shows_photo_years_and_badges_never_numbers(
    client: httpx.AsyncClient, stores: Stores, admin: Account, job: dict[str, Any]
) -> None:
    """The card carries the avatar, whole years since working_since, verified unexpired certificate kinds (no numbers), jobs done."""
    worker = job["worker"]
    card = (await client.get(f"/v1/workers/{worker.id}/card")).json()
    assert (card["photo_file_id"], card["years_experience"], card["badges"]) == (None, None, [])
    avatar = await photo(client, worker, "avatar")
    since = date.today() - timedelta(days=3 * 366)
    r = await client.put(
        "/v1/workers/me/profile",
        headers=worker.auth,
        json={"photo_file_id": avatar, "working_since": since.isoformat()},
    )
    assert r.status_code == 204, r.text
    kind = f"ck_{secrets.token_hex(3)}"
    r = await client.post(
        "/v1/certificate-kinds",
        headers=admin.auth,
        json={
            "code": kind,
            "name_zh": "家政服务员证",
            "name_en": "Housekeeping",
            "validity_years": 5,
        },
    )
    assert r.status_code == 201, r.text
    today = datetime.now(UTC).date()
    certs = []
    for number, expires in (
        ("NO-SECRET-1", today + timedelta(days=300)),
        ("NO-SECRET-2", today - timedelta(days=1)),
    ):
        r = await client.post(
            f"/v1/workers/{worker.id}/certificates",
            headers=admin.auth,
            json={
                "kind": kind,
                "number": number,
                "issued_on": (today - timedelta(days=400)).isoformat(),
                "expires_on": expires.isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        certs.append(r.json()["id"])
    r = await client.get(f"/v1/workers/{worker.id}/card")
    assert r.json()["badges"] == []  # pending certificates are no badges
    for cid in certs:
        r = await client.put(
            f"/v1/workers/{worker.id}/certificates/{cid}/status",
            headers=admin.auth,
            json={"status": "verified"},
        )
        assert r.status_code == 200, r.text
    r = await client.get(f"/v1/workers/{worker.id}/card")
    card = r.json()
    assert card["photo_file_id"] == avatar
    assert card["years_experience"] == 3
    assert card["badges"] == [{"kind": kind, "name_zh": "家政服务员证", "name_en": "Housekeeping"}]
    assert "NO-SECRET" not in r.text
    assert card["completed_jobs"] == 1
    assert card["name"] == "周师傅"


async def test_reading_a_rating_is_for_the_orders_parties(
    client: httpx.AsyncClient, make_user: MakeUser, job: dict[str, Any]
) -> None:
    """GET …/rating is null before the review, the review after; a stranger gets 404 either way."""
    customer, oid = job["customer"], job["order_id"]
    stranger = await make_user("customer")
    url = f"/v1/orders/{oid}/rating"
    r = await client.get(url, headers=customer.auth)
    assert (r.status_code, r.json()) == (200, None)
    assert (await client.get(url, headers=stranger.auth)).status_code == 404
    await client.post(url, headers=customer.auth, json={"stars": 4})
    assert (await client.get(url, headers=customer.auth)).json()["stars"] == 4
    r = await client.get(url, headers=stranger.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (404, "order_id")


async def test_a_worker_lists_their_own_reviews_with_order_ids(
    client: httpx.AsyncClient, admin: Account, job: dict[str, Any]
) -> None:
    """GET /v1/me/reviews gives the worker their reviews (hidden ones flagged) with order ids; customers may not call it."""
    customer, worker, oid = job["customer"], job["worker"], job["order_id"]
    await client.post(f"/v1/orders/{oid}/rating", headers=customer.auth, json={"stars": 2})
    await client.post(f"/v1/ratings/{oid}/hide", headers=admin.auth, json={"reason": "重复评价"})
    mine = (await client.get("/v1/me/reviews", headers=worker.auth)).json()
    assert [(r["order_id"], r["hidden"]) for r in mine] == [(oid, True)]
    assert (await client.get("/v1/me/reviews", headers=customer.auth)).status_code == 403
    r = await client.get("/v1/me/reviews?limit=0", headers=worker.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "limit")

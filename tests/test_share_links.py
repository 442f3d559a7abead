"""Share links end with the job and with the customer's account, the customer can revoke
them, and their holders see the home only to ~100 m."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from dispatch.share import (
    ENDED,
    InvalidShareToken,
    coarse,
    issue_at,
    issue_share,
    refusal,
    verify_share,
)
from tests.helpers import Account, MakeUser
from tests.live import DEST, book, closed_code, next_of, watch


def test_links_are_refused_for_ended_jobs_and_inactive_customers() -> None:
    """An ended order or a frozen/closed customer refuses a link; an active one in progress does not."""
    assert refusal("en_route", "active") is None
    for status in sorted(ENDED):
        assert refusal(status, "active") is not None
    assert refusal("en_route", "frozen") is not None
    assert refusal("en_route", None) is not None


def test_a_new_link_after_a_revocation_is_issued_after_it() -> None:
    """A link issued in the second of a revocation gets the next second, so it is not revoked."""
    assert issue_at(1000, None) == 1000
    assert issue_at(1000, 1000) == 1001
    assert issue_at(1000, 900) == 1000


def test_the_home_is_rounded_to_about_100_m() -> None:
    """coarse() keeps three decimals."""
    assert coarse(22.531234, 114.011987) == (22.531, 114.012)


async def _link(client: httpx.AsyncClient, customer: Account, order_id: int) -> str:
    r = await client.post(f"/v1/orders/{order_id}/share", headers=customer.auth)
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


async def test_the_customer_revokes_links_and_open_watchers_are_closed(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """DELETE /v1/orders/{id}/share closes a watcher through a link (share_ended), refuses the old link after, and a new link works."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    token = await _link(client, customer, order["id"])
    ws, snap = await watch(live_app[0], order["id"], share=token)
    assert snap["type"] == "snapshot"
    own, _ = await watch(live_app[0], order["id"], headers=customer.auth)
    r = await client.delete(f"/v1/orders/{order['id']}/share", headers=customer.auth)
    assert r.status_code in (200, 204), r.text
    error = await next_of(ws, "error")
    assert error["code"] == "share_ended"
    assert await closed_code(ws) == 4401
    await own.close()
    ws, error = await watch(live_app[0], order["id"], share=token)
    assert (error["code"], "revoked" in error["message"]) == ("invalid_share_token", True)
    assert await closed_code(ws) == 4401
    other = await make_user("customer")
    r = await client.delete(f"/v1/orders/{order['id']}/share", headers=other.auth)
    assert r.status_code == 404
    fresh = await _link(client, customer, order["id"])
    ws, snap = await watch(live_app[0], order["id"], share=fresh)
    assert snap["type"] == "snapshot"
    await ws.close()


async def test_a_link_ends_with_the_job(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """Cancelling the order closes a watcher through a link after the status; the link is refused afterwards and no new one is issued (409 share_ended)."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    token = await _link(client, customer, order["id"])
    ws, _ = await watch(live_app[0], order["id"], share=token)
    r = await client.post(f"/v1/orders/{order['id']}/cancel", headers=customer.auth, json={})
    assert r.status_code == 200, r.text
    status = await next_of(ws, "status", timeout_s=10)
    assert status["status"] == "cancelled"
    assert (await next_of(ws, "error"))["code"] == "share_ended"
    assert await closed_code(ws) == 4401
    ws, error = await watch(live_app[0], order["id"], share=token)
    assert error["code"] == "share_ended"
    assert await closed_code(ws) == 4401
    r = await client.post(f"/v1/orders/{order['id']}/share", headers=customer.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "share_ended")


async def test_a_link_ends_when_the_customer_is_frozen(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    instant_service: str,
    live_city: str,
) -> None:
    """Freezing the customer closes watchers through their links and refuses the links after."""
    customer = await make_user("customer")
    order = await book(client, customer, instant_service)
    token = await _link(client, customer, order["id"])
    ws, _ = await watch(live_app[0], order["id"], share=token)
    r = await client.put(
        f"/v1/users/{customer.id}/status", json={"status": "frozen"}, headers=admin.auth
    )
    assert r.status_code == 200, r.text
    assert (await next_of(ws, "error"))["code"] == "share_ended"
    assert await closed_code(ws) == 4401
    ws, error = await watch(live_app[0], order["id"], share=token)
    assert error["code"] == "share_ended"
    assert await closed_code(ws) == 4401


async def test_link_holders_see_the_home_rounded_the_customer_exactly(
    live_app: tuple[str, Any],
    client: httpx.AsyncClient,
    make_user: MakeUser,
    instant_service: str,
    live_city: str,
) -> None:
    """The snapshot through a link has the home to 3 decimals; the customer's own has it exact."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": DEST[0] + 0.000123,
            "lng": DEST[1] + 0.000456,
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    token = await _link(client, customer, order["id"])
    ws, shared = await watch(live_app[0], order["id"], share=token)
    await ws.close()
    ws, own = await watch(live_app[0], order["id"], headers=customer.auth)
    await ws.close()
    assert (own["order"]["lat"], own["order"]["lng"]) == (order["lat"], order["lng"])
    assert (shared["order"]["lat"], shared["order"]["lng"]) == coarse(order["lat"], order["lng"])
    assert (shared["order"]["lat"], shared["order"]["lng"]) != (order["lat"], order["lng"])


def test_a_link_made_in_the_second_of_a_revocation_works_at_once() -> None:
    """A link issued in the same second as a revocation is dated the next second, and is
    accepted at once (not refused as issued in the future), while older ones stay void."""
    now = int(time.time())  # PyJWT compares iat with the real clock
    iat = issue_at(now, revoked_iat=now)
    assert iat == now + 1
    token = issue_share(7, now=iat, ttl_s=3600, key="k" * 32)
    assert verify_share(token, order_id=7, now=now, key="k" * 32, revoked_iat=now) == iat + 3600
    old = issue_share(7, now=now, ttl_s=3600, key="k" * 32)
    with pytest.raises(InvalidShareToken):
        verify_share(old, order_id=7, now=now, key="k" * 32, revoked_iat=now)

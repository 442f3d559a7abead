"""Password guessing is slowed down per phone+network, per phone and per network; the owner keeps a way in (issue 14 item 10)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.requests import Request

from accounts.throttle import Failures, LoginLimits, Standing, doubling_delay_s, network_of, wait
from api.routing import client_ip
from doorstep.settings import networks
from tests.helpers import PASSWORD, MakeUser, from_network, new_phone

LIMITS = LoginLimits()


async def _login(
    client: httpx.AsyncClient, phone: str, password: str, net: dict[str, str]
) -> httpx.Response:
    return await client.post(
        "/v1/auth/login", json={"phone": phone, "password": password}, headers=net
    )


def _error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


async def test_guesses_from_one_network_are_slowed_not_the_owner_elsewhere(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """After 5 wrong passwords from one network it must wait (429, Retry-After, field phone); the owner on another network logs in at once."""
    user = await make_user()
    attacker, owner = from_network(), from_network()
    for _ in range(LIMITS.pair_free):
        assert (await _login(client, user.phone, "wrong password 1", attacker)).status_code == 401
    r = await _login(client, user.phone, PASSWORD, attacker)  # even the right one waits
    assert r.status_code == 429, r.text
    assert _error(r)["code"] == "too_many_attempts"
    assert _error(r)["field"] == "phone"
    assert int(r.headers["retry-after"]) >= 1
    assert (await _login(client, user.phone, PASSWORD, owner)).status_code == 200


async def test_ten_phones_do_not_lock_the_owner_of_a_phone_out(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Failures from many networks slow a phone down for new networks, but not for the network its owner logged in from."""
    user = await make_user()
    home = from_network()
    assert (await _login(client, user.phone, PASSWORD, home)).status_code == 200
    for _ in range(LIMITS.phone_free):  # a botnet: one guess per network
        r = await _login(client, user.phone, "wrong password 1", from_network())
        assert r.status_code == 401, r.text
    r = await _login(client, user.phone, PASSWORD, from_network())
    assert r.status_code == 429, r.text
    assert "this phone" in _error(r)["message"]
    assert (await _login(client, user.phone, PASSWORD, home)).status_code == 200


async def test_many_phones_tried_from_one_network_get_429(client: httpx.AsyncClient) -> None:
    """Trying 30 phones from one network: the 21st and later are 429 with no field; those tried before are not blocked by this."""
    net = from_network()
    phones = [new_phone() for _ in range(30)]
    statuses = [(await _login(client, p, "wrong password 1", net)).status_code for p in phones]
    assert statuses == [401] * LIMITS.ip_phones + [429] * (30 - LIMITS.ip_phones)
    r = await _login(client, phones[-1], "wrong password 1", net)
    assert _error(r)["field"] is None
    assert "phone numbers tried from your network" in _error(r)["message"]
    again = await _login(client, phones[0], "wrong password 1", net)
    assert again.status_code == 401, again.text  # already tried here: pair limits apply


async def test_a_successful_login_clears_the_networks_failures_for_that_phone(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Four failures then the right password: the count starts over, five more failures pass before any wait."""
    user = await make_user()
    net = from_network()
    for _ in range(LIMITS.pair_free - 1):
        assert (await _login(client, user.phone, "wrong password 1", net)).status_code == 401
    assert (await _login(client, user.phone, PASSWORD, net)).status_code == 200
    for _ in range(LIMITS.pair_free):
        assert (await _login(client, user.phone, "wrong password 1", net)).status_code == 401


async def test_an_exempt_network_is_never_slowed(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Loopback without X-Forwarded-For is exempt in the test settings (a load tester): no 429 however many failures."""
    user = await make_user()
    for _ in range(LIMITS.pair_free + 3):
        r = await client.post(
            "/v1/auth/login", json={"phone": user.phone, "password": "wrong password 1"}
        )
        assert r.status_code == 401, r.text


async def test_registrations_are_limited_per_network(client: httpx.AsyncClient) -> None:
    """Ten registrations from one network pass; the eleventh is 429 with Retry-After; another network is fine."""
    net = from_network()

    async def register(headers: dict[str, str]) -> httpx.Response:
        body = {"phone": new_phone(), "password": PASSWORD, "name": "注册者"}
        return await client.post("/v1/auth/register", json=body, headers=headers)

    for _ in range(LIMITS.register_per_window):
        assert (await register(net)).status_code == 202
    r = await register(net)
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) > 0
    assert (await register(from_network())).status_code == 202


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("password", "common"),
        ("aaaaaaaa", "repeated"),
        (" " * 8, "whitespace"),
    ],
)
async def test_registration_refuses_weak_passwords(
    client: httpx.AsyncClient, password: str, rule: str
) -> None:
    """password, aaaaaaaa and eight spaces are 422 naming password and the rule."""
    phone = new_phone()
    r = await client.post(
        "/v1/auth/register",
        json={"phone": phone, "password": password, "name": "弱密码"},
        headers=from_network(),
    )
    assert r.status_code == 422, r.text
    assert _error(r)["field"] == "password"
    assert rule in _error(r)["message"]


async def test_registration_refuses_the_phone_as_password(client: httpx.AsyncClient) -> None:
    """The phone number as the password (formatted or with letters) is 422 naming password."""
    phone = new_phone()
    r = await client.post(
        "/v1/auth/register",
        json={"phone": phone, "password": f"+86 {phone}", "name": "号码"},
        headers=from_network(),
    )
    assert r.status_code == 422, r.text
    assert (_error(r)["field"], "phone number" in _error(r)["message"]) == ("password", True)


# --- the pure rules ---------------------------------------------------------------------


def test_waits_double_and_stop_at_the_cap() -> None:
    """No wait for the free failures, then 2, 4, 8 … seconds up to the cap."""
    assert [doubling_delay_s(n, 5, 60) for n in range(4, 12)] == [0, 2, 4, 8, 16, 32, 60, 60]
    assert doubling_delay_s(10**6, 5, 900) == 900


def _standing(
    pair: int = 0, phone: int = 0, net: int = 0, phones: int = 0, trusted: bool = False
) -> Standing:
    return Standing(
        pair=Failures(pair, 1000.0, 1000.0),
        phone=Failures(phone, 1000.0, 1000.0),
        network=Failures(net, 1000.0, 1000.0),
        network_phones=phones,
        phone_known_to_network=False,
        trusted=trusted,
    )


def test_the_wait_is_counted_from_the_last_failure() -> None:
    """Six failures on a pair: 4 s from the last one; after that, none."""
    found = wait(_standing(pair=6, phone=6), LIMITS, now=1001.0)
    assert found is not None
    assert (found.scope, found.retry_after_s) == ("pair", 3)
    assert wait(_standing(pair=6, phone=6), LIMITS, now=1004.0) is None


def test_a_trusted_network_skips_the_phone_and_network_waits() -> None:
    """The owner's network waits only for its own failures, not for the phone's or the network's."""
    busy = _standing(pair=0, phone=40, net=500, phones=99, trusted=True)
    assert wait(busy, LIMITS, now=1001.0) is None
    untrusted = wait(_standing(pair=0, phone=40, net=500, phones=99), LIMITS, now=1001.0)
    assert untrusted is not None
    assert untrusted.scope in {"network_failures", "network_phones"}


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
    ],
)
def test_limits_count_ipv4_addresses_and_ipv6_64s(ip: str, network: str) -> None:
    """An IPv4 address is its own network; an IPv6 address counts as its /64."""
    assert network_of(ip) == network


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("198.51.100.7", "203.0.113.1", "198.51.100.7", id="untrusted-peer-ignored"),
        pytest.param("10.0.0.2", None, "10.0.0.2", id="trusted-peer-no-header"),
        pytest.param("10.0.0.2", "203.0.113.1", "203.0.113.1", id="from-the-proxy"),
        pytest.param(
            "10.0.0.2", "6.6.6.6, 203.0.113.1", "203.0.113.1", id="client-spoofed-left-hop"
        ),
        pytest.param("10.0.0.2", "203.0.113.1, 10.0.0.3", "203.0.113.1", id="two-proxies"),
        pytest.param("10.0.0.2", "not-an-ip", "10.0.0.2", id="garbage"),
    ],
)
def test_the_client_address_believes_only_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    """X-Forwarded-For is read only from trusted proxies, right to left, up to the first untrusted hop."""
    trusted = networks("10.0.0.0/8", "trusted_proxies")
    assert client_ip(_request(peer, forwarded), trusted) == expected

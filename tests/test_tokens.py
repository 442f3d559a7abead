"""Pure access/refresh token signing and verification (time is passed in)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest

from accounts.errors import InvalidToken
from accounts.tokens import TokenType, issue, verify

KEY = "test-signing-key-" * 3
NOW = 1_700_000_000
TTL = 900


def _payload(**overrides: Any) -> dict[str, Any]:
    """A complete, valid access-token payload, with ``overrides`` (None removes a claim)."""
    payload: dict[str, Any] = {
        "iss": "doorstep",
        "sub": "42",
        "roles": ["customer"],
        "jti": "jti-1",
        "typ": "access",
        "iat": NOW,
        "exp": NOW + TTL,
    }
    for name, value in overrides.items():
        if value is None:
            payload.pop(name)
        else:
            payload[name] = value
    return payload


def _sign(payload: dict[str, Any], key: str = KEY) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("typ", ["access", "refresh"])
def test_issue_then_verify_round_trips(typ: TokenType) -> None:
    """A token verifies back to exactly the claims it was issued with."""
    family = "fam-1" if typ == "refresh" else None
    token, claims = issue(
        user_id=7,
        roles=("admin", "worker"),
        typ=typ,
        now=NOW,
        ttl_s=TTL,
        key=KEY,
        family=family,
    )
    assert claims.user_id == 7
    assert claims.roles == ("admin", "worker")
    assert claims.typ == typ
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + TTL
    assert claims.family == family
    assert verify(token, key=KEY, now=NOW, typ=typ) == claims


def test_issue_gives_each_token_its_own_jti() -> None:
    """Two tokens issued in the same second differ by jti; an explicit jti is kept."""
    a = issue(user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key=KEY)
    b = issue(user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key=KEY)
    assert a[1].jti != b[1].jti
    assert a[0] != b[0]
    _, c = issue(
        user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key=KEY, jti="mine"
    )
    assert c.jti == "mine"


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        pytest.param(NOW, True, id="at-issue"),
        pytest.param(NOW + TTL - 1, True, id="one-second-before-exp"),
        pytest.param(NOW + TTL, False, id="exactly-at-exp"),
        pytest.param(NOW + TTL + 1, False, id="after-exp"),
        pytest.param(NOW + 10 * TTL, False, id="long-after-exp"),
    ],
)
def test_expiry_is_exclusive_of_exp(now: int, valid: bool) -> None:
    """A token is valid strictly before ``exp``: ``now == exp`` is already expired."""
    token, claims = issue(user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key=KEY)
    if valid:
        assert verify(token, key=KEY, now=now, typ="access") == claims
    else:
        with pytest.raises(InvalidToken, match="expired"):
            verify(token, key=KEY, now=now, typ="access")


@pytest.mark.parametrize(("issued", "expected"), [("refresh", "access"), ("access", "refresh")])
def test_wrong_token_type_is_rejected(issued: TokenType, expected: TokenType) -> None:
    """A refresh token is not accepted as an access token, nor the other way round."""
    token, _ = issue(
        user_id=1, roles=("customer",), typ=issued, now=NOW, ttl_s=TTL, key=KEY, family="f"
    )
    with pytest.raises(InvalidToken, match=f"expected an {expected} token"):
        verify(token, key=KEY, now=NOW, typ=expected)


def test_tampered_signature_is_rejected() -> None:
    """Changing one character in the middle of the signature invalidates the token."""
    token, _ = issue(user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key=KEY)
    header, payload, signature = token.split(".")
    i = len(signature) // 2
    flipped = "A" if signature[i] != "A" else "B"
    tampered = f"{header}.{payload}.{signature[:i]}{flipped}{signature[i + 1 :]}"
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verify(tampered, key=KEY, now=NOW, typ="access")


def test_tampered_payload_is_rejected() -> None:
    """Swapping in a payload with more roles, keeping the old signature, is rejected."""
    token, _ = issue(user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key=KEY)
    header, _, signature = token.split(".")
    forged = _b64(_payload(sub="1", roles=["admin"]))
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verify(f"{header}.{forged}.{signature}", key=KEY, now=NOW, typ="access")


def test_wrong_key_is_rejected() -> None:
    """A token signed with another key does not verify."""
    token, _ = issue(
        user_id=1, roles=("customer",), typ="access", now=NOW, ttl_s=TTL, key="other-" * 8
    )
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verify(token, key=KEY, now=NOW, typ="access")


def test_unsigned_token_is_rejected() -> None:
    """A token with ``alg: none`` (no signature) is refused."""
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_payload())}."
    with pytest.raises(InvalidToken):
        verify(unsigned, key=KEY, now=NOW, typ="access")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b"])
def test_malformed_token_is_rejected(token: str) -> None:
    """Strings that are not JWTs are InvalidToken, not another exception."""
    with pytest.raises(InvalidToken):
        verify(token, key=KEY, now=NOW, typ="access")


def test_a_valid_hand_signed_payload_verifies() -> None:
    """The reference payload used below verifies, so each rejection is due to its one change."""
    claims = verify(_sign(_payload()), key=KEY, now=NOW, typ="access")
    assert (claims.user_id, claims.roles, claims.jti) == (42, ("customer",), "jti-1")


@pytest.mark.parametrize("claim", ["exp", "sub", "jti", "typ", "iss", "roles"])
def test_missing_claim_is_rejected(claim: str) -> None:
    """A token lacking any required claim is InvalidToken."""
    with pytest.raises(InvalidToken):
        verify(_sign(_payload(**{claim: None})), key=KEY, now=NOW, typ="access")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        pytest.param("sub", "abc", id="sub-letters"),
        pytest.param("sub", "1.5", id="sub-decimal"),
        pytest.param("sub", "", id="sub-empty"),
        pytest.param("sub", 42, id="sub-json-number"),
        pytest.param("iss", "someone-else", id="other-issuer"),
        pytest.param("roles", "customer", id="roles-not-a-list"),
        pytest.param("roles", [1], id="roles-not-strings"),
        pytest.param("exp", str(NOW + TTL), id="exp-string"),
        pytest.param("iat", "yesterday", id="iat-not-a-number"),
    ],
)
def test_malformed_claim_is_rejected(claim: str, value: object) -> None:
    """A claim of the wrong shape (e.g. a non-integer subject) is InvalidToken."""
    with pytest.raises(InvalidToken):
        verify(_sign(_payload(**{claim: value})), key=KEY, now=NOW, typ="access")


def test_refresh_token_without_family_has_none() -> None:
    """A refresh token issued without a family verifies with ``family`` None."""
    token, _ = issue(user_id=1, roles=("customer",), typ="refresh", now=NOW, ttl_s=TTL, key=KEY)
    assert verify(token, key=KEY, now=NOW, typ="refresh").family is None

"""Access and refresh tokens (JWT, HS256). Pure: the caller passes ``now``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

from accounts.errors import InvalidToken

TokenType = Literal["access", "refresh"]
_ALG = "HS256"
_ISSUER = "doorstep"


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    user_id: int
    roles: tuple[str, ...]
    jti: str
    typ: TokenType
    issued_at: int
    expires_at: int
    family: str | None = None  # refresh tokens: the login they descend from
    version: int = 0  # the user's token version when issued
    # access tokens: the grants' permissions, each with the scopes it is held in
    # (``platform``, ``city:<id>``, ``merchant:<id>``; permissions/rules.py)
    perms: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def perm_map(self) -> dict[str, tuple[str, ...]]:
        """``perms`` as a mapping."""
        return dict(self.perms)


def issue(
    *,
    user_id: int,
    roles: tuple[str, ...],
    typ: TokenType,
    now: int,
    ttl_s: int,
    key: str,
    jti: str | None = None,
    family: str | None = None,
    version: int = 0,
    perms: dict[str, list[str]] | None = None,
) -> tuple[str, Claims]:
    """Sign a token; return it with its claims."""
    claims = Claims(
        user_id=user_id,
        roles=roles,
        jti=jti or str(uuid.uuid4()),
        typ=typ,
        issued_at=now,
        expires_at=now + ttl_s,
        family=family,
        version=version,
        perms=tuple((p, tuple(refs)) for p, refs in sorted((perms or {}).items())),
    )
    payload: dict[str, object] = {
        "iss": _ISSUER,
        "sub": str(user_id),
        "roles": list(roles),
        "jti": claims.jti,
        "typ": typ,
        "iat": now,
        "exp": claims.expires_at,
        "ver": version,
    }
    if family is not None:
        payload["fam"] = family
    if perms:
        payload["pms"] = perms
    return jwt.encode(payload, key, algorithm=_ALG), claims


def verify(token: str, *, key: str, now: int, typ: TokenType) -> Claims:
    """Check signature, issuer, type and expiry against ``now``; raise :class:`InvalidToken`."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[_ALG],
            issuer=_ISSUER,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "require": ["exp", "sub", "jti", "typ"],
            },
        )
    except jwt.PyJWTError as e:
        raise InvalidToken(f"token rejected: {e}") from None
    if payload.get("typ") != typ:
        raise InvalidToken(f"expected an {typ} token")
    exp = payload["exp"]
    if not isinstance(exp, int) or exp <= now:
        raise InvalidToken("token has expired")
    roles = payload.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("token has no roles")
    try:
        user_id = int(payload["sub"])
    except (TypeError, ValueError):
        raise InvalidToken("token subject is not a user id") from None
    try:
        issued_at = int(payload.get("iat", 0))
    except (TypeError, ValueError, OverflowError):
        raise InvalidToken("token issue time is not a number") from None
    version = payload.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidToken("token version is not an integer")
    fam = payload.get("fam")
    pms = payload.get("pms", {})
    if not isinstance(pms, dict) or not all(
        isinstance(refs, list) and all(isinstance(r, str) for r in refs) for refs in pms.values()
    ):
        raise InvalidToken("token permissions are malformed")
    return Claims(
        user_id=user_id,
        roles=tuple(roles),
        jti=str(payload["jti"]),
        typ=typ,
        issued_at=issued_at,
        expires_at=exp,
        family=fam if isinstance(fam, str) else None,
        version=version,
        perms=tuple((str(p), tuple(refs)) for p, refs in sorted(pms.items())),
    )

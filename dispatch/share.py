"""Share links: a token that lets its holder watch one order until it expires. Pure."""

from __future__ import annotations

import jwt

from doorstep.errors import Unauthenticated

_ALG = "HS256"


class InvalidShareToken(Unauthenticated):
    """A share token that is malformed, forged, expired or for another order."""

    code = "invalid_share_token"


def issue_share(order_id: int, *, now: int, ttl_s: int, key: str) -> str:
    """A token scoped to ``order_id`` that expires at ``now + ttl_s``."""
    return jwt.encode(
        {"iss": "doorstep", "typ": "share", "ord": order_id, "iat": now, "exp": now + ttl_s},
        key,
        algorithm=_ALG,
    )


def verify_share(token: str, *, order_id: int, now: int, key: str) -> int:
    """The token's expiry if it is a valid share token for ``order_id``."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALG],
            issuer="doorstep",
            options={"verify_exp": False, "require": ["exp", "ord", "typ"]},
        )
    except jwt.PyJWTError as e:
        raise InvalidShareToken(f"share token rejected: {e}") from None
    if claims.get("typ") != "share" or claims.get("ord") != order_id:
        raise InvalidShareToken("this share token is for another order")
    exp = claims["exp"]
    if not isinstance(exp, int) or exp <= now:
        raise InvalidShareToken("this share link has expired; ask for a new one")
    return exp

"""Share links: a token that lets its holder watch one order until it expires. Pure.

A link also ends with the job (completed, cancelled, failed), when the customer's
account is not active, and when the customer revokes the order's links (every token
issued up to then); a new link after a revocation is issued a second later. Holders
see the home only to about 100 m (:func:`coarse`).
"""

from __future__ import annotations

import jwt

from doorstep.errors import Conflict, Unauthenticated

_ALG = "HS256"
ENDED = frozenset({"completed", "cancelled", "failed"})
HOME_DECIMALS = 3  # ~100 m: the area, not the door
NEAR_HOME_M = 150.0  # a shared route stops this far from the home


class ShareEnded(Conflict):
    """The order's job is over: no share link for it."""

    code = "share_ended"


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


ISSUE_LEEWAY_S = 2


def issue_at(now: int, revoked_iat: int | None) -> int:
    """The issue time of a new link: after the last revocation, so it is not revoked."""
    return now if revoked_iat is None else max(now, revoked_iat + 1)


def refusal(order_status: str, customer_status: str | None) -> str | None:
    """Why an order cannot be shared (or watched through a link) now, or None."""
    if order_status in ENDED:
        return f"the job is over ({order_status}); share links end with it"
    if customer_status != "active":
        return "the customer's account is not active"
    return None


def coarse(lat: float, lng: float) -> tuple[float, float]:
    """The home as a link's holder sees it: rounded to ~100 m."""
    return round(lat, HOME_DECIMALS), round(lng, HOME_DECIMALS)


def verify_share(
    token: str, *, order_id: int, now: int, key: str, revoked_iat: int | None = None
) -> int:
    """The token's expiry if it is a valid share token for ``order_id``, issued after
    the order's last revocation (``revoked_iat``, epoch seconds)."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALG],
            issuer="doorstep",
            options={"verify_exp": False, "require": ["exp", "ord", "typ"]},
            # A link made in the second of a revocation is dated the next second
            # (issue_at), so its iat may be ahead of the clock by up to a second.
            leeway=ISSUE_LEEWAY_S,
        )
    except jwt.PyJWTError as e:
        raise InvalidShareToken(f"share token rejected: {e}") from None
    if claims.get("typ") != "share" or claims.get("ord") != order_id:
        raise InvalidShareToken("this share token is for another order")
    exp = claims["exp"]
    if not isinstance(exp, int) or exp <= now:
        raise InvalidShareToken("this share link has expired; ask for a new one")
    iat = claims.get("iat")
    if revoked_iat is not None and (not isinstance(iat, int) or iat <= revoked_iat):
        raise InvalidShareToken("this share link was revoked by the customer")
    return exp

"""Account operations: register, login, refresh, logout, authenticate.

Glue between the pure rules and tokens and the stores. ``now`` comes in as an
argument so that callers (and tests) decide the time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from accounts import store
from accounts.errors import BadCredentials, InvalidToken, TooManyAttempts, UnknownUser
from accounts.models import TokenPair, User
from accounts.passwords import hash_password, verify_password
from accounts.rules import check_name, check_password, check_roles, normalize_phone
from accounts.tokens import Claims, issue, verify
from doorstep.db import Conn
from doorstep.stores import Stores

MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW_S = 15 * 60


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """How tokens are signed and how long they live."""

    key: str
    access_ttl_s: int
    refresh_ttl_s: int


def _ts(now: int) -> datetime:
    return datetime.fromtimestamp(now, UTC)


async def create_user(
    stores: Stores,
    *,
    phone: str,
    name: str,
    password: str,
    roles: list[str],
    db: Conn | None = None,
) -> User:
    """Validate and create an account (on ``db`` to make it part of a transaction)."""
    phone = normalize_phone(phone)
    name = check_name(name)
    check_password(password)
    checked = check_roles(roles)
    return await store.insert_user(
        stores.pool if db is None else db,
        phone=phone,
        name=name,
        password_hash=await hash_password(password),
        roles=checked,
    )


async def _issue_pair(
    stores: Stores,
    user: User,
    policy: TokenPolicy,
    now: int,
    family: str | None = None,
    refresh_jti: str | None = None,
) -> tuple[TokenPair, Claims]:
    version = await store.token_version(stores.pool, user.id)
    access, _ = issue(
        user_id=user.id,
        roles=user.roles,
        typ="access",
        now=now,
        ttl_s=policy.access_ttl_s,
        key=policy.key,
        version=version,
    )
    family = family or str(uuid.uuid4())
    refresh, rclaims = issue(
        user_id=user.id,
        roles=user.roles,
        typ="refresh",
        now=now,
        ttl_s=policy.refresh_ttl_s,
        key=policy.key,
        family=family,
        jti=refresh_jti,
    )
    await store.insert_refresh(
        stores.pool,
        jti=rclaims.jti,
        user_id=user.id,
        family=family,
        issued_at=_ts(now),
        expires_at=_ts(rclaims.expires_at),
    )
    pair = TokenPair(
        access_token=access,
        refresh_token=refresh,
        token_type="Bearer",
        expires_in=policy.access_ttl_s,
        user=user,
    )
    return pair, rclaims


async def login(
    stores: Stores, policy: TokenPolicy, *, phone: str, password: str, now: int
) -> TokenPair:
    """Phone and password for a token pair; failed attempts are rate limited per phone."""
    phone = normalize_phone(phone)
    attempts_key = stores.keys.login_attempts(phone)
    # Count the attempt before checking it, so parallel guesses cannot all slip under the
    # limit; a successful login clears the count.
    async with stores.redis.pipeline(transaction=True) as pipe:
        pipe.incr(attempts_key)
        pipe.expire(attempts_key, FAILED_LOGIN_WINDOW_S, nx=True)
        attempts, _ = await pipe.execute()
    if int(attempts) > MAX_FAILED_LOGINS:
        raise TooManyAttempts(
            f"too many failed logins; try again within {FAILED_LOGIN_WINDOW_S // 60} minutes",
            field="phone",
        )
    found = await store.credentials_by_phone(stores.pool, phone)
    ok = await verify_password(found[1] if found else None, password)
    if not ok or found is None or found[0].status != "active":
        if found is not None and ok:
            raise BadCredentials(f"this account is {found[0].status}")
        raise BadCredentials("phone or password is wrong")
    await stores.redis.delete(attempts_key)
    pair, _ = await _issue_pair(stores, found[0], policy, now)
    return pair


async def refresh(
    stores: Stores, policy: TokenPolicy, *, refresh_token: str, now: int
) -> TokenPair:
    """Rotate a refresh token. Reusing a rotated one revokes its whole family (theft signal)."""
    claims = verify(refresh_token, key=policy.key, now=now, typ="refresh")
    if claims.family is None:
        raise InvalidToken("refresh token has no family")
    user = await store.user_by_id(stores.pool, claims.user_id)
    if user is None or user.status != "active":
        raise InvalidToken("the account is not active")
    new_jti = str(uuid.uuid4())
    async with stores.pool.acquire() as conn, conn.transaction():
        rotated = await store.rotate_refresh(
            conn, jti=claims.jti, replaced_by=new_jti, now=_ts(now)
        )
        if not rotated:  # committed before raising: the revocation must stick
            await store.revoke_family(conn, claims.family, _ts(now))
    if not rotated:
        raise InvalidToken("refresh token was already used or revoked; log in again")
    pair, _ = await _issue_pair(
        stores, user, policy, now, family=claims.family, refresh_jti=new_jti
    )
    return pair


async def logout(
    stores: Stores, policy: TokenPolicy, *, access: Claims, refresh_token: str | None, now: int
) -> None:
    """Revoke the access token (until it expires) and, if given, the refresh token's login."""
    remaining = max(1, access.expires_at - now)
    await stores.redis.set(stores.keys.revoked_token(access.jti), b"1", ex=remaining)
    if refresh_token:
        claims = verify(refresh_token, key=policy.key, now=now, typ="refresh")
        if claims.user_id != access.user_id or claims.family is None:
            raise InvalidToken("refresh token belongs to another login")
        await store.revoke_family(stores.pool, claims.family, _ts(now))


async def authenticate(stores: Stores, policy: TokenPolicy, token: str, *, now: int) -> Claims:
    """Verify an access token; refuse it if revoked or issued before the account was frozen.

    After a freeze the user's token version sits in Redis for ``access_ttl_s``; once that
    has passed every older token has expired anyway, so no lookup is needed.
    """
    claims = verify(token, key=policy.key, now=now, typ="access")
    await check_current(stores, claims)
    return claims


async def check_current(stores: Stores, claims: Claims) -> None:
    """Refuse verified claims whose token was revoked or issued before a freeze.

    Also for a socket that was signed in before it could be told of a freeze: checked
    again once it is registered, no freeze falls between the two.
    """
    keys = stores.keys
    revoked, version = await stores.redis.mget(
        keys.revoked_token(claims.jti), keys.token_version(claims.user_id)
    )
    if revoked is not None:
        raise InvalidToken("token was revoked")
    if version is not None and claims.version != int(version):
        raise InvalidToken("token was issued before the account was frozen or closed")


async def get_user(stores: Stores, user_id: int) -> User:
    """The user or :class:`UnknownUser`."""
    user = await store.user_by_id(stores.pool, user_id)
    if user is None:
        raise UnknownUser(f"no user {user_id}")
    return user


async def set_status(
    stores: Stores, policy: TokenPolicy, user_id: int, status: str, *, now: int
) -> User:
    """Freeze, unfreeze or close an account.

    Freezing bumps the user's token version and revokes their refresh tokens, so every
    token issued before stops working, even after an unfreeze (the freeze may have been
    for a compromised account).
    """
    version = None
    async with stores.pool.acquire() as conn, conn.transaction():
        user = await store.set_user_status(conn, user_id, status)
        if user is None:
            raise UnknownUser(f"no user {user_id}")
        if status != "active":
            await store.revoke_user(conn, user_id, _ts(now))
            version = await store.bump_token_version(conn, user_id)
    if version is not None:
        await stores.redis.set(
            stores.keys.token_version(user_id), str(version), ex=policy.access_ttl_s
        )
        # Tokens are checked when a socket opens: sockets already open close now.
        await stores.redis.publish(stores.keys.revocations(), str(user_id))
    return user

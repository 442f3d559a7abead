"""Account operations: register, login, refresh, logout, authenticate.

Glue between the pure rules and tokens and the stores. ``now`` comes in as an
argument so that callers (and tests) decide the time.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from accounts import revocations, store, throttle
from accounts.errors import (
    BadCredentials,
    InvalidToken,
    OwnStatus,
    PhoneTaken,
    TooManyAttempts,
    UnknownUser,
)
from accounts.models import TokenPair, User
from accounts.passwords import hash_password, verify_password
from accounts.rules import check_name, check_password, check_roles, normalize_phone
from accounts.throttle import LoginLimits
from accounts.tokens import Claims, issue, verify
from audit import store as audit_store
from doorstep.db import Conn, Tx
from doorstep.stores import Stores
from events import store as events_store
from events.types import AccountChanged, aggregate_key
from permissions import store as permissions_store

log = logging.getLogger("doorstep.accounts")
DEFAULT_LIMITS = LoginLimits()


@dataclass(frozen=True, slots=True)
class Client:
    """Who asks, as far as limits go: the client's network (``throttle.network_of``) and
    whether it is exempt from limits (load testers, ``DOORSTEP_RATE_LIMIT_EXEMPT``)."""

    network: str
    exempt: bool = False


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
    check_password(password, phone=phone)
    checked = check_roles(roles)
    password_hash = await hash_password(password)
    if db is None or isinstance(db, asyncpg.Pool):
        async with (db or stores.pool).acquire() as conn, conn.transaction():
            return await _insert_user(conn, phone, name, password_hash, checked)
    async with db.transaction():  # a savepoint in the caller's transaction
        return await _insert_user(db, phone, name, password_hash, checked)


async def _insert_user(
    tx: Tx, phone: str, name: str, password_hash: str, roles: tuple[str, ...]
) -> User:
    """The user row and its ``account.created`` event, in one transaction."""
    user = await store.insert_user(
        tx, phone=phone, name=name, password_hash=password_hash, roles=roles
    )
    await events_store.append(
        tx,
        "account.created",
        aggregate_key("user", user.id),
        AccountChanged(
            user_id=user.id,
            roles=list(user.roles),
            status=user.status,
            previous=None,
            at=user.created_at,
        ),
    )
    return user


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
        perms=await permissions_store.claim_for(stores.pool, user.id),
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


def _standing(
    raw: tuple[
        tuple[int, datetime | None, datetime | None],
        tuple[int, datetime | None, datetime | None],
        tuple[int, datetime | None, int],
        bool,
        bool,
    ],
) -> throttle.Standing:
    def ts(at: datetime | None) -> float | None:
        return None if at is None else at.timestamp()

    pair, phone, network, known, trusted = raw
    return throttle.Standing(
        pair=throttle.Failures(pair[0], ts(pair[1]), ts(pair[2])),
        phone=throttle.Failures(phone[0], ts(phone[1]), ts(phone[2])),
        network=throttle.Failures(network[0], ts(network[1]), None),
        network_phones=network[2],
        phone_known_to_network=known,
        trusted=trusted,
    )


_WAIT_MESSAGES = {
    "pair": ("too many failed logins for this phone from your network", "phone"),
    "phone": ("too many failed logins for this phone", "phone"),
    "network_failures": ("too many failed logins from your network", None),
    "network_phones": ("too many phone numbers tried from your network", None),
}


async def _admit_login(
    stores: Stores, phone: str, client: Client, limits: LoginLimits, now: int
) -> None:
    """Refuse the attempt with a wait if a limit says so; else count it as a failure
    until it succeeds (so parallel guesses take their turns: one phone's attempts are
    serialised by a lock held only for this check, never during the password hash)."""
    since = _ts(now - limits.window_s)
    trusted_since = _ts(now - limits.trusted_for_s)
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.lock_login(conn, phone)
        raw = await store.login_standing(
            conn, phone=phone, ip=client.network, since=since, trusted_since=trusted_since
        )
        wait = throttle.wait(_standing(raw), limits, now=now)
        if wait is None:
            await store.count_login_failure(
                conn, phone=phone, ip=client.network, now=_ts(now), since=since
            )
    await store.prune_login_failures(stores.pool, since=since, trusted_since=trusted_since)
    if wait is not None:
        text, field = _WAIT_MESSAGES[wait.scope]
        raise TooManyAttempts(
            f"{text}; try again in {wait.retry_after_s} s",
            field=field,
            retry_after_s=wait.retry_after_s,
        )


async def login(
    stores: Stores,
    policy: TokenPolicy,
    *,
    phone: str,
    password: str,
    now: int,
    client: Client,
    limits: LoginLimits = DEFAULT_LIMITS,
) -> TokenPair:
    """Phone and password for a token pair; guessing is slowed down, never locked out.

    The limits (:mod:`accounts.throttle`) live in PostgreSQL, so losing Redis forgets
    none of them. The SMS-code login, when the SMS provider comes, is a separate entry
    point beside this one (``login_with_code``): a code sent to the phone is the owner's
    way in however hard someone guesses the password, with limits of its own (per phone
    for sending, per code for trying).
    """
    phone = normalize_phone(phone)
    if not client.exempt:
        await _admit_login(stores, phone, client, limits, now)
    found = await store.credentials_by_phone(stores.pool, phone)
    ok = await verify_password(found[1] if found else None, password)
    if not ok or found is None or found[0].status != "active":
        if found is not None and ok:
            raise BadCredentials(f"this account is {found[0].status}")
        raise BadCredentials("phone or password is wrong")
    if not client.exempt:
        await store.login_succeeded(stores.pool, phone=phone, ip=client.network, now=_ts(now))
    pair, _ = await _issue_pair(stores, found[0], policy, now)
    return pair


async def register(
    stores: Stores,
    *,
    phone: str,
    name: str,
    password: str,
    now: int,
    client: Client,
    limits: LoginLimits = DEFAULT_LIMITS,
) -> str:
    """Create a customer account; the normalized phone. The same answer whether or not
    the phone already had an account (no list of customers' phones to be drawn from it),
    and at most ``limits.register_per_window`` tries per network and window.

    Without SMS verification this cannot be complete: logging in with the password just
    registered still tells whether the account was made now (rate limited per network,
    :mod:`accounts.throttle`). The SMS-verified registration closes that.
    """
    phone = normalize_phone(phone)
    name = check_name(name)
    check_password(password, phone=phone)
    if not client.exempt:
        hits, started = await store.hit_window(
            stores.pool,
            bucket="register",
            key=client.network,
            now=_ts(now),
            window_start_after=_ts(now - limits.window_s),
        )
        if hits > limits.register_per_window:
            retry = int(started.timestamp()) + limits.window_s - now
            raise TooManyAttempts(
                f"too many registrations from your network; try again in {max(1, retry)} s",
                retry_after_s=retry,
            )
    with contextlib.suppress(PhoneTaken):  # answered like a success: see the docstring
        await create_user(stores, phone=phone, name=name, password=password, roles=["customer"])
    return phone


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
    await revocations.revoke_token(stores, access, now=now)
    if refresh_token:
        claims = verify(refresh_token, key=policy.key, now=now, typ="refresh")
        if claims.user_id != access.user_id or claims.family is None:
            raise InvalidToken("refresh token belongs to another login")
        await store.revoke_family(stores.pool, claims.family, _ts(now))


async def authenticate(stores: Stores, policy: TokenPolicy, token: str, *, now: int) -> Claims:
    """Verify an access token; refuse it if revoked or issued before the account was frozen
    (from PostgreSQL when Redis cannot say: :mod:`accounts.revocations`)."""
    claims = verify(token, key=policy.key, now=now, typ="access")
    await check_current(stores, claims)
    return claims


async def check_current(stores: Stores, claims: Claims) -> None:
    """Refuse verified claims whose token was revoked or issued before a freeze.

    Also for a socket that was signed in before it could be told of a freeze: checked
    again once it is registered, no freeze falls between the two. Fails closed: when
    neither Redis nor PostgreSQL can answer, the store error propagates (503 / 1013).
    """
    await revocations.check(stores, claims)


async def get_user(stores: Stores, user_id: int) -> User:
    """The user or :class:`UnknownUser`."""
    user = await store.user_by_id(stores.pool, user_id)
    if user is None:
        raise UnknownUser(f"no user {user_id}")
    return user


_STATUS_ACTION = {
    "frozen": "account.freeze",
    "active": "account.unfreeze",
    "closed": "account.close",
}


async def set_status(
    stores: Stores,
    policy: TokenPolicy,
    user_id: int,
    status: str,
    *,
    now: int,
    by: int | None = None,
) -> User:
    """Freeze, unfreeze or close an account (``by``: the admin asking, who may not change
    their own).

    Freezing bumps the user's token version and revokes their refresh tokens, so every
    token issued before stops working, even after an unfreeze (the freeze may have been
    for a compromised account).
    """
    if by == user_id and status != "active":
        raise OwnStatus(f"you cannot make your own account {status}; another admin can")
    version = None
    ttl_s = policy.access_ttl_s
    async with stores.pool.acquire() as conn, conn.transaction():
        user = await store.set_user_status(conn, user_id, status)
        if user is None:
            raise UnknownUser(f"no user {user_id}")
        await audit_store.append(  # freezes, unfreezes and closures are audited (audit/)
            conn,
            actor_id=by,
            action=_STATUS_ACTION.get(status, f"account.{status}"),
            subject=f"user:{user_id}",
            detail={"status": status},
        )
        if status != "active":
            await store.revoke_user(conn, user_id, _ts(now))
            # PostgreSQL and the Redis cache, the cache before the commit (a Redis that
            # cannot take it aborts the freeze: 503, nothing changed).
            version = await revocations.bump_version(conn, stores, user_id, now=now, ttl_s=ttl_s)
    if version is not None:
        await revocations.after_bump(stores, user_id, version, now=now, ttl_s=ttl_s)
        # Tokens are checked when a socket opens: sockets already open close now.
        try:
            await stores.redis.publish(stores.keys.revocations(), str(user_id))
        except revocations.REDIS_ERRORS as e:  # committed; sockets are checked on open
            log.warning("freeze of user %s not published to open sockets: %s", user_id, e)
    return user

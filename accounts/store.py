"""PostgreSQL access for users, refresh tokens and addresses."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from accounts.errors import PhoneTaken
from accounts.models import Address, User
from doorstep.db import Conn
from privacy.crypto import blind, reveal, seal

_USER_COLS = "id, phone, name, roles, status, created_at"


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        phone=reveal("users.phone", row["phone"]),
        name=row["name"],
        roles=tuple(row["roles"]),
        status=row["status"],
        created_at=row["created_at"],
    )


async def insert_user(
    db: Conn, *, phone: str, name: str, password_hash: str, roles: tuple[str, ...]
) -> User:
    """Create a user; :class:`PhoneTaken` if the phone is in use."""
    try:
        row = await db.fetchrow(
            "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
            f"VALUES ($1, $2, $3, $4, $5) RETURNING {_USER_COLS}",
            seal("users.phone", phone),
            blind("phone", phone),
            name,
            password_hash,
            list(roles),
        )
    except asyncpg.UniqueViolationError:
        raise PhoneTaken("another account uses this phone number", field="phone") from None
    assert row is not None
    return _user(row)


async def user_by_id(db: Conn, user_id: int) -> User | None:
    """The user, or None."""
    row = await db.fetchrow(f"SELECT {_USER_COLS} FROM users WHERE id = $1", user_id)
    return _user(row) if row else None


async def token_version(db: Conn, user_id: int) -> int:
    """The version access tokens of this user must carry (bumped on freeze/close)."""
    return int(await db.fetchval("SELECT token_version FROM users WHERE id = $1", user_id) or 0)


async def bump_token_version(db: Conn, user_id: int, until: datetime) -> int:
    """Void every token issued so far; returns the new version. ``until``: when every
    token issued before has expired (now plus the access-token lifetime)."""
    return int(
        await db.fetchval(
            "UPDATE users SET token_version = token_version + 1, "
            "token_version_until = greatest(token_version_until, $2) "
            "WHERE id = $1 RETURNING token_version",
            user_id,
            until,
        )
        or 0
    )


async def credentials_by_phone(db: Conn, phone: str) -> tuple[User, str] | None:
    """The user and their password hash, for login."""
    row = await db.fetchrow(
        f"SELECT {_USER_COLS}, password_hash FROM users WHERE phone_bidx = $1",
        blind("phone", phone),
    )
    return (_user(row), row["password_hash"]) if row else None


async def list_users(db: Conn, *, role: str | None, limit: int, after_id: int) -> list[User]:
    """Users by id, optionally with a role, for keyset pagination."""
    rows = await db.fetch(
        f"SELECT {_USER_COLS} FROM users WHERE id > $1 AND ($2::text IS NULL OR $2 = ANY(roles)) "
        "ORDER BY id LIMIT $3",
        after_id,
        role,
        limit,
    )
    return [_user(r) for r in rows]


async def set_user_status(db: Conn, user_id: int, status: str) -> User | None:
    """Freeze, unfreeze or close an account."""
    row = await db.fetchrow(
        f"UPDATE users SET status = $2, updated_at = now() WHERE id = $1 RETURNING {_USER_COLS}",
        user_id,
        status,
    )
    return _user(row) if row else None


async def insert_refresh(
    db: Conn, *, jti: str, user_id: int, family: str, issued_at: datetime, expires_at: datetime
) -> None:
    """Record a refresh token so it can be rotated and revoked."""
    await db.execute(
        "INSERT INTO refresh_tokens (jti, user_id, family, issued_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        uuid.UUID(jti),
        user_id,
        uuid.UUID(family),
        issued_at,
        expires_at,
    )


async def rotate_refresh(db: Conn, *, jti: str, replaced_by: str, now: datetime) -> bool:
    """Revoke ``jti`` in favour of ``replaced_by``; False if it was already revoked (reuse)."""
    status = await db.execute(
        "UPDATE refresh_tokens SET revoked_at = $2, replaced_by = $3 "
        "WHERE jti = $1 AND revoked_at IS NULL AND expires_at > $2",
        uuid.UUID(jti),
        now,
        uuid.UUID(replaced_by),
    )
    return status.endswith(" 1")


async def revoke_family(db: Conn, family: str, now: datetime) -> None:
    """Revoke every refresh token descending from one login."""
    await db.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
        uuid.UUID(family),
        now,
    )


async def revoke_user(db: Conn, user_id: int, now: datetime) -> None:
    """Revoke every refresh token of a user (freeze, password change)."""
    await db.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        now,
    )


_ADDR_COLS = (
    "id, user_id, label, lat, lng, source_crs, detail, contact_name, contact_phone, "
    "city_id, created_at"
)


def _address(row: asyncpg.Record) -> Address:
    fields = dict(row)
    fields["detail"] = reveal("addresses.detail", fields["detail"])
    fields["contact_phone"] = reveal("addresses.contact_phone", fields["contact_phone"])
    return Address(**fields)


async def insert_address(
    db: Conn,
    *,
    user_id: int,
    label: str,
    lat: float,
    lng: float,
    source_crs: str,
    detail: str,
    contact_name: str,
    contact_phone: str,
    city_id: str | None,
) -> Address:
    """Save an address (coordinates already WGS-84)."""
    row = await db.fetchrow(
        "INSERT INTO addresses (user_id, label, lat, lng, source_crs, detail, contact_name, "
        f"contact_phone, city_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING {_ADDR_COLS}",
        user_id,
        label,
        lat,
        lng,
        source_crs,
        seal("addresses.detail", detail),
        contact_name,
        seal("addresses.contact_phone", contact_phone),
        city_id,
    )
    assert row is not None
    return _address(row)


async def addresses_of(db: Conn, user_id: int) -> list[Address]:
    """A user's addresses, oldest first."""
    rows = await db.fetch(
        f"SELECT {_ADDR_COLS} FROM addresses WHERE user_id = $1 ORDER BY id", user_id
    )
    return [_address(r) for r in rows]


async def address_by_id(db: Conn, address_id: int) -> Address | None:
    """One address, whoever owns it (callers check ownership)."""
    row = await db.fetchrow(f"SELECT {_ADDR_COLS} FROM addresses WHERE id = $1", address_id)
    return _address(row) if row else None


async def delete_address(db: Conn, address_id: int, user_id: int) -> bool:
    """Delete an address of ``user_id``; False if there was none."""
    status = await db.execute(
        "DELETE FROM addresses WHERE id = $1 AND user_id = $2", address_id, user_id
    )
    return status.endswith(" 1")


# --- security state that must survive a Redis loss (migration 0013) --------------------


async def insert_revocation(
    db: Conn, *, jti: str, user_id: int, expires_at: datetime, revoked_at: datetime
) -> None:
    """Record a logged-out access token (and forget ones long expired)."""
    await db.execute(
        "INSERT INTO revoked_access_tokens (jti, user_id, expires_at, revoked_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
        uuid.UUID(jti),
        user_id,
        expires_at,
        revoked_at,
    )
    await db.execute(
        "DELETE FROM revoked_access_tokens WHERE jti IN (SELECT jti FROM revoked_access_tokens "
        "WHERE expires_at < $1 LIMIT 100 FOR UPDATE SKIP LOCKED)",
        revoked_at,
    )


async def live_revocations(db: Conn, now: datetime) -> list[tuple[str, datetime]]:
    """Revoked access tokens that have not expired yet: (jti, expires_at)."""
    rows = await db.fetch(
        "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > $1", now
    )
    return [(str(r["jti"]), r["expires_at"]) for r in rows]


async def recent_version_bumps(db: Conn, now: datetime) -> list[tuple[int, int, datetime]]:
    """Users whose token version was bumped recently enough that older tokens may still
    be unexpired: (user_id, version, until)."""
    rows = await db.fetch(
        "SELECT id, token_version, token_version_until FROM users WHERE token_version_until > $1",
        now,
    )
    return [(r["id"], r["token_version"], r["token_version_until"]) for r in rows]


async def token_state(db: Conn, user_id: int, jti: str) -> tuple[int | None, bool]:
    """(the user's token version or None if no such user, whether ``jti`` is revoked)."""
    row = await db.fetchrow(
        "SELECT (SELECT token_version FROM users WHERE id = $1) AS version, "
        "EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $2) AS revoked",
        user_id,
        uuid.UUID(jti),
    )
    assert row is not None
    return row["version"], bool(row["revoked"])


def _failure_key(phone: str) -> str:
    """What ``login_failures.phone`` holds: the phone's blind index (hex), not the phone."""
    return blind("phone", phone).hex()


async def lock_login(db: Conn, phone: str) -> None:
    """Serialise login attempts on one phone until the transaction ends."""
    await db.execute("SELECT pg_advisory_xact_lock(hashtext('login:' || $1))", phone)


async def login_standing(
    db: Conn, *, phone: str, ip: str, since: datetime, trusted_since: datetime
) -> tuple[
    tuple[int, datetime | None, datetime | None],
    tuple[int, datetime | None, datetime | None],
    tuple[int, datetime | None, int],
    bool,
    bool,
]:
    """Failures within the window for the pair, the phone and the network.

    Returns ((pair count, first, last), (phone count, first, last), (network count,
    first, distinct phones), whether the network already failed on this phone, whether
    the owner logged in from this network since ``trusted_since``).
    """
    row = await db.fetchrow(
        "SELECT p.failures AS pair_n, p.first_failure_at AS pair_first, "
        "p.last_failure_at AS pair_last, p.last_success_at AS pair_success, "
        "ph.n AS phone_n, ph.first AS phone_first, ph.last AS phone_last, "
        "nw.n AS net_n, nw.first AS net_first, nw.phones AS net_phones "
        "FROM (SELECT 1) AS one "
        "LEFT JOIN login_failures p ON p.phone = $1 AND p.ip = $2 "
        "CROSS JOIN LATERAL (SELECT coalesce(sum(failures), 0)::int AS n, "
        "  min(first_failure_at) AS first, max(last_failure_at) AS last "
        "  FROM login_failures WHERE phone = $1 AND last_failure_at > $3) AS ph "
        "CROSS JOIN LATERAL (SELECT coalesce(sum(failures), 0)::int AS n, "
        "  min(first_failure_at) AS first, count(*)::int AS phones "
        "  FROM login_failures WHERE ip = $2 AND last_failure_at > $3) AS nw",
        _failure_key(phone),
        ip,
        since,
    )
    assert row is not None
    fresh = row["pair_last"] is not None and row["pair_last"] > since
    pair = (int(row["pair_n"]), row["pair_first"], row["pair_last"]) if fresh else (0, None, None)
    success = row["pair_success"]
    return (
        pair,
        (int(row["phone_n"]), row["phone_first"], row["phone_last"]),
        (int(row["net_n"]), row["net_first"], int(row["net_phones"])),
        fresh,
        success is not None and success > trusted_since,
    )


async def count_login_failure(
    db: Conn, *, phone: str, ip: str, now: datetime, since: datetime
) -> None:
    """Count a failed (or not yet checked) login for the pair; counts older than
    ``since`` start over."""
    await db.execute(
        "INSERT INTO login_failures (phone, ip, failures, first_failure_at, last_failure_at) "
        "VALUES ($1, $2, 1, $3, $3) ON CONFLICT (phone, ip) DO UPDATE SET "
        "failures = CASE WHEN login_failures.last_failure_at > $4 "
        "  THEN login_failures.failures + 1 ELSE 1 END, "
        "first_failure_at = CASE WHEN login_failures.last_failure_at > $4 "
        "  THEN login_failures.first_failure_at ELSE $3 END, "
        "last_failure_at = $3",
        _failure_key(phone),
        ip,
        now,
        since,
    )


async def login_succeeded(db: Conn, *, phone: str, ip: str, now: datetime) -> None:
    """The owner logged in from this network: clear its failures, remember it."""
    await db.execute(
        "INSERT INTO login_failures (phone, ip, failures, last_success_at) "
        "VALUES ($1, $2, 0, $3) ON CONFLICT (phone, ip) DO UPDATE SET "
        "failures = 0, first_failure_at = NULL, last_failure_at = NULL, last_success_at = $3",
        _failure_key(phone),
        ip,
        now,
    )


async def prune_login_failures(db: Conn, *, since: datetime, trusted_since: datetime) -> None:
    """Forget up to 100 pairs whose failures are past the window and that no recent
    login trusts."""
    await db.execute(
        "DELETE FROM login_failures WHERE (phone, ip) IN (SELECT phone, ip FROM login_failures "
        "WHERE last_failure_at < $1 AND (last_success_at IS NULL OR last_success_at < $2) "
        "LIMIT 100 FOR UPDATE SKIP LOCKED)",
        since,
        trusted_since,
    )


async def hit_window(
    db: Conn, *, bucket: str, key: str, now: datetime, window_start_after: datetime
) -> tuple[int, datetime]:
    """Count one hit in a fixed window; (hits so far, when the window started). A window
    that started at or before ``window_start_after`` is over: a new one starts now."""
    row = await db.fetchrow(
        "INSERT INTO rate_windows (bucket, key, window_start, hits) VALUES ($1, $2, $3, 1) "
        "ON CONFLICT (bucket, key) DO UPDATE SET "
        "hits = CASE WHEN rate_windows.window_start > $4 THEN rate_windows.hits + 1 ELSE 1 END, "
        "window_start = CASE WHEN rate_windows.window_start > $4 "
        "  THEN rate_windows.window_start ELSE $3 END "
        "RETURNING hits, window_start",
        bucket,
        key,
        now,
        window_start_after,
    )
    assert row is not None
    await db.execute(
        "DELETE FROM rate_windows WHERE (bucket, key) IN (SELECT bucket, key FROM rate_windows "
        "WHERE window_start <= $1 LIMIT 100 FOR UPDATE SKIP LOCKED)",
        window_start_after,
    )
    return int(row["hits"]), row["window_start"]

"""PostgreSQL access for users, refresh tokens and addresses."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from accounts.errors import PhoneTaken
from accounts.models import Address, User
from doorstep.db import Conn

_USER_COLS = "id, phone, name, roles, status, created_at"


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        phone=row["phone"],
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
            f"INSERT INTO users (phone, name, password_hash, roles) VALUES ($1, $2, $3, $4) "
            f"RETURNING {_USER_COLS}",
            phone,
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


async def bump_token_version(db: Conn, user_id: int) -> int:
    """Void every token issued so far; returns the new version."""
    return int(
        await db.fetchval(
            "UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version",
            user_id,
        )
        or 0
    )


async def credentials_by_phone(db: Conn, phone: str) -> tuple[User, str] | None:
    """The user and their password hash, for login."""
    row = await db.fetchrow(
        f"SELECT {_USER_COLS}, password_hash FROM users WHERE phone = $1", phone
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
    return Address(**dict(row))


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
        detail,
        contact_name,
        contact_phone,
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

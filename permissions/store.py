"""PostgreSQL access for roles, grants and their audit (migration 0022)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from doorstep.db import Conn, Tx
from permissions.models import AuditEntry, Grant, Role
from permissions.rules import SCOPE_KINDS, TEMPLATES, Template, claim_of

_GRANT = "id, user_id, role, scope, granted_by, granted_at, revoked_by, revoked_at"


def _grant(r: asyncpg.Record) -> Grant:
    return Grant(**dict(r))


def _role(r: asyncpg.Record) -> Role:
    return Role(
        name=r["name"],
        title=r["title"],
        permissions=tuple(r["permissions"]),
        scopes=tuple(r["scopes"]),
        builtin=False,
    )


def as_template(role: Role) -> Template:
    """An admin-made role as a template."""
    scopes = tuple(k for k in SCOPE_KINDS if k in role.scopes)
    return Template(role.name, role.title, role.title, role.permissions, scopes, builtin=False)


async def custom_roles(db: Conn) -> list[Role]:
    """Roles admins made, by name."""
    return [_role(r) for r in await db.fetch("SELECT * FROM roles ORDER BY name")]


async def custom_role(db: Conn, name: str) -> Role | None:
    """One admin-made role."""
    row = await db.fetchrow("SELECT * FROM roles WHERE name = $1", name)
    return _role(row) if row else None


async def insert_role(db: Conn, role: Role, created_by: int) -> bool:
    """Create a role; False if the name is taken."""
    status = await db.execute(
        "INSERT INTO roles (name, title, permissions, scopes, created_by) "
        "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (name) DO NOTHING",
        role.name,
        role.title,
        list(role.permissions),
        list(role.scopes),
        created_by,
    )
    return status.endswith(" 1")


async def delete_role(db: Conn, name: str) -> bool:
    """Delete a role; False if there was none."""
    return (await db.execute("DELETE FROM roles WHERE name = $1", name)).endswith(" 1")


async def role_in_use(db: Conn, name: str) -> bool:
    """True if a live grant names the role."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM role_grants WHERE role = $1 AND revoked_at IS NULL)", name
        )
    )


async def insert_grant(db: Tx, *, user_id: int, role: str, scope: str, by: int) -> Grant | None:
    """A live grant; None if the user holds the role in that scope already."""
    try:
        async with db.transaction():  # a savepoint: the caller's transaction goes on
            row = await db.fetchrow(
                f"INSERT INTO role_grants (user_id, role, scope, granted_by) VALUES ($1,$2,$3,$4) "
                f"RETURNING {_GRANT}",
                user_id,
                role,
                scope,
                by,
            )
    except asyncpg.UniqueViolationError:
        return None
    assert row is not None
    return _grant(row)


async def revoke_grant(db: Conn, grant_id: int, *, by: int, now: datetime) -> Grant | None:
    """Revoke a live grant; None if there is none of that id."""
    row = await db.fetchrow(
        f"UPDATE role_grants SET revoked_by = $2, revoked_at = $3 "
        f"WHERE id = $1 AND revoked_at IS NULL RETURNING {_GRANT}",
        grant_id,
        by,
        now,
    )
    return _grant(row) if row else None


async def grants(db: Conn, *, user_id: int | None, live_only: bool = True) -> list[Grant]:
    """Grants, of one user or all, oldest first."""
    rows = await db.fetch(
        f"SELECT {_GRANT} FROM role_grants WHERE ($1::bigint IS NULL OR user_id = $1) "
        "AND (NOT $2 OR revoked_at IS NULL) ORDER BY id",
        user_id,
        live_only,
    )
    return [_grant(r) for r in rows]


async def audit(
    db: Conn,
    *,
    actor_id: int | None,
    action: str,
    user_id: int | None,
    role: str | None = None,
    scope: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append to the audit."""
    await db.execute(
        "INSERT INTO permission_audit (actor_id, action, user_id, role, scope, detail) "
        "VALUES ($1,$2,$3,$4,$5,$6::jsonb)",
        actor_id,
        action,
        user_id,
        role,
        scope,
        orjson.dumps(detail or {}).decode(),
    )


async def audit_log(db: Conn, *, user_id: int | None, limit: int) -> list[AuditEntry]:
    """The audit, newest first."""
    rows = await db.fetch(
        "SELECT id, at, actor_id, action, user_id, role, scope, detail::text AS detail "
        "FROM permission_audit WHERE ($1::bigint IS NULL OR user_id = $1) ORDER BY id DESC LIMIT $2",
        user_id,
        limit,
    )
    return [
        AuditEntry(
            id=r["id"],
            at=r["at"],
            actor_id=r["actor_id"],
            action=r["action"],
            user_id=r["user_id"],
            role=r["role"],
            scope=r["scope"],
            detail=orjson.loads(r["detail"]),
        )
        for r in rows
    ]


async def claim_for(db: Conn, user_id: int) -> dict[str, list[str]]:
    """The permissions a user's live grants give, for the access token (a grant of a
    role that no longer exists gives nothing)."""
    rows = await db.fetch(
        "SELECT g.role, g.scope, r.title, r.permissions, r.scopes FROM role_grants g "
        "LEFT JOIN roles r ON r.name = g.role WHERE g.user_id = $1 AND g.revoked_at IS NULL",
        user_id,
    )
    held: list[tuple[Template, str]] = []
    for r in rows:
        template = TEMPLATES.get(r["role"])
        if template is None and r["permissions"] is not None:
            template = Template(r["role"], r["title"], r["title"], tuple(r["permissions"]), ())
        if template is not None:
            held.append((template, r["scope"]))
    return claim_of(held)

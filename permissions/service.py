"""Roles and grants: create, grant, revoke — each audited, each taking effect at once.

A grant or a revoke bumps the user's token version inside its transaction
(accounts/revocations.py: the new version goes to Redis before the commit, and a Redis
that cannot take it aborts the change with a 503). The user's access tokens issued
before are then refused, from Redis or — when Redis lost its data or does not answer —
from PostgreSQL; nothing is accepted that neither store vouches for. The next refresh
issues a token with the user's current grants.
"""

from __future__ import annotations

from datetime import UTC, datetime

from accounts import revocations
from accounts import store as accounts_store
from accounts.errors import UnknownUser
from doorstep.stores import Stores
from permissions import store
from permissions.errors import (
    DuplicateGrant,
    GrantNotFound,
    RoleInUse,
    RoleNotFound,
    RoleTaken,
)
from permissions.models import Grant, Role
from permissions.rules import (
    SCOPE_KINDS,
    TEMPLATES,
    Template,
    check_grant_scope,
    check_permissions,
    check_role_name,
)


def template_role(t: Template) -> Role:
    """A template as the API shows roles."""
    return Role(t.name, f"{t.title_zh} {t.title_en}", t.permissions, t.scopes, builtin=True)


async def roles(stores: Stores) -> list[Role]:
    """The templates, then the roles admins made."""
    return [template_role(t) for t in TEMPLATES.values()] + await store.custom_roles(stores.pool)


async def role_template(stores: Stores, name: str, field: str = "role") -> Template:
    """A grantable role by name (a template or an admin-made role)."""
    if name in TEMPLATES:
        return TEMPLATES[name]
    role = await store.custom_role(stores.pool, name)
    if role is None:
        raise RoleNotFound(f"no role {name!r}; see GET /v1/roles", field=field)
    return store.as_template(role)


async def create_role(
    stores: Stores,
    *,
    actor_id: int,
    name: str,
    title: str,
    permissions: list[str],
    scopes: list[str],
) -> Role:
    """An admin-made role."""
    role = Role(
        check_role_name(name),
        title,
        check_permissions(permissions),
        tuple(k for k in SCOPE_KINDS if k in scopes),
        builtin=False,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        if not await store.insert_role(conn, role, actor_id):
            raise RoleTaken(f"a role {name!r} exists", field="name")
        await store.audit(
            conn,
            actor_id=actor_id,
            action="role.create",
            user_id=None,
            role=name,
            detail={"permissions": list(role.permissions), "scopes": list(role.scopes)},
        )
    return role


async def delete_role(stores: Stores, *, actor_id: int, name: str) -> None:
    """Delete an admin-made role that nobody holds."""
    async with stores.pool.acquire() as conn, conn.transaction():
        if await store.role_in_use(conn, name):
            raise RoleInUse(f"role {name!r} is granted; revoke its grants first", field="name")
        if not await store.delete_role(conn, name):
            raise RoleNotFound(f"no role {name!r} made by an admin", field="name")
        await store.audit(conn, actor_id=actor_id, action="role.delete", user_id=None, role=name)


async def grant(
    stores: Stores,
    *,
    actor_id: int,
    user_id: int,
    role: str,
    scope: str,
    token_ttl_s: int,
    now: int,
) -> Grant:
    """Give ``user_id`` the role in the scope; their older tokens stop working."""
    template = await role_template(stores, role)
    check_grant_scope(template, scope)
    async with stores.pool.acquire() as conn, conn.transaction():
        if await accounts_store.user_by_id(conn, user_id) is None:
            raise UnknownUser(f"no user {user_id}", field="user_id")
        made = await store.insert_grant(conn, user_id=user_id, role=role, scope=scope, by=actor_id)
        if made is None:
            raise DuplicateGrant(f"user {user_id} holds {role!r} in {scope} already", field="role")
        await store.audit(
            conn, actor_id=actor_id, action="grant", user_id=user_id, role=role, scope=scope
        )
        version = await revocations.bump_version(conn, stores, user_id, now=now, ttl_s=token_ttl_s)
    await revocations.after_bump(stores, user_id, version, now=now, ttl_s=token_ttl_s)
    return made


async def revoke(
    stores: Stores, *, actor_id: int, grant_id: int, token_ttl_s: int, now: int
) -> Grant:
    """Revoke a grant; the user's tokens that carried it are refused from now on."""
    async with stores.pool.acquire() as conn, conn.transaction():
        done = await store.revoke_grant(
            conn, grant_id, by=actor_id, now=datetime.fromtimestamp(now, UTC)
        )
        if done is None:
            raise GrantNotFound(f"no live grant {grant_id}", field="grant_id")
        await store.audit(
            conn,
            actor_id=actor_id,
            action="revoke",
            user_id=done.user_id,
            role=done.role,
            scope=done.scope,
            detail={"grant_id": grant_id},
        )
        version = await revocations.bump_version(
            conn, stores, done.user_id, now=now, ttl_s=token_ttl_s
        )
    await revocations.after_bump(stores, done.user_id, version, now=now, ttl_s=token_ttl_s)
    return done
